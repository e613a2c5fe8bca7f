//! Getting data into tables.
//!
//! Owns: bulk ingest (ADBC `adbc_ingest`, Flight SQL `CommandStatementIngest`),
//! file ingest (CSV, NDJSON, Parquet, Arrow IPC, PDF) and what every ingest does
//! around its commit ([`commit`]): lineage, PII detection, the dataset event.
//! May call: `query` (planning and the write envelope), `catalog`, `storage`, `jobs`,
//! `lineage`, `events`, and the leaves `config`, `secrets`.
//! Invariants:
//! - rows stream from the source into one Delta commit; nothing holds the whole
//!   input in memory, and a failed, cancelled or abandoned ingest commits nothing;
//! - a new table appears in the catalog only after its data is committed;
//! - every ingest records lineage START and COMPLETE/FAIL, samples its rows for
//!   PII (findings stored with the table), and after the commit publishes a
//!   `DatasetAppended`/`DatasetReplaced` event.

mod columnar;
mod csv;
pub(crate) mod database;
pub mod file;
mod mysql;
mod ndjson;
mod pdf;
mod postgres;
mod reader;
pub(crate) mod source;
#[cfg(test)]
mod tests;
pub(crate) mod types;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::execution::SendableRecordBatchStream;
use lakehouse_flight_ext::v1::ColumnPii;

use crate::catalog::{CatalogError, TableEntry, WriteMode, Written};
use crate::events::ChangeKind;
use crate::lineage::Source;
use crate::query::{Commit, QueryEngine, SessionDefaults, WriteOrigin};
use crate::storage::{PRIMARY, StorageError};

/// Errors of an ingest, each with the status a client gets.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestError {
    /// A request field is wrong (InvalidArgument).
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `csv.delimiter`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No such file (NotFound).
    #[error("{0}")]
    NotFound(String),
    /// The path is off limits (PermissionDenied).
    #[error("{0}")]
    PermissionDenied(String),
    /// A file could not be read or parsed (InvalidArgument).
    #[error("{file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A bad row, with bad rows set to fail the job (InvalidArgument).
    #[error(
        "{file}, line {line}: {message}; nothing was written (set bad_rows to BAD_ROWS_REJECT to skip such rows)"
    )]
    BadRow {
        /// The file.
        file: String,
        /// Its line number (1-based; the header is line 1).
        line: u64,
        /// What is wrong with the row.
        message: String,
    },
    /// More bad rows than allowed (InvalidArgument).
    #[error(
        "more than {max} bad rows (max_rejects); nothing was written. The last: {file}, line {line}: {message}"
    )]
    TooManyRejects {
        /// The limit.
        max: u64,
        /// File of the row past the limit.
        file: String,
        /// Its line.
        line: u64,
        /// Its error.
        message: String,
    },
    /// The job was cancelled (Cancelled).
    #[error("the job was cancelled; nothing was committed")]
    Cancelled,
    /// The source database failed or could not be reached (Unavailable); the
    /// message is the source's, with any password removed.
    #[error("{0}")]
    Source(String),
    /// The server is not set up for the request, e.g. a named connection's
    /// password variable is unset (FailedPrecondition).
    #[error("{0}")]
    Precondition(String),
    /// Every input file failed (InvalidArgument).
    #[error("no file could be ingested: {0}")]
    AllFilesFailed(String),
    /// Storage failed (Internal, or NotFound for a missing bucket).
    #[error(transparent)]
    Storage(Box<StorageError>),
    /// The catalog refused or the commit failed.
    #[error(transparent)]
    Catalog(Box<CatalogError>),
}

impl From<StorageError> for IngestError {
    fn from(error: StorageError) -> Self {
        Self::Storage(Box::new(error))
    }
}

impl From<CatalogError> for IngestError {
    fn from(error: CatalogError) -> Self {
        Self::Catalog(Box::new(error))
    }
}

impl IngestError {
    /// An invalid request field.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// What to do when the target table exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfExists {
    /// Refuse (ADBC mode `create`).
    Fail,
    /// Add the rows (`append`, `create_append`).
    Append,
    /// Replace rows and schema with the upload, as a new version (`replace`).
    Replace,
}

/// What to do when the target table does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfMissing {
    /// Create it with the upload's schema.
    Create,
    /// Refuse (ADBC mode `append`).
    Fail,
}

/// Where an ingest writes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Target schema.
    pub(crate) schema: String,
    /// Target table.
    pub(crate) table: String,
    /// Behaviour when the table exists.
    pub(crate) if_exists: IfExists,
    /// Behaviour when it does not.
    pub(crate) if_missing: IfMissing,
    /// Bucket of a new table.
    pub(crate) bucket: String,
}

/// What an ingest mode does with an existing and with a missing table.
pub(crate) fn modes(mode: lakehouse_flight_ext::v1::IngestMode) -> (IfExists, IfMissing) {
    use lakehouse_flight_ext::v1::IngestMode;
    match mode {
        IngestMode::Append => (IfExists::Append, IfMissing::Create),
        IngestMode::Replace => (IfExists::Replace, IfMissing::Create),
        IngestMode::Create | IngestMode::Unspecified => (IfExists::Fail, IfMissing::Create),
    }
}

/// One bulk upload (ADBC): a target in the primary bucket.
pub(crate) type BulkIngest = Target;

/// Where the rows of an ingest come from, for lineage.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// Job type recorded in lineage, e.g. `lakehouse.ingest.file`.
    pub(crate) job_type: String,
    /// The source system and location.
    pub(crate) source: Option<Source>,
    /// Run this one is part of.
    pub(crate) parent_run_id: Option<String>,
    /// Input bytes read (filled in while the rows stream).
    pub(crate) bytes: Arc<AtomicU64>,
}

