//! Which backend an index is built with, and its build parameters: one type, with
//! named constructors that check what each backend accepts, and the serde form the
//! catalog records (`"backend": "hnsw", "parameters": {"m": 16, …}`).
//!
//! A new backend is one new variant here (with its parameters type) and one new
//! file in the server's `vector/` that builds and searches it.

use serde::{Deserialize, Serialize};

use crate::{HnswParams, IndexError, Metric};

/// Lists an IVF search probes by default.
pub const DEFAULT_NPROBE: usize = 16;

/// Longest Faiss `index_factory` string accepted.
const MAX_FACTORY: usize = 256;

/// Largest `nprobe` accepted.
const MAX_NPROBE: usize = 65_536;

/// The backend names, in the order errors list them.
pub const BACKEND_NAMES: [&str; 3] = ["hnsw", "flat", "faiss"];

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

    /// The name recorded with an index: `flat`, `hnsw` or `faiss`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Flat => "flat",
            Self::Hnsw(_) => "hnsw",
            Self::Faiss(_) => "faiss",
        }
    }

    /// The `ef` a search uses when it sets none (0: the backend has no such knob).
    pub fn default_ef(&self) -> usize {
        match self {
            Self::Flat => 0,
            Self::Hnsw(params) => params.ef_search,
            Self::Faiss(params) => params.ef_search,
        }
    }

    /// Whether the built structure is saved beside the vectors (a graph or a Faiss
    /// file), so a restart reads it back instead of rebuilding.
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
        assert!(error.contains("hnsw, flat, faiss"), "{error}");
        for backend in [
            Backend::flat(),
            Backend::hnsw(8, 50, 32, Metric::L2).unwrap(),
            Backend::faiss("IVF4,Flat", 2, 0).unwrap(),
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
}
