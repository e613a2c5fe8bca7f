//! Faiss indexes, built and searched in the Faiss worker process (see `workers`).
//!
//! A [`FaissIndex`] is the server's handle on one index held by the worker: the
//! index lives in the worker's memory and in a local file (written by the worker,
//! whole or absent), which is also the saved structure the vector service copies
//! into the index's home bucket. When the worker is restarted (a crash), the next
//! call loads the file into the new worker first, so a crash costs only the calls
//! that were in flight.
//!
//! Keys are positions (0, 1, …) in insertion order, as in every backend here; Faiss
//! numbers vectors the same way, so no id map crosses the boundary. Filters cross
//! as a bitmap of allowed keys, which Faiss applies during the search (IVF lists and
//! HNSW graphs alike), so a filtered search still returns k hits when k pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arrow::array::{FixedSizeListArray, Float32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use lakehouse_flight_ext::v1::{
    FaissBuild, FaissDrop, FaissHits, FaissIndexStats, FaissLoad, FaissSearch,
};
use lakehouse_flight_ext::worker_actions::{FAISS_DROP, FAISS_LOAD, FAISS_SEARCH};
use prost::Message;

use super::index::{FaissParams, Hit, IndexError, Metric, SearchParams, VectorIndex, normalized};
use super::remote::{Allowed, allowed_keys, wait};
use crate::workers::{Worker, WorkerError};

/// A Faiss worker call's failure as an index error.
fn index_error(error: WorkerError) -> IndexError {
    super::remote::index_error("Faiss", error)
}

/// Vectors per Arrow batch sent to the worker.
const PUT_ROWS: usize = 4096;
/// Times a search that found fewer than k passing vectors is widened.
const WIDEN_ROUNDS: usize = 8;
/// Vectors an IVF index trains on at most (Faiss needs ~39–256 per list).
const TRAIN_LIMIT: u64 = 200_000;

/// A Faiss index held by the worker; dropping it drops the worker's copy and the
/// local file.
#[derive(Debug)]
pub(crate) struct FaissIndex(Arc<Inner>);

/// What calls in flight share of a [`FaissIndex`].
struct Inner {
    worker: Arc<Worker>,
    runtime: tokio::runtime::Handle,
    /// Its name inside the worker (unique per handle).
    handle: String,
    /// Its file: the worker writes it, a restarted worker reads it.
    path: PathBuf,
    dimension: usize,
    metric: Metric,
    nprobe: usize,
    ef_search: usize,
    count: AtomicUsize,
    file_bytes: AtomicU64,
    /// The worker generation that holds it (0: none).
    loaded_in: AtomicU64,
    /// One build, load or append at a time.
    changing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("handle", &self.handle)
            .field("path", &self.path)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn new(
        worker: Arc<Worker>,
        dir: &Path,
        name: &str,
        dimension: usize,
        metric: Metric,
        params: &FaissParams,
    ) -> Result<Self, IndexError> {
        let handle = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| IndexError::Failed(format!("no runtime for the Faiss worker: {e}")))?;
        Ok(Self {
            worker,
            runtime,
            path: dir.join(format!("{handle}.faiss")),
            handle,
            dimension,
            metric,
            nprobe: params.nprobe.max(1),
            ef_search: params.ef_search,
            count: AtomicUsize::new(0),
            file_bytes: AtomicU64::new(0),
            loaded_in: AtomicU64::new(0),
            changing: tokio::sync::Mutex::new(()),
        })
    }
}

impl FaissIndex {
    /// Builds an index of `vectors` (keys 0, 1, …) in the worker from `params`
    /// (resolved: see [`FaissParams::resolved`]).
    pub(crate) async fn build(
        worker: Arc<Worker>,
        dir: &Path,
        name: &str,
        metric: Metric,
        params: &FaissParams,
        dimension: usize,
        vectors: &[Vec<f32>],
    ) -> Result<Self, IndexError> {
        let inner = Inner::new(worker, dir, name, dimension, metric, params)?;
        let flat = inner.prepared(vectors.iter().map(Vec::as_slice))?;
        inner.put(&params.factory, false, flat).await?;
        Ok(Self(Arc::new(inner)))
    }

    /// An index saved as `bytes` (a file written by the worker), loaded into it.
    pub(crate) async fn open(
        worker: Arc<Worker>,
        dir: &Path,
        name: &str,
        metric: Metric,
        params: &FaissParams,
        dimension: usize,
        bytes: &[u8],
    ) -> Result<Self, IndexError> {
        let index = Self(Arc::new(Inner::new(
            worker, dir, name, dimension, metric, params,
        )?));
        let inner = &index.0;
        if let Some(parent) = inner.path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| IndexError::Failed(format!("{}: {e}", parent.display())))?;
        }
        tokio::fs::write(&inner.path, bytes)
            .await
            .map_err(|e| IndexError::Failed(format!("{}: {e}", inner.path.display())))?;
        inner.load().await?;
        Ok(index)
    }
}

