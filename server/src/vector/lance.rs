//! Lance indexes, written, indexed and searched by the Lance worker process (see
//! `workers`; the worker is its own Cargo workspace, `workers/lance`).
//!
//! A [`LanceIndex`] is the server's handle on one Lance dataset, which lives in the
//! index's home bucket (`<location>lance/`, a local folder or S3) with the columns
//! `key` (the vector's key: its position 0, 1, … as in every backend here), `id` and
//! `chunk` (the document the vector embeds; a BTREE index on `id` serves takes by
//! id) and `vector`. The dataset is the saved structure: a restart, or a restarted
//! worker, opens it where it is, and nothing is rebuilt.
//!
//! Appends are native: new rows become new fragments, which searches scan exactly
//! until an optimize folds them into the IVF index; one runs by itself once the
//! unindexed rows pass the index's `optimize_fraction`. A dataset under
//! [`LANCE_MIN_INDEXED`] rows has no IVF index (k-means needs rows to train on): its
//! searches are exact, and the optimize that finds enough rows builds the index.
//! Filters cross as a bitmap of allowed keys, which the worker applies as a row-id
//! pre-filter (Lance keeps stable row ids, equal to the keys).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int32Array, Int64Array, RecordBatch, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use lakehouse_flight_ext::v1::{
    LanceDataset, LanceHits, LanceIndexBuild, LanceSearch, LanceStats, LanceTake, LanceWrite,
};
use lakehouse_flight_ext::worker_actions::{
    LANCE_FORGET, LANCE_INDEX, LANCE_OPTIMIZE, LANCE_SEARCH, LANCE_STATS,
};
use prost::Message;

use super::index::{
    Hit, IndexError, LANCE_MIN_INDEXED, LanceParams, Layout, Metric, SearchParams, VectorIndex,
    normalized,
};
use super::remote::{Allowed, allowed_keys, wait};
use crate::storage::Bucket;
use crate::workers::{Worker, WorkerError};

/// Rows per Arrow batch sent to the worker.
const PUT_ROWS: usize = 8192;
/// Times a filtered search that found fewer than k passing rows probes 4x more.
const WIDEN_ROUNDS: usize = 6;
/// The dataset's key and document columns.
pub(crate) const KEY: &str = "key";
pub(crate) const ID: &str = "id";
pub(crate) const CHUNK: &str = "chunk";

/// The `(id, chunk)` of each vector, shared with the batches that carry them.
type Documents = Arc<Vec<(i64, i32)>>;

fn index_error(error: WorkerError) -> IndexError {
    super::remote::index_error("Lance", error)
}

fn decoded<M: Message + Default>(bytes: bytes::Bytes) -> Result<M, tonic::Status> {
    M::decode(bytes).map_err(|e| tonic::Status::internal(e.to_string()))
}

/// The dataset of the index at `location` in `bucket`: `<location>lance/`, with the
/// bucket's object-store options (S3 endpoint, region, keys).
pub(crate) fn dataset_of(bucket: &Bucket, location: &str) -> Result<LanceDataset, IndexError> {
    let relative = format!("{location}lance");
    let uri = match bucket.local_file(&relative) {
        Some(path) => path.display().to_string(),
        None => bucket
            .url_of(&relative)
            .map_err(|e| IndexError::Failed(e.to_string()))?
            .to_string(),
    };
    Ok(LanceDataset {
        uri,
        storage_options: bucket.object_store_options().into_iter().collect(),
    })
}

/// A Lance index: the server's handle on its dataset. Dropping it drops the worker's
/// cached handle, never the files.
#[derive(Debug)]
pub(crate) struct LanceIndex(Arc<Inner>);

