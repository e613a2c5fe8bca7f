//! Lance datasets by URI: writes, appends, index builds, searches, takes, optimizes and
//! statistics. Open datasets are cached by URI (a `Dataset` is a cheap handle on a
//! manifest); a write replaces the cached handle with the version it committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt64Type};
use arrow_array::{Array, Float32Array, RecordBatch, RecordBatchIterator};
use arrow_schema::{ArrowError, DataType};
use futures::TryStreamExt;
use lance::Dataset;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::scanner::{RowAddrMask, RowAddrTreeMap};
use lance::dataset::{WriteMode, WriteParams};
use lance::index::DatasetIndexExt;
use lance::index::vector::VectorIndexParams;
use lance::io::{ObjectStoreParams, StorageOptionsAccessor};
use lance_index::IndexType;
use lance_index::optimize::OptimizeOptions;
use lance_index::scalar::{BuiltinIndexType, ScalarIndexParams};
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::pq::PQBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use lance_linalg::distance::DistanceType;

use crate::v1::{LanceDataset, LanceHits, LanceIndexBuild, LanceSearch, LanceStats};

/// The vector column, the key column and their indexes' names.
pub(crate) const VECTOR: &str = "vector";
pub(crate) const KEY: &str = "key";
const VECTOR_INDEX: &str = "vector_idx";
const KEY_INDEX: &str = "key_idx";

/// What went wrong, by who can fix it.
#[derive(Debug)]
pub(crate) enum DatasetError {
    /// The request is wrong (a parameter, a column, a vector's width).
    Invalid(String),
    /// No dataset at that URI.
    NotFound(String),
    /// Lance or storage failed.
    Failed(String),
}

impl std::fmt::Display for DatasetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m) | Self::NotFound(m) | Self::Failed(m) => f.write_str(m),
        }
    }
}

fn failed(context: &str) -> impl Fn(lance::Error) -> DatasetError + '_ {
    move |error| match error {
        lance::Error::DatasetNotFound { .. } | lance::Error::NotFound { .. } => {
            DatasetError::NotFound(format!("{context}: {error}"))
        }
        lance::Error::InvalidInput { .. } | lance::Error::Schema { .. } => {
            DatasetError::Invalid(format!("{context}: {error}"))
        }
        other => DatasetError::Failed(format!("{context}: {other}")),
    }
}

/// Open datasets by URI.
#[derive(Default, Clone)]
pub(crate) struct Datasets {
    open: Arc<Mutex<HashMap<String, Dataset>>>,
}

fn store_params(spec: &LanceDataset) -> Option<ObjectStoreParams> {
    if spec.storage_options.is_empty() {
        return None;
    }
    let options: HashMap<String, String> = spec.storage_options.clone().into_iter().collect();
    Some(ObjectStoreParams {
        storage_options_accessor: Some(Arc::new(StorageOptionsAccessor::with_static_options(
            options,
        ))),
        ..Default::default()
    })
}

fn uri_of(spec: &LanceDataset) -> Result<&str, DatasetError> {
    let uri = spec.uri.trim();
    if uri.is_empty() {
        return Err(DatasetError::Invalid("the dataset has no uri".into()));
    }
    Ok(uri)
}

impl Datasets {
    /// Datasets open now.
    pub(crate) fn count(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    fn cached(&self, uri: &str) -> Option<Dataset> {
        self.open.lock().ok()?.get(uri).cloned()
    }

    fn keep(&self, dataset: &Dataset, uri: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.insert(uri.to_string(), dataset.clone());
        }
    }

