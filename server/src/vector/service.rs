//! Indexes over tables: building (a job), loading, keeping fresh, searching.
//!
//! An index embeds a table's text column with the built-in model — a long text in
//! overlapping chunks of at most 254 tokens, so nothing is lost to the model's window —
//! and stores the vectors as a Delta table (`id BIGINT`, `chunk INT`,
//! `vector FixedSizeList<Float32, d>`, with model, dimension and metric in the field
//! metadata) under `indexes/<name>-<id>/vectors/` of its home bucket, builds the
//! in-process index and records itself in the catalog. A server loads an index on its
//! first search after a start: it reads the vectors back and rebuilds the in-memory
//! index (the graph itself is not persisted yet).
//!
//! Vectors are keyed by their position; `State::rows` maps a key to its row, and a
//! search returns each row once, at its best chunk, widening the graph search until
//! `k` distinct rows (passing the filter) are found or the index is exhausted.
//!
//! Freshness: every change event of a source table refreshes its indexes
//! ([`super::refresh`]): new rows are embedded, changed rows embedded again, deleted
//! ones tombstoned; each embedded batch is searchable at once in an exact (flat)
//! segment, then the vectors are stored, inserted into the graph, and the catalog
//! entry advances. Nothing is rebuilt.
//!
//! Text and hybrid modes rank rows by BM25 over the same column (built in memory on
//! the first such search) and fuse with the vector ranking by reciprocal rank.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tracing::Instrument;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int32Array, Int64Array,
    RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use lakehouse_flight_ext::v1::{VectorHit, VectorIndexInfo};
use tokio::sync::OnceCell;

use super::bm25::{Bm25, fuse};
use super::embed::{BUILTIN, CHUNK_OVERLAP, CHUNK_TOKENS, EmbedError, Embedder, MiniLm};
use super::faiss::{FaissIndex, FaissParams};
use super::http::HttpEmbedder;
use super::index::{FlatIndex, HnswIndex, HnswParams, Metric, SearchParams, VectorIndex};
use crate::catalog::{IndexEntry, TableEntry, WriteMode};
use crate::config::EmbedderConfig;
use crate::events::EventBus;
use crate::jobs::JobContext;
use crate::query::{QueryEngine, SessionDefaults};
use crate::workers::{Worker, Workers};

/// Chunks embedded per call to the model (progress is reported after each).
const EMBED_BATCH: usize = 256;

/// Largest `k` of a search.
pub const MAX_K: usize = 10_000;

/// Largest HNSW `ef` of a search (an absurd one would allocate without bound).
pub const MAX_EF: usize = 100_000;

/// Hybrid search fuses the best `HYBRID_DEPTH · k` (at least 40) of each ranking.
const HYBRID_DEPTH: usize = 4;

/// Errors of the vector subsystem, each with the status a client gets.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A bad request (InvalidArgument).
    #[error("{0}")]
    Invalid(String),
    /// No such index, table or column (NotFound).
    #[error("{0}")]
    NotFound(String),
    /// An index of that name exists (AlreadyExists).
    #[error("{0}")]
    Exists(String),
    /// The model is not installed or a service is down (FailedPrecondition).
    #[error("{0}")]
    Unavailable(String),
    /// A worker process died during the call or cannot be reached now (Unavailable:
    /// retrying may succeed).
    #[error("{0}")]
    WorkerDown(String),
    /// The index belongs to a profile other than the one the session is bound to
    /// (PermissionDenied).
    #[error("{0}")]
    Forbidden(String),
    /// The job was cancelled (Cancelled).
    #[error("the job was cancelled; nothing was recorded")]
    Cancelled,
    /// Anything else (Internal).
    #[error("{0}")]
    Internal(String),
}

impl From<EmbedError> for VectorError {
    fn from(error: EmbedError) -> Self {
        match error {
            EmbedError::Unavailable { .. } => Self::Unavailable(error.to_string()),
            EmbedError::Failed { .. } => Self::Internal(error.to_string()),
        }
    }
}

impl From<super::index::IndexError> for VectorError {
    fn from(error: super::index::IndexError) -> Self {
        use super::index::IndexError;
        match error {
            IndexError::Invalid(message) => Self::Invalid(message),
            IndexError::Unavailable(message) => Self::WorkerDown(message),
            IndexError::Failed(message) => Self::Internal(message),
        }
    }
}

pub(super) fn internal(error: impl std::fmt::Display) -> VectorError {
    VectorError::Internal(error.to_string())
}

/// How a search ranks rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nearest by embedding.
    Vector,
    /// BM25 over the text column.
    Text,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

impl Mode {
    /// Parses `vector` (or empty), `text`, `hybrid`.
    pub fn parse(text: &str) -> Result<Self, VectorError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "vector" => Ok(Self::Vector),
            "text" | "bm25" => Ok(Self::Text),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(VectorError::Invalid(format!(
                "mode: {other:?} is not vector, text or hybrid"
            ))),
        }
    }

    /// `vector`, `text` or `hybrid`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vector => "vector",
            Self::Text => "text",
            Self::Hybrid => "hybrid",
        }
    }
}

/// One search.
#[derive(Debug, Clone)]
pub struct Search {
    /// Index name.
    pub index: String,
    /// Query text (embedded with the index's model; the terms of text search).
    pub query: String,
    /// Or a query vector (vector mode only).
    pub vector: Vec<f32>,
    /// Rows wanted.
    pub k: usize,
    /// HNSW candidates (0: the index's default).
    pub ef: usize,
    /// IVF lists probed (0: the index's default).
    pub nprobe: usize,
    /// SQL predicate on the source table ("" for none).
    pub filter: String,
    /// Ranking.
    pub mode: Mode,
}

/// A validated `lakehouse.vector.index.create`.
#[derive(Debug, Clone)]
pub struct CreateIndex {
    /// Index name.
    pub name: String,
    /// Source table.
    pub table: TableEntry,
    /// Column embedded.
    pub text_column: String,
    /// Integer id column.
    pub id_column: String,
    /// `hnsw` or `flat`.
    pub backend: String,
    /// Metric.
    pub metric: Metric,
    /// HNSW parameters (ignored by flat).
    pub hnsw: HnswParams,
    /// Faiss parameters (backend `faiss`).
    pub faiss: FaissParams,
    /// Chunking of long texts.
    pub chunking: Chunking,
    /// Home bucket.
    pub bucket: String,
    /// Replace an existing index of that name.
    pub replace: bool,
    /// The embedder: [`BUILTIN`] or a configured `[embedders.NAME]`.
    pub embedder: String,
    /// The model profile it belongs to ("" for none).
    pub profile: String,
}

/// How long texts are cut before embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// Tokens per chunk, at most [`CHUNK_TOKENS`].
    pub tokens: usize,
    /// Tokens shared by neighbours, below `tokens`.
    pub overlap: usize,
}

impl Default for Chunking {
    fn default() -> Self {
        Self {
            tokens: CHUNK_TOKENS,
            overlap: CHUNK_OVERLAP,
        }
    }
}

impl Chunking {
    /// Chunking from a request: 0 tokens and no overlap mean the defaults.
    pub fn new(tokens: u32, overlap: Option<u32>) -> Result<Self, VectorError> {
        let defaults = Self::default();
        let tokens = if tokens == 0 {
            defaults.tokens
        } else {
            tokens as usize
        };
        if tokens > CHUNK_TOKENS {
            return Err(VectorError::Invalid(format!(
                "chunk_tokens: {tokens} is above the model's window of {CHUNK_TOKENS} tokens"
            )));
        }
        let overlap = overlap.map_or(defaults.overlap.min(tokens / 2), |o| o as usize);
        if overlap >= tokens {
            return Err(VectorError::Invalid(format!(
                "chunk_overlap: {overlap} must be below chunk_tokens ({tokens})"
            )));
        }
        Ok(Self { tokens, overlap })
    }

    pub(super) fn of(parameters: &serde_json::Value) -> Self {
        let get = |key: &str| parameters.get(key).and_then(serde_json::Value::as_u64);
        let defaults = Self::default();
        Self {
            tokens: get("chunk_tokens").map_or(defaults.tokens, |v| v as usize),
            overlap: get("chunk_overlap").map_or(defaults.overlap, |v| v as usize),
        }
    }
}

/// What searches read of one build of an index; refreshes grow it in place.
pub(super) struct State {
    /// Graph or flat, keyed by vector key.
    pub(super) index: Box<dyn VectorIndex>,
    /// Vectors a refresh embedded that are not in `index` yet, searched exactly.
    pub(super) fresh: FlatIndex,
    /// Row id of each vector key.
    pub(super) rows: RwLock<Vec<i64>>,
    /// Rows that have vectors, with the hash of the text they were made from (`None`:
    /// unknown, for vectors stored before hashes were).
    pub(super) texts: RwLock<HashMap<i64, Option<u64>>>,
    /// Keys of vectors whose row was deleted or re-embedded since the build: never
    /// returned (a tombstone, for every backend, through the search filter).
    pub(super) dead: RwLock<HashSet<u64>>,
    /// BM25 over the rows' texts, built by the first text or hybrid search.
    pub(super) text: OnceCell<RwLock<Bm25>>,
}

