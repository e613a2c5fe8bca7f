//! Which backend an index is built with, and its build parameters: one type, with
//! named constructors that check what each backend accepts, and the serde form the
//! catalog records (`"backend": "hnsw", "parameters": {"m": 16, …}`).
//!
//! A new backend is one new variant here (with its parameters type) and one new
//! file in the server's `vector/` that builds and searches it (`faiss.rs` and
//! `lance.rs` for the two that run in worker processes).

use serde::{Deserialize, Serialize};

use crate::{HnswParams, IndexError, Metric};

/// Lists an IVF search probes by default.
pub const DEFAULT_NPROBE: usize = 16;

/// Longest Faiss `index_factory` string accepted.
const MAX_FACTORY: usize = 256;

/// Largest `nprobe` accepted.
const MAX_NPROBE: usize = 65_536;

/// The backend names, in the order errors list them.
pub const BACKEND_NAMES: [&str; 4] = ["hnsw", "flat", "faiss", "lance"];

/// An index's backend with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", content = "parameters", rename_all = "lowercase")]
pub enum Backend {
    /// Exact search over every vector (recall 1.0), in the server.
    Flat,
    /// Our HNSW graph, in the server.
    Hnsw(HnswParams),
    /// A Faiss index, in the Faiss worker process.
    Faiss(FaissParams),
    /// A Lance dataset with an IVF index, in the index's home bucket, served by the
    /// Lance worker process.
    Lance(LanceParams),
}

impl Default for Backend {
    fn default() -> Self {
        Self::Hnsw(HnswParams::default())
    }
}

impl Backend {
    /// The backend `name` names (`hnsw` when empty), with default parameters.
    pub fn named(name: &str) -> Result<Self, IndexError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "hnsw" => Ok(Self::Hnsw(HnswParams::default())),
            "flat" => Ok(Self::Flat),
            "faiss" => Ok(Self::Faiss(FaissParams::default())),
            "lance" => Ok(Self::Lance(LanceParams::default())),
            other => Err(IndexError::Invalid(format!(
                "backend: {other:?} is not {}",
                BACKEND_NAMES.join(", ")
            ))),
        }
    }

    /// An exact (flat) index.
    pub fn flat() -> Self {
        Self::Flat
    }

    /// An HNSW graph: `m`, `ef_construction` and `ef_search` (0: the default of
    /// each), checked against `metric`.
    pub fn hnsw(
        m: usize,
        ef_construction: usize,
        ef_search: usize,
        metric: Metric,
    ) -> Result<Self, IndexError> {
        let defaults = HnswParams::default();
        let pick = |value: usize, default: usize| if value == 0 { default } else { value };
        let params = HnswParams {
            m: pick(m, defaults.m),
            ef_construction: pick(ef_construction, defaults.ef_construction),
            ef_search: pick(ef_search, defaults.ef_search),
        };
        params.validate(metric)?;
        Ok(Self::Hnsw(params))
    }

    /// A Faiss index: its `index_factory` string ("" picks one by size at build
    /// time), the lists a search probes (0: [`DEFAULT_NPROBE`]) and the HNSW
    /// candidates a search keeps (0: [`HnswParams`]'s default).
    pub fn faiss(factory: &str, nprobe: usize, ef_search: usize) -> Result<Self, IndexError> {
        if factory.len() > MAX_FACTORY || factory.contains(char::is_control) {
            return Err(IndexError::Invalid(format!(
                "factory: at most {MAX_FACTORY} printable characters, e.g. \"IVF256,Flat\""
            )));
        }
        if nprobe > MAX_NPROBE {
            return Err(IndexError::Invalid(format!(
                "nprobe: {nprobe} is above {MAX_NPROBE}"
            )));
        }
        Ok(Self::Faiss(FaissParams {
            factory: factory.trim().to_string(),
            nprobe,
            ef_search: if ef_search == 0 {
                HnswParams::default().ef_search
            } else {
                ef_search
            },
        }))
    }

    /// A Lance index (see [`LanceParams`]; zeros take the defaults, some of them
    /// chosen from the data at build time by [`LanceParams::resolved`]).
    pub fn lance(params: LanceParams) -> Result<Self, IndexError> {
        params.validate()?;
        Ok(Self::Lance(params))
    }

    /// The name recorded with an index: `flat`, `hnsw`, `faiss` or `lance`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Flat => "flat",
            Self::Hnsw(_) => "hnsw",
            Self::Faiss(_) => "faiss",
            Self::Lance(_) => "lance",
        }
    }

    /// The `ef` a search uses when it sets none (0: the backend has no such knob).
    pub fn default_ef(&self) -> usize {
        match self {
            Self::Flat => 0,
            Self::Hnsw(params) => params.ef_search,
            Self::Faiss(params) => params.ef_search,
            Self::Lance(params) => params.ef,
        }
    }

    /// Whether the built structure is kept beside the vectors (a graph, a Faiss file
    /// or a Lance dataset), so a restart reads it back instead of rebuilding.
    pub fn saves_structure(&self) -> bool {
        !matches!(self, Self::Flat)
    }

    /// The parameters as the catalog records them (a JSON object; `{}` for flat).
    pub fn parameters(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(mut value) => value
                .get_mut("parameters")
                .map(serde_json::Value::take)
                .unwrap_or_else(|| serde_json::json!({})),
            Err(_) => serde_json::json!({}),
        }
    }

    /// The backend recorded as `name` with `parameters` (keys a backend does not
    /// know are ignored; keys it lacks take their defaults).
    pub fn recorded(name: &str, parameters: &serde_json::Value) -> Result<Self, IndexError> {
        let backend = Self::named(name)?;
        if matches!(backend, Self::Flat) {
            return Ok(backend);
        }
        let tagged = serde_json::json!({ "backend": backend.name(), "parameters": parameters });
        serde_json::from_value(tagged)
            .map_err(|e| IndexError::Invalid(format!("{name} parameters: {e}")))
    }
}

