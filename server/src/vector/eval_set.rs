//! Eval sets: queries with their exact nearest rows, computed once from an index.
//!
//! The queries are texts (given, or read by SQL through the guarded planning path)
//! embedded with the index's model, or rows of the index itself (`sample_rows`), whose
//! stored vectors are the queries. A flat (exact) scan of the index's stored vectors
//! gives each query's `depth` nearest rows — the truth, pinned to the index build, its
//! source table version and vector count, which the set records. It is stored as an
//! unlisted Delta table (`query`, `vector`, `truth`) under `evalsets/<name>-<id>/` of
//! any bucket.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, FixedSizeListArray, Float32Array, Int64Array, ListArray, RecordBatch,
    StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::TryStreamExt;
use lakehouse_flight_ext::v1::{VectorEvalSetCreateRequest, VectorEvalSetInfo};

use super::error::{VectorError, internal};
use super::index::{FlatIndex, Metric, SearchParams, VectorIndex};
use super::service::VectorIndexes;
use super::state::{Embedded, State};
use super::store::vectors_of;
use crate::catalog::{EvalSetEntry, TableEntry, WriteMode};
use crate::query::SessionDefaults;

/// Most queries in one set.
pub(super) const MAX_QUERIES: usize = 100_000;

/// Most truth rows kept per query.
pub(super) const MAX_DEPTH: usize = 1_000;

/// A validated `lakehouse.vector.eval_set.create`.
#[derive(Debug, Clone)]
pub(crate) struct CreateEvalSet {
    /// Set name.
    pub name: String,
    /// The index.
    pub index: String,
    /// Query texts (given or read by SQL); empty with `sample_rows`.
    pub queries: Vec<String>,
    /// Rows of the index whose stored vectors are the queries (0: texts instead).
    pub sample_rows: usize,
    /// Truth rows per query.
    pub depth: usize,
    /// Home bucket.
    pub bucket: String,
}

/// The protocol's view of an eval set entry.
pub(super) fn eval_set_info(entry: &EvalSetEntry) -> VectorEvalSetInfo {
    VectorEvalSetInfo {
        name: entry.name.clone(),
        index: entry.index.clone(),
        bucket: entry.bucket.clone(),
        location: entry.location.clone(),
        queries: entry.queries,
        depth: entry.depth,
        index_location: entry.index_location.clone(),
        source_version: entry.source_version,
        vectors: entry.vectors,
        created_at: entry.created_at.clone(),
    }
}

/// `count` rows of an index spread evenly over its stored vectors (first chunks
/// only): their vectors as queries, "row <id>" as their texts.
fn sampled_queries(stored: &Embedded, count: usize) -> (Vec<String>, Vec<Vec<f32>>) {
    let first: Vec<usize> = (0..stored.rows.len())
        .filter(|&i| stored.chunks.get(i).is_none_or(|c| *c == 0))
        .collect();
    let step = (first.len() as f64 / count.max(1) as f64).max(1.0);
    (0..count.min(first.len()))
        .map(|n| first[((n as f64 * step) as usize).min(first.len() - 1)])
        .map(|i| (format!("row {}", stored.rows[i]), stored.vectors[i].clone()))
        .unzip()
}

fn set_table(entry_name: &str, bucket: &str, location: &str) -> TableEntry {
    TableEntry::unlisted(
        "_evalset",
        entry_name,
        bucket,
        &format!("{location}queries/"),
    )
}