impl State {
    /// A build whose key `k` is a vector of row `rows[k]`; `texts` has the text hash
    /// of the rows (rows it lacks are unknown).
    pub(super) fn new(
        index: Box<dyn VectorIndex>,
        rows: Vec<i64>,
        mut texts: HashMap<i64, Option<u64>>,
    ) -> Self {
        let fresh = FlatIndex::new(index.dimension(), index.metric());
        for row in &rows {
            texts.entry(*row).or_insert(None);
        }
        Self {
            index,
            fresh,
            rows: RwLock::new(rows),
            texts: RwLock::new(texts),
            dead: RwLock::new(HashSet::new()),
            text: OnceCell::new(),
        }
    }

    /// The `k` rows nearest to `query` among `allowed`, each at its best chunk,
    /// closest first. Widens the search until `k` distinct rows are found or every
    /// vector has been considered.
    pub(super) fn nearest(
        &self,
        query: &[f32],
        k: usize,
        params: SearchParams,
        allowed: Option<&HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>, VectorError> {
        let rows = self.rows.read().map_err(internal)?;
        let dead = self.dead.read().map_err(internal)?;
        let keep = |key: u64| {
            !dead.contains(&key)
                && rows
                    .get(key as usize)
                    .is_some_and(|row| allowed.is_none_or(|a| a.contains(row)))
        };
        let filter: Option<&(dyn Fn(u64) -> bool + Sync)> = match allowed {
            None if dead.is_empty() => None,
            _ => Some(&keep),
        };
        let total = self.index.len() + self.fresh.len();
        let mut want = k.min(total).max(1);
        loop {
            let mut hits = self.index.search(query, want, params, filter)?;
            hits.extend(self.fresh.search(query, want, params, filter)?);
            hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
            let mut seen = HashSet::new();
            let best: Vec<(i64, f32)> = hits
                .iter()
                .filter(|hit| !dead.contains(&hit.id))
                .filter_map(|hit| {
                    let row = *rows.get(hit.id as usize)?;
                    seen.insert(row).then_some((row, hit.distance))
                })
                .take(k)
                .collect();
            if best.len() >= k || want >= total {
                return Ok(best);
            }
            want = (want * 2).min(total);
        }
    }

    pub(super) fn memory_bytes(&self) -> u64 {
        let text = self
            .text
            .get()
            .and_then(|t| t.read().ok().map(|t| t.memory_bytes()))
            .unwrap_or(0);
        (self.index.memory_bytes() + self.fresh.memory_bytes() + text) as u64
    }
}

/// What to build an index as.
struct BuildSpec<'a> {
    name: &'a str,
    backend: &'a str,
    metric: Metric,
    hnsw: HnswParams,
    faiss: &'a FaissParams,
    dimension: usize,
}

/// An index in memory, with what the catalog said of it when loaded or refreshed.
pub(super) struct Loaded {
    pub(super) entry: IndexEntry,
    pub(super) state: Arc<State>,
}

/// A row of a search's result, before its text is looked up.
#[derive(Debug, Clone, Copy)]
struct Found {
    id: i64,
    distance: f32,
    score: f32,
}

/// Vectors embedded from rows: per vector, its row and chunk number.
#[derive(Default)]
pub(super) struct Embedded {
    pub(super) rows: Vec<i64>,
    pub(super) chunks: Vec<i32>,
    /// Per vector, the hash of its row's whole text ([`text_hash`]); empty for
    /// vectors stored before hashes were.
    pub(super) hashes: Vec<u64>,
    pub(super) vectors: Vec<Vec<f32>>,
    pub(super) seconds: f64,
}

impl Embedded {
    pub(super) fn distinct_rows(&self) -> u64 {
        self.chunks.iter().filter(|&&c| c == 0).count() as u64
    }

    /// Each row's text hash, where known.
    pub(super) fn texts(&self) -> HashMap<i64, Option<u64>> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, row)| (*row, self.hashes.get(i).copied()))
            .collect()
    }

    /// Appends `other`.
    pub(super) fn extend(&mut self, other: Embedded) {
        self.seconds += other.seconds;
        self.rows.extend(other.rows);
        self.chunks.extend(other.chunks);
        self.hashes.extend(other.hashes);
        self.vectors.extend(other.vectors);
    }
}

/// A stable 64-bit hash of a row's text (FNV-1a): what tells a refresh that an
/// updated row's text changed and its vectors must be made again.
pub(super) fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The server's vector indexes.
pub struct VectorIndexes {
    engine: Arc<QueryEngine>,
    models_dir: PathBuf,
    builtin: OnceCell<Arc<MiniLm>>,
    /// Configured HTTP embedders by name, and those connected so far.
    embedders: HashMap<String, EmbedderConfig>,
    connected: tokio::sync::Mutex<HashMap<String, Arc<HttpEmbedder>>>,
    loaded: RwLock<HashMap<String, Arc<Loaded>>>,
    /// Serialises loads so two first searches don't both rebuild.
    loading: tokio::sync::Mutex<()>,
    /// Per index: one change (a refresh or a move) at a time.
    changing: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Worker processes (the Faiss backend), when the server runs them.
    workers: Option<Arc<Workers>>,
    /// Per HTTP embedder: whether the GPU slot pins its model ([`Self::pin_embedder`]).
    pins: std::sync::Mutex<HashMap<String, Arc<std::sync::atomic::AtomicBool>>>,
}

impl std::fmt::Debug for VectorIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndexes")
            .field("models_dir", &self.models_dir)
            .finish_non_exhaustive()
    }
}

/// The backend `text` names (`hnsw` when empty): `hnsw`, `flat` or `faiss`.
pub fn parse_backend(text: &str) -> Result<&'static str, VectorError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "hnsw" => Ok("hnsw"),
        "flat" => Ok("flat"),
        "faiss" => Ok("faiss"),
        other => Err(VectorError::Invalid(format!(
            "backend: {other:?} is not hnsw, flat or faiss"
        ))),
    }
}

/// The embedder an index was built with ([`BUILTIN`] when it records none).
pub fn embedder_name(entry: &IndexEntry) -> &str {
    if entry.embedder.is_empty() {
        BUILTIN
    } else {
        &entry.embedder
    }
}

/// `schema.table` quoted for SQL.
fn quoted_table(entry: &TableEntry) -> String {
    format!(
        "\"{}\".\"{}\"",
        entry.schema.replace('"', "\"\""),
        entry.name.replace('"', "\"\"")
    )
}