    /// Drops the cached handle (the files stay).
    pub(crate) fn forget(&self, spec: &LanceDataset) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(spec.uri.trim());
        }
    }

    /// The dataset at `spec`, opened on first use.
    pub(crate) async fn open(&self, spec: &LanceDataset) -> Result<Dataset, DatasetError> {
        let uri = uri_of(spec)?;
        if let Some(dataset) = self.cached(uri) {
            return Ok(dataset);
        }
        let options: HashMap<String, String> = spec.storage_options.clone().into_iter().collect();
        let dataset = DatasetBuilder::from_uri(uri)
            .with_storage_options(options)
            .load()
            .await
            .map_err(failed(uri))?;
        self.keep(&dataset, uri);
        Ok(dataset)
    }

    /// Writes `batches` as a new dataset (replacing one) or appends them as fragments.
    pub(crate) async fn write(
        &self,
        spec: &LanceDataset,
        append: bool,
        batches: Vec<RecordBatch>,
    ) -> Result<LanceStats, DatasetError> {
        let started = Instant::now();
        let uri = uri_of(spec)?;
        let Some(first) = batches.first() else {
            return Err(DatasetError::Invalid("nothing to write".into()));
        };
        check_columns(first)?;
        let schema = first.schema();
        let first_key = first
            .column_by_name(KEY)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .filter(|keys| !keys.is_empty() && keys.is_valid(0))
            .map(|keys| keys.value(0));
        if !append && first_key.is_some_and(|key| key != 0) {
            return Err(DatasetError::Invalid(
                "a new dataset's keys start at 0".into(),
            ));
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok::<_, ArrowError>), schema);
        let params = WriteParams {
            mode: if append {
                WriteMode::Append
            } else {
                WriteMode::Overwrite
            },
            // Row ids stay the keys through compaction: filters cross as row-id masks.
            enable_stable_row_ids: true,
            store_params: store_params(spec),
            ..Default::default()
        };
        let dataset = if append {
            let mut dataset = self.open(spec).await?;
            // Another process may have written since: append to the latest version.
            dataset.checkout_latest().await.map_err(failed(uri))?;
            // Keys are the stable row ids Lance assigns: they must continue its count.
            let next = dataset.manifest().next_row_id;
            if first_key != Some(next) {
                return Err(DatasetError::Invalid(format!(
                    "an append must start at key {next} (the rows so far), not {first_key:?}"
                )));
            }
            dataset
                .append(reader, Some(params))
                .await
                .map_err(failed(uri))?;
            dataset
        } else {
            Dataset::write(reader, uri, Some(params))
                .await
                .map_err(failed(uri))?
        };
        self.keep(&dataset, uri);
        let mut stats = stats_of(&dataset).await?;
        stats.seconds = started.elapsed().as_secs_f64();
        tracing::info!(%uri, rows, append, total = stats.rows, fragments = stats.fragments,
            seconds = stats.seconds, "written");
        Ok(stats)
    }

    /// Builds the vector index (replacing one) and the key's BTREE.
    pub(crate) async fn build_index(
        &self,
        build: &LanceIndexBuild,
    ) -> Result<LanceStats, DatasetError> {
        let started = Instant::now();
        let spec = build.dataset.clone().unwrap_or_default();
        let uri = uri_of(&spec)?.to_string();
        let mut dataset = self.open(&spec).await?;
        dataset.checkout_latest().await.map_err(failed(&uri))?;
        let dimension = dimension_of(&dataset)?;
        let (index_type, params) = vector_params(build, dimension)?;
        tracing::info!(%uri, ?index_type, partitions = build.partitions,
            sub_vectors = build.sub_vectors, bits = build.bits, "building the vector index");
        dataset
            .create_index(
                &[VECTOR],
                index_type,
                Some(VECTOR_INDEX.into()),
                &params,
                true,
            )
            .await
            .map_err(failed("building the vector index"))?;
        dataset
            .create_index(
                &[KEY],
                IndexType::BTree,
                Some(KEY_INDEX.into()),
                &ScalarIndexParams::for_builtin(BuiltinIndexType::BTree),
                true,
            )
            .await
            .map_err(failed("building the key index"))?;
        self.keep(&dataset, &uri);
        let mut stats = stats_of(&dataset).await?;
        stats.seconds = started.elapsed().as_secs_f64();
        tracing::info!(%uri, seconds = stats.seconds, rows = stats.rows, "index built");
        Ok(stats)
    }

    /// Folds unindexed fragments into the indexes.
    pub(crate) async fn optimize(&self, spec: &LanceDataset) -> Result<LanceStats, DatasetError> {
        let started = Instant::now();
        let uri = uri_of(spec)?.to_string();
        let mut dataset = self.open(spec).await?;
        dataset.checkout_latest().await.map_err(failed(&uri))?;
        if has_index(&dataset, VECTOR_INDEX).await? {
            dataset
                .optimize_indices(&OptimizeOptions::default())
                .await
                .map_err(failed("optimizing the indexes"))?;
        }
        self.keep(&dataset, &uri);
        let mut stats = stats_of(&dataset).await?;
        stats.seconds = started.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// What the dataset holds now.
    pub(crate) async fn stats(&self, spec: &LanceDataset) -> Result<LanceStats, DatasetError> {
        let started = Instant::now();
        let uri = uri_of(spec)?.to_string();
        let mut dataset = self.open(spec).await?;
        dataset.checkout_latest().await.map_err(failed(&uri))?;
        self.keep(&dataset, &uri);
        let mut stats = stats_of(&dataset).await?;
        stats.seconds = started.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// The nearest keys to the query.
    pub(crate) async fn search(&self, search: &LanceSearch) -> Result<LanceHits, DatasetError> {
        let spec = search.dataset.clone().unwrap_or_default();
        let dataset = self.open(&spec).await?;
        if search.k == 0 {
            return Ok(LanceHits::default());
        }
        let query = Float32Array::from(search.query.clone());
        let mut scanner = dataset.scan();
        scanner
            .nearest(VECTOR, &query, search.k as usize)
            .map_err(failed("search"))?;
        scanner.project(&[KEY]).map_err(failed("search"))?;
        scanner.distance_metric(metric_of(&search.metric)?);
        if search.nprobe > 0 {
            scanner.nprobes(search.nprobe as usize);
        }
        if search.refine_factor > 0 {
            scanner.refine(search.refine_factor);
        }
        if search.ef > 0 {
            scanner.ef(search.ef as usize);
        }
        if !search.allowed.is_empty() || search.allowed_bits > 0 {
            let allowed = allowed_keys(&search.allowed, search.allowed_bits);
            scanner.prefilter(true);
            scanner.with_row_id_prefilter(RowAddrMask::from_allowed(allowed));
        }
        let batch = scanner.try_into_batch().await.map_err(failed("search"))?;
        let keys = batch
            .column_by_name(KEY)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| DatasetError::Failed("the search returned no keys".into()))?;
        let distances = batch
            .column_by_name("_distance")
            .and_then(|c| c.as_primitive_opt::<Float32Type>())
            .ok_or_else(|| DatasetError::Failed("the search returned no distances".into()))?;
        Ok(LanceHits {
            keys: keys.iter().flatten().collect(),
            distances: distances.iter().flatten().collect(),
        })
    }

    /// Rows by key, in the order asked; keys that do not exist are left out.
    pub(crate) async fn take(
        &self,
        spec: &LanceDataset,
        keys: &[u64],
        columns: &[String],
    ) -> Result<RecordBatch, DatasetError> {
        let dataset = self.open(spec).await?;
        let schema = dataset.schema();
        let columns: Vec<String> = if columns.is_empty() {
            schema.fields.iter().map(|f| f.name.clone()).collect()
        } else {
            for column in columns {
                if schema.field(column).is_none() {
                    return Err(DatasetError::Invalid(format!(
                        "the index has no column {column:?}"
                    )));
                }
            }
            columns.to_vec()
        };
        let existing = dataset.manifest().next_row_id;
        let present: Vec<u64> = keys.iter().copied().filter(|k| *k < existing).collect();
        let projection = dataset.schema().project(&columns).map_err(failed("take"))?;
        dataset
            .take_rows(&present, projection)
            .await
            .map_err(failed("take"))
    }
}

