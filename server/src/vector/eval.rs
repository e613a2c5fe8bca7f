//! The eval harness: eval sets (queries with their exact nearest rows) and recall/speed
//! runs of an index against one.
//!
//! An eval set is computed once from an index: its query texts are embedded with the
//! index's model, and a flat (exact) scan of the index's stored vectors gives each
//! query's `depth` nearest rows — the truth, pinned to the index build, its source table
//! version and vector count, which the set records. It is stored as an unlisted Delta
//! table (`query`, `vector`, `truth`) under `evalsets/<name>-<id>/` of any bucket.
//!
//! An eval searches every stored query vector once per `ef` (after one warm-up pass),
//! on one thread, and reports recall@k (mean and 5th percentile), latency percentiles
//! and queries per second, beside the index's build time and memory.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, AsArray, FixedSizeListArray, Float32Array, Int64Array, ListArray, RecordBatch,
    StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::TryStreamExt;
use lakehouse_flight_ext::v1::{
    VectorEvalResult, VectorEvalRun, VectorEvalSetCreateRequest, VectorEvalSetInfo,
};

use super::error::{VectorError, internal};
use super::index::{FlatIndex, Metric, SearchParams, VectorIndex};
use super::service::VectorIndexes;
use super::state::State;
use super::store::vectors_of;
use crate::catalog::{EvalSetEntry, TableEntry, WriteMode};
use crate::query::SessionDefaults;

/// Most queries in one set.
pub(super) const MAX_QUERIES: usize = 100_000;

/// Most truth rows kept per query.
pub(super) const MAX_DEPTH: usize = 1_000;

/// Most `ef` values in one eval.
const MAX_RUNS: usize = 32;

/// The search knobs an eval tries: one run per combination (empty: the index's default).
#[derive(Debug, Clone, Default)]
pub(crate) struct EvalKnobs {
    /// HNSW candidates.
    pub ef: Vec<usize>,
    /// IVF partitions probed.
    pub nprobe: Vec<usize>,
    /// Lance IVF_PQ refine factors.
    pub refine_factor: Vec<usize>,
}

/// recall@k of `found` against the first `k` rows of `truth`: the share of those found.
pub(super) fn recall(found: &[i64], truth: &[i64], k: usize) -> f64 {
    let wanted: HashSet<i64> = truth.iter().take(k).copied().collect();
    if wanted.is_empty() {
        return 1.0;
    }
    let hit = found
        .iter()
        .take(k)
        .filter(|id| wanted.contains(id))
        .count();
    hit as f64 / wanted.len() as f64
}

