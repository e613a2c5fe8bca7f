//! Vector search.
//!
//! Owns: embedding providers ([`embed`]: the built-in MiniLM model; [`http`]: Ollama
//! and OpenAI-compatible services) and their registry ([`embedders`]); the
//! in-process index backends ([`index`]: exact flat, HNSW, and the [`Backend`] type
//! naming every backend with its parameters) behind the trait the worker backends
//! implement too ([`faiss`]: Faiss indexes in the Faiss worker process; [`lance`]:
//! Lance datasets in the index's bucket, served by the Lance worker process; what the
//! two share, [`remote`]); indexes over tables ([`service`]), each concern in its own
//! file: the build job ([`build`]), reading a column of precomputed vectors instead of
//! embedding ([`precomputed`]), stored vectors and saved structures ([`store`]), search
//! by vector, text or both with SQL filters ([`search`]), hit shaping ([`hits`]),
//! refresh on every table change ([`refresh`]), moving between buckets ([`relocate`]),
//! eval sets ([`eval_set`]) and runs against them ([`eval`]), takes by id from a lance
//! index's dataset ([`take`]); BM25 text ranking and rank fusion ([`bm25`]), the
//! `vector_search`/`text_search`/`hybrid_search` SQL table functions ([`sql`]) and
//! the `system.vector_*` tables ([`system`]).
//! May call: `query`, `catalog`, `storage`, `jobs`, `events`, `workers`, and the leaves
//! `config`, `names`, `observe`, `rows`.
//! Invariants:
//! - an index is recorded in the catalog only after its vectors are committed;
//! - a filtered search returns k rows whenever k rows match the filter.

mod bm25;
mod build;
pub(crate) mod embed;
mod embedders;
mod error;
mod eval;
mod eval_set;
pub(crate) mod faiss;
mod hits;
pub(crate) mod http;
pub mod index;
pub(crate) mod lance;
mod precomputed;
mod refresh;
mod relocate;
mod remote;
mod search;
pub(crate) mod service;
mod sql;
mod state;
mod store;
pub(crate) mod system;
mod take;

pub(crate) use build::{Chunking, CreateIndex};
pub(crate) use error::VectorError;
pub(crate) use eval::EvalKnobs;
pub(crate) use index::Backend;
pub(crate) use search::{Mode, Search};
pub(crate) use service::VectorIndexes;
pub(crate) use sql::SearchFunction;
