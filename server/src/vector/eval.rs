//! The eval harness: recall/speed runs of an index against an eval set (see
//! [`super::eval_set`]).
//!
//! An eval searches every stored query vector once per setting of the search knobs
//! (`ef` × `nprobe` × `refine_factor`, after one warm-up pass), on one thread, and
//! reports recall@k (mean and 5th percentile), latency percentiles and queries per
//! second, beside the index's build time and memory.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use lakehouse_flight_ext::v1::{VectorEvalResult, VectorEvalRun};

use super::error::{VectorError, internal};
use super::index::SearchParams;
use super::service::VectorIndexes;
use super::state::State;

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

impl VectorIndexes {
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
}