/// What calls in flight share of a [`LanceIndex`].
struct Inner {
    worker: Arc<Worker>,
    runtime: tokio::runtime::Handle,
    dataset: LanceDataset,
    dimension: usize,
    metric: Metric,
    /// Resolved (see [`LanceParams::resolved`]).
    params: LanceParams,
    /// What the worker last said the dataset holds.
    stats: Mutex<LanceStats>,
    /// One write, index build or optimize at a time.
    changing: tokio::sync::Mutex<()>,
    /// An automatic optimize is running.
    optimizing: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("dataset", &self.dataset.uri)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl LanceIndex {
    /// Writes `vectors` (keys 0, 1, …), made from `documents` (`(id, chunk)` each),
    /// as a new dataset at `dataset` (replacing one) and builds its index, with
    /// `params` resolved for them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn build(
        worker: Arc<Worker>,
        dataset: LanceDataset,
        metric: Metric,
        params: &LanceParams,
        dimension: usize,
        vectors: &[Vec<f32>],
        documents: Vec<(i64, i32)>,
    ) -> Result<Self, IndexError> {
        if documents.len() != vectors.len() {
            return Err(IndexError::Failed(format!(
                "{} vectors came with {} document ids",
                vectors.len(),
                documents.len()
            )));
        }
        let params = params.resolved(vectors.len(), dimension)?;
        let inner = Inner::new(worker, dataset, metric, params, dimension)?;
        let flat = inner.prepared(vectors.iter().map(Vec::as_slice))?;
        inner.put(0, false, flat, Arc::new(documents)).await?;
        if vectors.len() >= LANCE_MIN_INDEXED {
            inner.build_index().await?;
        }
        Ok(Self(Arc::new(inner)))
    }

    /// The dataset already at `dataset` (after a restart), opened by the worker.
    pub(crate) async fn open(
        worker: Arc<Worker>,
        dataset: LanceDataset,
        metric: Metric,
        params: &LanceParams,
        dimension: usize,
    ) -> Result<Self, IndexError> {
        let inner = Inner::new(worker, dataset, metric, params.clone(), dimension)?;
        inner.refresh_stats().await?;
        let stats = inner.stats();
        if !stats.columns.iter().any(|c| c == ID) {
            return Err(IndexError::Invalid(format!(
                "the Lance dataset at {} has no id column (written before takes by id)",
                inner.dataset.uri
            )));
        }
        if stats.dimension as usize != dimension {
            return Err(IndexError::Invalid(format!(
                "the Lance dataset at {} holds {}-dimensional vectors, the index {dimension}",
                inner.dataset.uri, stats.dimension
            )));
        }
        Ok(Self(Arc::new(inner)))
    }

    /// The dataset's rows whose document id is one of `ids` (through its BTREE on
    /// `id`), with `key` and `columns`, in the dataset's order.
    pub(crate) async fn take_ids(
        &self,
        ids: Vec<i64>,
        columns: Vec<String>,
    ) -> Result<Vec<RecordBatch>, IndexError> {
        let mut columns = columns;
        if !columns.iter().any(|c| c == KEY) {
            columns.insert(0, KEY.to_string());
        }
        let ticket = LanceTake {
            dataset: Some(self.0.dataset.clone()),
            keys: Vec::new(),
            columns,
            ids,
        }
        .encode_to_vec();
        self.0
            .worker
            .call(|live| async move { live.get(ticket).await })
            .await
            .map_err(index_error)
    }
}

