//! Vector index backends: the `lakehouse-index` crate (flat and HNSW behind the
//! `VectorIndex` trait), re-exported where the vector service expects them.

pub use lakehouse_index::*;
