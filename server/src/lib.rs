//! Lakehouse: an Arrow Flight SQL server over Delta Lake tables in object storage.
//!
//! Request path, one direction only:
//!
//! ```text
//! flight (protocol) ──► query (DataFusion) ──► catalog (tables) ──► storage (buckets)
//!        └──────────► ingest (bulk uploads) ──┘
//! ```
//! Each module's doc says what it owns, what it may call and its invariants.
//!
//! The crate's public face is what the binary, the integration tests and the benches
//! use (`server::serve`, `server::open_engine`, `config`, `cli`, `flight::hash_password`,
//! `observe`'s tracing layers, `query`'s engine and session defaults, file ingest,
//! `vector::index`); everything else is `pub(crate)` or narrower, and the
//! `unreachable_pub` lint keeps it so.

#![warn(unreachable_pub)]

mod catalog;
pub mod cli;
pub mod config;
pub mod demo;
mod events;
pub mod flight;
pub mod ingest;
mod jobs;
mod lineage;
mod names;
pub mod observe;
mod ops;
mod pii;
mod profiles;
pub mod query;
mod rows;
mod secrets;
pub mod server;
mod services;
mod storage;
pub mod vector;
mod workers;