impl Inner {
    fn new(
        worker: Arc<Worker>,
        dataset: LanceDataset,
        metric: Metric,
        params: LanceParams,
        dimension: usize,
    ) -> Result<Self, IndexError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| IndexError::Failed(format!("no runtime for the Lance worker: {e}")))?;
        Ok(Self {
            worker,
            runtime,
            dataset,
            dimension,
            metric,
            params,
            stats: Mutex::new(LanceStats::default()),
            changing: tokio::sync::Mutex::new(()),
            optimizing: AtomicBool::new(false),
        })
    }

    fn stats(&self) -> LanceStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn adopt(&self, stats: LanceStats) {
        if let Ok(mut held) = self.stats.lock() {
            *held = stats;
        }
    }

    /// The metric as the worker takes it: cosine indexes hold normalised vectors
    /// and are searched by inner product.
    fn worker_metric(&self) -> &'static str {
        match self.metric {
            Metric::L2 => "l2",
            Metric::Cosine | Metric::Dot => "dot",
        }
    }

    /// `vectors` as one row-major array: dimensions checked, normalised for cosine.
    fn prepared<'a>(
        &self,
        vectors: impl ExactSizeIterator<Item = &'a [f32]>,
    ) -> Result<Vec<f32>, IndexError> {
        let mut flat = Vec::with_capacity(vectors.len() * self.dimension);
        for (row, vector) in vectors.enumerate() {
            if vector.len() != self.dimension {
                return Err(IndexError::Invalid(format!(
                    "vector {row} has {} dimensions, the index {}",
                    vector.len(),
                    self.dimension
                )));
            }
            if vector.iter().any(|x| !x.is_finite()) {
                return Err(IndexError::Invalid(format!(
                    "vector {row} holds NaN or infinity"
                )));
            }
            match self.metric {
                Metric::Cosine => flat.extend(normalized(vector)),
                Metric::Dot | Metric::L2 => flat.extend_from_slice(vector),
            }
        }
        Ok(flat)
    }

    /// Writes `flat` ([`Inner::prepared`]) as keys from `first_key` on, with their
    /// documents: a new dataset, or (`append`) new fragments of this one.
    async fn put(
        &self,
        first_key: u64,
        append: bool,
        flat: Vec<f32>,
        documents: Documents,
    ) -> Result<(), IndexError> {
        let spec = LanceWrite {
            dataset: Some(self.dataset.clone()),
            append,
        };
        let dimension = self.dimension;
        let flat = Arc::new(flat);
        let stats = self
            .worker
            .call(|live| async move {
                let batches = dataset_batches(flat, documents, dimension, first_key);
                decoded::<LanceStats>(live.put(spec.encode_to_vec(), batches).await?)
            })
            .await
            .map_err(index_error)?;
        tracing::info!(dataset = %self.dataset.uri, rows = stats.rows, fragments = stats.fragments,
            append, seconds = stats.seconds, "Lance dataset written by the worker");
        self.adopt(stats);
        Ok(())
    }

    /// Builds the IVF index (and the key's BTREE) over every row.
    async fn build_index(&self) -> Result<(), IndexError> {
        let params = &self.params;
        let body = LanceIndexBuild {
            dataset: Some(self.dataset.clone()),
            index_type: params.index_type.clone(),
            metric: self.worker_metric().into(),
            partitions: as_u32(params.partitions),
            sub_vectors: as_u32(params.sub_vectors),
            bits: as_u32(params.bits),
            max_iterations: as_u32(params.max_iterations),
            sample_rate: as_u32(params.sample_rate),
            hnsw_m: as_u32(params.m),
            hnsw_ef_construction: as_u32(params.ef_construction),
        }
        .encode_to_vec();
        let stats = self
            .worker
            .call(
                |live| async move { decoded::<LanceStats>(live.action(LANCE_INDEX, body).await?) },
            )
            .await
            .map_err(index_error)?;
        tracing::info!(dataset = %self.dataset.uri, index_type = %stats.index_type,
            rows = stats.indexed_rows, seconds = stats.seconds, "Lance index built by the worker");
        self.adopt(stats);
        Ok(())
    }

    async fn refresh_stats(&self) -> Result<(), IndexError> {
        let body = self.dataset.encode_to_vec();
        let stats = self
            .worker
            .call(
                |live| async move { decoded::<LanceStats>(live.action(LANCE_STATS, body).await?) },
            )
            .await
            .map_err(|error| match error {
                WorkerError::Status(status) if status.code() == tonic::Code::NotFound => {
                    IndexError::Invalid(format!(
                        "no Lance dataset at {}: {}",
                        self.dataset.uri,
                        status.message()
                    ))
                }
                other => index_error(other),
            })?;
        self.adopt(stats);
        Ok(())
    }

    async fn optimize(&self) -> Result<(), IndexError> {
        let _changing = self.changing.lock().await;
        let stats = self.stats();
        if stats.index_type.is_empty() {
            if stats.rows as usize >= LANCE_MIN_INDEXED {
                return self.build_index().await;
            }
            return Ok(());
        }
        let body = self.dataset.encode_to_vec();
        let stats =
            self.worker
                .call(|live| async move {
                    decoded::<LanceStats>(live.action(LANCE_OPTIMIZE, body).await?)
                })
                .await
                .map_err(index_error)?;
        tracing::info!(dataset = %self.dataset.uri, indexed = stats.indexed_rows,
            unindexed = stats.unindexed_rows, seconds = stats.seconds, "Lance index optimized");
        self.adopt(stats);
        Ok(())
    }

    /// Whether the rows no index covers are past the index's optimize fraction.
    fn wants_optimize(&self) -> bool {
        let stats = self.stats();
        let rows = stats.rows as f64;
        let unindexed = stats.unindexed_rows as f64;
        if stats.index_type.is_empty() {
            return stats.rows as usize >= LANCE_MIN_INDEXED;
        }
        rows > 0.0 && unindexed > 0.0 && unindexed / rows > self.params.optimize_fraction
    }

    async fn search_async(&self, request: LanceSearch) -> Result<LanceHits, IndexError> {
        let body = request.encode_to_vec();
        self.worker
            .call(
                |live| async move { decoded::<LanceHits>(live.action(LANCE_SEARCH, body).await?) },
            )
            .await
            .map_err(index_error)
    }
}