/// What an ingest committed.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    /// The table written.
    pub(crate) entry: TableEntry,
    /// Rows and version.
    pub(crate) written: Written,
    /// The table's PII after this ingest (findings and manual verdicts).
    pub(crate) pii: Vec<ColumnPii>,
    /// Lineage run id.
    pub(crate) run_id: String,
    /// (name, Arrow type) of the written columns.
    pub(crate) columns: Vec<(String, String)>,
}

/// Writes `rows` into the target as one commit, inside the write envelope
/// (lineage, PII sampling, metrics and the dataset event: see
/// [`crate::query::Envelope`]).
pub(crate) async fn commit(
    engine: &QueryEngine,
    target: &Target,
    rows: SendableRecordBatchStream,
    origin: &Origin,
) -> Result<Committed, CatalogError> {
    let write_origin = WriteOrigin {
        job_type: origin.job_type.clone(),
        event_source: origin.job_type.clone(),
        source: origin.source.clone(),
        inputs: Vec::new(),
        parent_run_id: origin.parent_run_id.clone(),
        bytes: Arc::clone(&origin.bytes),
    };
    let mut envelope = engine
        .open_envelope(write_origin, &target.schema, &target.table)
        .await;
    let rows = envelope.sample(rows);
    let (entry, written, kind) = match write(engine, target, rows).await {
        Ok(done) => done,
        Err(error) => {
            envelope.failed(&error).await;
            return Err(error);
        }
    };
    let commit = Commit {
        kind,
        rows: written.rows,
        version: Some(written.version),
    };
    let sealed = envelope.committed(engine, commit).await;
    Ok(Committed {
        entry: sealed.entry.unwrap_or(entry),
        written,
        pii: sealed.pii,
        run_id: sealed.run_id,
        columns: sealed.columns,
    })
}

/// Commits what a reader task produces: waits for its schema (or its error),
/// streams its batches into [`commit`] with the job's progress counted, then
/// joins it. The reader's own error wins: the writer only saw the stream fail.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn commit_produced<T>(
    engine: &QueryEngine,
    job: &crate::jobs::JobContext,
    target: &Target,
    origin: &Origin,
    schema: tokio::sync::oneshot::Receiver<arrow::datatypes::SchemaRef>,
    batches: tokio::sync::mpsc::Receiver<
        Result<arrow::array::RecordBatch, datafusion::error::DataFusionError>,
    >,
    producer: tokio::task::JoinHandle<Result<T, IngestError>>,
    rejected: Arc<AtomicU64>,
) -> Result<(Committed, T), IngestError> {
    let crashed = |e: tokio::task::JoinError| IngestError::Read {
        file: String::new(),
        message: format!("the reader crashed: {e}"),
    };
    let Ok(schema) = schema.await else {
        return match producer.await.map_err(crashed)? {
            Err(error) => Err(error),
            Ok(_) => Err(IngestError::Read {
                file: String::new(),
                message: "the reader stopped before it found the columns".into(),
            }),
        };
    };
    let stream = file::progress_stream(
        schema,
        batches,
        job.clone(),
        Arc::clone(&origin.bytes),
        rejected,
    );
    job.phase("writing");
    let committed = commit(engine, target, stream, origin).await;
    match (committed, producer.await.map_err(crashed)?) {
        (_, Err(error)) => Err(error),
        (Err(error), Ok(_)) => Err(error.into()),
        (Ok(committed), Ok(produced)) => Ok((committed, produced)),
    }
}

/// The write itself: create, append or replace as the target says.
async fn write(
    engine: &QueryEngine,
    target: &Target,
    rows: SendableRecordBatchStream,
) -> Result<(TableEntry, Written, ChangeKind), CatalogError> {
    let catalog = engine.catalog();
    let session = Arc::new(
        engine
            .session(&SessionDefaults {
                schema: target.schema.clone(),
                ..SessionDefaults::default()
            })
            .state(),
    );
    match catalog.table(&target.schema, &target.table) {
        Ok(entry) => {
            let (mode, kind) = match target.if_exists {
                IfExists::Fail => {
                    return Err(CatalogError::TableExists {
                        schema: target.schema.clone(),
                        table: target.table.clone(),
                    });
                }
                IfExists::Append => (WriteMode::Append, ChangeKind::Appended),
                IfExists::Replace => (WriteMode::Replace, ChangeKind::Replaced),
            };
            let written = catalog.write(&entry, mode, rows, session).await?;
            Ok((entry, written, kind))
        }
        Err(CatalogError::TableNotFound { .. }) if target.if_missing == IfMissing::Create => {
            let (entry, written) = catalog
                .create_table_from(&target.schema, &target.table, &target.bucket, rows, session)
                .await?;
            Ok((entry, written, ChangeKind::Appended))
        }
        Err(e) => Err(e),
    }
}

/// Writes an ADBC upload into the target as one commit; returns the rows written.
pub(crate) async fn bulk_ingest(
    engine: &QueryEngine,
    request: &BulkIngest,
    rows: SendableRecordBatchStream,
    user: &str,
) -> Result<u64, CatalogError> {
    let origin = Origin {
        job_type: "flight.bulk_ingest".into(),
        source: Some(Source {
            system: "flight".into(),
            location: if user.is_empty() {
                "CommandStatementIngest".into()
            } else {
                format!("CommandStatementIngest by {user}")
            },
        }),
        parent_run_id: None,
        bytes: Arc::new(AtomicU64::new(0)),
    };
    let committed = commit(engine, request, rows, &origin).await?;
    Ok(committed.written.rows)
}

/// The primary bucket's name, where bulk uploads create tables.
pub(crate) const BULK_BUCKET: &str = PRIMARY;