fn quoted(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

/// The similarity a vector hit reports as its score (higher is better).
fn similarity(metric: &str, distance: f32) -> f32 {
    if metric == Metric::Cosine.name() {
        1.0 - distance
    } else {
        -distance
    }
}

impl VectorIndexes {
    /// Indexes over `engine`'s catalog; the built-in model is loaded from
    /// `models_dir` on first use.
    pub fn new(engine: Arc<QueryEngine>, models_dir: PathBuf) -> Self {
        Self {
            engine,
            models_dir,
            builtin: OnceCell::new(),
            embedders: HashMap::new(),
            connected: tokio::sync::Mutex::new(HashMap::new()),
            loaded: RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            changing: std::sync::Mutex::new(HashMap::new()),
            workers: None,
            pins: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Builds `faiss` indexes in `workers`' Faiss worker.
    pub fn with_workers(mut self, workers: Arc<Workers>) -> Self {
        self.workers = Some(workers);
        self
    }

    fn faiss_worker(&self) -> Result<(Arc<Worker>, PathBuf), VectorError> {
        let workers = self
            .workers
            .as_ref()
            .ok_or_else(|| VectorError::Unavailable("this server runs no Faiss worker".into()))?;
        Ok((Arc::clone(workers.faiss()), workers.dir().join("faiss")))
    }

    /// Builds the index `spec` describes over `vectors` (keys 0, 1, …): in process, or
    /// in the Faiss worker.
    async fn build_index(
        &self,
        spec: BuildSpec<'_>,
        vectors: Vec<Vec<f32>>,
    ) -> Result<Box<dyn VectorIndex>, VectorError> {
        let BuildSpec {
            name,
            backend,
            metric,
            hnsw,
            faiss,
            dimension,
        } = spec;
        if backend == "faiss" {
            let (worker, dir) = self.faiss_worker()?;
            let index =
                FaissIndex::build(worker, &dir, name, metric, faiss, dimension, &vectors).await?;
            return Ok(Box::new(index));
        }
        build(backend, metric, hnsw, dimension, keyed(0, vectors)).await
    }

    /// Builds indexes with the HTTP embedders `embedders` too (`[embedders.NAME]`).
    pub fn with_embedders(mut self, embedders: HashMap<String, EmbedderConfig>) -> Self {
        self.embedders = embedders;
        self
    }

    /// Checks that `name` is the built-in model or a configured embedder.
    pub fn check_embedder(&self, name: &str) -> Result<(), VectorError> {
        if name == BUILTIN || self.embedders.contains_key(name) {
            return Ok(());
        }
        let mut known: Vec<&str> = self.embedders.keys().map(String::as_str).collect();
        known.sort_unstable();
        known.insert(0, BUILTIN);
        Err(VectorError::NotFound(format!(
            "embedder {name:?} is not configured on this server; known: {}",
            known.join(", ")
        )))
    }

    /// The embedder `name`: the built-in model, or a configured HTTP service
    /// (connected on first use, which learns its dimension; a service that is down
    /// fails here and is tried again next time).
    pub async fn embedder(&self, name: &str) -> Result<Arc<dyn Embedder>, VectorError> {
        if name == BUILTIN {
            return Ok(self.builtin().await?);
        }
        self.check_embedder(name)?;
        let mut connected = self.connected.lock().await;
        if let Some(embedder) = connected.get(name) {
            return Ok(Arc::clone(embedder) as Arc<dyn Embedder>);
        }
        let config = self
            .embedders
            .get(name)
            .ok_or_else(|| VectorError::NotFound(format!("embedder {name:?} is not configured")))?;
        let (protocol, options) = super::http::configured(name, config)?;
        let embedder = Arc::new(HttpEmbedder::connect(protocol, options, self.pin(name)).await?);
        connected.insert(name.to_string(), Arc::clone(&embedder));
        Ok(embedder)
    }

    /// The embedder index `entry` was built with, checked to still be that model.
    pub async fn index_embedder(
        &self,
        entry: &IndexEntry,
    ) -> Result<Arc<dyn Embedder>, VectorError> {
        let name = embedder_name(entry);
        let embedder = self.embedder(name).await.map_err(|e| match e {
            VectorError::NotFound(message) => {
                VectorError::Unavailable(format!("index {} was built with {message}", entry.name))
            }
            other => other,
        })?;
        if embedder.model() != entry.model || embedder.dimension() != entry.dimension as usize {
            return Err(VectorError::Unavailable(format!(
                "index {} was built with model {} ({} dimensions), but embedder {name} now runs {} ({} dimensions); rebuild the index with replace",
                entry.name,
                entry.model,
                entry.dimension,
                embedder.model(),
                embedder.dimension()
            )));
        }
        Ok(embedder)
    }

    /// Refuses index `name` to a session bound to `profile` when the index belongs to
    /// another profile (or to none); an index that does not exist passes (the call
    /// then says NotFound).
    pub fn check_profile(&self, name: &str, profile: Option<&str>) -> Result<(), VectorError> {
        let Some(bound) = profile else {
            return Ok(());
        };
        match self.engine.catalog().index(name) {
            Some(entry) if entry.profile != bound => {
                let owner = if entry.profile.is_empty() {
                    "no profile".to_string()
                } else {
                    format!("profile {}", entry.profile)
                };
                Err(VectorError::Forbidden(format!(
                    "index {name} belongs to {owner}, but this session is bound to profile {bound}; \
                     use one of {bound}'s indexes, or clear the session option \"profile\""
                )))
            }
            _ => Ok(()),
        }
    }

    /// Pins (or unpins) the Ollama model of embedder `name` in memory: while pinned,
    /// every embedding request asks Ollama to keep it loaded (`keep_alive: -1`)
    /// instead of letting it expire after Ollama's default idle time.
    pub fn pin_embedder(&self, name: &str, pinned: bool) {
        self.pin(name)
            .store(pinned, std::sync::atomic::Ordering::Relaxed);
    }

    fn pin(&self, name: &str) -> Arc<std::sync::atomic::AtomicBool> {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(pins.entry(name.to_string()).or_default())
    }

    /// The lock serialising changes of index `name`.
    pub(super) fn change_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(name.to_string()).or_default())
    }

    /// Drops indexes the catalog no longer lists from memory.
    pub fn forget(&self, names: &[String]) {
        if let Ok(mut map) = self.loaded.write() {
            for name in names {
                map.remove(name);
            }
        }
    }

    /// Moves the files of index `name` to `bucket`: copies them (data files first,
    /// the Delta log last), checks the copy, switches the catalog entry to it in one
    /// change, then deletes the old files. Searches go on meanwhile from memory; a
    /// refresh waits for the move. A failed or cancelled move removes its copy and
    /// leaves the index where it was.
    pub async fn move_to(
        &self,
        name: &str,
        bucket: &str,
        ctx: &JobContext,
    ) -> Result<VectorIndexInfo, VectorError> {
        let lock = self.change_lock(name);
        let _one = lock.lock().await;
        let catalog = self.engine.catalog();
        let entry = catalog.index(name).ok_or_else(|| {
            VectorError::NotFound(format!(
                "vector index {name} does not exist (see system.vector_indexes)"
            ))
        })?;
        if entry.bucket == bucket {
            return Err(VectorError::Invalid(format!(
                "index {name} already lives in bucket {bucket}"
            )));
        }
        let buckets = catalog.buckets();
        let source = buckets
            .get(&entry.bucket)
            .map_err(|e| VectorError::NotFound(e.to_string()))?;
        let target = buckets
            .get(bucket)
            .map_err(|e| VectorError::NotFound(e.to_string()))?;
        ctx.phase("listing");
        let objects = source.list_sizes(&entry.location).await.map_err(internal)?;
        let total: u64 = objects.iter().map(|(_, size)| size).sum();
        ctx.progress(|p| {
            p.bytes_total = Some(total);
            p.files_total = objects.len() as u64;
        });
        // Leftovers of an earlier move of this build that did not finish.
        target
            .delete_folder(&entry.location)
            .await
            .map_err(internal)?;
        let mut ordered: Vec<&(String, u64)> = objects.iter().collect();
        ordered.sort_by_key(|(path, _)| (path.contains("/_delta_log/"), path.clone()));
        ctx.phase("copying");
        let copied = async {
            let mut done = 0u64;
            for (path, size) in ordered {
                if ctx.cancelled().is_cancelled() {
                    return Err(VectorError::Cancelled);
                }
                let bytes = source.copy_object(path, &target).await.map_err(internal)?;
                if bytes != *size {
                    return Err(internal(format!(
                        "copied {bytes} bytes of {path}, expected {size}"
                    )));
                }
                done += bytes;
                ctx.progress(|p| {
                    p.bytes = done;
                    p.files_done += 1;
                    p.percent = (total > 0).then(|| 100.0 * done as f64 / total as f64);
                });
            }
            let copy = target.list_sizes(&entry.location).await.map_err(internal)?;
            if copy != objects {
                return Err(internal(format!(
                    "the copy in bucket {bucket} differs from the original ({} objects, {} expected)",
                    copy.len(),
                    objects.len()
                )));
            }
            Ok(())
        }
        .await;
        let discard = || async {
            if let Err(error) = target.delete_folder(&entry.location).await {
                tracing::warn!(index = %name, %error, "could not remove an unfinished copy");
            }
        };
        if let Err(error) = copied {
            discard().await;
            return Err(error);
        }
        ctx.phase("switching");
        let updated = catalog
            .update_index(name, &entry.location, |e| e.bucket = bucket.to_string())
            .await;
        let updated = match updated {
            Ok(Some(updated)) => updated,
            Ok(None) => {
                discard().await;
                return Err(VectorError::Unavailable(format!(
                    "index {name} was rebuilt or dropped during the move; nothing moved"
                )));
            }
            Err(error) => {
                discard().await;
                return Err(internal(error));
            }
        };
        if let Ok(mut map) = self.loaded.write()
            && let Some(loaded) = map.get(name).cloned()
            && loaded.entry.location == updated.location
        {
            let state = Arc::clone(&loaded.state);
            let entry = updated.clone();
            map.insert(name.to_string(), Arc::new(Loaded { entry, state }));
        }
        ctx.phase("cleaning");
        if let Err(error) = source.delete_folder(&entry.location).await {
            tracing::warn!(index = %name, %error,
                "index moved; its old files could not be deleted");
        }
        tracing::info!(index = %name, from = %entry.bucket, to = %bucket, bytes = total, "vector index moved");
        Ok(info_of(&updated))
    }

    /// Keeps indexes fresh: every change to a source table refreshes its indexes
    /// (in the background, one event after another; see [`super::refresh`]). At start, indexes whose table
    /// moved on while the server was down are refreshed first.
    pub fn follow(self: &Arc<Self>, events: &EventBus) -> tokio::task::JoinHandle<()> {
        let mut receiver = events.subscribe();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            this.refresh_behind().await;
            loop {
                match receiver.recv().await {
                    // Appends, and rewrites (UPDATE, DELETE, overwrite): a refresh
                    // reconciles the index with the table either way.
                    Ok(event) => this.refresh_table(Some(&event.table)).await,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "missed dataset events; refreshing every index");
                        this.refresh_table(None).await;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// Refreshes the indexes whose source table has commits they have not seen.
    async fn refresh_behind(&self) {
        let catalog = self.engine.catalog();
        let indexes = catalog.snapshot().indexes.clone();
        for entry in indexes {
            let Ok(table) = catalog.table(&entry.schema, &entry.table) else {
                continue;
            };
            let behind = catalog
                .table_state(&table)
                .await
                .is_ok_and(|(_, version)| version > entry.source_version);
            if behind {
                match self.refresh(&entry.name).await {
                    Ok(rows) => tracing::info!(index = %entry.name, rows, "vector index caught up"),
                    Err(error) => {
                        tracing::warn!(index = %entry.name, %error, "vector index refresh failed");
                    }
                }
            }
        }
    }

    /// Refreshes the indexes over `table` (`schema.table`), or every index.
    async fn refresh_table(&self, table: Option<&str>) {
        let names: Vec<String> = self
            .engine
            .catalog()
            .snapshot()
            .indexes
            .iter()
            .filter(|i| table.is_none_or(|t| t == format!("{}.{}", i.schema, i.table)))
            .map(|i| i.name.clone())
            .collect();
        for name in names {
            match self.refresh(&name).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(index = %name, rows, "vector index refreshed"),
                Err(error) => tracing::warn!(index = %name, %error, "vector index refresh failed"),
            }
        }
    }

    /// The built-in embedding model (loaded once).
    pub async fn builtin(&self) -> Result<Arc<MiniLm>, VectorError> {
        let dir = self.models_dir.clone();
        self.builtin
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || MiniLm::load_from(&dir).map(Arc::new))
                    .await
                    .map_err(internal)?
                    .map_err(VectorError::from)
            })
            .await
            .cloned()
    }

    /// Checks a create request against the catalog: table, columns, name, bucket.
    pub async fn validate(
        &self,
        name: &str,
        table: &str,
        text_column: &str,
        id_column: &str,
        replace: bool,
    ) -> Result<TableEntry, VectorError> {
        crate::catalog::validate_name(name)
            .map_err(|e| VectorError::Invalid(format!("name: {e}")))?;
        if !replace && self.engine.catalog().index(name).is_some() {
            return Err(VectorError::Exists(format!(
                "vector index {name} already exists; set replace to rebuild it"
            )));
        }
        let (schema, table) = crate::ingest::file::split_table(table, "table")
            .map_err(|e| VectorError::Invalid(e.to_string()))?;
        let entry = self
            .engine
            .catalog()
            .table(&schema, &table)
            .map_err(|e| VectorError::NotFound(e.to_string()))?;
        let arrow = self
            .engine
            .catalog()
            .table_schema(&entry)
            .await
            .map_err(internal)?;
        let column = |name: &str, role: &str| {
            arrow
                .field_with_name(name)
                .map(|f| f.data_type().clone())
                .map_err(|_| {
                    VectorError::NotFound(format!(
                        "{role}: table {} has no column {name:?}",
                        entry.qualified_name()
                    ))
                })
        };
        let text_type = column(text_column, "text_column")?;
        if !matches!(
            text_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return Err(VectorError::Invalid(format!(
                "text_column: {text_column:?} is {text_type}, not text"
            )));
        }
        let id_type = column(id_column, "id_column")?;
        if !id_type.is_integer() {
            return Err(VectorError::Invalid(format!(
                "id_column: {id_column:?} is {id_type}, not an integer"
            )));
        }
        Ok(entry)
    }

    /// `id BIGINT, text VARCHAR` of every row with text, streamed.
    pub(super) async fn rows_stream(
        &self,
        table: &TableEntry,
        id_column: &str,
        text_column: &str,
    ) -> Result<SendableRecordBatchStream, VectorError> {
        let sql = format!(
            "SELECT CAST({id} AS BIGINT) AS id, CAST({text} AS VARCHAR) AS text FROM {} WHERE {id} IS NOT NULL AND {text} IS NOT NULL AND {text} <> ''",
            quoted_table(table),
            id = quoted(id_column),
            text = quoted(text_column),
        );
        let ctx = self.engine.session(&SessionDefaults::default());
        ctx.sql(&sql)
            .await
            .map_err(internal)?
            .execute_stream()
            .await
            .map_err(internal)
    }

    /// Embeds the rows of `stream` that `wanted(id, text hash)` asks for (it sees every
    /// row with text, once), chunk by chunk, handing each embedded batch to `sink`. A
    /// repeated id is an error when `strict`, else skipped. `documents` collects the
    /// texts of the rows embedded.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn embed_rows(
        &self,
        model: &dyn Embedder,
        mut stream: SendableRecordBatchStream,
        wanted: &mut (dyn FnMut(i64, u64) -> bool + Send),
        strict: bool,
        chunking: Chunking,
        job: Option<&crate::jobs::JobContext>,
        mut documents: Option<&mut Vec<(i64, String)>>,
        mut sink: impl FnMut(Embedded, u64) -> Result<(), VectorError>,
    ) -> Result<(), VectorError> {
        let mut seen = HashSet::new();
        let mut pending = Embedded::default();
        let mut texts: Vec<String> = Vec::new();
        loop {
            let batch = stream.try_next().await.map_err(internal)?;
            let done = batch.is_none();
            if let Some(batch) = batch {
                let ids = batch.column(0).as_primitive::<Int64Type>();
                let text =
                    arrow::compute::cast(batch.column(1), &DataType::Utf8).map_err(internal)?;
                let text = text.as_string::<i32>();
                for i in 0..batch.num_rows() {
                    let id = ids.value(i);
                    if !seen.insert(id) {
                        if strict {
                            return Err(VectorError::Invalid(format!(
                                "id_column holds {id} twice; index ids must be unique"
                            )));
                        }
                        continue;
                    }
                    let row = text.value(i);
                    let hash = text_hash(row);
                    if !wanted(id, hash) {
                        continue;
                    }
                    for (chunk, piece) in model
                        .chunks(row, chunking.tokens, chunking.overlap)
                        .into_iter()
                        .enumerate()
                    {
                        pending.rows.push(id);
                        pending.chunks.push(chunk as i32);
                        pending.hashes.push(hash);
                        texts.push(piece.to_string());
                    }
                    if let Some(documents) = documents.as_deref_mut() {
                        documents.push((id, row.to_string()));
                    }
                }
            }
            while texts.len() >= EMBED_BATCH || (done && !texts.is_empty()) {
                if job.is_some_and(|job| job.cancelled().is_cancelled()) {
                    return Err(VectorError::Cancelled);
                }
                let take = texts.len().min(EMBED_BATCH);
                let batch: Vec<String> = texts.drain(..take).collect();
                let bytes = batch.iter().map(|t| t.len() as u64).sum::<u64>();
                let started = Instant::now();
                let vectors = model.embed(&batch).await?;
                let embedded = Embedded {
                    rows: pending.rows.drain(..take).collect(),
                    chunks: pending.chunks.drain(..take).collect(),
                    hashes: pending.hashes.drain(..take).collect(),
                    vectors,
                    seconds: started.elapsed().as_secs_f64(),
                };
                sink(embedded, bytes)?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Builds an index (the body of the create job).
    pub async fn create(
        &self,
        request: CreateIndex,
        job: &crate::jobs::JobContext,
    ) -> Result<VectorIndexInfo, VectorError> {
        let started = Instant::now();
        let catalog = self.engine.catalog();
        job.phase("loading model");
        let model = self.embedder(&request.embedder).await?;
        let (_, source_version) = catalog
            .table_state(&request.table)
            .await
            .map_err(internal)?;
        job.phase("embedding");
        let stream = self
            .rows_stream(&request.table, &request.id_column, &request.text_column)
            .await?;
        let mut all = Embedded::default();
        let mut rows_done = 0u64;
        self.embed_rows(
            model.as_ref(),
            stream,
            &mut |_, _| true,
            true,
            request.chunking,
            Some(job),
            None,
            |batch, bytes| {
                rows_done += batch.distinct_rows();
                all.extend(batch);
                job.progress(|p| {
                    p.rows = rows_done;
                    p.bytes += bytes;
                });
                Ok(())
            },
        )
        .await?;
        if all.rows.is_empty() {
            return Err(VectorError::Invalid(format!(
                "text_column: {} has no non-empty text to index",
                request.text_column
            )));
        }
        let dimension = model.dimension();
        let batch = vectors_batch(&all, dimension, model.model(), request.metric, true)?;
        let (count, rows) = (all.rows.len(), all.distinct_rows());
        job.phase("indexing");
        let faiss = request.faiss.resolved(all.vectors.len());
        let spec = BuildSpec {
            name: &request.name,
            backend: &request.backend,
            metric: request.metric,
            hnsw: request.hnsw,
            faiss: &faiss,
            dimension,
        };
        let texts = all.texts();
        let index = self
            .build_index(spec, std::mem::take(&mut all.vectors))
            .await?;
        job.phase("storing");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let location = format!("indexes/{}-{}/", request.name, &id[..12]);
        let vectors_table = vectors_table(&request.name, &request.bucket, &location);
        self.write_vectors(&vectors_table, WriteMode::Create, batch)
            .await?;
        self.save_structure(
            &request.bucket,
            &location,
            index.as_ref(),
            &all.rows,
            &all.chunks,
        )
        .await;
        let mut parameters = match request.backend.as_str() {
            "hnsw" => serde_json::json!({
                "m": request.hnsw.m,
                "ef_construction": request.hnsw.ef_construction,
                "ef_search": request.hnsw.ef_search,
            }),
            "faiss" => faiss.to_json(),
            _ => serde_json::json!({}),
        };
        parameters["chunk_tokens"] = request.chunking.tokens.into();
        parameters["chunk_overlap"] = request.chunking.overlap.into();
        let state = Arc::new(State::new(index, all.rows, texts));
        let entry = IndexEntry {
            name: request.name.clone(),
            schema: request.table.schema.clone(),
            table: request.table.name.clone(),
            text_column: request.text_column.clone(),
            id_column: request.id_column.clone(),
            backend: request.backend.clone(),
            metric: request.metric.name().to_string(),
            model: model.model().to_string(),
            embedder: if request.embedder == BUILTIN {
                String::new()
            } else {
                request.embedder.clone()
            },
            dimension: dimension as u32,
            parameters,
            bucket: request.bucket.clone(),
            location,
            source_version,
            vectors: count as u64,
            rows,
            bytes: state.memory_bytes(),
            build_seconds: started.elapsed().as_secs_f64(),
            embed_seconds: all.seconds,
            built_at: chrono::Utc::now().to_rfc3339(),
            profile: request.profile.clone(),
        };
        let replaced = catalog.put_index(entry.clone()).await.map_err(internal)?;
        if let Some(old) = replaced {
            catalog.remove_index_files(&old).await;
        }
        let info = info_of(&entry);
        if let Ok(mut loaded) = self.loaded.write() {
            loaded.insert(entry.name.clone(), Arc::new(Loaded { entry, state }));
        }
        Ok(info)
    }

    /// The query engine.
    pub(super) fn engine(&self) -> &Arc<QueryEngine> {
        &self.engine
    }

    /// Writes `batch` to an unlisted Delta table in one commit.
    pub(super) async fn write_vectors(
        &self,
        table: &TableEntry,
        mode: WriteMode,
        batch: RecordBatch,
    ) -> Result<(), VectorError> {
        let ctx = self.engine.session(&SessionDefaults::default());
        let stream =
            RecordBatchStreamAdapter::new(batch.schema(), futures::stream::iter([Ok(batch)]));
        self.engine
            .catalog()
            .write_unlisted(table, mode, Box::pin(stream), Arc::new(ctx.state()))
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// Keeps `loaded` as the index `name` searches use.
    pub(super) fn remember(&self, name: &str, loaded: Loaded) {
        if let Ok(mut map) = self.loaded.write() {
            map.insert(name.to_string(), Arc::new(loaded));
        }
    }

    /// The loaded index `name`, loading it from its vectors on first use.
    pub(super) async fn get(&self, name: &str) -> Result<Arc<Loaded>, VectorError> {
        let Some(entry) = self.engine.catalog().index(name) else {
            return Err(VectorError::NotFound(format!(
                "vector index {name} does not exist (see system.vector_indexes)"
            )));
        };
        // A refresh changes the entry, not the build: the location names the build.
        let cached = |this: &Self| {
            this.loaded
                .read()
                .ok()
                .and_then(|l| l.get(name).cloned())
                .filter(|l| l.entry.location == entry.location)
        };
        if let Some(loaded) = cached(self) {
            return Ok(loaded);
        }
        let _loading = self.loading.lock().await;
        if let Some(loaded) = cached(self) {
            return Ok(loaded);
        }
        let stored = self.read_vectors(&entry).await?;
        let texts = stored.texts();
        let (index, rows) = match self.restore_structure(&entry, stored).await {
            Ok(restored) => restored,
            Err(stored) => {
                // The vectors come back unless the restore crashed.
                let stored = match stored {
                    Some(stored) => stored,
                    None => self.read_vectors(&entry).await?,
                };
                let faiss = FaissParams::from_json(&entry.parameters);
                let spec = BuildSpec {
                    name: &entry.name,
                    backend: &entry.backend,
                    metric: Metric::parse(&entry.metric)?,
                    hnsw: hnsw_params(&entry.parameters),
                    faiss: &faiss,
                    dimension: entry.dimension as usize,
                };
                let index = self.build_index(spec, stored.vectors).await?;
                (index, stored.rows)
            }
        };
        let loaded = Arc::new(Loaded {
            entry,
            state: Arc::new(State::new(index, rows, texts)),
        });
        if let Ok(mut map) = self.loaded.write() {
            map.insert(name.to_string(), Arc::clone(&loaded));
        }
        Ok(loaded)
    }

    /// Saves the index's structure (an HNSW graph) beside its vectors, keyed by
    /// `(row, chunk)`, so a restart reads it back instead of rebuilding. Best effort:
    /// without the file the index is rebuilt from its vectors.
    async fn save_structure(
        &self,
        bucket: &str,
        location: &str,
        index: &dyn VectorIndex,
        rows: &[i64],
        chunks: &[i32],
    ) {
        let Some(structure) = index.saved_structure() else {
            return;
        };
        let mut bytes = Vec::with_capacity(12 + rows.len() * 12 + structure.len());
        bytes.extend_from_slice(STRUCTURE_MAGIC);
        bytes.extend_from_slice(&(rows.len() as u64).to_le_bytes());
        for (row, chunk) in rows.iter().zip(chunks) {
            bytes.extend_from_slice(&row.to_le_bytes());
            bytes.extend_from_slice(&chunk.to_le_bytes());
        }
        bytes.extend_from_slice(&structure);
        let path = format!("{location}{STRUCTURE_FILE}");
        let saved = match self.engine.catalog().buckets().get(bucket) {
            Ok(bucket) => bucket
                .put(&path, bytes.into())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = saved {
            tracing::warn!(%path, %error, "cannot save the index graph; a restart rebuilds it");
        }
    }

    /// The index and its key → row map from the saved structure and `stored`
    /// vectors: vectors the save lacks (appended later) are inserted. `None` (the
    /// caller rebuilds) when there is no save or it does not fit the vectors.
    async fn restore_structure(
        &self,
        entry: &IndexEntry,
        stored: Embedded,
    ) -> Result<(Box<dyn VectorIndex>, Vec<i64>), Option<Embedded>> {
        if entry.backend != "hnsw" && entry.backend != "faiss" {
            return Err(Some(stored));
        }
        let path = format!("{}{STRUCTURE_FILE}", entry.location);
        let saved = match self.engine.catalog().buckets().get(&entry.bucket) {
            Ok(bucket) => bucket.get_opt(&path).await,
            Err(error) => Err(error),
        };
        let saved = match saved {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(Some(stored)),
            Err(error) => {
                tracing::warn!(index = %entry.name, %error, "cannot read the saved graph; rebuilding");
                return Err(Some(stored));
            }
        };
        let Ok(metric) = Metric::parse(&entry.metric) else {
            return Err(Some(stored));
        };
        let started = Instant::now();
        let (params, dimension) = (hnsw_params(&entry.parameters), entry.dimension as usize);
        let faiss = match entry.backend.as_str() {
            "faiss" => match self.faiss_worker() {
                Ok((worker, dir)) => Some((
                    worker,
                    dir,
                    entry.name.clone(),
                    FaissParams::from_json(&entry.parameters),
                )),
                Err(_) => return Err(Some(stored)),
            },
            _ => None,
        };
        let runtime = tokio::runtime::Handle::current();
        let span = tracing::Span::current();
        // The vectors move into the blocking task and come back when the save does not fit.
        let restored = tokio::task::spawn_blocking(move || {
            let _in_call = span.enter();
            let restored = match faiss {
                None => restore_graph(&saved, &stored, |structure, key_of| {
                    HnswIndex::restore(dimension, metric, params, structure, |key| {
                        stored.vectors.get(key_of(key)?).cloned()
                    })
                    .map(|index| Box::new(index) as Box<dyn VectorIndex>)
                    .map_err(|e| e.to_string())
                }),
                Some((worker, dir, name, faiss)) => {
                    restore_graph(&saved, &stored, |structure, _| {
                        runtime
                            .block_on(FaissIndex::open(
                                worker, &dir, &name, metric, &faiss, dimension, structure,
                            ))
                            .map(|index| Box::new(index) as Box<dyn VectorIndex>)
                            .map_err(|e| e.to_string())
                    })
                }
            };
            match restored {
                Ok(restored) => Ok(restored),
                Err(error) => Err((error, Box::new(stored))),
            }
        })
        .await;
        match restored {
            Ok(Ok((index, rows))) => {
                tracing::info!(index = %entry.name, vectors = rows.len(),
                    seconds = started.elapsed().as_secs_f64(), "vector index graph read back");
                Ok((index, rows))
            }
            Ok(Err((error, stored))) => {
                tracing::warn!(index = %entry.name, %error, "the saved graph does not fit; rebuilding");
                Err(Some(*stored))
            }
            Err(error) => {
                tracing::warn!(index = %entry.name, %error, "reading the saved graph failed; rebuilding");
                Err(None)
            }
        }
    }

    pub(super) async fn read_vectors(&self, entry: &IndexEntry) -> Result<Embedded, VectorError> {
        let table = vectors_table(&entry.name, &entry.bucket, &entry.location);
        let batches = self.engine.read_unlisted(&table).await.map_err(|e| {
            VectorError::Internal(format!("reading the vectors of index {}: {e}", entry.name))
        })?;
        let mut stored = Embedded::default();
        for batch in batches {
            let column = |name: &str| {
                batch.column_by_name(name).ok_or_else(|| {
                    internal(format!("the vectors of index {} lack {name}", entry.name))
                })
            };
            let id = arrow::compute::cast(column("id")?, &DataType::Int64).map_err(internal)?;
            let values = vectors_of(column("vector")?)?;
            stored.rows.extend(
                id.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.unwrap_or_default()),
            );
            match batch.column_by_name("chunk") {
                Some(chunk) => {
                    let chunk = arrow::compute::cast(chunk, &DataType::Int32).map_err(internal)?;
                    stored.chunks.extend(
                        chunk
                            .as_primitive::<arrow::datatypes::Int32Type>()
                            .iter()
                            .map(|v| v.unwrap_or_default()),
                    );
                }
                None => stored.chunks.extend(std::iter::repeat_n(0, values.len())),
            }
            if let Some(hash) = batch.column_by_name(TEXT_HASH) {
                let hash = arrow::compute::cast(hash, &DataType::Int64).map_err(internal)?;
                stored.hashes.extend(
                    hash.as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.unwrap_or_default() as u64),
                );
            }
            stored.vectors.extend(values);
        }
        Ok(stored)
    }

    /// Every index of the catalog, as the protocol describes them.
    pub fn list(&self) -> Vec<VectorIndexInfo> {
        self.engine
            .catalog()
            .snapshot()
            .indexes
            .iter()
            .map(info_of)
            .collect()
    }

    /// The rows matching `filter` on the source table of `entry`, or `None` for all.
    async fn allowed(
        &self,
        entry: &IndexEntry,
        table: &TableEntry,
        filter: &str,
    ) -> Result<Option<HashSet<i64>>, VectorError> {
        if filter.trim().is_empty() {
            return Ok(None);
        }
        let invalid =
            |e: datafusion::error::DataFusionError| VectorError::Invalid(format!("filter: {e}"));
        let ctx = self.engine.session(&SessionDefaults::default());
        let reference = datafusion::common::TableReference::full(
            crate::catalog::CATALOG_NAME,
            table.schema.clone(),
            table.name.clone(),
        );
        let id = datafusion::prelude::cast(
            datafusion::prelude::ident(&entry.id_column),
            DataType::Int64,
        );
        let plan = self
            .engine
            .plan_filtered(&ctx, reference, filter, vec![id])
            .await
            .map_err(invalid)?;
        let batches: Vec<RecordBatch> = self
            .engine
            .execute(&ctx, plan)
            .await
            .map_err(invalid)?
            .try_collect()
            .await
            .map_err(invalid)?;
        let mut ids = HashSet::new();
        for batch in batches {
            ids.extend(batch.column(0).as_primitive::<Int64Type>().iter().flatten());
        }
        Ok(Some(ids))
    }

    /// The text index of `loaded`, built from the source table on first use.
    async fn text_index<'a>(
        &self,
        loaded: &'a Loaded,
        table: &TableEntry,
    ) -> Result<&'a RwLock<Bm25>, VectorError> {
        let entry = &loaded.entry;
        loaded
            .state
            .text
            .get_or_try_init(|| async {
                let mut stream = self
                    .rows_stream(table, &entry.id_column, &entry.text_column)
                    .await?;
                let mut index = Bm25::new();
                while let Some(batch) = stream.try_next().await.map_err(internal)? {
                    let ids = batch.column(0).as_primitive::<Int64Type>();
                    let text =
                        arrow::compute::cast(batch.column(1), &DataType::Utf8).map_err(internal)?;
                    let text = text.as_string::<i32>();
                    for i in 0..batch.num_rows() {
                        // A repeated id keeps its first text.
                        index.add(ids.value(i), text.value(i));
                    }
                }
                Ok::<_, VectorError>(RwLock::new(index))
            })
            .await
    }

    /// The best rows for `search`, best first, with their texts.
    pub async fn search(&self, search: &Search) -> Result<Vec<VectorHit>, VectorError> {
        let started = Instant::now();
        let span = tracing::info_span!("vector.search", index = %search.index,
            mode = search.mode.name(), k = search.k, hits = tracing::field::Empty);
        let hits = self
            .search_unmetered(search)
            .instrument(span.clone())
            .await?;
        span.record("hits", hits.len());
        crate::observe::metrics()
            .vector_search(search.mode.name(), started.elapsed().as_secs_f64());
        Ok(hits)
    }

    /// Number of indexes held in memory.
    pub fn loaded_count(&self) -> usize {
        self.loaded.read().map_or(0, |l| l.len())
    }

    async fn search_unmetered(&self, search: &Search) -> Result<Vec<VectorHit>, VectorError> {
        let Search {
            k,
            ef,
            nprobe,
            mode,
            ..
        } = *search;
        let params = SearchParams { ef, nprobe };
        if k == 0 || k > MAX_K {
            return Err(VectorError::Invalid(format!(
                "k: {k} is not in 1..={MAX_K}"
            )));
        }
        if ef > MAX_EF {
            return Err(VectorError::Invalid(format!("ef: {ef} is above {MAX_EF}")));
        }
        let has_query = !search.query.trim().is_empty();
        if mode != Mode::Vector && (!has_query || !search.vector.is_empty()) {
            return Err(VectorError::Invalid(
                "text and hybrid search take a query text (not a vector)".into(),
            ));
        }
        let loaded = self.get(&search.index).await?;
        let entry = &loaded.entry;
        let table = self
            .engine
            .catalog()
            .table(&entry.schema, &entry.table)
            .map_err(|e| {
                VectorError::NotFound(format!("the source table of index {}: {e}", entry.name))
            })?;
        let allowed = self.allowed(entry, &table, &search.filter).await?;
        let found: Vec<Found> = match mode {
            Mode::Vector => {
                let query = self.query_vector(entry, search).await?;
                self.nearest(&loaded, query, k, params, allowed)
                    .await?
                    .into_iter()
                    .map(|(id, distance)| Found {
                        id,
                        distance,
                        score: similarity(&entry.metric, distance),
                    })
                    .collect()
            }
            Mode::Text => self
                .text_hits(&loaded, &table, &search.query, k, allowed.as_ref())
                .await?
                .into_iter()
                .map(|(id, score)| Found {
                    id,
                    distance: f32::NAN,
                    score,
                })
                .collect(),
            Mode::Hybrid => {
                let depth = (k * HYBRID_DEPTH).clamp(40, MAX_K);
                let text = self
                    .text_hits(&loaded, &table, &search.query, depth, allowed.as_ref())
                    .await?;
                let query = self.query_vector(entry, search).await?;
                let nearest = self.nearest(&loaded, query, depth, params, allowed).await?;
                let distances: HashMap<i64, f32> = nearest.iter().copied().collect();
                let lists = [
                    nearest.iter().map(|h| h.0).collect(),
                    text.iter().map(|h| h.0).collect(),
                ];
                fuse(&lists, k)
                    .into_iter()
                    .map(|(id, score)| Found {
                        id,
                        distance: distances.get(&id).copied().unwrap_or(f32::NAN),
                        score,
                    })
                    .collect()
            }
        };
        self.with_texts(entry, &table, found).await
    }

    async fn query_vector(
        &self,
        entry: &IndexEntry,
        search: &Search,
    ) -> Result<Vec<f32>, VectorError> {
        match (search.query.trim().is_empty(), search.vector.is_empty()) {
            (false, true) => {
                let model = self.index_embedder(entry).await?;
                model
                    .embed(std::slice::from_ref(&search.query))
                    .await?
                    .pop()
                    .ok_or_else(|| internal("the model returned no vector"))
            }
            (true, false) => Ok(search.vector.clone()),
            (true, true) => Err(VectorError::Invalid("set query or vector".into())),
            (false, false) => Err(VectorError::Invalid("set query or vector, not both".into())),
        }
    }

    async fn nearest(
        &self,
        loaded: &Arc<Loaded>,
        query: Vec<f32>,
        k: usize,
        params: SearchParams,
        allowed: Option<HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>, VectorError> {
        let state = Arc::clone(&loaded.state);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| state.nearest(&query, k, params, allowed.as_ref()))
        })
        .await
        .map_err(internal)?
    }

    async fn text_hits(
        &self,
        loaded: &Loaded,
        table: &TableEntry,
        query: &str,
        k: usize,
        allowed: Option<&HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>, VectorError> {
        let index = self.text_index(loaded, table).await?;
        let keep = |id: i64| allowed.is_none_or(|a| a.contains(&id));
        let index = index.read().map_err(internal)?;
        Ok(index.search(query, k, Some(&keep)))
    }

    /// The hits with their rows' texts; rows gone from the table are dropped.
    async fn with_texts(
        &self,
        entry: &IndexEntry,
        table: &TableEntry,
        found: Vec<Found>,
    ) -> Result<Vec<VectorHit>, VectorError> {
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let list = found
            .iter()
            .map(|h| h.id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT CAST({} AS BIGINT), CAST({} AS VARCHAR) FROM {} WHERE {} IN ({list})",
            quoted(&entry.id_column),
            quoted(&entry.text_column),
            quoted_table(table),
            quoted(&entry.id_column),
        );
        let mut texts = HashMap::new();
        for batch in self.collect(&sql).await.map_err(internal)? {
            let id = batch.column(0).as_primitive::<Int64Type>();
            let text = arrow::compute::cast(batch.column(1), &DataType::Utf8).map_err(internal)?;
            let text = text.as_string::<i32>();
            for i in 0..batch.num_rows() {
                texts.insert(id.value(i), text.value(i).to_string());
            }
        }
        Ok(found
            .into_iter()
            .filter_map(|h| {
                Some(VectorHit {
                    id: h.id,
                    // Text hits have no vector distance (NaN inside).
                    distance: (!h.distance.is_nan()).then_some(h.distance),
                    text: texts.remove(&h.id)?,
                    score: h.score,
                })
            })
            .collect())
    }

    /// The index, its table and the fields of the requested `columns` (the source
    /// schema is read only when there are such columns).
    async fn hit_columns(
        &self,
        name: &str,
        columns: &[String],
    ) -> Result<(IndexEntry, TableEntry, Vec<Field>), VectorError> {
        let catalog = self.engine.catalog();
        let Some(entry) = catalog.index(name) else {
            return Err(VectorError::NotFound(format!(
                "vector index {name} does not exist (see system.vector_indexes)"
            )));
        };
        let table = catalog
            .table(&entry.schema, &entry.table)
            .map_err(|e| VectorError::NotFound(format!("the source table of index {name}: {e}")))?;
        let extra = extra_columns(&entry, columns)?;
        let mut fields = Vec::with_capacity(extra.len());
        if !extra.is_empty() {
            let source = catalog.table_schema(&table).await.map_err(internal)?;
            for column in extra {
                let field = source.field_with_name(column).map_err(|_| {
                    VectorError::NotFound(format!(
                        "columns: table {} has no column {column:?}",
                        table.qualified_name()
                    ))
                })?;
                fields.push(field.as_ref().clone().with_nullable(true));
            }
        }
        Ok((entry, table, fields))
    }

    /// The schema of [`Self::hits_batch`] for `columns` of index `name`'s table.
    pub async fn hits_schema_for(
        &self,
        name: &str,
        columns: &[String],
    ) -> Result<SchemaRef, VectorError> {
        let (_, _, extra) = self.hit_columns(name, columns).await?;
        Ok(Arc::new(Schema::new([hit_fields(), extra].concat())))
    }

    /// The hits of `search` as one Arrow batch: `id`, `score`, `distance` (null where
    /// unknown), `text`, `rank` (from 1), then `columns` of the source table.
    pub async fn hits_batch(
        &self,
        search: &Search,
        columns: &[String],
    ) -> Result<RecordBatch, VectorError> {
        let (entry, table, extra) = self.hit_columns(&search.index, columns).await?;
        let hits = self.search(search).await?;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(hits.iter().map(|h| h.id))),
            Arc::new(Float32Array::from_iter_values(hits.iter().map(|h| h.score))),
            Arc::new(Float32Array::from_iter(hits.iter().map(|h| h.distance))),
            Arc::new(StringArray::from_iter_values(hits.iter().map(|h| &h.text))),
            Arc::new(Int32Array::from_iter_values(1..=hits.len() as i32)),
        ];
        if !extra.is_empty() {
            arrays.extend(self.columns_of(&entry, &table, &extra, &hits).await?);
        }
        let schema = Arc::new(Schema::new([hit_fields(), extra].concat()));
        RecordBatch::try_new(schema, arrays).map_err(internal)
    }

    /// The `fields` of the hits' rows, in hit order (null for a row gone meanwhile).
    async fn columns_of(
        &self,
        entry: &IndexEntry,
        table: &TableEntry,
        fields: &[Field],
        hits: &[VectorHit],
    ) -> Result<Vec<ArrayRef>, VectorError> {
        if hits.is_empty() {
            return Ok(fields
                .iter()
                .map(|f| arrow::array::new_empty_array(f.data_type()))
                .collect());
        }
        let list = hits
            .iter()
            .map(|h| h.id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let selected = fields
            .iter()
            .map(|f| quoted(f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT CAST({id} AS BIGINT) AS __lakehouse_id, {selected} FROM {} WHERE {id} IN ({list})",
            quoted_table(table),
            id = quoted(&entry.id_column),
        );
        let batches = self.collect(&sql).await.map_err(internal)?;
        let Some(first) = batches.first() else {
            return Ok(fields
                .iter()
                .map(|f| arrow::array::new_null_array(f.data_type(), hits.len()))
                .collect());
        };
        let rows = arrow::compute::concat_batches(&first.schema(), &batches).map_err(internal)?;
        let ids = rows.column(0).as_primitive::<Int64Type>();
        let at: HashMap<i64, u32> = (0..rows.num_rows())
            .map(|i| (ids.value(i), i as u32))
            .collect();
        let take = UInt32Array::from_iter(hits.iter().map(|h| at.get(&h.id).copied()));
        rows.columns()
            .iter()
            .skip(1)
            .zip(fields)
            .map(|(column, field)| {
                let taken = arrow::compute::take(column, &take, None).map_err(internal)?;
                arrow::compute::cast(&taken, field.data_type()).map_err(internal)
            })
            .collect()
    }

    async fn collect(&self, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
        let ctx = self.engine.session(&SessionDefaults::default());
        ctx.sql(sql).await?.collect().await
    }
}

/// The schema of hits without extra columns.
pub fn hits_schema() -> SchemaRef {
    Arc::new(Schema::new(hit_fields()))
}

/// The fixed columns of a hits batch.
fn hit_fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float32, false),
        Field::new("distance", DataType::Float32, true),
        Field::new("text", DataType::Utf8, false),
        Field::new("rank", DataType::Int32, false),
    ]
}