/// `key` UInt64 and `vector` FixedSizeList<Float32> must be there.
fn check_columns(batch: &RecordBatch) -> Result<(), DatasetError> {
    match batch.schema().field_with_name(KEY).map(|f| f.data_type()) {
        Ok(DataType::UInt64) => {}
        _ => {
            return Err(DatasetError::Invalid(
                "the batches need a UInt64 column key".into(),
            ));
        }
    }
    match batch
        .schema()
        .field_with_name(VECTOR)
        .map(|f| f.data_type())
    {
        Ok(DataType::FixedSizeList(item, _)) if item.data_type() == &DataType::Float32 => Ok(()),
        _ => Err(DatasetError::Invalid(
            "the batches need a FixedSizeList<Float32> column vector".into(),
        )),
    }
}

fn dimension_of(dataset: &Dataset) -> Result<usize, DatasetError> {
    match dataset.schema().field(VECTOR).map(|f| f.data_type()) {
        Some(DataType::FixedSizeList(_, width)) if width > 0 => Ok(width as usize),
        _ => Err(DatasetError::Invalid(
            "the dataset has no FixedSizeList column vector".into(),
        )),
    }
}

/// The keys a bitmap allows (bit i of byte i/8, least significant first).
fn allowed_keys(bitmap: &[u8], bits: u64) -> RowAddrTreeMap {
    let bits = usize::try_from(bits)
        .unwrap_or(usize::MAX)
        .min(bitmap.len() * 8);
    RowAddrTreeMap::from_iter(
        (0..bits)
            .filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
            .map(|i| i as u64),
    )
}

