//! Indexes over tables: building (a job), loading, searching, and the SQL function.
//!
//! An index embeds a table's text column with the built-in model, stores the vectors
//! as a Delta table (`id BIGINT`, `vector FixedSizeList<Float32, d>`, with model,
//! dimension and metric in the field metadata) under `indexes/<name>-<id>/vectors/`
//! of its home bucket, builds the in-process index and records itself in the catalog.
//! A server loads an index on its first search after a start: it reads the vectors
//! back and rebuilds the in-memory index (the graph itself is not persisted yet).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use lakehouse_flight_ext::v1::{VectorHit, VectorIndexInfo};
use tokio::sync::OnceCell;

use super::embed::{BUILTIN_MODEL, EmbedError, Embedder, MiniLm};
use super::index::{FlatIndex, HnswIndex, HnswParams, Metric, SearchParams, VectorIndex};
use crate::catalog::{IndexEntry, TableEntry};
use crate::query::{QueryEngine, SessionDefaults};

/// Texts embedded per call to the model (progress is reported after each).
const EMBED_BATCH: usize = 256;

/// Largest `k` of a search.
pub const MAX_K: usize = 10_000;

/// Largest HNSW `ef` of a search (an absurd one would allocate without bound).
pub const MAX_EF: usize = 100_000;

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
        Self::Invalid(error.to_string())
    }
}

fn internal(error: impl std::fmt::Display) -> VectorError {
    VectorError::Internal(error.to_string())
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
    /// Home bucket.
    pub bucket: String,
    /// Replace an existing index of that name.
    pub replace: bool,
}

/// An index in memory, with what the catalog says of it.
struct Loaded {
    entry: IndexEntry,
    index: Box<dyn VectorIndex>,
}

