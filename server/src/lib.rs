//! Lakehouse: an Arrow Flight SQL server over Delta Lake tables in object storage.
//!
//! Request path, one direction only:
//!
//! ```text
//! flight (protocol) ──► query (DataFusion) ──► catalog (tables) ──► storage (buckets)
//!        └──────────► ingest (bulk uploads) ──┘
//! ```
//! Each module's doc says what it owns, what it may call and its invariants.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod demo;
pub mod events;
pub mod flight;
pub mod ingest;
pub mod jobs;
pub mod lineage;
pub mod names;
pub mod observe;
pub mod ops;
pub mod pii;
pub mod profiles;
pub mod query;
pub mod rows;
pub mod secrets;
pub mod server;
pub mod services;
pub mod storage;
pub mod vector;
pub mod workers;
