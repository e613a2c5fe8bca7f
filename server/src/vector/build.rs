//! Building an index (the body of the `lakehouse.vector.index.create` job): checks
//! the request against the catalog, streams the table's `(id, text)` rows, cuts long
//! texts into overlapping chunks within the model's window, embeds them batch by
//! batch (progress after each, cancellable) — or reads a column of precomputed
//! vectors ([`super::precomputed`]) —, builds the backend's structure, stores the
//! vectors and the structure, and records the index in the catalog last.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::SendableRecordBatchStream;
use futures::TryStreamExt;
use lakehouse_flight_ext::v1::VectorIndexInfo;

use super::embed::{BUILTIN, CHUNK_OVERLAP, CHUNK_TOKENS, Embedder};
use super::error::{VectorError, internal};
use super::faiss::FaissIndex;
use super::hits::{quoted, quoted_table};
use super::index::{Backend, FlatIndex, HnswIndex, Metric, VectorIndex};
use super::lance::{self, LanceIndex};
use super::service::{VectorIndexes, info_of};
use super::state::{Embedded, Loaded, State, text_hash};
use super::store::{keyed, vectors_batch, vectors_table};
use crate::catalog::{IndexBuild, IndexEntry, TableEntry, WriteMode};
use crate::query::SessionDefaults;

/// Chunks embedded per call to the model (progress is reported after each).
pub(super) const EMBED_BATCH: usize = 256;

/// A validated `lakehouse.vector.index.create`.
#[derive(Debug, Clone)]
pub(crate) struct CreateIndex {
    /// Index name.
    pub name: String,
    /// Source table.
    pub table: TableEntry,
    /// Column embedded; empty when `vector_column` is set.
    pub text_column: String,
    /// Column of precomputed vectors indexed as they are; empty for a text index.
    pub vector_column: String,
    /// Integer id column.
    pub id_column: String,
    /// The backend and its parameters (checked).
    pub backend: Backend,
    /// Metric.
    pub metric: Metric,
    /// Chunking of long texts.
    pub chunking: Chunking,
    /// Home bucket.
    pub bucket: String,
    /// The embedder: [`BUILTIN`] or a configured `[embedders.NAME]`; "" for an
    /// index over precomputed vectors searched by vector only.
    pub embedder: String,
    /// The model profile it belongs to ("" for none).
    pub profile: String,
}

/// How long texts are cut before embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunking {
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
    pub(crate) fn new(tokens: u32, overlap: Option<u32>) -> Result<Self, VectorError> {
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

    /// The chunking an index was built with (the defaults where it records none).
    pub(super) fn of(build: &IndexBuild) -> Self {
        let defaults = Self::default();
        Self {
            tokens: build.chunk_tokens.unwrap_or(defaults.tokens),
            overlap: build.chunk_overlap.unwrap_or(defaults.overlap),
        }
    }
}

