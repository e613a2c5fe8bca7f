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
use lance::io::{ObjectStoreParams, StorageOptionsAccessor};
use lance_index::IndexType;
use lance_index::optimize::OptimizeOptions;
use lance_index::scalar::{BuiltinIndexType, ScalarIndexParams};

use crate::params::{index_type_name, metric_of, vector_params};
use crate::v1::{LanceDataset, LanceHits, LanceIndexBuild, LanceSearch, LanceStats};

/// The vector column, the key column, the document id column and the indexes' names.
pub(crate) const VECTOR: &str = "vector";
pub(crate) const KEY: &str = "key";
pub(crate) const ID: &str = "id";
const VECTOR_INDEX: &str = "vector_idx";
const ID_INDEX: &str = "id_idx";
/// Lance's row id column: with stable row ids, a row's key.
const ROW_ID: &str = "_rowid";
/// Most ids one take may ask for (they become one `id IN (…)` filter).
pub(crate) const MAX_TAKE_IDS: usize = 10_000;

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
            let mut dataset = Dataset::write(reader, uri, Some(params))
                .await
                .map_err(failed(uri))?;
            ensure_id_index(&mut dataset).await?;
            dataset
        };
        // The write and its commit; the statistics below are not part of it.
        let seconds = started.elapsed().as_secs_f64();
        self.keep(&dataset, uri);
        let mut stats = stats_of(&dataset).await?;
        stats.seconds = seconds;
        tracing::info!(%uri, rows, append, total = stats.rows, fragments = stats.fragments,
            seconds, "written");
        Ok(stats)
    }

    /// Builds the vector index (replacing one), and the id's BTREE if it is missing.
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
        ensure_id_index(&mut dataset).await?;
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
        // Keys are the stable row ids: no data column is read back for the hits.
        scanner
            .project::<&str>(&[])
            .map_err(failed("search"))?
            .with_row_id();
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
            .column_by_name(ROW_ID)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| DatasetError::Failed("the search returned no row ids".into()))?;
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
        let columns = columns_of(&dataset, columns)?;
        let existing = dataset.manifest().next_row_id;
        let present: Vec<u64> = keys.iter().copied().filter(|k| *k < existing).collect();
        let projection = dataset.schema().project(&columns).map_err(failed("take"))?;
        dataset
            .take_rows(&present, projection)
            .await
            .map_err(failed("take"))
    }

    /// The rows whose `id` is one of `ids` (through the BTREE index on `id`), with
    /// `columns` (all when empty), in the dataset's order.
    pub(crate) async fn take_ids(
        &self,
        spec: &LanceDataset,
        ids: &[i64],
        columns: &[String],
    ) -> Result<RecordBatch, DatasetError> {
        if ids.len() > MAX_TAKE_IDS {
            return Err(DatasetError::Invalid(format!(
                "ids: {} asked, at most {MAX_TAKE_IDS} per take",
                ids.len()
            )));
        }
        let dataset = self.open(spec).await?;
        if dataset.schema().field(ID).is_none() {
            return Err(DatasetError::Invalid(
                "the dataset has no id column (written before takes by id existed): rebuild the index".into(),
            ));
        }
        let columns = columns_of(&dataset, columns)?;
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let listed = unique
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut scanner = dataset.scan();
        scanner.project(&columns).map_err(failed("take"))?;
        scanner
            .filter(&format!("{ID} IN ({listed})"))
            .map_err(failed("take"))?;
        scanner.try_into_batch().await.map_err(failed("take"))
    }
}

/// `asked` checked against the dataset's columns (all of them when empty).
fn columns_of(dataset: &Dataset, asked: &[String]) -> Result<Vec<String>, DatasetError> {
    let schema = dataset.schema();
    if asked.is_empty() {
        return Ok(schema.fields.iter().map(|f| f.name.clone()).collect());
    }
    for column in asked {
        if schema.field(column).is_none() {
            return Err(DatasetError::Invalid(format!(
                "the index has no column {column:?}"
            )));
        }
    }
    Ok(asked.to_vec())
}

