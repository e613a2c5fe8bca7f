//! Vector index backends behind one trait: exact flat search (the recall = 1.0
//! baseline) and in-process HNSW (our own graph over flat arrays, `hnsw.rs`) whose
//! `ef` is chosen per search.
//!
//! Every backend answers with [`Hit`]s ordered by `distance`, lower is closer:
//! `1 − cos` for [`Metric::Cosine`] (vectors are L2-normalised on the way in),
//! `−dot` for [`Metric::Dot`] and the squared Euclidean distance for [`Metric::L2`].
//! The trait is what the Lance and Faiss worker backends implement too: ids are the
//! caller's `u64` row ids, vectors cross as plain `f32` slices.
//!
//! A crate of its own so the graph code is optimised even in debug builds (see the
//! workspace's `profile.dev.package` entries): tests build real indexes.

use std::collections::BinaryHeap;
use std::sync::RwLock;

mod backend;
mod distance;
mod hnsw;

pub use backend::{
    BACKEND_NAMES, Backend, DEFAULT_NPROBE, FaissParams, LANCE_DEFAULT_NPROBE, LANCE_INDEX_TYPES,
    LANCE_MIN_INDEXED, LanceParams, default_factory, default_partitions, default_sub_vectors,
};
pub use distance::{dot, normalized, squared_l2};
use hnsw::Graph;

/// How closeness is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Cosine similarity (distance `1 − cos`).
    Cosine,
    /// Inner product (distance `−dot`).
    Dot,
    /// Euclidean (distance: squared L2).
    L2,
}

impl Metric {
    /// Parses `cosine`, `dot`, `l2` (case-insensitive; empty means cosine).
    pub fn parse(text: &str) -> Result<Self, IndexError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "cosine" => Ok(Self::Cosine),
            "dot" | "ip" | "inner_product" => Ok(Self::Dot),
            "l2" | "euclidean" => Ok(Self::L2),
            other => Err(IndexError::Invalid(format!(
                "metric {other:?} is not cosine, dot or l2"
            ))),
        }
    }

    /// The name recorded with an index.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Dot => "dot",
            Self::L2 => "l2",
        }
    }

    pub(crate) fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Self::Cosine => (1.0 - dot(a, b)).max(0.0),
            Self::Dot => -dot(a, b),
            Self::L2 => squared_l2(a, b),
        }
    }
}

/// Errors of an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Bad parameters or input (InvalidArgument).
    #[error("{0}")]
    Invalid(String),
    /// The engine is out of reach for now: a worker process died or cannot start
    /// (Unavailable; retrying may succeed).
    #[error("{0}")]
    Unavailable(String),
    /// The engine failed (Internal).
    #[error("{0}")]
    Failed(String),
}

/// One result: a row id and its distance to the query (lower is closer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The caller's id of the vector.
    pub id: u64,
    /// Distance to the query under the index's metric.
    pub distance: f32,
}

/// Search-time knobs; a backend ignores those it doesn't have.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchParams {
    /// HNSW: candidates kept while searching (≥ k; 0 = the index's default).
    pub ef: usize,
    /// IVF: inverted lists probed (0 = the index's default).
    pub nprobe: usize,
    /// Lance IVF_PQ: candidates re-ranked on the exact vectors, as a multiple of k
    /// (0 = the index's default).
    pub refine_factor: usize,
}

/// How an index kept outside the server (a Lance dataset) lays out its vectors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    /// Vectors held.
    pub rows: u64,
    /// Data fragments (files) holding them.
    pub fragments: u64,
    /// Vectors the index structure covers, and those searched exactly until the
    /// next optimize folds them in.
    pub indexed_rows: u64,
    pub unindexed_rows: u64,
    /// Bytes of every file (data, index, manifests).
    pub bytes: u64,
    /// The dataset's version.
    pub version: u64,
    /// The index structure, e.g. `IVF_PQ` ("" while there is none).
    pub index_type: String,
}

/// An index over `(id, vector)` pairs.
pub trait VectorIndex: Send + Sync {
    /// `flat`, `hnsw`, …
    fn backend(&self) -> &'static str;

    /// Vector length.
    fn dimension(&self) -> usize;

    /// The metric.
    fn metric(&self) -> Metric;

    /// Vectors held.
    fn len(&self) -> usize;

    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory held by vectors and graph, in bytes (an estimate for graphs).
    fn memory_bytes(&self) -> usize;

    /// Adds vectors (incremental: no rebuild).
    fn add(&self, items: &[(u64, Vec<f32>)]) -> Result<(), IndexError>;

