//! Observability: metrics, request ids, trace export and the operations HTTP port.
//!
//! Owns: the process-wide metrics registry, the tower layer that ids, traces and
//! counts every gRPC call, and `/metrics`, `/healthz`, `/readyz`. May call: `query`,
//! `catalog`, `jobs`, `vector` (read-only, at scrape time). Invariant: recording a
//! metric never blocks a call on I/O (atomics and short mutexes only).

pub mod calls;
pub mod context;
pub mod http;
pub mod metrics;
pub mod otel;

pub use calls::{CallLayer, REQUEST_ID};
pub use context::{RequestIds, current_request_id};
pub use metrics::metrics;