fn metric_of(name: &str) -> Result<DistanceType, DatasetError> {
    match name {
        "l2" => Ok(DistanceType::L2),
        "dot" => Ok(DistanceType::Dot),
        other => Err(DatasetError::Invalid(format!(
            "metric: {other:?} is not l2 or dot"
        ))),
    }
}

/// The Lance index type and parameters `build` asks for, checked against `dimension`.
fn vector_params(
    build: &LanceIndexBuild,
    dimension: usize,
) -> Result<(IndexType, VectorIndexParams), DatasetError> {
    let metric = metric_of(&build.metric)?;
    let mut ivf = IvfBuildParams::new(build.partitions.max(1) as usize);
    if build.max_iterations > 0 {
        ivf.max_iters = build.max_iterations as usize;
    }
    if build.sample_rate > 0 {
        ivf.sample_rate = build.sample_rate as usize;
    }
    match build.index_type.to_ascii_uppercase().as_str() {
        "IVF_PQ" | "" => {
            let sub_vectors = build.sub_vectors as usize;
            if sub_vectors == 0 || dimension % sub_vectors != 0 {
                return Err(DatasetError::Invalid(format!(
                    "sub_vectors: {sub_vectors} does not divide the dimension {dimension}"
                )));
            }
            let mut pq = PQBuildParams {
                num_sub_vectors: sub_vectors,
                num_bits: if build.bits == 0 {
                    8
                } else {
                    build.bits as usize
                },
                ..Default::default()
            };
            if build.max_iterations > 0 {
                pq.max_iters = build.max_iterations as usize;
            }
            if build.sample_rate > 0 {
                pq.sample_rate = build.sample_rate as usize;
            }
            Ok((
                IndexType::IvfPq,
                VectorIndexParams::with_ivf_pq_params(metric, ivf, pq),
            ))
        }
        "IVF_HNSW_SQ" => {
            let mut hnsw = HnswBuildParams::default();
            if build.hnsw_m > 0 {
                hnsw.m = build.hnsw_m as usize;
            }
            if build.hnsw_ef_construction > 0 {
                hnsw.ef_construction = build.hnsw_ef_construction as usize;
            }
            let mut sq = SQBuildParams::default();
            if build.sample_rate > 0 {
                sq.sample_rate = build.sample_rate as usize;
            }
            Ok((
                IndexType::IvfHnswSq,
                VectorIndexParams::with_ivf_hnsw_sq_params(metric, ivf, hnsw, sq),
            ))
        }
        "IVF_FLAT" => Ok((
            IndexType::IvfFlat,
            VectorIndexParams::with_ivf_flat_params(metric, ivf),
        )),
        other => Err(DatasetError::Invalid(format!(
            "index_type: {other:?} is not IVF_PQ, IVF_HNSW_SQ or IVF_FLAT"
        ))),
    }
}