/// The requested columns to add to hits: the id and text columns are already there
/// (as `id` and `text`) and are skipped; another name clashing with a hit column, or
/// a repeat, is refused.
fn extra_columns<'a>(
    entry: &IndexEntry,
    columns: &'a [String],
) -> Result<Vec<&'a str>, VectorError> {
    let fixed: Vec<String> = hit_fields().iter().map(|f| f.name().clone()).collect();
    let mut out: Vec<&str> = Vec::new();
    for column in columns {
        if *column == entry.id_column || *column == entry.text_column {
            continue;
        }
        if fixed.contains(column) || out.contains(&column.as_str()) {
            return Err(VectorError::Invalid(format!(
                "columns: {column:?} clashes with a hit column ({}) or is repeated",
                fixed.join(", ")
            )));
        }
        out.push(column);
    }
    Ok(out)
}

/// The unlisted Delta table of an index's vectors.
pub(super) fn vectors_table(name: &str, bucket: &str, location: &str) -> TableEntry {
    TableEntry::unlisted("_index", name, bucket, &format!("{location}vectors/"))
}

/// The rows of a list column of `f32` (Delta stores a fixed-size list as a list).
pub(super) fn vectors_of(list: &ArrayRef) -> Result<Vec<Vec<f32>>, VectorError> {
    match list.data_type() {
        DataType::FixedSizeList(..) => list_values(list.as_fixed_size_list().iter()),
        DataType::List(_) => list_values(list.as_list::<i32>().iter()),
        DataType::LargeList(_) => list_values(list.as_list::<i64>().iter()),
        other => Err(VectorError::Internal(format!("vectors stored as {other}"))),
    }
}