/// The `q`-quantile (0..=1) of `sorted` by the nearest-rank method; 0 when empty.
pub(super) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A validated `lakehouse.vector.eval_set.create`.
#[derive(Debug, Clone)]
pub(crate) struct CreateEvalSet {
    /// Set name.
    pub name: String,
    /// The index.
    pub index: String,
    /// Query texts (given or read by SQL).
    pub queries: Vec<String>,
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
        self.check_embedder(super::service::embedder_name(&index))
            .map_err(|e| VectorError::Unavailable(format!("index {}: {e}", index.name)))?;
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
        match (queries.is_empty(), request.queries_sql.trim().is_empty()) {
            (true, true) => {
                return Err(VectorError::Invalid(
                    "set queries (texts) or queries_sql (a SELECT whose first column is the text)"
                        .into(),
                ));
            }
            (false, false) => {
                return Err(VectorError::Invalid(
                    "set queries or queries_sql, not both".into(),
                ));
            }
            (true, false) => queries = self.query_texts(&request.queries_sql).await?,
            (false, true) => {}
        }
        queries.retain(|q| !q.trim().is_empty());
        if queries.is_empty() {
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
        job.phase("exact search");
        // The truth: a flat scan of the stored vectors, a row at its best chunk.
        let stored = self.read_vectors(&index).await?;
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
        let batch = eval_batch(&request.queries, &vectors, &truth, index.dimension as usize)?;
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
            queries: request.queries.len() as u32,
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

    /// Recall and speed of `index` against `eval_set`, one run per `ef`.
    pub(crate) async fn eval(
        &self,
        index: &str,
        eval_set: &str,
        k: usize,
        knobs: &EvalKnobs,
        embed_queries: bool,
    ) -> Result<VectorEvalResult, VectorError> {
        let efs = knobs.ef.as_slice();
        let catalog = self.engine().catalog();
        let Some(set) = catalog.eval_set(eval_set) else {
            return Err(VectorError::NotFound(format!(
                "eval set {eval_set} does not exist"
            )));
        };
        let k = if k == 0 { 10 } else { k };
        if k > set.depth as usize {
            return Err(VectorError::Invalid(format!(
                "k: {k} is above the eval set's depth ({})",
                set.depth
            )));
        }
        if efs.len() > MAX_RUNS || efs.iter().any(|&ef| ef > super::search::MAX_EF) {
            return Err(VectorError::Invalid(format!(
                "ef: at most {MAX_RUNS} values, each at most {}",
                super::search::MAX_EF
            )));
        }
        let or_default = |given: &[usize]| {
            if given.is_empty() {
                vec![0]
            } else {
                given.to_vec()
            }
        };
        let (nprobes, refines) = (or_default(&knobs.nprobe), or_default(&knobs.refine_factor));
        if efs.len().max(1) * nprobes.len() * refines.len() > MAX_RUNS {
            return Err(VectorError::Invalid(format!(
                "ef × nprobe × refine_factor: at most {MAX_RUNS} combinations"
            )));
        }
        let loaded = self.get(index).await?;
        let entry = catalog.index(index).unwrap_or_else(|| loaded.entry.clone());
        let (texts, vectors, truth) = self.read_eval_set(&set).await?;
        if vectors
            .first()
            .is_some_and(|v| v.len() != entry.dimension as usize)
        {
            return Err(VectorError::Invalid(format!(
                "eval set {eval_set} holds {}-d vectors; index {index} is {}-d",
                vectors.first().map_or(0, Vec::len),
                entry.dimension
            )));
        }
        let default_ef = entry.build.backend.default_ef();
        let efs: Vec<usize> = if efs.is_empty() {
            vec![default_ef]
        } else {
            efs.to_vec()
        };
        let model = if embed_queries {
            Some(self.index_embedder(&entry).await?)
        } else {
            None
        };
        let (vectors, truth) = (Arc::new(vectors), Arc::new(truth));
        let mut settings = Vec::new();
        for &ef in &efs {
            for &nprobe in &nprobes {
                for &refine_factor in &refines {
                    settings.push(SearchParams {
                        ef,
                        nprobe,
                        refine_factor,
                    });
                }
            }
        }
        let mut runs = Vec::new();
        for params in settings {
            let ef = params.ef;
            let (mut latencies, mut recalls) = match &model {
                Some(model) => {
                    model.embed(&texts[..1.min(texts.len())]).await?;
                    let mut latencies = Vec::with_capacity(texts.len());
                    let mut recalls = Vec::with_capacity(texts.len());
                    for (text, truth) in texts.iter().zip(truth.iter()) {
                        let started = Instant::now();
                        let query = model
                            .embed(std::slice::from_ref(text))
                            .await?
                            .pop()
                            .ok_or_else(|| internal("the model returned no vector"))?;
                        // Milliseconds beside the embedding: searched in place.
                        let found = loaded.state.nearest(&query, k, params, None)?;
                        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                        let ids: Vec<i64> = found.iter().map(|f| f.0).collect();
                        recalls.push(recall(&ids, truth, k));
                    }
                    (latencies, recalls)
                }
                None => {
                    let (state, vectors, truth) = (
                        Arc::clone(&loaded.state),
                        Arc::clone(&vectors),
                        Arc::clone(&truth),
                    );
                    tokio::task::spawn_blocking(move || {
                        if vectors.len() <= 1000 {
                            search_pass(&state, &vectors, &truth, k, params)?;
                        }
                        search_pass(&state, &vectors, &truth, k, params)
                    })
                    .await
                    .map_err(internal)??
                }
            };
            let total_ms: f64 = latencies.iter().sum();
            let mean = recalls.iter().sum::<f64>() / recalls.len().max(1) as f64;
            recalls.sort_by(f64::total_cmp);
            latencies.sort_by(f64::total_cmp);
            runs.push(VectorEvalRun {
                ef: if ef == 0 {
                    default_ef as u32
                } else {
                    ef as u32
                },
                nprobe: params.nprobe as u32,
                refine_factor: params.refine_factor as u32,
                recall_mean: mean,
                recall_p5: percentile(&recalls, 0.05),
                latency_p50_ms: percentile(&latencies, 0.50),
                latency_p95_ms: percentile(&latencies, 0.95),
                latency_p99_ms: percentile(&latencies, 0.99),
                qps: if total_ms > 0.0 {
                    latencies.len() as f64 / (total_ms / 1000.0)
                } else {
                    0.0
                },
            });
        }
        let warning = if set.index_location != entry.location {
            format!(
                "the truth of {eval_set} was computed over another build of {} (or another index); recall compares with it",
                set.index
            )
        } else if entry.vectors != set.vectors {
            format!(
                "index {index} holds {} vectors, the truth was computed over {} (source version {} then, {} now)",
                entry.vectors, set.vectors, set.source_version, entry.source_version
            )
        } else {
            String::new()
        };
        Ok(VectorEvalResult {
            index: index.to_string(),
            eval_set: eval_set.to_string(),
            k: k as u32,
            queries: vectors.len() as u32,
            runs,
            backend: entry.build.backend.name().to_string(),
            parameters: entry.build.parameters().to_string(),
            build_seconds: entry.build_seconds,
            bytes: entry.bytes,
            vectors: entry.vectors,
            warning,
        })
    }

    /// Query texts, vectors and truth rows of a stored set.
    async fn read_eval_set(
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

/// Searches every query once: per query, the latency (ms) and recall@k.
fn search_pass(
    state: &State,
    vectors: &[Vec<f32>],
    truth: &[Vec<i64>],
    k: usize,
    params: SearchParams,
) -> Result<(Vec<f64>, Vec<f64>), VectorError> {
    let mut latencies = Vec::with_capacity(vectors.len());
    let mut recalls = Vec::with_capacity(vectors.len());
    for (query, truth) in vectors.iter().zip(truth) {
        let started = Instant::now();
        let found = state.nearest(query, k, params, None)?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        let ids: Vec<i64> = found.iter().map(|f| f.0).collect();
        recalls.push(recall(&ids, truth, k));
    }
    Ok((latencies, recalls))
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
    fn recall_counts_the_true_rows_found() {
        assert_eq!(recall(&[1, 2, 3], &[1, 2, 3, 4], 3), 1.0);
        assert_eq!(recall(&[1, 9, 3], &[1, 2, 3, 4], 3), 2.0 / 3.0);
        assert_eq!(recall(&[4, 5], &[1, 2, 3, 4], 2), 0.0);
        // Fewer truth rows than k: scored against those.
        assert_eq!(recall(&[7], &[7], 10), 1.0);
        assert_eq!(recall(&[], &[], 10), 1.0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.95), 95.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&values, 0.05), 5.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

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