impl Inner {
    /// `vectors` as one row-major array, as Faiss takes them: dimensions checked,
    /// normalised for cosine.
    fn prepared<'a>(
        &self,
        vectors: impl ExactSizeIterator<Item = &'a [f32]>,
    ) -> Result<Vec<f32>, IndexError> {
        let mut flat = Vec::with_capacity(vectors.len() * self.dimension);
        for vector in vectors {
            if vector.len() != self.dimension {
                return Err(IndexError::Invalid(format!(
                    "vector has {} dimensions, the index {}",
                    vector.len(),
                    self.dimension
                )));
            }
            match self.metric {
                Metric::Cosine => flat.extend(normalized(vector)),
                Metric::Dot | Metric::L2 => flat.extend_from_slice(vector),
            }
        }
        Ok(flat)
    }

    /// Sends `flat` ([`Inner::prepared`] vectors) to be built into a new index
    /// (`factory`) or appended.
    async fn put(&self, factory: &str, append: bool, flat: Vec<f32>) -> Result<(), IndexError> {
        let flat = Arc::new(flat);
        let spec = FaissBuild {
            name: self.handle.clone(),
            dimension: self.dimension as u32,
            inner_product: self.metric != Metric::L2,
            factory: factory.to_string(),
            path: self.path.display().to_string(),
            train_limit: TRAIN_LIMIT,
            append,
        };
        let dimension = self.dimension;
        let stats = self
            .worker
            .call(|live| async move {
                let answer = live
                    .put(spec.encode_to_vec(), vector_batches(flat, dimension))
                    .await?;
                let stats = FaissIndexStats::decode(answer)
                    .map_err(|e| tonic::Status::internal(e.to_string()))?;
                Ok((stats, live.generation))
            })
            .await
            .map_err(index_error)?;
        let (stats, generation) = stats;
        self.adopt(&stats, generation);
        tracing::info!(index = %self.handle, vectors = stats.vectors, factory, append,
            train_seconds = stats.train_seconds, add_seconds = stats.add_seconds,
            "Faiss index written by the worker");
        Ok(())
    }

    /// What the worker says it holds now, in the worker of `generation`.
    fn adopt(&self, stats: &FaissIndexStats, generation: u64) {
        self.count.store(stats.vectors as usize, Ordering::Relaxed);
        self.file_bytes.store(stats.file_bytes, Ordering::Relaxed);
        self.loaded_in.store(generation, Ordering::Relaxed);
    }

    /// Loads the file into the running worker (started if need be).
    async fn load(&self) -> Result<(), IndexError> {
        let body = FaissLoad {
            name: self.handle.clone(),
            path: self.path.display().to_string(),
        };
        let (stats, generation) = self
            .worker
            .call(|live| async move {
                let answer = live.action(FAISS_LOAD, body.encode_to_vec()).await?;
                let stats = FaissIndexStats::decode(answer)
                    .map_err(|e| tonic::Status::internal(e.to_string()))?;
                Ok((stats, live.generation))
            })
            .await
            .map_err(index_error)?;
        self.adopt(&stats, generation);
        Ok(())
    }

    /// Makes sure the running worker holds this index: a restarted one is given it
    /// back from the file.
    async fn ready(&self) -> Result<(), IndexError> {
        let generation = self.worker.live().await.map_err(index_error)?.generation;
        if self.loaded_in.load(Ordering::Relaxed) != generation {
            let _changing = self.changing.lock().await;
            if self.loaded_in.load(Ordering::Relaxed) != generation {
                tracing::info!(index = %self.handle, generation,
                    "giving the restarted Faiss worker its index back");
                self.load().await?;
            }
        }
        Ok(())
    }

    async fn search_async(&self, request: FaissSearch) -> Result<FaissHits, IndexError> {
        for attempt in 0..2 {
            self.ready().await?;
            let body = request.encode_to_vec();
            let answer = self
                .worker
                .call(|live| async move {
                    let answer = live.action(FAISS_SEARCH, body).await?;
                    FaissHits::decode(answer).map_err(|e| tonic::Status::internal(e.to_string()))
                })
                .await;
            match answer {
                // Restarted between `ready` and the search: load it again, once.
                Err(WorkerError::Status(status))
                    if status.code() == tonic::Code::NotFound && attempt == 0 =>
                {
                    self.loaded_in.store(0, Ordering::Relaxed);
                }
                other => return other.map_err(index_error),
            }
        }
        Err(IndexError::Unavailable(
            "the Faiss worker keeps losing the index".into(),
        ))
    }
}