fn list_values<'a>(
    rows: impl Iterator<Item = Option<ArrayRef>> + 'a,
) -> Result<Vec<Vec<f32>>, VectorError> {
    rows.map(|row| {
        let row = row.ok_or_else(|| internal("a stored vector is NULL"))?;
        let values = row
            .as_any()
            .downcast_ref::<Float32Array>()
            .ok_or_else(|| internal("stored vectors are not float32"))?;
        Ok(values.values().to_vec())
    })
    .collect()
}

fn hnsw_params(parameters: &serde_json::Value) -> HnswParams {
    let get = |key: &str, default: usize| {
        parameters
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .map_or(default, |v| v as usize)
    };
    let defaults = HnswParams::default();
    HnswParams {
        m: get("m", defaults.m),
        ef_construction: get("ef_construction", defaults.ef_construction),
        ef_search: get("ef_search", defaults.ef_search),
    }
}

/// Vectors keyed by their position, from `first` on (moved, not copied).
/// The saved graph of an HNSW index, in its folder beside the vectors' Delta table.
pub(super) const STRUCTURE_FILE: &str = "graph.bin";
/// Start of [`STRUCTURE_FILE`]: format version 1 (keys, then the graph's topology).
const STRUCTURE_MAGIC: &[u8; 4] = b"LHI1";