fn layout_of(stats: &LanceStats) -> Layout {
    Layout {
        rows: stats.rows,
        fragments: stats.fragments,
        indexed_rows: stats.indexed_rows,
        unindexed_rows: stats.unindexed_rows,
        bytes: stats.bytes,
        version: stats.version,
        index_type: stats.index_type.clone(),
    }
}

fn as_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// `key`, `id`, `chunk` and `vector` batches of [`PUT_ROWS`], made as the put
/// consumes them.
fn dataset_batches(
    flat: Arc<Vec<f32>>,
    documents: Documents,
    dimension: usize,
    first_key: u64,
) -> impl futures::Stream<Item = Result<RecordBatch, arrow_flight::error::FlightError>> + Send + 'static
{
    let rows = flat.len() / dimension.max(1);
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new(KEY, DataType::UInt64, false),
        Field::new(ID, DataType::Int64, false),
        Field::new(CHUNK, DataType::Int32, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(Arc::clone(&item), dimension as i32),
            false,
        ),
    ]));
    futures::stream::iter((0..rows).step_by(PUT_ROWS)).map(move |start| {
        let end = (start + PUT_ROWS).min(rows);
        let keys: UInt64Array = (start..end).map(|row| first_key + row as u64).collect();
        let ids: Int64Array = documents[start..end].iter().map(|(id, _)| *id).collect();
        let chunks: Int32Array = documents[start..end].iter().map(|(_, c)| *c).collect();
        let values = Float32Array::from(flat[start * dimension..end * dimension].to_vec());
        let list = FixedSizeListArray::try_new(
            Arc::clone(&item),
            dimension as i32,
            Arc::new(values),
            None,
        )?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(keys),
            Arc::new(ids),
            Arc::new(chunks),
            Arc::new(list),
        ];
        Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
    })
}

impl Drop for LanceIndex {
    fn drop(&mut self) {
        let inner = Arc::clone(&self.0);
        // The worker's cached handle goes with ours; a worker that is not running has
        // none (and is not started for this).
        let forget = async move {
            if let Some(live) = inner.worker.running() {
                let _ = live
                    .action(LANCE_FORGET, inner.dataset.encode_to_vec())
                    .await;
            }
        };
        self.0.runtime.spawn(forget);
    }
}