/// The vectors as Arrow batches of [`PUT_ROWS`], made as the put consumes them.
fn vector_batches(
    flat: Arc<Vec<f32>>,
    dimension: usize,
) -> impl futures::Stream<Item = Result<RecordBatch, arrow_flight::error::FlightError>> + Send + 'static
{
    let rows = flat.len() / dimension.max(1);
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let schema = Arc::new(Schema::new(vec![Field::new(
        "vector",
        DataType::FixedSizeList(Arc::clone(&item), dimension as i32),
        false,
    )]));
    futures::stream::iter((0..rows).step_by(PUT_ROWS)).map(move |start| {
        let end = (start + PUT_ROWS).min(rows);
        let values = Float32Array::from(flat[start * dimension..end * dimension].to_vec());
        let list = FixedSizeListArray::try_new(
            Arc::clone(&item),
            dimension as i32,
            Arc::new(values),
            None,
        )?;
        Ok(RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(list)],
        )?)
    })
}

impl Drop for FaissIndex {
    fn drop(&mut self) {
        let inner = Arc::clone(&self.0);
        // The worker's copy goes with the handle; a worker that has died since has
        // no copy to drop (and is not started for this).
        let drop_call = async move {
            let generation = inner.loaded_in.load(Ordering::Relaxed);
            if let Some(live) = inner.worker.running()
                && live.generation == generation
            {
                let body = FaissDrop {
                    name: inner.handle.clone(),
                };
                let _ = live.action(FAISS_DROP, body.encode_to_vec()).await;
            }
            let _ = tokio::fs::remove_file(&inner.path).await;
        };
        self.0.runtime.spawn(drop_call);
    }
}

impl VectorIndex for FaissIndex {
    fn backend(&self) -> &'static str {
        "faiss"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn dimension(&self) -> usize {
        self.0.dimension
    }

    fn metric(&self) -> Metric {
        self.0.metric
    }

    fn len(&self) -> usize {
        self.0.count.load(Ordering::Relaxed)
    }

    fn memory_bytes(&self) -> usize {
        self.0.file_bytes.load(Ordering::Relaxed) as usize
    }

    fn add(&self, items: &[(u64, Vec<f32>)]) -> Result<(), IndexError> {
        if items.is_empty() {
            return Ok(());
        }
        let first = self.len() as u64;
        if items
            .iter()
            .enumerate()
            .any(|(i, (key, _))| *key != first + i as u64)
        {
            return Err(IndexError::Invalid(format!(
                "a Faiss index takes the next keys in order, from {first}"
            )));
        }
        let flat = self.0.prepared(items.iter().map(|(_, v)| v.as_slice()))?;
        let this = Arc::clone(&self.0);
        wait(&self.0.runtime, async move {
            this.ready().await?;
            let _changing = this.changing.lock().await;
            this.put("", true, flat).await
        })?
    }

    fn saved_structure(&self) -> Option<Vec<u8>> {
        match std::fs::read(&self.0.path) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                tracing::warn!(path = %self.0.path.display(), %error, "cannot read the Faiss index file");
                None
            }
        }
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: SearchParams,
        filter: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> Result<Vec<Hit>, IndexError> {
        let inner = &self.0;
        let query = inner.prepared(std::iter::once(query))?;
        let Allowed {
            bitmap: allowed,
            bits: allowed_bits,
            passing,
        } = allowed_keys(self.len(), filter);
        let as_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        let mut request = FaissSearch {
            name: inner.handle.clone(),
            query,
            k: as_u32(k),
            nprobe: as_u32(if params.nprobe == 0 {
                inner.nprobe
            } else {
                params.nprobe
            }),
            ef_search: as_u32(if params.ef == 0 {
                inner.ef_search
            } else {
                params.ef
            }),
            allowed,
            allowed_bits,
        };
        // An IVF search sees only the lists it probes, an HNSW search only the
        // candidates it keeps: when fewer than k of the passing vectors come back,
        // probe and keep more (4x a round) until k do or the search is exhaustive.
        let want = k.min(passing);
        let mut rounds = 0;
        let hits = loop {
            let this = Arc::clone(inner);
            let sent = request.clone();
            let hits = wait(&inner.runtime, async move { this.search_async(sent).await })??;
            rounds += 1;
            if hits.keys.len() >= want || rounds > WIDEN_ROUNDS {
                break hits;
            }
            request.nprobe = request.nprobe.max(1).saturating_mul(4);
            request.ef_search = request.ef_search.max(as_u32(k).max(16)).saturating_mul(4);
        };
        let metric = inner.metric;
        Ok(hits
            .keys
            .into_iter()
            .zip(hits.distances)
            .map(|(id, raw)| Hit {
                id,
                // Faiss gives inner products for IP indexes, squared L2 otherwise.
                distance: match metric {
                    Metric::Cosine => 1.0 - raw,
                    Metric::Dot => -raw,
                    Metric::L2 => raw,
                },
            })
            .collect())
    }
}