impl VectorIndexes {
    /// Builds the `backend` structure of index `name` over `vectors` (keys 0, 1,
    /// …, made from `documents`, an `(id, chunk)` each): in process, in the Faiss
    /// worker, or as a Lance dataset at `location` in `bucket` written by the Lance
    /// worker (which keeps the documents' ids).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn build_index(
        &self,
        name: &str,
        backend: &Backend,
        metric: Metric,
        dimension: usize,
        vectors: Vec<Vec<f32>>,
        documents: Vec<(i64, i32)>,
        bucket: &str,
        location: &str,
    ) -> Result<Box<dyn VectorIndex>, VectorError> {
        match backend {
            Backend::Lance(params) => {
                let worker = self.lance_worker()?;
                let bucket = self
                    .engine
                    .catalog()
                    .buckets()
                    .get(bucket)
                    .map_err(internal)?;
                let dataset = lance::dataset_of(&bucket, location)?;
                let index = LanceIndex::build(
                    worker, dataset, metric, params, dimension, &vectors, documents,
                )
                .await?;
                Ok(Box::new(index))
            }
            Backend::Faiss(params) => {
                let (worker, dir) = self.faiss_worker()?;
                let index =
                    FaissIndex::build(worker, &dir, name, metric, params, dimension, &vectors)
                        .await?;
                Ok(Box::new(index))
            }
            Backend::Flat | Backend::Hnsw(_) => {
                in_process(backend.clone(), metric, dimension, keyed(0, vectors)).await
            }
        }
    }

    /// Checks a create request against the catalog: table, columns (`text_column`
    /// or `vector_column`, one of them), name, bucket.
    pub(crate) async fn validate(
        &self,
        name: &str,
        table: &str,
        text_column: &str,
        vector_column: &str,
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
        let (schema, table) = crate::catalog::split_table(table)
            .map_err(|e| VectorError::Invalid(format!("table: {e}")))?;
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
        match (
            text_column.trim().is_empty(),
            vector_column.trim().is_empty(),
        ) {
            (true, true) => {
                return Err(VectorError::Invalid(
                    "set text_column (text to embed) or vector_column (precomputed vectors)".into(),
                ));
            }
            (false, false) => {
                return Err(VectorError::Invalid(
                    "set text_column or vector_column, not both".into(),
                ));
            }
            (false, true) => {
                let text_type = column(text_column, "text_column")?;
                if !matches!(
                    text_type,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return Err(VectorError::Invalid(format!(
                        "text_column: {text_column:?} is {text_type}, not text"
                    )));
                }
            }
            (true, false) => {
                let vector_type = column(vector_column, "vector_column")?;
                super::precomputed::vector_width(vector_column, &vector_type)?;
            }
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
        self.stream_sql(&sql).await
    }

    /// The rows of an internal `sql` (the server's own statement over a source
    /// table), streamed.
    pub(super) async fn stream_sql(
        &self,
        sql: &str,
    ) -> Result<SendableRecordBatchStream, VectorError> {
        let ctx = self.engine.session(&SessionDefaults::default());
        ctx.sql(sql)
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

    /// Every row's text embedded, chunk by chunk (the first phase of a text
    /// index's build), with the model.
    async fn embed_table(
        &self,
        request: &CreateIndex,
        job: &crate::jobs::JobContext,
    ) -> Result<(Embedded, Option<Arc<dyn Embedder>>), VectorError> {
        job.phase("loading model");
        let model = self.embedder(&request.embedder).await?;
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
        Ok((all, Some(model)))
    }

    /// Every row's precomputed vector, checked (the first phase of a build over
    /// `vector_column`), with the embedder named for text queries, if any, which
    /// must make vectors of their width.
    async fn read_table_vectors(
        &self,
        request: &CreateIndex,
        job: &crate::jobs::JobContext,
    ) -> Result<(Embedded, Option<Arc<dyn Embedder>>), VectorError> {
        job.phase("reading vectors");
        let stream = self
            .vector_stream(&request.table, &request.id_column, &request.vector_column)
            .await?;
        let mut all = Embedded::default();
        let mut width = None;
        self.read_vector_rows(
            stream,
            &request.vector_column,
            &mut width,
            &mut |_, _| true,
            true,
            |batch, bytes| {
                if job.cancelled().is_cancelled() {
                    return Err(VectorError::Cancelled);
                }
                all.extend(batch);
                let rows = all.rows.len() as u64;
                job.progress(|p| {
                    p.rows = rows;
                    p.bytes += bytes;
                });
                Ok(())
            },
        )
        .await?;
        let Some(width) = width.filter(|_| !all.rows.is_empty()) else {
            return Err(VectorError::Invalid(format!(
                "vector_column: {} has no rows to index",
                request.vector_column
            )));
        };
        if request.embedder.is_empty() {
            return Ok((all, None));
        }
        job.phase("loading model");
        let model = self.embedder(&request.embedder).await?;
        if model.dimension() != width {
            return Err(VectorError::Invalid(format!(
                "embedder: {} makes {}-dimensional vectors, the column {} holds {width}",
                request.embedder,
                model.dimension(),
                request.vector_column
            )));
        }
        Ok((all, Some(model)))
    }

    /// Builds an index (the body of the create job).
    pub(crate) async fn create(
        &self,
        request: CreateIndex,
        job: &crate::jobs::JobContext,
    ) -> Result<VectorIndexInfo, VectorError> {
        let started = Instant::now();
        let catalog = self.engine.catalog();
        let (_, source_version) = catalog
            .table_state(&request.table)
            .await
            .map_err(internal)?;
        let (mut all, model) = if request.vector_column.is_empty() {
            self.embed_table(&request, job).await?
        } else {
            self.read_table_vectors(&request, job).await?
        };
        let dimension = all.vectors.first().map_or(0, Vec::len);
        let model_name = model.as_ref().map_or("", |m| m.model()).to_string();
        let batch = vectors_batch(&all, dimension, &model_name, request.metric, true)?;
        let (count, rows) = (all.rows.len(), all.distinct_rows());
        job.phase("indexing");
        // Faiss's and Lance's defaults depend on the data: resolved now, recorded as used.
        let backend = match &request.backend {
            Backend::Faiss(params) => Backend::Faiss(params.resolved(all.vectors.len())),
            Backend::Lance(params) => {
                Backend::Lance(params.resolved(all.vectors.len(), dimension)?)
            }
            other => other.clone(),
        };
        let texts = all.texts();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let location = format!("indexes/{}-{}/", request.name, &id[..12]);
        let index = self
            .build_index(
                &request.name,
                &backend,
                request.metric,
                dimension,
                std::mem::take(&mut all.vectors),
                all.documents(),
                &request.bucket,
                &location,
            )
            .await?;
        job.phase("storing");
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
        let state = Arc::new(State::new(index, all.rows, texts));
        let entry = IndexEntry {
            name: request.name.clone(),
            schema: request.table.schema.clone(),
            table: request.table.name.clone(),
            text_column: request.text_column.clone(),
            vector_column: request.vector_column.clone(),
            id_column: request.id_column.clone(),
            build: IndexBuild {
                backend,
                chunk_tokens: Some(request.chunking.tokens),
                chunk_overlap: Some(request.chunking.overlap),
            },
            metric: request.metric.name().to_string(),
            model: model_name,
            embedder: if request.embedder == BUILTIN {
                String::new()
            } else {
                request.embedder.clone()
            },
            dimension: dimension as u32,
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
}

/// Builds an in-process index (flat or HNSW) over the vectors, off the runtime.
async fn in_process(
    backend: Backend,
    metric: Metric,
    dimension: usize,
    items: Vec<(u64, Vec<f32>)>,
) -> Result<Box<dyn VectorIndex>, VectorError> {
    tokio::task::spawn_blocking(move || -> Result<Box<dyn VectorIndex>, VectorError> {
        let index: Box<dyn VectorIndex> = match backend {
            Backend::Flat => Box::new(FlatIndex::new(dimension, metric)),
            Backend::Hnsw(params) => {
                Box::new(HnswIndex::new(dimension, metric, params, items.len())?)
            }
            other => {
                return Err(VectorError::Internal(format!(
                    "a {} index is not built in this process",
                    other.name()
                )));
            }
        };
        index.add(&items)?;
        Ok(index)
    })
    .await
    .map_err(internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_is_checked_against_the_model_window() {
        assert_eq!(Chunking::new(0, None).unwrap(), Chunking::default());
        assert_eq!(Chunking::new(10, None).unwrap().overlap, 5);
        assert_eq!(Chunking::new(64, Some(0)).unwrap().overlap, 0);
        assert!(Chunking::new(255, None).is_err());
        assert!(Chunking::new(64, Some(64)).is_err());
        let build = IndexBuild {
            backend: Backend::Flat,
            chunk_tokens: Some(100),
            chunk_overlap: Some(10),
        };
        assert_eq!(
            Chunking::of(&build),
            Chunking {
                tokens: 100,
                overlap: 10
            }
        );
    }
}