impl VectorIndexes {
    /// Checks a create request and gathers its query texts.
    pub(crate) async fn validate_eval_set(
        &self,
        request: &VectorEvalSetCreateRequest,
    ) -> Result<CreateEvalSet, VectorError> {
        crate::catalog::validate_name(&request.name)
            .map_err(|e| VectorError::Invalid(format!("name: {e}")))?;
        let catalog = self.engine().catalog();
        if !request.replace && catalog.eval_set(&request.name).is_some() {
            return Err(VectorError::Exists(format!(
                "eval set {} already exists; set replace to compute it again",
                request.name
            )));
        }
        let Some(index) = catalog.index(&request.index) else {
            return Err(VectorError::NotFound(format!(
                "vector index {} does not exist (see system.vector_indexes)",
                request.index
            )));
        };
        let sample_rows = request.sample_rows as usize;
        if sample_rows == 0 {
            let embedder = super::service::embedder_name(&index);
            if embedder.is_empty() {
                return Err(VectorError::Invalid(format!(
                    "index {} holds precomputed vectors and names no embedder to embed query \
                     texts with: make its eval set from sample_rows",
                    index.name
                )));
            }
            self.check_embedder(embedder)
                .map_err(|e| VectorError::Unavailable(format!("index {}: {e}", index.name)))?;
        }
        let depth = if request.depth == 0 {
            100
        } else {
            request.depth as usize
        };
        if depth > MAX_DEPTH {
            return Err(VectorError::Invalid(format!(
                "depth: {depth} is above {MAX_DEPTH}"
            )));
        }
        let mut queries = request.queries.clone();
        let given = [
            !queries.is_empty(),
            !request.queries_sql.trim().is_empty(),
            sample_rows > 0,
        ];
        match given.iter().filter(|g| **g).count() {
            0 => {
                return Err(VectorError::Invalid(
                    "set queries (texts), queries_sql (a SELECT whose first column is the text) \
                     or sample_rows (rows of the index as queries)"
                        .into(),
                ));
            }
            1 => {}
            _ => {
                return Err(VectorError::Invalid(
                    "set one of queries, queries_sql and sample_rows".into(),
                ));
            }
        }
        if given[1] {
            queries = self.query_texts(&request.queries_sql).await?;
        }
        queries.retain(|q| !q.trim().is_empty());
        if sample_rows > MAX_QUERIES {
            return Err(VectorError::Invalid(format!(
                "sample_rows: {sample_rows}; an eval set holds at most {MAX_QUERIES} queries"
            )));
        }
        if queries.is_empty() && sample_rows == 0 {
            return Err(VectorError::Invalid(
                "the eval set has no query text".into(),
            ));
        }
        if queries.len() > MAX_QUERIES {
            return Err(VectorError::Invalid(format!(
                "{} queries; an eval set holds at most {MAX_QUERIES}",
                queries.len()
            )));
        }
        let bucket = if request.bucket.is_empty() {
            crate::storage::PRIMARY.to_string()
        } else {
            request.bucket.clone()
        };
        catalog
            .buckets()
            .get(&bucket)
            .map_err(|e| VectorError::NotFound(e.to_string()))?;
        Ok(CreateEvalSet {
            name: request.name.clone(),
            index: request.index.clone(),
            queries,
            sample_rows,
            depth,
            bucket,
        })
    }