/// The server's vector indexes.
pub struct VectorIndexes {
    engine: Arc<QueryEngine>,
    models_dir: PathBuf,
    builtin: OnceCell<Arc<MiniLm>>,
    loaded: RwLock<HashMap<String, Arc<Loaded>>>,
    /// Serialises loads so two first searches don't both rebuild.
    loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for VectorIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndexes")
            .field("models_dir", &self.models_dir)
            .finish_non_exhaustive()
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

impl VectorIndexes {
    /// Indexes over `engine`'s catalog; the built-in model is loaded from
    /// `models_dir` on first use.
    pub fn new(engine: Arc<QueryEngine>, models_dir: PathBuf) -> Self {
        Self {
            engine,
            models_dir,
            builtin: OnceCell::new(),
            loaded: RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
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

    /// Builds an index (the body of the create job).
    pub async fn create(
        &self,
        request: CreateIndex,
        job: &crate::jobs::JobContext,
    ) -> Result<VectorIndexInfo, VectorError> {
        let started = Instant::now();
        let catalog = self.engine.catalog();
        job.phase("loading model");
        let model = self.builtin().await?;
        let (_, source_version) = catalog
            .table_state(&request.table)
            .await
            .map_err(internal)?;
        job.phase("embedding");
        let ctx = self.engine.session(&SessionDefaults::default());
        let sql = format!(
            "SELECT CAST({} AS BIGINT) AS id, CAST({} AS VARCHAR) AS text FROM {} WHERE {} IS NOT NULL AND {} IS NOT NULL AND {} <> ''",
            quoted(&request.id_column),
            quoted(&request.text_column),
            quoted_table(&request.table),
            quoted(&request.id_column),
            quoted(&request.text_column),
            quoted(&request.text_column),
        );
        let mut rows = ctx
            .sql(&sql)
            .await
            .map_err(internal)?
            .execute_stream()
            .await
            .map_err(internal)?;
        let mut ids: Vec<i64> = Vec::new();
        let mut vectors: Vec<Vec<f32>> = Vec::new();
        let mut seen = HashSet::new();
        let mut embed_seconds = 0.0;
        let mut pending_ids: Vec<i64> = Vec::new();
        let mut pending: Vec<String> = Vec::new();
        loop {
            let batch = rows.try_next().await.map_err(internal)?;
            let done = batch.is_none();
            if let Some(batch) = batch {
                let id = batch.column(0).as_primitive::<Int64Type>();
                let text =
                    arrow::compute::cast(batch.column(1), &DataType::Utf8).map_err(internal)?;
                let text = text.as_string::<i32>();
                for i in 0..batch.num_rows() {
                    let id = id.value(i);
                    if !seen.insert(id) {
                        return Err(VectorError::Invalid(format!(
                            "id_column: {:?} holds {id} twice; index ids must be unique",
                            request.id_column
                        )));
                    }
                    pending_ids.push(id);
                    pending.push(text.value(i).to_string());
                }
            }
            while pending.len() >= EMBED_BATCH || (done && !pending.is_empty()) {
                if job.cancelled().is_cancelled() {
                    return Err(VectorError::Cancelled);
                }
                let take = pending.len().min(EMBED_BATCH);
                let texts: Vec<String> = pending.drain(..take).collect();
                let t = Instant::now();
                let embedded = model.embed(&texts).await?;
                embed_seconds += t.elapsed().as_secs_f64();
                ids.extend(pending_ids.drain(..take));
                vectors.extend(embedded);
                let (count, bytes) = (
                    ids.len() as u64,
                    texts.iter().map(|t| t.len() as u64).sum::<u64>(),
                );
                job.progress(|p| {
                    p.rows = count;
                    p.bytes += bytes;
                });
            }
            if done {
                break;
            }
        }
        if ids.is_empty() {
            return Err(VectorError::Invalid(format!(
                "text_column: {} has no non-empty text to index",
                request.text_column
            )));
        }
        let dimension = model.dimension();
        let batch = vectors_batch(&ids, &vectors, dimension, model.model(), request.metric)?;
        let count = ids.len();
        job.phase("indexing");
        let index = build(&request, dimension, items(ids, vectors)).await?;
        job.phase("storing");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let location = format!("indexes/{}-{}/", request.name, &id[..12]);
        let schema = batch.schema();
        let stream =
            RecordBatchStreamAdapter::new(Arc::clone(&schema), futures::stream::iter([Ok(batch)]));
        let vectors_table = TableEntry::unlisted(
            "_index",
            &request.name,
            &request.bucket,
            &format!("{location}vectors/"),
        );
        catalog
            .write_unlisted(&vectors_table, Box::pin(stream), Arc::new(ctx.state()))
            .await
            .map_err(internal)?;
        let parameters = match request.backend.as_str() {
            "hnsw" => serde_json::json!({
                "m": request.hnsw.m,
                "ef_construction": request.hnsw.ef_construction,
                "ef_search": request.hnsw.ef_search,
            }),
            _ => serde_json::json!({}),
        };
        let entry = IndexEntry {
            name: request.name.clone(),
            schema: request.table.schema.clone(),
            table: request.table.name.clone(),
            text_column: request.text_column.clone(),
            id_column: request.id_column.clone(),
            backend: request.backend.clone(),
            metric: request.metric.name().to_string(),
            model: model.model().to_string(),
            dimension: dimension as u32,
            parameters,
            bucket: request.bucket.clone(),
            location,
            source_version,
            vectors: count as u64,
            bytes: index.memory_bytes() as u64,
            build_seconds: started.elapsed().as_secs_f64(),
            embed_seconds,
            built_at: chrono::Utc::now().to_rfc3339(),
        };
        let replaced = catalog.put_index(entry.clone()).await.map_err(internal)?;
        if let Some(old) = replaced {
            catalog.remove_index_files(&old).await;
        }
        let info = info_of(&entry);
        if let Ok(mut loaded) = self.loaded.write() {
            loaded.insert(entry.name.clone(), Arc::new(Loaded { entry, index }));
        }
        Ok(info)
    }

    /// The loaded index `name`, loading it from its vectors on first use.
    async fn get(&self, name: &str) -> Result<Arc<Loaded>, VectorError> {
        let Some(entry) = self.engine.catalog().index(name) else {
            return Err(VectorError::NotFound(format!(
                "vector index {name} does not exist (see system.vector_indexes)"
            )));
        };
        let cached = |this: &Self| {
            this.loaded
                .read()
                .ok()
                .and_then(|l| l.get(name).cloned())
                .filter(|l| l.entry == entry)
        };
        if let Some(loaded) = cached(self) {
            return Ok(loaded);
        }
        let _loading = self.loading.lock().await;
        if let Some(loaded) = cached(self) {
            return Ok(loaded);
        }
        let (ids, vectors) = self.read_vectors(&entry).await?;
        let request = CreateIndex {
            name: entry.name.clone(),
            table: TableEntry::new(&entry.schema, &entry.table, &entry.bucket),
            text_column: entry.text_column.clone(),
            id_column: entry.id_column.clone(),
            backend: entry.backend.clone(),
            metric: Metric::parse(&entry.metric)?,
            hnsw: hnsw_params(&entry.parameters),
            bucket: entry.bucket.clone(),
            replace: false,
        };
        let index = build(&request, entry.dimension as usize, items(ids, vectors)).await?;
        let loaded = Arc::new(Loaded { entry, index });
        if let Ok(mut map) = self.loaded.write() {
            map.insert(name.to_string(), Arc::clone(&loaded));
        }
        Ok(loaded)
    }

    async fn read_vectors(
        &self,
        entry: &IndexEntry,
    ) -> Result<(Vec<i64>, Vec<Vec<f32>>), VectorError> {
        let vectors_table = TableEntry::unlisted(
            "_index",
            &entry.name,
            &entry.bucket,
            &format!("{}vectors/", entry.location),
        );
        let batches = self
            .engine
            .read_unlisted(&vectors_table)
            .await
            .map_err(|e| {
                VectorError::Internal(format!("reading the vectors of index {}: {e}", entry.name))
            })?;
        let mut ids = Vec::new();
        let mut vectors = Vec::new();
        for batch in batches {
            let id = arrow::compute::cast(batch.column(0), &DataType::Int64).map_err(internal)?;
            let id = id.as_primitive::<Int64Type>();
            let list = batch.column(1);
            let values: Vec<Vec<f32>> = match list.data_type() {
                DataType::FixedSizeList(..) => list_values(list.as_fixed_size_list().iter()),
                DataType::List(_) => list_values(list.as_list::<i32>().iter()),
                DataType::LargeList(_) => list_values(list.as_list::<i64>().iter()),
                other => return Err(VectorError::Internal(format!("vectors stored as {other}"))),
            }?;
            ids.extend(id.iter().map(|v| v.unwrap_or_default()));
            vectors.extend(values);
        }
        Ok((ids, vectors))
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

    /// The `k` nearest rows to `query` (a text) or `vector`, restricted to rows matching
    /// the SQL `filter` on the source table.
    pub async fn search(
        &self,
        name: &str,
        query: &str,
        vector: &[f32],
        k: usize,
        ef: usize,
        filter: &str,
    ) -> Result<Vec<VectorHit>, VectorError> {
        if k == 0 || k > MAX_K {
            return Err(VectorError::Invalid(format!(
                "k: {k} is not in 1..={MAX_K}"
            )));
        }
        if ef > MAX_EF {
            return Err(VectorError::Invalid(format!("ef: {ef} is above {MAX_EF}")));
        }
        let loaded = self.get(name).await?;
        let entry = &loaded.entry;
        let query_vector = match (query.trim().is_empty(), vector.is_empty()) {
            (false, true) => {
                if entry.model != BUILTIN_MODEL {
                    return Err(VectorError::Unavailable(format!(
                        "index {name} was built with model {}, which this server does not run",
                        entry.model
                    )));
                }
                let model = self.builtin().await?;
                model
                    .embed(&[query.to_string()])
                    .await?
                    .pop()
                    .ok_or_else(|| internal("the model returned no vector"))?
            }
            (true, false) => vector.to_vec(),
            (true, true) => return Err(VectorError::Invalid("set query or vector".into())),
            (false, false) => {
                return Err(VectorError::Invalid("set query or vector, not both".into()));
            }
        };
        let table = self
            .engine
            .catalog()
            .table(&entry.schema, &entry.table)
            .map_err(|e| VectorError::NotFound(format!("the source table of index {name}: {e}")))?;
        let allowed = if filter.trim().is_empty() {
            None
        } else {
            let sql = format!(
                "SELECT CAST({} AS BIGINT) FROM {} WHERE {filter}",
                quoted(&entry.id_column),
                quoted_table(&table)
            );
            let batches = self
                .collect(&sql)
                .await
                .map_err(|e| VectorError::Invalid(format!("filter: {e}")))?;
            let mut ids = HashSet::new();
            for batch in batches {
                ids.extend(batch.column(0).as_primitive::<Int64Type>().iter().flatten());
            }
            Some(ids)
        };
        let params = SearchParams { ef };
        let index = Arc::clone(&loaded);
        let hits = tokio::task::spawn_blocking(move || {
            let keep = allowed.map(|ids| move |id: u64| ids.contains(&(id as i64)));
            match &keep {
                Some(keep) => index.index.search(&query_vector, k, params, Some(keep)),
                None => index.index.search(&query_vector, k, params, None),
            }
        })
        .await
        .map_err(internal)??;
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let list = hits
            .iter()
            .map(|h| (h.id as i64).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT CAST({} AS BIGINT), CAST({} AS VARCHAR) FROM {} WHERE {} IN ({list})",
            quoted(&entry.id_column),
            quoted(&entry.text_column),
            quoted_table(&table),
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
        Ok(hits
            .into_iter()
            .map(|h| VectorHit {
                id: h.id as i64,
                distance: h.distance,
                text: texts.remove(&(h.id as i64)).unwrap_or_default(),
            })
            .collect())
    }

    async fn collect(&self, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
        let ctx = self.engine.session(&SessionDefaults::default());
        ctx.sql(sql).await?.collect().await
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

/// Builds the in-memory index of `request.backend` over the vectors.
/// Ids paired with their vectors (moved, not copied).
fn items(ids: Vec<i64>, vectors: Vec<Vec<f32>>) -> Vec<(u64, Vec<f32>)> {
    ids.into_iter().map(|id| id as u64).zip(vectors).collect()
}

async fn build(
    request: &CreateIndex,
    dimension: usize,
    items: Vec<(u64, Vec<f32>)>,
) -> Result<Box<dyn VectorIndex>, VectorError> {
    let backend = request.backend.clone();
    let (metric, hnsw) = (request.metric, request.hnsw);
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

/// The vectors as one batch: `id BIGINT`, `vector FixedSizeList<Float32, d>`.
fn vectors_batch(
    ids: &[i64],
    vectors: &[Vec<f32>],
    dimension: usize,
    model: &str,
    metric: Metric,
) -> Result<RecordBatch, VectorError> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let flat: Vec<f32> = vectors.iter().flatten().copied().collect();
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
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("vector", list.data_type().clone(), false).with_metadata(metadata),
    ]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(list)],
    )
    .map_err(internal)
}

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
        dimension: entry.dimension,
        bucket: entry.bucket.clone(),
        location: entry.location.clone(),
        source_version: entry.source_version,
        vectors: entry.vectors,
        bytes: entry.bytes,
        build_seconds: entry.build_seconds,
        embed_seconds: entry.embed_seconds,
        built_at: entry.built_at.clone(),
        parameters: entry.parameters.to_string(),
    }
}