/// What a Faiss index is built and searched with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaissParams {
    /// `index_factory` string ("" → [`default_factory`] for the vector count).
    pub factory: String,
    /// Lists a search probes unless it sets its own.
    pub nprobe: usize,
    /// HNSW candidates a search keeps unless it sets its own (0: Faiss's default).
    pub ef_search: usize,
}

impl FaissParams {
    /// With the defaults filled in for an index of `vectors`: the factory
    /// ([`default_factory`]) and nprobe ([`DEFAULT_NPROBE`]).
    pub fn resolved(&self, vectors: usize) -> Self {
        let factory = self.factory.trim();
        Self {
            factory: if factory.is_empty() {
                default_factory(vectors)
            } else {
                factory.to_string()
            },
            nprobe: if self.nprobe == 0 {
                DEFAULT_NPROBE
            } else {
                self.nprobe
            },
            ef_search: self.ef_search,
        }
    }
}

/// The Lance index types, in the order errors list them.
pub const LANCE_INDEX_TYPES: [&str; 3] = ["IVF_PQ", "IVF_HNSW_SQ", "IVF_FLAT"];

/// Lance partitions a search probes by default (Lance's own default).
pub const LANCE_DEFAULT_NPROBE: usize = 20;

/// Below this many vectors a Lance dataset gets no vector index: its searches
/// scan every vector exactly (k-means needs rows to train on), until an optimize
/// finds enough rows to build one.
pub const LANCE_MIN_INDEXED: usize = 1024;

/// What a Lance index is built and searched with. Zeros are "choose for me":
/// [`LanceParams::resolved`] fills them from the data when the index is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LanceParams {
    /// `IVF_PQ` (default), `IVF_HNSW_SQ` or `IVF_FLAT`.
    pub index_type: String,
    /// IVF partitions (default ≈ √vectors).
    pub partitions: usize,
    /// IVF_PQ: sub-vectors, a divisor of the dimension (default: sub-vectors of 8
    /// dimensions, d/8, where 8 divides d; see [`default_sub_vectors`]).
    pub sub_vectors: usize,
    /// IVF_PQ: bits per code (default 8).
    pub bits: usize,
    /// k-means iterations (0: Lance's default, 50).
    pub max_iterations: usize,
    /// Training rows per partition (0: Lance's default, 256).
    pub sample_rate: usize,
    /// IVF_HNSW_SQ: graph degree and build candidates (0: Lance's defaults, 20 and 150).
    pub m: usize,
    pub ef_construction: usize,
    /// Partitions a search probes unless it sets its own (default
    /// [`LANCE_DEFAULT_NPROBE`]).
    pub nprobe: usize,
    /// IVF_PQ: candidates re-ranked on the exact vectors, as a multiple of k, unless a
    /// search sets its own (default 4; 1 is no refine).
    pub refine_factor: usize,
    /// IVF_HNSW_SQ: candidates a search keeps unless it sets its own (0: Lance's).
    pub ef: usize,
    /// Rows appended since the last index build are folded into the index once they
    /// are this fraction of all rows (default 0.1; until then they are searched
    /// exactly).
    pub optimize_fraction: f64,
}

