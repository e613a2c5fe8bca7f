//! Vector search.
//!
//! Owns: embedding providers ([`embed`]: the built-in MiniLM model; [`http`]: Ollama and
//! OpenAI-compatible services) and the in-process
//! index backends ([`index`]: exact flat, HNSW) behind the traits the worker backends
//! (Lance, Faiss) implement too; indexes over tables ([`service`]: build job, load,
//! search with SQL filters) and the `vector_search` SQL table function ([`sql`]).
//! May call: `catalog`, `query`, `jobs`.
//! Invariants:
//! - an index is recorded in the catalog only after its vectors are committed;
//! - a filtered search returns k rows whenever k rows match the filter.

pub mod embed;
pub mod http;
pub mod index;
pub mod service;
pub mod sql;
