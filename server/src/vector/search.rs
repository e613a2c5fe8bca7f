//! Searching an index: by vector (the query embedded with the index's model, or
//! given), by text (BM25 over the same column) or both fused by reciprocal rank,
//! with an optional SQL filter on the source table planned through the query
//! engine's guarded path (an expression, never spliced into a statement).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use futures::TryStreamExt;
use lakehouse_flight_ext::v1::VectorHit;
use tracing::Instrument;

use super::bm25::{Bm25, fuse};
use super::error::{VectorError, internal};
use super::index::{Metric, SearchParams};
use super::service::VectorIndexes;
use super::state::Loaded;
use crate::catalog::{IndexEntry, TableEntry};
use crate::query::SessionDefaults;

/// Largest `k` of a search.
pub(crate) const MAX_K: usize = 10_000;

/// Largest HNSW `ef` of a search (an absurd one would allocate without bound).
pub(crate) const MAX_EF: usize = 100_000;
/// Largest refine factor a search may ask for.
const MAX_REFINE: usize = 1_000;

/// Hybrid search fuses the best `HYBRID_DEPTH · k` (at least 40) of each ranking.
pub(super) const HYBRID_DEPTH: usize = 4;

/// How a search ranks rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nearest by embedding.
    Vector,
    /// BM25 over the text column.
    Text,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

impl Mode {
    /// Parses `vector` (or empty), `text`, `hybrid`.
    pub(crate) fn parse(text: &str) -> Result<Self, VectorError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "vector" => Ok(Self::Vector),
            "text" | "bm25" => Ok(Self::Text),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(VectorError::Invalid(format!(
                "mode: {other:?} is not vector, text or hybrid"
            ))),
        }
    }

    /// `vector`, `text` or `hybrid`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Vector => "vector",
            Self::Text => "text",
            Self::Hybrid => "hybrid",
        }
    }
}

/// One search.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    /// Index name.
    pub index: String,
    /// Query text (embedded with the index's model; the terms of text search).
    pub query: String,
    /// Or a query vector (vector mode only).
    pub vector: Vec<f32>,
    /// Rows wanted.
    pub k: usize,
    /// HNSW candidates (0: the index's default).
    pub ef: usize,
    /// IVF lists probed (0: the index's default).
    pub nprobe: usize,
    /// Lance IVF_PQ: candidates re-ranked exactly, as a multiple of k (0: the
    /// index's default).
    pub refine_factor: usize,
    /// SQL predicate on the source table ("" for none).
    pub filter: String,
    /// Ranking.
    pub mode: Mode,
}

/// A row of a search's result, before its text is looked up.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub(super) id: i64,
    pub(super) distance: f32,
    pub(super) score: f32,
}

/// The similarity a vector hit reports as its score (higher is better).
pub(super) fn similarity(metric: &str, distance: f32) -> f32 {
    if metric == Metric::Cosine.name() {
        1.0 - distance
    } else {
        -distance
    }
}

impl VectorIndexes {
    /// The rows matching `filter` on the source table of `entry`, or `None` for all.
    pub(super) async fn allowed(
        &self,
        entry: &IndexEntry,
        table: &TableEntry,
        filter: &str,
    ) -> Result<Option<HashSet<i64>>, VectorError> {
        if filter.trim().is_empty() {
            return Ok(None);
        }
        let invalid =
            |e: datafusion::error::DataFusionError| VectorError::Invalid(format!("filter: {e}"));
        let ctx = self.engine.session(&SessionDefaults::default());
        let reference = datafusion::common::TableReference::full(
            crate::catalog::CATALOG_NAME,
            table.schema.clone(),
            table.name.clone(),
        );
        let id = datafusion::prelude::cast(
            datafusion::prelude::ident(&entry.id_column),
            DataType::Int64,
        );
        let plan = self
            .engine
            .plan_filtered(&ctx, reference, filter, vec![id])
            .await
            .map_err(invalid)?;
        let batches: Vec<RecordBatch> = self
            .engine
            .execute(&ctx, plan)
            .await
            .map_err(invalid)?
            .try_collect()
            .await
            .map_err(invalid)?;
        let mut ids = HashSet::new();
        for batch in batches {
            ids.extend(batch.column(0).as_primitive::<Int64Type>().iter().flatten());
        }
        Ok(Some(ids))
    }

