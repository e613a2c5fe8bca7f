//! What can go wrong in the catalog, in its own words; `flight/status.rs` maps each
//! kind to the status a client gets.

use crate::storage::StorageError;

/// Errors of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No table of that name in that schema.
    #[error("table {schema}.{table} does not exist")]
    TableNotFound {
        /// Schema searched.
        schema: String,
        /// Table name.
        table: String,
    },
    /// No such column.
    #[error("table {table} has no column {column:?}")]
    ColumnNotFound {
        /// Qualified table name.
        table: String,
        /// Column name.
        column: String,
    },
    /// No such schema.
    #[error("schema {0} does not exist")]
    SchemaNotFound(String),
    /// A table of that name is already listed.
    #[error("table {schema}.{table} already exists")]
    TableExists {
        /// Schema.
        schema: String,
        /// Table name.
        table: String,
    },
    /// A name that is not a plain identifier.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The schema or catalog is read-only.
    #[error("schema {0} is read-only")]
    ReadOnly(String),
    /// A schema of that name already exists.
    #[error("schema {0} already exists")]
    SchemaExists(String),
    /// The schema still has tables.
    #[error(
        "schema {schema} is not empty ({tables} tables); drop them first or use DROP SCHEMA ... CASCADE"
    )]
    SchemaNotEmpty {
        /// Schema.
        schema: String,
        /// How many tables it holds.
        tables: usize,
    },
    /// The version's files were deleted by a vacuum.
    #[error(
        "version {version} of table {table} was vacuumed (its files are deleted); versions {oldest} and later can be read"
    )]
    VersionVacuumed {
        /// Qualified table name.
        table: String,
        /// Version asked for.
        version: i64,
        /// Oldest readable version.
        oldest: i64,
    },
    /// The table's writes kept it busy.
    #[error("{table} is being written (waited {waited:?} for the writes to end); try again")]
    Busy {
        /// Qualified table name.
        table: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A table's files could not be swept.
    #[error("cannot vacuum {table}: {message}")]
    Vacuum {
        /// The table (qualified name, or bucket and folder).
        table: String,
        /// Why.
        message: String,
    },
    /// No such version of the table.
    #[error("table {table} has no version {version} (versions 0 to {newest} exist)")]
    VersionNotFound {
        /// Qualified table name.
        table: String,
        /// Version asked for.
        version: i64,
        /// Newest version.
        newest: i64,
    },
    /// Another writer committed a conflicting change first; retrying may succeed.
    #[error("concurrent write to {table} conflicted, nothing was written; retry: {message}")]
    Conflict {
        /// Qualified table name.
        table: String,
        /// What conflicted.
        message: String,
    },
    /// The rows being written failed (bad upload, failing query); nothing was committed.
    #[error("writing {table} failed, nothing was committed: {source}")]
    Input {
        /// Qualified table name.
        table: String,
        /// What failed while producing the rows.
        source: Box<datafusion::error::DataFusionError>,
    },
    /// Written data does not match the table's schema.
    #[error("data does not match the schema of {table}: {message}")]
    SchemaMismatch {
        /// Qualified table name.
        table: String,
        /// The mismatch.
        message: String,
    },
    /// Storage failed underneath.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Delta Lake failed to read or commit a table.
    #[error("Delta Lake error on table {table}: {source}")]
    Delta {
        /// Qualified table name.
        table: String,
        /// The delta-rs error.
        source: deltalake::DeltaTableError,
    },
    /// The persisted catalog document is unreadable.
    #[error("catalog document {path} is corrupt: {message}")]
    Corrupt {
        /// Object path.
        path: String,
        /// Parser message.
        message: String,
    },
}

/// Result alias of the catalog.
pub(crate) type Result<T, E = CatalogError> = std::result::Result<T, E>;