async fn has_index(dataset: &Dataset, name: &str) -> Result<bool, DatasetError> {
    let indices = dataset
        .load_indices()
        .await
        .map_err(failed("reading the indexes"))?;
    Ok(indices.iter().any(|index| index.name == name))
}

/// Rows, fragments, index coverage and bytes of `dataset`.
async fn stats_of(dataset: &Dataset) -> Result<LanceStats, DatasetError> {
    let rows = dataset
        .count_rows(None)
        .await
        .map_err(failed("counting rows"))? as u64;
    let (mut indexed_rows, mut unindexed_rows, mut index_type) = (0, rows, String::new());
    if has_index(dataset, VECTOR_INDEX).await? {
        let statistics = dataset
            .index_statistics(VECTOR_INDEX)
            .await
            .map_err(failed("reading the index statistics"))?;
        let value: serde_json::Value = serde_json::from_str(&statistics)
            .map_err(|e| DatasetError::Failed(format!("index statistics: {e}")))?;
        indexed_rows = value["num_indexed_rows"].as_u64().unwrap_or(0);
        unindexed_rows = value["num_unindexed_rows"].as_u64().unwrap_or(0);
        index_type = value["index_type"]
            .as_str()
            .map(index_type_name)
            .unwrap_or_default();
    }
    let store = dataset
        .object_store(None)
        .await
        .map_err(failed("opening the store"))?;
    let base = dataset.branch_location().path;
    let bytes = store
        .read_dir_all(&base, None)
        .try_fold(0u64, |sum, meta| async move { Ok(sum + meta.size) })
        .await
        .unwrap_or(0);
    Ok(LanceStats {
        rows,
        fragments: dataset.count_fragments() as u64,
        indexed_rows,
        unindexed_rows,
        bytes,
        version: dataset.version().version,
        index_type,
        dimension: dimension_of(dataset).unwrap_or(0) as u32,
        seconds: 0.0,
    })
}

/// Lance's name of an index type ("IVF_PQ", "IvfPq", …) as this product writes it.
fn index_type_name(lance: &str) -> String {
    let squashed: String = lance
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    match squashed.as_str() {
        "IVFPQ" => "IVF_PQ",
        "IVFHNSWSQ" => "IVF_HNSW_SQ",
        "IVFFLAT" => "IVF_FLAT",
        _ => lance,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_become_row_masks() {
        let allowed = allowed_keys(&[0b0000_0101, 0b1000_0000], 16);
        let keys: Vec<u64> = allowed
            .row_addrs()
            .map(|r| r.map(u64::from).collect())
            .unwrap_or_default();
        assert_eq!(keys, vec![0, 2, 15]);
        // Bits past `bits` are ignored.
        let three = allowed_keys(&[0xff], 3);
        assert_eq!(three.row_addrs().map(Iterator::count), Some(3));
    }

    #[test]
    fn index_types_are_named_as_the_product_writes_them() {
        assert_eq!(index_type_name("IVF_PQ"), "IVF_PQ");
        assert_eq!(index_type_name("IvfHnswSq"), "IVF_HNSW_SQ");
        assert_eq!(index_type_name("IVF_FLAT"), "IVF_FLAT");
    }

    #[test]
    fn parameters_are_checked() {
        let build = |index_type: &str, sub_vectors: u32| LanceIndexBuild {
            index_type: index_type.into(),
            metric: "l2".into(),
            partitions: 4,
            sub_vectors,
            ..Default::default()
        };
        assert!(vector_params(&build("IVF_PQ", 3), 8).is_err());
        assert!(vector_params(&build("IVF_PQ", 4), 8).is_ok());
        assert!(vector_params(&build("IVF_HNSW_SQ", 0), 8).is_ok());
        assert!(vector_params(&build("DISKANN", 0), 8).is_err());
        let wrong_metric = LanceIndexBuild {
            metric: "hamming".into(),
            ..build("IVF_FLAT", 0)
        };
        assert!(vector_params(&wrong_metric, 8).is_err());
    }
}