/// The BTREE index on `id`, for a dataset that has the column and not yet the index.
async fn ensure_id_index(dataset: &mut Dataset) -> Result<(), DatasetError> {
    if dataset.schema().field(ID).is_none() || has_index(dataset, ID_INDEX).await? {
        return Ok(());
    }
    dataset
        .create_index(
            &[ID],
            IndexType::BTree,
            Some(ID_INDEX.into()),
            &ScalarIndexParams::for_builtin(BuiltinIndexType::BTree),
            true,
        )
        .await
        .map_err(failed("building the id index"))?;
    Ok(())
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
        columns: dataset
            .schema()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int64Type;
    use arrow_array::{ArrayRef, FixedSizeListArray, Int32Array, Int64Array, UInt64Array};
    use arrow_schema::{Field, Schema};

    /// Rows with keys from `first_key`, the given document ids, chunk 0 and 2-d vectors.
    fn documents(first_key: u64, ids: &[i64]) -> RecordBatch {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let schema = Arc::new(Schema::new(vec![
            Field::new(KEY, DataType::UInt64, false),
            Field::new(ID, DataType::Int64, false),
            Field::new("chunk", DataType::Int32, false),
            Field::new(VECTOR, DataType::FixedSizeList(Arc::clone(&item), 2), false),
        ]));
        let keys: UInt64Array = (0..ids.len() as u64).map(|i| first_key + i).collect();
        let values: Float32Array = ids.iter().flat_map(|id| [*id as f32, 1.0]).collect();
        let vectors = FixedSizeListArray::try_new(item, 2, Arc::new(values), None).unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(keys),
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Int32Array::from(vec![0; ids.len()])),
            Arc::new(vectors),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn ids_of(batch: &RecordBatch) -> Vec<i64> {
        let mut ids: Vec<i64> = batch
            .column_by_name(ID)
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        ids.sort_unstable();
        ids
    }

    #[tokio::test]
    async fn searches_answer_keys_nearest_first() {
        let dir = std::env::temp_dir().join(format!("lance-search-{}", std::process::id()));
        let spec = LanceDataset {
            uri: dir.display().to_string(),
            ..Default::default()
        };
        let datasets = Datasets::default();
        // Vectors (id, 1): key 2 (id 30) is nearest to (29, 1), then key 1 (id 20).
        datasets
            .write(&spec, false, vec![documents(0, &[10, 20, 30])])
            .await
            .unwrap();
        datasets
            .write(&spec, true, vec![documents(3, &[40])])
            .await
            .unwrap();
        let search = LanceSearch {
            dataset: Some(spec.clone()),
            query: vec![29.0, 1.0],
            k: 3,
            metric: "l2".into(),
            ..Default::default()
        };
        let hits = datasets.search(&search).await.unwrap();
        assert_eq!(hits.keys, vec![2, 1, 3]);
        assert_eq!(hits.distances[0], 1.0);
        // A pre-filter of allowed keys (bit i: key i): keys 0 and 3.
        let filtered = LanceSearch {
            allowed: vec![0b0000_1001],
            allowed_bits: 4,
            ..search
        };
        assert_eq!(datasets.search(&filtered).await.unwrap().keys, vec![3, 0]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn rows_are_taken_by_id_in_indexed_and_appended_fragments() {
        let dir = std::env::temp_dir().join(format!("lance-take-{}", std::process::id()));
        let spec = LanceDataset {
            uri: dir.display().to_string(),
            ..Default::default()
        };
        let datasets = Datasets::default();
        datasets
            .write(&spec, false, vec![documents(0, &[7, 7, 9, 11])])
            .await
            .unwrap();
        let dataset = datasets.open(&spec).await.unwrap();
        assert!(has_index(&dataset, ID_INDEX).await.unwrap());
        let taken = datasets.take_ids(&spec, &[11, 7, 5, 7], &[]).await.unwrap();
        assert_eq!(ids_of(&taken), vec![7, 7, 11]);
        // Appended rows are in a fragment the BTREE does not cover yet.
        datasets
            .write(&spec, true, vec![documents(4, &[5])])
            .await
            .unwrap();
        let taken = datasets
            .take_ids(&spec, &[5, 9], &[ID.to_string()])
            .await
            .unwrap();
        assert_eq!(ids_of(&taken), vec![5, 9]);
        assert_eq!(taken.num_columns(), 1);
        let unknown = datasets.take_ids(&spec, &[5], &["text".to_string()]).await;
        assert!(matches!(unknown, Err(DatasetError::Invalid(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

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
}