    /// Adds vectors made from documents: `documents[i]` is the `(id, chunk)` that
    /// `items[i]` embeds. Backends that keep their rows' ids (Lance, which takes rows
    /// by id) store them; the others add the vectors.
    fn add_documents(
        &self,
        items: &[(u64, Vec<f32>)],
        documents: &[(i64, i32)],
    ) -> Result<(), IndexError> {
        let _ = documents;
        self.add(items)
    }

    /// The index as `Any`, for what only one backend does (a Lance take by id).
    fn as_any(&self) -> &dyn std::any::Any;

    /// The index's structure as bytes, when it has one worth saving beside the
    /// vectors (an HNSW graph takes far longer to build than to read back).
    fn saved_structure(&self) -> Option<Vec<u8>> {
        None
    }

    /// How a backend that keeps its vectors outside the server lays them out (a
    /// Lance dataset's fragments and index coverage); `None` for the others.
    fn layout(&self) -> Option<Layout> {
        None
    }

    /// Folds vectors added since the structure was built into it, for backends that
    /// search those separately until then (Lance); `None` for backends that add into
    /// the structure itself.
    fn optimize(&self) -> Result<Option<Layout>, IndexError> {
        Ok(None)
    }

    /// The `k` nearest vectors passing `filter` (every vector when `None`).
    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: SearchParams,
        filter: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> Result<Vec<Hit>, IndexError>;
}

fn check(dimension: usize, vector: &[f32]) -> Result<(), IndexError> {
    if vector.len() != dimension {
        return Err(IndexError::Invalid(format!(
            "vector has {} dimensions, the index {dimension}",
            vector.len()
        )));
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(IndexError::Invalid(
            "vector holds NaN or infinity".to_string(),
        ));
    }
    Ok(())
}

/// A candidate in a bounded max-heap of the best `k` (the worst on top).
#[derive(PartialEq)]
struct Candidate(f32, u64);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Exact search over every vector: the ground truth of recall measurements.
pub struct FlatIndex {
    dimension: usize,
    metric: Metric,
    data: RwLock<FlatData>,
}

#[derive(Default)]
struct FlatData {
    ids: Vec<u64>,
    /// Row-major, `dimension` floats per id.
    vectors: Vec<f32>,
}

impl FlatIndex {
    /// An empty index.
    pub fn new(dimension: usize, metric: Metric) -> Self {
        Self {
            dimension,
            metric,
            data: RwLock::new(FlatData::default()),
        }
    }

    /// Drops every vector.
    pub fn clear(&self) {
        if let Ok(mut data) = self.data.write() {
            *data = FlatData::default();
        }
    }
}

impl VectorIndex for FlatIndex {
    fn backend(&self) -> &'static str {
        "flat"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn len(&self) -> usize {
        self.data.read().map_or(0, |d| d.ids.len())
    }

    fn memory_bytes(&self) -> usize {
        self.data
            .read()
            .map_or(0, |d| d.ids.len() * 8 + d.vectors.len() * 4)
    }

