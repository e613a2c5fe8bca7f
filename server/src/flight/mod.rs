//! The Flight SQL front door.
//!
//! Owns: protocol handling (handshake, Flight SQL commands, session and cancel
//! actions), statement handles and result streaming. May call: `query`, `ingest`,
//! `vector`, `profiles`, `jobs`, `lineage`, `pii`, `catalog`, `storage`, `observe`.
//! Every error becomes a status here (`status.rs`) and nowhere below. Invariants:
//! - GetFlightInfo only plans a query, which runs lazily in DoGet; a write sent as a
//!   query (DDL/DML) runs in GetFlightInfo, and its ticket carries the row count
//!   that DoGet answers, so it runs exactly once whether or not the client fetches;
//! - every write (update, prepared update, bulk ingest) is one Delta commit, and a
//!   failed or cut-off upload commits nothing;
//! - handles and tickets are self-contained (`lakehouse.v1.StatementHandle`), so
//!   they survive restarts and need no server memory;
//! - no encoded FlightData message exceeds [`MAX_FLIGHT_DATA_BYTES`] (plus one
//!   row), so clients with default gRPC limits read results of any size;
//! - metadata answers use the exact Flight SQL schemas.

mod actions;
mod auth;
mod buckets;
mod extension;
mod front;
mod ingest;
mod limits;
mod metadata;
mod plans;
mod prepared;
mod profiles;
mod running;
mod service;
mod sessions;
mod sql_info;
mod statements;
mod status;
mod vector;

pub(crate) use auth::Authenticator;
pub use auth::hash_password;
pub(crate) use front::FrontDoor;
pub(crate) use limits::Limits;
pub(crate) use profiles::spawn_activation;
pub(crate) use service::LakehouseService;

/// Target size of one encoded FlightData message.
pub(crate) const MAX_FLIGHT_DATA_BYTES: usize = 2 * 1024 * 1024;
