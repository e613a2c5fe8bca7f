//! Observability: metrics, request ids and trace export.
//!
//! Owns: the process-wide metrics registry and the tower layer that ids, traces and
//! counts every gRPC call. May call: nothing of the server (a leaf: what it shows
//! comes in as plain labels; the HTTP port that serves it is `ops`, beside
//! `server`). Invariant: recording a metric never blocks a call on I/O (atomics
//! and short mutexes only).

pub(crate) mod calls;
pub(crate) mod context;
pub(crate) mod metrics;
pub mod otel;

pub(crate) use calls::CallLayer;
pub use context::RequestIds;
pub(crate) use context::current_request_id;
pub(crate) use metrics::metrics;