impl Default for LanceParams {
    fn default() -> Self {
        Self {
            index_type: String::new(),
            partitions: 0,
            sub_vectors: 0,
            bits: 0,
            max_iterations: 0,
            sample_rate: 0,
            m: 0,
            ef_construction: 0,
            nprobe: 0,
            refine_factor: 0,
            ef: 0,
            optimize_fraction: 0.0,
        }
    }
}

impl LanceParams {
    /// Checks what can be checked before the data is seen.
    pub fn validate(&self) -> Result<(), IndexError> {
        let kind = self.index_type.trim().to_ascii_uppercase();
        if !kind.is_empty() && !LANCE_INDEX_TYPES.contains(&kind.as_str()) {
            return Err(IndexError::Invalid(format!(
                "lance.indexType: {:?} is not {}",
                self.index_type,
                LANCE_INDEX_TYPES.join(", ")
            )));
        }
        if !matches!(self.bits, 0 | 4 | 8) {
            return Err(IndexError::Invalid(format!(
                "lance.bits: {} is not 4 or 8",
                self.bits
            )));
        }
        if kind != "IVF_PQ" && !kind.is_empty() && (self.sub_vectors != 0 || self.bits != 0) {
            return Err(IndexError::Invalid(format!(
                "lance.subVectors and lance.bits are IVF_PQ parameters, not {kind}'s"
            )));
        }
        if self.partitions > 65_536 || self.nprobe > MAX_NPROBE {
            return Err(IndexError::Invalid(
                "lance.partitions and nprobe: at most 65536".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.optimize_fraction) || self.optimize_fraction.is_nan() {
            return Err(IndexError::Invalid(format!(
                "lance.optimizeFraction: {} is not between 0 and 1",
                self.optimize_fraction
            )));
        }
        Ok(())
    }

    /// With every default filled in for `vectors` vectors of `dimension` values;
    /// refuses sub-vectors that do not divide the dimension.
    pub fn resolved(&self, vectors: usize, dimension: usize) -> Result<Self, IndexError> {
        self.validate()?;
        let kind = self.index_type.trim().to_ascii_uppercase();
        let kind = if kind.is_empty() {
            "IVF_PQ".to_string()
        } else {
            kind
        };
        let pq = kind == "IVF_PQ";
        let sub_vectors = match (pq, self.sub_vectors) {
            (false, _) => 0,
            (true, 0) => default_sub_vectors(dimension),
            (true, given) if !dimension.is_multiple_of(given) => {
                return Err(IndexError::Invalid(format!(
                    "lance.subVectors: {given} does not divide the dimension {dimension} \
                     (try {})",
                    default_sub_vectors(dimension)
                )));
            }
            (true, given) => given,
        };
        let pick = |value: usize, default: usize| if value == 0 { default } else { value };
        Ok(Self {
            partitions: pick(self.partitions, default_partitions(vectors)),
            sub_vectors,
            bits: if pq { pick(self.bits, 8) } else { 0 },
            nprobe: pick(self.nprobe, LANCE_DEFAULT_NPROBE),
            refine_factor: if pq {
                pick(self.refine_factor, 4)
            } else {
                self.refine_factor
            },
            optimize_fraction: if self.optimize_fraction == 0.0 {
                0.1
            } else {
                self.optimize_fraction
            },
            index_type: kind,
            ..self.clone()
        })
    }
}

/// ≈ √vectors partitions, each of at least 39 vectors where there are that many
/// (k-means needs rows per centroid), between 1 and 65536.
pub fn default_partitions(vectors: usize) -> usize {
    let root = (vectors as f64).sqrt().round() as usize;
    root.min(vectors / 39).clamp(1, 65_536)
}

/// The most PQ sub-vectors that keep each at least 8 dimensions wide (d/8 when 8
/// divides d: 48 for 384, 96 for 768), else the most that keep 2 (5 for 50-d
/// GloVe has 10-wide sub-vectors), else 1.
pub fn default_sub_vectors(dimension: usize) -> usize {
    for width in [8, 2] {
        if let Some(count) = (1..=dimension / width)
            .rev()
            .find(|count| dimension.is_multiple_of(*count) && dimension / count >= width)
        {
            return count;
        }
    }
    1
}

/// `IVF{n},Flat` with n ≈ 4·√vectors but at least 39 vectors a list (Faiss's
/// minimum for a sound k-means), between 1 and 65536.
pub fn default_factory(vectors: usize) -> String {
    let by_root = (4.0 * (vectors as f64).sqrt()) as usize;
    let lists = by_root.min(vectors / 39).clamp(1, 65_536);
    format!("IVF{lists},Flat")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_round_trip() {
        assert_eq!(Backend::named("").unwrap().name(), "hnsw");
        assert_eq!(Backend::named(" FLAT ").unwrap(), Backend::Flat);
        let error = Backend::named("annoy").unwrap_err().to_string();
        assert!(error.contains("hnsw, flat, faiss, lance"), "{error}");
        for backend in [
            Backend::flat(),
            Backend::hnsw(8, 50, 32, Metric::L2).unwrap(),
            Backend::faiss("IVF4,Flat", 2, 0).unwrap(),
            Backend::lance(LanceParams {
                index_type: "IVF_HNSW_SQ".into(),
                partitions: 8,
                ..Default::default()
            })
            .unwrap(),
        ] {
            let again = Backend::recorded(backend.name(), &backend.parameters()).unwrap();
            assert_eq!(again, backend);
        }
    }

    #[test]
    fn constructors_check_their_parameters() {
        assert!(Backend::hnsw(1, 0, 0, Metric::Cosine).is_err());
        assert!(Backend::hnsw(0, 0, 0, Metric::Dot).is_err());
        assert_eq!(
            Backend::hnsw(0, 0, 0, Metric::Cosine).unwrap(),
            Backend::Hnsw(HnswParams::default())
        );
        assert!(Backend::faiss(&"x".repeat(300), 0, 0).is_err());
        assert!(Backend::faiss("IVF4,Flat\n", 0, 0).is_err());
        assert!(Backend::faiss("", 70_000, 0).is_err());
        assert_eq!(Backend::faiss("", 0, 0).unwrap().default_ef(), 64);
    }

    #[test]
    fn reads_the_parameters_this_release_records() {
        // As written before the type existed: chunking beside the backend's keys.
        let hnsw = serde_json::json!({"m": 12, "ef_construction": 100, "ef_search": 40,
            "chunk_tokens": 254, "chunk_overlap": 32});
        assert_eq!(
            Backend::recorded("hnsw", &hnsw).unwrap(),
            Backend::Hnsw(HnswParams {
                m: 12,
                ef_construction: 100,
                ef_search: 40
            })
        );
        let faiss = serde_json::json!({"factory": "IVF8,Flat", "nprobe": 4, "ef_search": 64});
        assert_eq!(
            Backend::recorded("faiss", &faiss).unwrap(),
            Backend::Faiss(FaissParams {
                factory: "IVF8,Flat".into(),
                nprobe: 4,
                ef_search: 64
            })
        );
        let flat = serde_json::json!({"chunk_tokens": 254, "chunk_overlap": 32});
        assert_eq!(Backend::recorded("flat", &flat).unwrap(), Backend::Flat);
        assert_eq!(Backend::Flat.parameters(), serde_json::json!({}));
        assert_eq!(default_factory(10_000), "IVF256,Flat");
    }

    #[test]
    fn lance_defaults_come_from_the_data() {
        let params = LanceParams::default().resolved(10_000, 384).unwrap();
        assert_eq!(params.index_type, "IVF_PQ");
        assert_eq!(params.partitions, 100);
        assert_eq!(params.sub_vectors, 48);
        assert_eq!(params.bits, 8);
        assert_eq!(params.nprobe, LANCE_DEFAULT_NPROBE);
        assert_eq!(params.refine_factor, 4);
        assert_eq!(default_sub_vectors(50), 5);
        assert_eq!(default_sub_vectors(768), 96);
        assert_eq!(default_sub_vectors(7), 1);
        assert_eq!(default_partitions(100), 2);
        assert_eq!(default_partitions(10), 1);
        let hnsw = LanceParams {
            index_type: "ivf_hnsw_sq".into(),
            ..Default::default()
        };
        let hnsw = hnsw.resolved(100_000, 384).unwrap();
        assert_eq!(
            (hnsw.index_type.as_str(), hnsw.sub_vectors, hnsw.partitions),
            ("IVF_HNSW_SQ", 0, 316)
        );
    }

    #[test]
    fn lance_parameters_are_checked() {
        let with = |f: fn(&mut LanceParams)| {
            let mut params = LanceParams::default();
            f(&mut params);
            params
        };
        assert!(Backend::lance(with(|p| p.index_type = "DISKANN".into())).is_err());
        assert!(Backend::lance(with(|p| p.bits = 7)).is_err());
        assert!(Backend::lance(with(|p| p.optimize_fraction = 1.5)).is_err());
        let flat_with_pq = with(|p| {
            p.index_type = "IVF_FLAT".into();
            p.sub_vectors = 8;
        });
        assert!(Backend::lance(flat_with_pq).is_err());
        let error = with(|p| p.sub_vectors = 7)
            .resolved(1000, 384)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("does not divide the dimension 384"),
            "{error}"
        );
    }
}