impl VectorIndex for LanceIndex {
    fn backend(&self) -> &'static str {
        "lance"
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
        self.0.stats().rows as usize
    }

    /// Bytes of the dataset in its bucket (data, indexes, manifests).
    fn memory_bytes(&self) -> usize {
        self.0.stats().bytes as usize
    }

    fn layout(&self) -> Option<Layout> {
        Some(layout_of(&self.0.stats()))
    }

    fn optimize(&self) -> Result<Option<Layout>, IndexError> {
        let this = Arc::clone(&self.0);
        wait(&self.0.runtime, async move { this.optimize().await })??;
        Ok(Some(layout_of(&self.0.stats())))
    }

    fn add(&self, _items: &[(u64, Vec<f32>)]) -> Result<(), IndexError> {
        Err(IndexError::Failed(
            "a Lance index adds vectors with their document ids (add_documents)".into(),
        ))
    }

    fn add_documents(
        &self,
        items: &[(u64, Vec<f32>)],
        documents: &[(i64, i32)],
    ) -> Result<(), IndexError> {
        if items.is_empty() {
            return Ok(());
        }
        if documents.len() != items.len() {
            return Err(IndexError::Failed(format!(
                "{} vectors came with {} document ids",
                items.len(),
                documents.len()
            )));
        }
        let documents = Arc::new(documents.to_vec());
        let first = self.len() as u64;
        if items
            .iter()
            .enumerate()
            .any(|(i, (key, _))| *key != first + i as u64)
        {
            return Err(IndexError::Invalid(format!(
                "a Lance index takes the next keys in order, from {first}"
            )));
        }
        let flat = self.0.prepared(items.iter().map(|(_, v)| v.as_slice()))?;
        let this = Arc::clone(&self.0);
        wait(&self.0.runtime, async move {
            {
                let _changing = this.changing.lock().await;
                this.put(first, true, flat, documents).await?;
            }
            // Past the optimize fraction: fold the new rows into the index, in the
            // background (searches scan them exactly meanwhile).
            if this.wants_optimize() && !this.optimizing.swap(true, Ordering::AcqRel) {
                let background = Arc::clone(&this);
                this.runtime.spawn(async move {
                    if let Err(error) = background.optimize().await {
                        tracing::warn!(dataset = %background.dataset.uri, %error,
                            "optimizing the Lance index failed; its new rows stay searched exactly");
                    }
                    background.optimizing.store(false, Ordering::Release);
                });
            }
            Ok(())
        })?
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
        let pick = |given: usize, default: usize| if given == 0 { default } else { given };
        let defaults = &inner.params;
        let mut request = LanceSearch {
            dataset: Some(inner.dataset.clone()),
            query,
            k: as_u32(k),
            nprobe: as_u32(pick(params.nprobe, defaults.nprobe)),
            refine_factor: as_u32(pick(params.refine_factor, defaults.refine_factor)),
            ef: as_u32(pick(params.ef, defaults.ef)),
            allowed,
            allowed_bits,
            metric: inner.worker_metric().into(),
        };
        // A filtered IVF search sees only the partitions it probes: when fewer than k
        // of the passing rows come back, probe 4x more until k do or it probes all.
        let want = k.min(passing);
        let partitions = as_u32(defaults.partitions.max(1));
        let mut rounds = 0;
        let hits = loop {
            let this = Arc::clone(inner);
            let sent = request.clone();
            let hits = wait(&inner.runtime, async move { this.search_async(sent).await })??;
            rounds += 1;
            if hits.keys.len() >= want || rounds > WIDEN_ROUNDS || request.nprobe >= partitions {
                break hits;
            }
            request.nprobe = request.nprobe.max(1).saturating_mul(4).min(partitions);
            if request.ef > 0 {
                request.ef = request.ef.saturating_mul(4);
            }
        };
        let metric = inner.metric;
        Ok(hits
            .keys
            .into_iter()
            .zip(hits.distances)
            .map(|(id, raw)| Hit {
                id,
                // The worker gives squared L2, or 1 - inner product.
                distance: match metric {
                    Metric::Cosine | Metric::L2 => raw,
                    Metric::Dot => raw - 1.0,
                },
            })
            .collect())
    }
}
