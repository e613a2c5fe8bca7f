//! The embedder registry: the built-in model (loaded once) and the configured HTTP
//! embedders (`[embedders.NAME]`, connected on first use), which embedder an index
//! was built with, and the GPU slot's pin on an Ollama model.

use std::sync::Arc;

use super::embed::{BUILTIN, Embedder, MiniLm};
use super::error::{VectorError, internal};
use super::http::HttpEmbedder;
use super::service::{VectorIndexes, embedder_name};
use crate::catalog::IndexEntry;

impl VectorIndexes {
    /// Checks that `name` is the built-in model or a configured embedder.
    pub(crate) fn check_embedder(&self, name: &str) -> Result<(), VectorError> {
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
    pub(crate) async fn embedder(&self, name: &str) -> Result<Arc<dyn Embedder>, VectorError> {
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
    pub(crate) async fn index_embedder(
        &self,
        entry: &IndexEntry,
    ) -> Result<Arc<dyn Embedder>, VectorError> {
        let name = embedder_name(entry);
        if name.is_empty() {
            return Err(VectorError::Invalid(format!(
                "index {} holds the precomputed vectors of column {} and names no embedder: \
                 search it by vector, or rebuild it naming an embedder of {} dimensions",
                entry.name, entry.vector_column, entry.dimension
            )));
        }
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

    /// Pins (or unpins) the Ollama model of embedder `name` in memory: while pinned,
    /// every embedding request asks Ollama to keep it loaded (`keep_alive: -1`)
    /// instead of letting it expire after Ollama's default idle time.
    pub(crate) fn pin_embedder(&self, name: &str, pinned: bool) {
        self.pin(name)
            .store(pinned, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn pin(&self, name: &str) -> Arc<std::sync::atomic::AtomicBool> {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(pins.entry(name.to_string()).or_default())
    }

    /// The built-in embedding model (loaded once).
    pub(crate) async fn builtin(&self) -> Result<Arc<MiniLm>, VectorError> {
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
}