/// Rebuilds the graph saved as `saved` over `vectors` (at `positions` by `(row,
/// chunk)`); the vectors it lacks are inserted after. Returns the index and the row
/// of each key.
fn restore_graph(
    saved: &[u8],
    stored: &Embedded,
    index_of: impl FnOnce(&[u8], &dyn Fn(u64) -> Option<usize>) -> Result<Box<dyn VectorIndex>, String>,
) -> Result<(Box<dyn VectorIndex>, Vec<i64>), String> {
    let positions: HashMap<(i64, i32), usize> = stored
        .rows
        .iter()
        .zip(&stored.chunks)
        .enumerate()
        .map(|(position, (row, chunk))| ((*row, *chunk), position))
        .collect();
    let rest = saved
        .strip_prefix(STRUCTURE_MAGIC)
        .ok_or("not a saved graph of this version")?;
    let (count, rest) = rest.split_first_chunk::<8>().ok_or("truncated")?;
    let count = usize::try_from(u64::from_le_bytes(*count)).map_err(|e| e.to_string())?;
    if rest.len() < count.saturating_mul(12) {
        return Err("truncated".into());
    }
    let (keys, structure) = rest.split_at(count * 12);
    let mut rows = Vec::with_capacity(count);
    let mut key_positions = Vec::with_capacity(count);
    for key in keys.chunks_exact(12) {
        let (row, chunk) = key.split_at(8);
        let row = i64::from_le_bytes(row.try_into().map_err(|_| "truncated")?);
        let chunk = i32::from_le_bytes(chunk.try_into().map_err(|_| "truncated")?);
        let position = *positions.get(&(row, chunk)).ok_or_else(|| {
            format!("row {row} chunk {chunk} is in the graph, not in the vectors")
        })?;
        rows.push(row);
        key_positions.push(position);
    }
    let key_of = |key: u64| key_positions.get(usize::try_from(key).ok()?).copied();
    let index = index_of(structure, &key_of)?;
    if index.len() != count {
        return Err("the graph and its keys disagree".into());
    }
    let mut used = vec![false; stored.vectors.len()];
    for &position in &key_positions {
        used[position] = true;
    }
    // Vectors appended after the save (refreshes) get the next keys.
    let mut appended = Vec::new();
    for (position, vector) in stored.vectors.iter().enumerate() {
        if !used[position] {
            appended.push((rows.len() as u64, vector.clone()));
            rows.push(stored.rows[position]);
        }
    }
    index.add(&appended).map_err(|e| e.to_string())?;
    Ok((index, rows))
}