    /// The text index of `loaded`, built from the source table on first use.
    pub(super) async fn text_index<'a>(
        &self,
        loaded: &'a Loaded,
        table: &TableEntry,
    ) -> Result<&'a RwLock<Bm25>, VectorError> {
        let entry = &loaded.entry;
        if entry.text_column.is_empty() {
            return Err(VectorError::Invalid(format!(
                "index {} holds the precomputed vectors of column {}: text and hybrid \
                 search need an index over a text column",
                entry.name, entry.vector_column
            )));
        }
        loaded
            .state
            .text
            .get_or_try_init(|| async {
                let mut stream = self
                    .rows_stream(table, &entry.id_column, &entry.text_column)
                    .await?;
                let mut index = Bm25::new();
                while let Some(batch) = stream.try_next().await.map_err(internal)? {
                    let ids = batch.column(0).as_primitive::<Int64Type>();
                    let text =
                        arrow::compute::cast(batch.column(1), &DataType::Utf8).map_err(internal)?;
                    let text = text.as_string::<i32>();
                    for i in 0..batch.num_rows() {
                        // A repeated id keeps its first text.
                        index.add(ids.value(i), text.value(i));
                    }
                }
                Ok::<_, VectorError>(RwLock::new(index))
            })
            .await
    }

    /// The best rows for `search`, best first, with their texts.
    pub(crate) async fn search(&self, search: &Search) -> Result<Vec<VectorHit>, VectorError> {
        let started = Instant::now();
        let span = tracing::info_span!("vector.search", index = %search.index,
            mode = search.mode.name(), k = search.k, hits = tracing::field::Empty);
        let hits = self
            .search_unmetered(search)
            .instrument(span.clone())
            .await?;
        span.record("hits", hits.len());
        crate::observe::metrics()
            .vector_search(search.mode.name(), started.elapsed().as_secs_f64());
        Ok(hits)
    }

    pub(super) async fn search_unmetered(
        &self,
        search: &Search,
    ) -> Result<Vec<VectorHit>, VectorError> {
        let Search {
            k,
            ef,
            nprobe,
            refine_factor,
            mode,
            ..
        } = *search;
        let params = SearchParams {
            ef,
            nprobe,
            refine_factor,
        };
        if k == 0 || k > MAX_K {
            return Err(VectorError::Invalid(format!(
                "k: {k} is not in 1..={MAX_K}"
            )));
        }
        if ef > MAX_EF {
            return Err(VectorError::Invalid(format!("ef: {ef} is above {MAX_EF}")));
        }
        if refine_factor > MAX_REFINE {
            return Err(VectorError::Invalid(format!(
                "refineFactor: {refine_factor} is above {MAX_REFINE}"
            )));
        }
        let has_query = !search.query.trim().is_empty();
        if mode != Mode::Vector && (!has_query || !search.vector.is_empty()) {
            return Err(VectorError::Invalid(
                "text and hybrid search take a query text (not a vector)".into(),
            ));
        }
        let loaded = self.get(&search.index).await?;
        let entry = &loaded.entry;
        let table = self
            .engine
            .catalog()
            .table(&entry.schema, &entry.table)
            .map_err(|e| {
                VectorError::NotFound(format!("the source table of index {}: {e}", entry.name))
            })?;
        let allowed = self.allowed(entry, &table, &search.filter).await?;
        let found: Vec<Found> = match mode {
            Mode::Vector => {
                let query = self.query_vector(entry, search).await?;
                self.nearest(&loaded, query, k, params, allowed)
                    .await?
                    .into_iter()
                    .map(|(id, distance)| Found {
                        id,
                        distance,
                        score: similarity(&entry.metric, distance),
                    })
                    .collect()
            }
            Mode::Text => self
                .text_hits(&loaded, &table, &search.query, k, allowed.as_ref())
                .await?
                .into_iter()
                .map(|(id, score)| Found {
                    id,
                    distance: f32::NAN,
                    score,
                })
                .collect(),
            Mode::Hybrid => {
                let depth = (k * HYBRID_DEPTH).clamp(40, MAX_K);
                let text = self
                    .text_hits(&loaded, &table, &search.query, depth, allowed.as_ref())
                    .await?;
                let query = self.query_vector(entry, search).await?;
                let nearest = self.nearest(&loaded, query, depth, params, allowed).await?;
                let distances: HashMap<i64, f32> = nearest.iter().copied().collect();
                let lists = [
                    nearest.iter().map(|h| h.0).collect(),
                    text.iter().map(|h| h.0).collect(),
                ];
                fuse(&lists, k)
                    .into_iter()
                    .map(|(id, score)| Found {
                        id,
                        distance: distances.get(&id).copied().unwrap_or(f32::NAN),
                        score,
                    })
                    .collect()
            }
        };
        self.with_texts(entry, &table, found).await
    }

    pub(super) async fn query_vector(
        &self,
        entry: &IndexEntry,
        search: &Search,
    ) -> Result<Vec<f32>, VectorError> {
        match (search.query.trim().is_empty(), search.vector.is_empty()) {
            (false, true) => {
                let model = self.index_embedder(entry).await?;
                model
                    .embed(std::slice::from_ref(&search.query))
                    .await?
                    .pop()
                    .ok_or_else(|| internal("the model returned no vector"))
            }
            (true, false) => Ok(search.vector.clone()),
            (true, true) => Err(VectorError::Invalid("set query or vector".into())),
            (false, false) => Err(VectorError::Invalid("set query or vector, not both".into())),
        }
    }

    pub(super) async fn nearest(
        &self,
        loaded: &Arc<Loaded>,
        query: Vec<f32>,
        k: usize,
        params: SearchParams,
        allowed: Option<HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>, VectorError> {
        let state = Arc::clone(&loaded.state);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| state.nearest(&query, k, params, allowed.as_ref()))
        })
        .await
        .map_err(internal)?
    }

    pub(super) async fn text_hits(
        &self,
        loaded: &Loaded,
        table: &TableEntry,
        query: &str,
        k: usize,
        allowed: Option<&HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>, VectorError> {
        let index = self.text_index(loaded, table).await?;
        let keep = |id: i64| allowed.is_none_or(|a| a.contains(&id));
        let index = index.read().map_err(internal)?;
        Ok(index.search(query, k, Some(&keep)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("").unwrap(), Mode::Vector);
        assert_eq!(Mode::parse("Hybrid").unwrap(), Mode::Hybrid);
        assert_eq!(Mode::parse("bm25").unwrap(), Mode::Text);
        assert!(Mode::parse("fuzzy").is_err());
    }
}