    fn add(&self, items: &[(u64, Vec<f32>)]) -> Result<(), IndexError> {
        for (_, vector) in items {
            check(self.dimension, vector)?;
        }
        let mut data = self.data.write().map_err(poisoned)?;
        for (id, vector) in items {
            data.ids.push(*id);
            match self.metric {
                Metric::Cosine => data.vectors.extend(normalized(vector)),
                _ => data.vectors.extend_from_slice(vector),
            }
        }
        Ok(())
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        _params: SearchParams,
        filter: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> Result<Vec<Hit>, IndexError> {
        check(self.dimension, query)?;
        let query = match self.metric {
            Metric::Cosine => normalized(query),
            _ => query.to_vec(),
        };
        let data = self.data.read().map_err(poisoned)?;
        let mut best = BinaryHeap::with_capacity(k + 1);
        if k == 0 {
            return Ok(Vec::new());
        }
        for (id, vector) in data
            .ids
            .iter()
            .zip(data.vectors.chunks_exact(self.dimension))
        {
            if filter.is_some_and(|keep| !keep(*id)) {
                continue;
            }
            let distance = self.metric.distance(&query, vector);
            if best.len() < k {
                best.push(Candidate(distance, *id));
            } else if best.peek().is_some_and(|worst| distance < worst.0) {
                best.pop();
                best.push(Candidate(distance, *id));
            }
        }
        Ok(best
            .into_sorted_vec()
            .into_iter()
            .map(|Candidate(distance, id)| Hit { id, distance })
            .collect())
    }
}

/// HNSW build parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HnswParams {
    /// Neighbours per node and layer (M), 2..=255.
    pub m: usize,
    /// Candidates while building.
    pub ef_construction: usize,
    /// Default `ef` of searches that don't set one.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

impl HnswParams {
    /// Checks the parameters (M up to 255: layer-0 lists hold 2·M ids) and the metric
    /// against what a graph can search.
    pub fn validate(&self, metric: Metric) -> Result<(), IndexError> {
        if !(2..=255).contains(&self.m) {
            return Err(IndexError::Invalid(format!(
                "hnsw m = {} is outside 2..=255",
                self.m
            )));
        }
        if self.ef_construction < self.m || self.ef_search == 0 {
            return Err(IndexError::Invalid(
                "hnsw needs ef_construction >= m and ef_search >= 1".into(),
            ));
        }
        if metric == Metric::Dot {
            return Err(IndexError::Invalid(
                    "hnsw supports the cosine and l2 metrics (inner product is not a distance); use flat for dot".into(),
                ));
        }
        Ok(())
    }
}

/// In-process HNSW graph; `ef` can change per search without a rebuild.
pub struct HnswIndex {
    dimension: usize,
    metric: Metric,
    params: HnswParams,
    graph: RwLock<Graph>,
}

impl HnswIndex {
    /// An empty graph sized for about `capacity` vectors.
    pub fn new(
        dimension: usize,
        metric: Metric,
        params: HnswParams,
        capacity: usize,
    ) -> Result<Self, IndexError> {
        params.validate(metric)?;
        Ok(Self {
            dimension,
            metric,
            params,
            graph: RwLock::new(Graph::new(
                dimension,
                metric,
                params.m,
                params.ef_construction,
                capacity,
            )),
        })
    }

    /// The build parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// The graph saved by [`VectorIndex::saved_structure`], with `vector(id)` giving
    /// the vector of each id it holds. A damaged save, or one for another dimension or
    /// M, is an error (the caller rebuilds).
    pub fn restore(
        dimension: usize,
        metric: Metric,
        params: HnswParams,
        saved: &[u8],
        vector: impl Fn(u64) -> Option<Vec<f32>>,
    ) -> Result<Self, IndexError> {
        params.validate(metric)?;
        let graph = Graph::restore(metric, saved, |id| {
            let v = vector(id)?;
            Some(match metric {
                Metric::Cosine => normalized(&v),
                _ => v,
            })
        })
        .map_err(IndexError::Invalid)?;
        if graph.dimension() != dimension || graph.m() != params.m {
            return Err(IndexError::Invalid(
                "the saved graph was built with another dimension or M".into(),
            ));
        }
        Ok(Self {
            dimension,
            metric,
            params,
            graph: RwLock::new(graph),
        })
    }
}

fn poisoned<T>(_: T) -> IndexError {
    IndexError::Invalid("index lock poisoned".into())
}

impl VectorIndex for HnswIndex {
    fn backend(&self) -> &'static str {
        "hnsw"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn len(&self) -> usize {
        self.graph.read().map_or(0, |g| g.len())
    }

    fn memory_bytes(&self) -> usize {
        self.graph.read().map_or(0, |g| g.memory_bytes())
    }

    fn saved_structure(&self) -> Option<Vec<u8>> {
        self.graph.read().ok().map(|g| g.topology())
    }

    fn add(&self, items: &[(u64, Vec<f32>)]) -> Result<(), IndexError> {
        for (_, vector) in items {
            check(self.dimension, vector)?;
        }
        let mut graph = self.graph.write().map_err(poisoned)?;
        for (id, vector) in items {
            match self.metric {
                Metric::Cosine => graph.insert(*id, &normalized(vector)),
                _ => graph.insert(*id, vector),
            }
        }
        Ok(())
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: SearchParams,
        filter: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> Result<Vec<Hit>, IndexError> {
        check(self.dimension, query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let query = match self.metric {
            Metric::Cosine => normalized(query),
            _ => query.to_vec(),
        };
        let ef = if params.ef == 0 {
            self.params.ef_search
        } else {
            params.ef
        };
        let filter = filter.map(|keep| keep as &dyn Fn(u64) -> bool);
        let graph = self.graph.read().map_err(poisoned)?;
        Ok(graph
            .search(&query, k, ef, filter)
            .into_iter()
            .map(|(id, distance)| Hit { id, distance })
            .collect())
    }
}

#[cfg(test)]
mod tests;