pub(super) fn keyed(first: usize, vectors: Vec<Vec<f32>>) -> Vec<(u64, Vec<f32>)> {
    (first as u64..).zip(vectors).collect()
}

/// Builds the in-memory index of `backend` over the vectors.
async fn build(
    backend: &str,
    metric: Metric,
    hnsw: HnswParams,
    dimension: usize,
    items: Vec<(u64, Vec<f32>)>,
) -> Result<Box<dyn VectorIndex>, VectorError> {
    let backend = backend.to_string();
    tokio::task::spawn_blocking(move || -> Result<Box<dyn VectorIndex>, VectorError> {
        let index: Box<dyn VectorIndex> = match backend.as_str() {
            "flat" => Box::new(FlatIndex::new(dimension, metric)),
            "hnsw" => Box::new(HnswIndex::new(dimension, metric, hnsw, items.len())?),
            other => {
                return Err(VectorError::Invalid(format!(
                    "backend {other:?} is not hnsw or flat"
                )));
            }
        };
        index.add(&items)?;
        Ok(index)
    })
    .await
    .map_err(internal)?
}

/// The vectors as one batch: `id BIGINT`, `chunk INT`, `vector FixedSizeList<Float32, d>`.
pub(super) fn vectors_batch(
    embedded: &Embedded,
    dimension: usize,
    model: &str,
    metric: Metric,
    hashed: bool,
) -> Result<RecordBatch, VectorError> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let flat: Vec<f32> = embedded.vectors.iter().flatten().copied().collect();
    let list = FixedSizeListArray::try_new(
        Arc::clone(&item),
        dimension as i32,
        Arc::new(Float32Array::from(flat)),
        None,
    )
    .map_err(internal)?;
    let metadata = HashMap::from([
        ("lakehouse.model".to_string(), model.to_string()),
        ("lakehouse.dimension".to_string(), dimension.to_string()),
        ("lakehouse.metric".to_string(), metric.name().to_string()),
    ]);
    let mut fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("chunk", DataType::Int32, false),
        Field::new("vector", list.data_type().clone(), false).with_metadata(metadata),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(embedded.rows.clone())),
        Arc::new(Int32Array::from(embedded.chunks.clone())),
        Arc::new(list),
    ];
    if hashed && embedded.hashes.len() == embedded.rows.len() {
        // The hash's bits as a signed integer (Delta has no unsigned type).
        fields.push(Field::new(TEXT_HASH, DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from_iter_values(
            embedded.hashes.iter().map(|h| *h as i64),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(internal)
}

/// The column of the vectors table holding each vector's [`text_hash`] (absent in
/// tables written before it existed).
pub(super) const TEXT_HASH: &str = "text_hash";

/// The protocol's view of a catalog entry.
pub fn info_of(entry: &IndexEntry) -> VectorIndexInfo {
    VectorIndexInfo {
        name: entry.name.clone(),
        table: format!("{}.{}", entry.schema, entry.table),
        text_column: entry.text_column.clone(),
        id_column: entry.id_column.clone(),
        backend: entry.backend.clone(),
        metric: entry.metric.clone(),
        model: entry.model.clone(),
        embedder: embedder_name(entry).to_string(),
        profile: entry.profile.clone(),
        dimension: entry.dimension,
        bucket: entry.bucket.clone(),
        location: entry.location.clone(),
        source_version: entry.source_version,
        vectors: entry.vectors,
        rows: entry.rows,
        bytes: entry.bytes,
        build_seconds: entry.build_seconds,
        embed_seconds: entry.embed_seconds,
        built_at: entry.built_at.clone(),
        parameters: entry.parameters.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys 0 and 1 are two chunks of row 10; keys 2 and 3 are rows 20 and 30.
    fn state() -> State {
        let index = FlatIndex::new(2, Metric::L2);
        index
            .add(&[
                (0, vec![0.0, 0.0]),
                (1, vec![5.0, 5.0]),
                (2, vec![0.1, 0.0]),
                (3, vec![0.2, 0.0]),
            ])
            .unwrap();
        State::new(Box::new(index), vec![10, 10, 20, 30], HashMap::new())
    }

    fn ids(found: &[(i64, f32)]) -> Vec<i64> {
        found.iter().map(|f| f.0).collect()
    }

    #[test]
    fn a_row_comes_back_once_at_its_best_chunk() {
        let s = state();
        assert_eq!(
            ids(&s
                .nearest(&[0.0, 0.0], 3, SearchParams::default(), None)
                .unwrap()),
            [10, 20, 30]
        );
        assert_eq!(
            s.nearest(&[5.0, 5.0], 10, SearchParams::default(), None)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            s.nearest(&[5.0, 5.0], 1, SearchParams::default(), None)
                .unwrap(),
            vec![(10, 0.0)]
        );
        let allowed = HashSet::from([30]);
        assert_eq!(
            ids(&s
                .nearest(&[0.0, 0.0], 2, SearchParams::default(), Some(&allowed))
                .unwrap()),
            [30]
        );
    }

    #[test]
    fn fresh_vectors_are_searched_beside_the_index() {
        let s = state();
        s.rows.write().unwrap().push(40);
        s.fresh.add(&[(4, vec![-0.05, 0.0])]).unwrap();
        assert_eq!(
            ids(&s
                .nearest(&[-0.1, 0.0], 2, SearchParams::default(), None)
                .unwrap()),
            [40, 10]
        );
        s.fresh.clear();
        assert_eq!(
            ids(&s
                .nearest(&[-0.1, 0.0], 1, SearchParams::default(), None)
                .unwrap()),
            [10]
        );
    }

    #[test]
    fn chunking_is_checked_against_the_model_window() {
        assert_eq!(Chunking::new(0, None).unwrap(), Chunking::default());
        assert_eq!(Chunking::new(10, None).unwrap().overlap, 5);
        assert_eq!(Chunking::new(64, Some(0)).unwrap().overlap, 0);
        assert!(Chunking::new(255, None).is_err());
        assert!(Chunking::new(64, Some(64)).is_err());
        let parameters = serde_json::json!({"chunk_tokens": 100, "chunk_overlap": 10});
        assert_eq!(
            Chunking::of(&parameters),
            Chunking {
                tokens: 100,
                overlap: 10
            }
        );
    }

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("").unwrap(), Mode::Vector);
        assert_eq!(Mode::parse("Hybrid").unwrap(), Mode::Hybrid);
        assert_eq!(Mode::parse("bm25").unwrap(), Mode::Text);
        assert!(Mode::parse("fuzzy").is_err());
    }
}
