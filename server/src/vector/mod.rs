//! Vector search.
//!
//! Owns: embedding providers ([`embed`]: the built-in MiniLM model; [`http`]: Ollama and
//! OpenAI-compatible services) and the in-process
//! index backends ([`index`]: exact flat, HNSW) behind the trait the worker backends
//! implement too ([`faiss`]: Faiss indexes in the Faiss worker process); indexes over tables ([`service`]: build job, load,
//! search with SQL filters, refresh on appends), BM25 text ranking and rank fusion
//! ([`bm25`]) and the `vector_search`/`text_search`/`hybrid_search` SQL table
//! functions ([`sql`]).
//! May call: `catalog`, `query`, `jobs`, `workers`.
//! Invariants:
//! - an index is recorded in the catalog only after its vectors are committed;
//! - a filtered search returns k rows whenever k rows match the filter.

pub mod bm25;
pub mod embed;
pub mod eval;
pub mod faiss;
pub mod http;
pub mod index;
mod refresh;
pub mod service;
pub mod sql;
