//! The vector service: the server's indexes over tables, with what they share
//! (the query engine, the embedders, the indexes in memory, the Faiss worker).
//! Each concern is a file beside this one: [`super::embedders`],
//! [`super::build`], [`super::store`], [`super::search`], [`super::hits`],
//! [`super::refresh`], [`super::relocate`] and [`super::eval`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use lakehouse_flight_ext::v1::{VectorIndexInfo, VectorIndexOptimizeResult};
use tokio::sync::OnceCell;

use super::embed::{BUILTIN, MiniLm};
use super::error::VectorError;
use super::http::HttpEmbedder;
use super::index::Layout;
use super::state::Loaded;
use crate::catalog::IndexEntry;
use crate::config::EmbedderConfig;
use crate::query::QueryEngine;
use crate::workers::{Worker, Workers};

/// The server's vector indexes.
pub(crate) struct VectorIndexes {
    pub(super) engine: Arc<QueryEngine>,
    pub(super) models_dir: PathBuf,
    pub(super) builtin: OnceCell<Arc<MiniLm>>,
    /// Configured HTTP embedders by name, and those connected so far.
    pub(super) embedders: HashMap<String, EmbedderConfig>,
    pub(super) connected: tokio::sync::Mutex<HashMap<String, Arc<HttpEmbedder>>>,
    pub(super) loaded: RwLock<HashMap<String, Arc<Loaded>>>,
    /// Serialises loads so two first searches don't both rebuild.
    pub(super) loading: tokio::sync::Mutex<()>,
    /// Per index: one change (a refresh or a move) at a time.
    pub(super) changing: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Worker processes (the Faiss backend), when the server runs them.
    pub(super) workers: Option<Arc<Workers>>,
    /// Per HTTP embedder: whether the GPU slot pins its model ([`Self::pin_embedder`]).
    pub(super) pins: std::sync::Mutex<HashMap<String, Arc<std::sync::atomic::AtomicBool>>>,
}

impl std::fmt::Debug for VectorIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndexes")
            .field("models_dir", &self.models_dir)
            .finish_non_exhaustive()
    }
}

impl VectorIndexes {
    /// Indexes over `engine`'s catalog; the built-in model is loaded from
    /// `models_dir` on first use.
    pub(crate) fn new(engine: Arc<QueryEngine>, models_dir: PathBuf) -> Self {
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
    pub(crate) fn with_workers(mut self, workers: Arc<Workers>) -> Self {
        self.workers = Some(workers);
        self
    }

    pub(super) fn faiss_worker(&self) -> Result<(Arc<Worker>, PathBuf), VectorError> {
        let workers = self
            .workers
            .as_ref()
            .ok_or_else(|| VectorError::Unavailable("this server runs no Faiss worker".into()))?;
        Ok((Arc::clone(workers.faiss()), workers.dir().join("faiss")))
    }

    /// The Lance worker, refused (FAILED_PRECONDITION) when its binary is not built:
    /// it lives in a Cargo workspace of its own, which `cargo build` of the server
    /// does not build.
    pub(super) fn lance_worker(&self) -> Result<Arc<Worker>, VectorError> {
        let workers = self
            .workers
            .as_ref()
            .ok_or_else(|| VectorError::Unavailable("this server runs no Lance worker".into()))?;
        let worker = workers.lance();
        if !worker.binary_exists() {
            return Err(VectorError::Unavailable(format!(
                "the Lance worker binary {} is not there: build it with \
                 `scripts/build-lance-worker.sh` (its own Cargo workspace, workers/lance; \
                 the README's set-up command runs it), or point --lance-worker \
                 (LAKEHOUSE_LANCE_WORKER) at it",
                worker.binary().display()
            )));
        }
        Ok(Arc::clone(worker))
    }

    /// Builds indexes with the HTTP embedders `embedders` too (`[embedders.NAME]`).
    pub(crate) fn with_embedders(mut self, embedders: HashMap<String, EmbedderConfig>) -> Self {
        self.embedders = embedders;
        self
    }

    /// Refuses index `name` to a session bound to `profile` when the index belongs to
    /// another profile (or to none); an index that does not exist passes (the call
    /// then says NotFound).
    pub(crate) fn check_profile(
        &self,
        name: &str,
        profile: Option<&str>,
    ) -> Result<(), VectorError> {
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

    /// The lock serialising changes of index `name`.
    pub(super) fn change_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(name.to_string()).or_default())
    }

    /// Drops indexes the catalog no longer lists from memory.
    pub(crate) fn forget(&self, names: &[String]) {
        if let Ok(mut map) = self.loaded.write() {
            for name in names {
                map.remove(name);
            }
        }
    }

    /// The query engine.
    pub(super) fn engine(&self) -> &Arc<QueryEngine> {
        &self.engine
    }

    /// How index `name` lays out its vectors, when it is loaded and keeps them
    /// outside the server (Lance).
    pub(crate) fn layout(&self, name: &str) -> Option<Layout> {
        let loaded = self.loaded.read().ok()?.get(name).cloned()?;
        loaded.state.index.layout()
    }

    /// Folds the vectors appended to index `name` since its build into its
    /// structure (a Lance index; other backends add into theirs and are refused).
    pub(crate) async fn optimize(
        &self,
        name: &str,
    ) -> Result<VectorIndexOptimizeResult, VectorError> {
        let started = std::time::Instant::now();
        let lock = self.change_lock(name);
        let _one = lock.lock().await;
        let loaded = self.get(name).await?;
        let state = Arc::clone(&loaded.state);
        let layout = tokio::task::spawn_blocking(move || state.index.optimize())
            .await
            .map_err(|e| VectorError::Internal(e.to_string()))??;
        let Some(layout) = layout else {
            return Err(VectorError::Invalid(format!(
                "index {name} is a {} index, which adds rows into its structure as they \
                 come: only lance indexes optimize",
                loaded.entry.build.backend.name()
            )));
        };
        let bytes = layout.bytes;
        let updated = self
            .engine
            .catalog()
            .update_index(name, &loaded.entry.location, |e| e.bytes = bytes)
            .await
            .map_err(|e| VectorError::Internal(e.to_string()))?;
        if let Some(entry) = updated {
            self.remember(
                name,
                Loaded {
                    entry,
                    state: Arc::clone(&loaded.state),
                },
            );
        }
        Ok(VectorIndexOptimizeResult {
            index: name.to_string(),
            rows: layout.rows,
            fragments: layout.fragments,
            indexed_rows: layout.indexed_rows,
            unindexed_rows: layout.unindexed_rows,
            bytes: layout.bytes,
            index_type: layout.index_type,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Number of indexes held in memory.
    pub(crate) fn loaded_count(&self) -> usize {
        self.loaded.read().map_or(0, |l| l.len())
    }
}

/// The protocol's view of a catalog entry.
pub(crate) fn info_of(entry: &IndexEntry) -> VectorIndexInfo {
    VectorIndexInfo {
        name: entry.name.clone(),
        table: format!("{}.{}", entry.schema, entry.table),
        text_column: entry.text_column.clone(),
        vector_column: entry.vector_column.clone(),
        id_column: entry.id_column.clone(),
        backend: entry.build.backend.name().to_string(),
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
        parameters: entry.build.parameters().to_string(),
    }
}

/// The embedder an index was built with ([`BUILTIN`] when it records none); ""
/// for an index over precomputed vectors that has none.
pub(crate) fn embedder_name(entry: &IndexEntry) -> &str {
    if entry.model.is_empty() {
        ""
    } else if entry.embedder.is_empty() {
        BUILTIN
    } else {
        &entry.embedder
    }
}