    /// The first column of `sql`'s rows, as text.
    async fn query_texts(&self, sql: &str) -> Result<Vec<String>, VectorError> {
        // Through the engine's guarded planning, as a Flight SQL statement: no
        // COPY ... TO, no writes, no session statements.
        let engine = self.engine();
        let ctx = engine.session(&SessionDefaults::default());
        let plan = engine
            .plan_query(&ctx, sql)
            .await
            .map_err(|e| VectorError::Invalid(format!("queries_sql: {e}")))?;
        let mut stream = engine
            .execute(&ctx, plan)
            .await
            .map_err(|e| VectorError::Invalid(format!("queries_sql: {e}")))?;
        let mut texts = Vec::new();
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(|e| VectorError::Invalid(format!("queries_sql: {e}")))?
        {
            let column = arrow::compute::cast(batch.column(0), &DataType::Utf8)
                .map_err(|e| VectorError::Invalid(format!("queries_sql: first column: {e}")))?;
            texts.extend(
                column
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
            if texts.len() > MAX_QUERIES {
                break;
            }
        }
        Ok(texts)
    }

    /// Computes and stores an eval set (the body of its job).
    pub(crate) async fn create_eval_set(
        &self,
        request: CreateEvalSet,
        job: &crate::jobs::JobContext,
    ) -> Result<VectorEvalSetInfo, VectorError> {
        let catalog = self.engine().catalog();
        let Some(index) = catalog.index(&request.index) else {
            return Err(VectorError::NotFound(format!(
                "vector index {} was dropped",
                request.index
            )));
        };
        // The truth: a flat scan of the stored vectors, a row at its best chunk.
        let stored = self.read_vectors(&index).await?;
        let (texts, vectors) = if request.sample_rows > 0 {
            sampled_queries(&stored, request.sample_rows)
        } else {
            job.phase("embedding queries");
            let model = self.index_embedder(&index).await?;
            let mut vectors = Vec::with_capacity(request.queries.len());
            for batch in request.queries.chunks(256) {
                if job.cancelled().is_cancelled() {
                    return Err(VectorError::Cancelled);
                }
                vectors.extend(model.embed(batch).await?);
                let done = vectors.len() as u64;
                job.progress(|p| p.rows = done);
            }
            (request.queries.clone(), vectors)
        };
        job.phase("exact search");
        let metric = Metric::parse(&index.metric)?;
        let count = stored.rows.len() as u64;
        let depth = request.depth;
        let dimension = index.dimension as usize;
        let queries = vectors.clone();
        let truth = tokio::task::spawn_blocking(move || -> Result<Vec<Vec<i64>>, VectorError> {
            let flat = FlatIndex::new(dimension, metric);
            let items: Vec<(u64, Vec<f32>)> = (0u64..).zip(stored.vectors).collect();
            flat.add(&items)?;
            let state = State::new(Box::new(flat), stored.rows, HashMap::new());
            queries
                .iter()
                .map(|q| {
                    state
                        .nearest(q, depth, SearchParams::default(), None)
                        .map(|hits| hits.into_iter().map(|h| h.0).collect())
                })
                .collect()
        })
        .await
        .map_err(internal)??;
        job.phase("storing");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let location = format!("evalsets/{}-{}/", request.name, &id[..12]);
        let batch = eval_batch(&texts, &vectors, &truth, index.dimension as usize)?;
        self.write_vectors(
            &set_table(&request.name, &request.bucket, &location),
            WriteMode::Create,
            batch,
        )
        .await?;
        let entry = EvalSetEntry {
            name: request.name.clone(),
            index: index.name.clone(),
            bucket: request.bucket.clone(),
            location,
            queries: texts.len() as u32,
            depth: depth as u32,
            index_location: index.location.clone(),
            source_version: index.source_version,
            vectors: count,
            created_at: chrono::Utc::now().to_rfc3339(),
        };
        if let Some(old) = catalog
            .put_eval_set(entry.clone())
            .await
            .map_err(internal)?
        {
            catalog.remove_eval_set_files(&old).await;
        }
        Ok(eval_set_info(&entry))
    }

    /// Query texts, vectors and truth rows of a stored set.
    pub(super) async fn read_eval_set(
        &self,
        set: &EvalSetEntry,
    ) -> Result<(Vec<String>, Vec<Vec<f32>>, Vec<Vec<i64>>), VectorError> {
        let table = set_table(&set.name, &set.bucket, &set.location);
        let batches = self
            .engine()
            .read_unlisted(&table)
            .await
            .map_err(|e| internal(format!("reading eval set {}: {e}", set.name)))?;
        let (mut texts, mut vectors, mut truth) = (Vec::new(), Vec::new(), Vec::new());
        for batch in batches {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| internal(format!("eval set {} lacks {name}", set.name)))
            };
            let query =
                arrow::compute::cast(column("query")?, &DataType::Utf8).map_err(internal)?;
            texts.extend(
                query
                    .as_string::<i32>()
                    .iter()
                    .map(|t| t.unwrap_or_default().to_string()),
            );
            vectors.extend(vectors_of(column("vector")?)?);
            let rows = column("truth")?;
            let rows = rows
                .as_list_opt::<i32>()
                .ok_or_else(|| internal("eval set truth is not a list"))?;
            for row in rows.iter() {
                let ids = row.map_or_else(Vec::new, |r| {
                    r.as_primitive::<Int64Type>().values().to_vec()
                });
                truth.push(ids);
            }
        }
        Ok((texts, vectors, truth))
    }
}

/// `query VARCHAR, vector FixedSizeList<Float32, d>, truth List<Int64>`.
fn eval_batch(
    queries: &[String],
    vectors: &[Vec<f32>],
    truth: &[Vec<i64>],
    dimension: usize,
) -> Result<RecordBatch, VectorError> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let flat: Vec<f32> = vectors.iter().flatten().copied().collect();
    let vector = FixedSizeListArray::try_new(
        item,
        dimension as i32,
        Arc::new(Float32Array::from(flat)),
        None,
    )
    .map_err(internal)?;
    let ids = Arc::new(Field::new("item", DataType::Int64, false));
    let truth_array = ListArray::try_new(
        ids,
        OffsetBuffer::from_lengths(truth.iter().map(Vec::len)),
        Arc::new(Int64Array::from(truth.concat())),
        None,
    )
    .map_err(internal)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("query", DataType::Utf8, false),
        Field::new("vector", vector.data_type().clone(), false),
        Field::new("truth", truth_array.data_type().clone(), false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(queries)),
            Arc::new(vector),
            Arc::new(truth_array),
        ],
    )
    .map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_batches_round_trip_their_lists() {
        let batch = eval_batch(
            &["a".into(), "b".into()],
            &[vec![1.0, 0.0], vec![0.0, 1.0]],
            &[vec![3, 1], vec![2]],
            2,
        )
        .unwrap();
        let truth = batch.column(2).as_list::<i32>();
        assert_eq!(truth.value(0).as_primitive::<Int64Type>().values(), &[3, 1]);
        assert_eq!(truth.value(1).as_primitive::<Int64Type>().values(), &[2]);
        assert_eq!(batch.column(1).as_fixed_size_list().value_length(), 2);
    }
}
