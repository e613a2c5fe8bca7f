//! Delta Lake operations on catalog tables.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::Column;
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use deltalake::delta_datafusion::planner::DeltaPlanner;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::TransactionError;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::StreamExt;
use tracing::Instrument;
use url::Url;

use super::{CatalogError, Result, TableEntry, convert};
use crate::storage::Bucket;

/// Lets delta-rs commit to `s3://` tables through *our* object store.
///
/// delta-rs registers log stores only for `file://` and `memory://`; its S3 one lives
/// in a crate we don't need, since buckets hand it a ready `object_store`. The default
/// log store commits with conditional puts (`If-None-Match`), which S3 and
/// S3-compatible servers support, so concurrent writers never overwrite a commit.
#[derive(Debug, Default)]
struct ConditionalPutLogStore;

impl LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_s3_log_store() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            if let Ok(url) = Url::parse(scheme) {
                logstore_factories().insert(url, Arc::new(ConditionalPutLogStore));
            }
        }
    });
}

fn builder(bucket: &Bucket, entry: &TableEntry) -> Result<DeltaTableBuilder> {
    register_s3_log_store();
    let url = bucket.url_of(&entry.location)?;
    Ok(DeltaTableBuilder::from_url(url.clone())
        .map_err(|source| delta_error(entry, source))?
        .with_storage_backend(bucket.store(), url))
}

/// Loads the latest version of the table.
pub(super) async fn open(bucket: &Bucket, entry: &TableEntry) -> Result<DeltaTable> {
    builder(bucket, entry)?
        .load()
        .await
        .map_err(|source| delta_error(entry, source))
}

/// Loads the table as of `version`.
pub(super) async fn open_version(
    bucket: &Bucket,
    entry: &TableEntry,
    version: u64,
) -> Result<DeltaTable> {
    let error = match builder(bucket, entry)?.with_version(version).load().await {
        Ok(table) => return Ok(table),
        Err(error) => error,
    };
    // Only on failure: find out whether the version exists at all.
    let newest = open(bucket, entry)
        .await?
        .version()
        .map_or(-1, |v| v as i64);
    let missing = i64::try_from(version).map_or(true, |v| v > newest)
        // Versions before the last checkpoint may have been cleaned up.
        || matches!(
            error,
            DeltaTableError::InvalidVersion(_) | DeltaTableError::NotATable(_)
        );
    if missing {
        Err(CatalogError::VersionNotFound {
            table: entry.qualified_name(),
            version: i64::try_from(version).unwrap_or(i64::MAX),
            newest,
        })
    } else {
        Err(delta_error(entry, error))
    }
}

/// How a streamed write lands in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// First commit of a new table.
    Create,
    /// Add rows; the schema must match the table's.
    Append,
    /// Replace all rows, and the schema with the input's.
    Replace,
}

/// What one write committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// Rows written.
    pub rows: u64,
    /// The Delta version the commit produced.
    pub version: i64,
}

/// Streams `input` into the table as one Delta commit; returns what it committed.
///
/// `session` runs the write (its memory pool and settings apply). The input is
/// consumed exactly once, as it arrives: nothing is buffered beyond the Parquet
/// writer's row group.
pub(super) async fn write(
    bucket: &Bucket,
    entry: &TableEntry,
    mode: WriteMode,
    input: SendableRecordBatchStream,
    session: Arc<SessionState>,
) -> Result<Written> {
    let delta = |source| delta_error(entry, source);
    let mismatch = |message| CatalogError::SchemaMismatch {
        table: entry.qualified_name(),
        message,
    };
    let (table, input) = match mode {
        WriteMode::Create => (
            builder(bucket, entry)?.build().map_err(delta)?,
            convert::conform_to_delta(input).map_err(mismatch)?,
        ),
        WriteMode::Replace => (
            open(bucket, entry).await?,
            convert::conform_to_delta(input).map_err(mismatch)?,
        ),
        WriteMode::Append => {
            let table = open(bucket, entry).await?;
            let kernel = table.snapshot().map_err(delta)?.schema();
            let target: arrow::datatypes::Schema = kernel
                .as_ref()
                .try_into_arrow()
                .map_err(|e| delta(e.into()))?;
            let input = convert::conform_by_name(input, Arc::new(target)).map_err(mismatch)?;
            (table, input)
        }
    };
    // delta-rs folds an input failure into its own error; keep the original so the
    // caller learns what was wrong with the rows, not that a write failed.
    let failure = Arc::new(std::sync::Mutex::new(None));
    let rows = Arc::new(AtomicU64::new(0));
    let input = observe(input, Arc::clone(&failure), Arc::clone(&rows));
    let plan = one_shot_plan(input).map_err(|e| delta(e.into()))?;
    let mut write = table
        .write(Vec::new())
        .with_input_plan(plan)
        .with_session_state(delta_session(&session))
        .with_table_name(&entry.name);
    write = match mode {
        WriteMode::Create => write.with_save_mode(SaveMode::ErrorIfExists),
        WriteMode::Append => write.with_save_mode(SaveMode::Append),
        WriteMode::Replace => write
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite),
    };
    let span = tracing::info_span!("delta.write", table = %entry.qualified_name(), mode = ?mode,
        rows = tracing::field::Empty, version = tracing::field::Empty);
    let table = std::future::IntoFuture::into_future(write)
        .instrument(span.clone())
        .await
        .map_err(
            |source| match failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(input) => CatalogError::Input {
                    table: entry.qualified_name(),
                    source: Box::new(input),
                },
                None => delta(source),
            },
        )?;
    let written = Written {
        rows: rows.load(Ordering::Relaxed),
        version: table.version().map_or(0, |v| v as i64),
    };
    span.record("rows", written.rows);
    span.record("version", written.version);
    Ok(written)
}

/// The Arrow schema and version of the table's latest version.
pub(super) async fn arrow_schema(bucket: &Bucket, entry: &TableEntry) -> Result<(SchemaRef, i64)> {
    let table = open(bucket, entry).await?;
    let version = table.version().map_or(0, |v| v as i64);
    let kernel = table
        .snapshot()
        .map_err(|source| delta_error(entry, source))?
        .schema();
    let schema: arrow::datatypes::Schema = kernel
        .as_ref()
        .try_into_arrow()
        .map_err(|e| delta_error(entry, e.into()))?;
    Ok((Arc::new(schema), version))
}

/// `session` with delta-rs's query planner, which knows its write, delete and update
/// plan nodes; the memory pool, configuration and functions stay the caller's.
fn delta_session(session: &SessionState) -> Arc<SessionState> {
    Arc::new(
        SessionStateBuilder::new_from_existing(session.clone())
            .with_query_planner(DeltaPlanner::new())
            .build(),
    )
}

type Failure = Arc<std::sync::Mutex<Option<DataFusionError>>>;

/// Passes `input` through, counting its rows into `rows` and moving its first
/// error into `failure`.
fn observe(
    input: SendableRecordBatchStream,
    failure: Failure,
    rows: Arc<AtomicU64>,
) -> SendableRecordBatchStream {
    let schema = input.schema();
    let stream = input.map(move |item| match item {
        Ok(batch) => {
            rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            Ok(batch)
        }
        Err(error) => {
            let message = error.to_string();
            let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(error);
            Err(DataFusionError::Execution(message))
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// Deletes the rows matching `predicate` (all rows without one); returns the table
/// and the number of rows deleted.
pub(super) async fn delete(
    bucket: &Bucket,
    entry: &TableEntry,
    predicate: Option<Expr>,
    session: Arc<SessionState>,
) -> Result<(DeltaTable, u64)> {
    let delta = |source| delta_error(entry, source);
    let table = open(bucket, entry).await?;
    let rows_before = if predicate.is_none() {
        Some(count_rows(&table))
    } else {
        None
    };
    let mut delete = table.delete().with_session_state(delta_session(&session));
    if let Some(predicate) = predicate {
        delete = delete.with_predicate(predicate);
    }
    let (table, metrics) = delete.await.map_err(delta)?;
    // A delete of whole files is metadata-only; the count then comes from file statistics.
    let deleted = metrics
        .num_deleted_rows
        .map(|n| n as u64)
        .or(rows_before)
        .unwrap_or(0);
    Ok((table, deleted))
}

/// Sets `assignments` on the rows matching `predicate` (all rows without one);
/// returns the number of rows updated.
pub(super) async fn update(
    bucket: &Bucket,
    entry: &TableEntry,
    assignments: Vec<(String, Expr)>,
    predicate: Option<Expr>,
    session: Arc<SessionState>,
) -> Result<u64> {
    let table = open(bucket, entry).await?;
    let mut update = table.update().with_session_state(delta_session(&session));
    for (column, value) in assignments {
        update = update.with_update(Column::new_unqualified(column), value);
    }
    if let Some(predicate) = predicate {
        update = update.with_predicate(predicate);
    }
    let (_, metrics) = update.await.map_err(|source| delta_error(entry, source))?;
    Ok(metrics.num_updated_rows as u64)
}

/// Rows of the table's current version, from the Delta file statistics.
fn count_rows(table: &DeltaTable) -> u64 {
    let Ok(snapshot) = table.snapshot() else {
        return 0;
    };
    snapshot
        .log_data()
        .iter()
        .map(|file| file.num_records().unwrap_or(0) as u64)
        .sum()
}

/// One commit of a table's log, as recorded in its `commitInfo`.
#[derive(Debug, Clone)]
pub(crate) struct Commit {
    /// Table version the commit produced.
    pub version: i64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// Operation name (`WRITE`, `DELETE`, `CREATE TABLE`...).
    pub operation: Option<String>,
    /// Operation parameters, as JSON.
    pub parameters: Option<String>,
    /// Operation metrics (rows and files written...), as JSON.
    pub metrics: Option<String>,
}

/// Every commit in the table's log, oldest first, read from `_delta_log/` directly
/// (so the version numbers come from the file names, not from counting).
pub(super) async fn history(bucket: &Bucket, entry: &TableEntry) -> Result<Vec<Commit>> {
    let log = format!("{}_delta_log", entry.location);
    let mut commits = Vec::new();
    for name in bucket.list(&log).await? {
        let Some(version) = name
            .strip_suffix(".json")
            .filter(|v| v.len() == 20 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<i64>().ok())
        else {
            continue;
        };
        let Some(bytes) = bucket.get_opt(&format!("{log}/{name}")).await? else {
            continue; // removed by log cleanup since the listing
        };
        let info = bytes
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
            .find_map(|action| action.get("commitInfo").cloned())
            .unwrap_or_default();
        let text = |key: &str| info.get(key).map(|v| v.to_string());
        commits.push(Commit {
            version,
            timestamp_ms: info.get("timestamp").and_then(serde_json::Value::as_i64),
            operation: info
                .get("operation")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
            parameters: text("operationParameters"),
            metrics: text("operationMetrics"),
        });
    }
    commits.sort_by_key(|c| c.version);
    Ok(commits)
}

fn delta_error(entry: &TableEntry, source: DeltaTableError) -> CatalogError {
    let table = entry.qualified_name();
    match source {
        DeltaTableError::Transaction { source } => match source {
            TransactionError::CommitConflict(_)
            | TransactionError::MaxCommitAttempts(_)
            | TransactionError::VersionAlreadyExists(_) => CatalogError::Conflict {
                table,
                message: source.to_string(),
            },
            source => CatalogError::Delta {
                table,
                source: DeltaTableError::Transaction { source },
            },
        },
        DeltaTableError::VersionAlreadyExists(_) => CatalogError::Conflict {
            table,
            message: source.to_string(),
        },
        DeltaTableError::SchemaMismatch { msg } => CatalogError::SchemaMismatch {
            table,
            message: msg,
        },
        source => CatalogError::Delta { table, source },
    }
}

/// A scan over a stream that can run once: delta-rs takes its input as a plan.
fn one_shot_plan(input: SendableRecordBatchStream) -> DFResult<LogicalPlan> {
    let schema = input.schema();
    let partition = Arc::new(OneShot {
        schema: Arc::clone(&schema),
        stream: std::sync::Mutex::new(Some(input)),
    });
    let table = StreamingTable::try_new(schema, vec![partition])?;
    LogicalPlanBuilder::scan("input", provider_as_source(Arc::new(table)), None)?.build()
}

struct OneShot {
    schema: SchemaRef,
    stream: std::sync::Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneShot").finish_non_exhaustive()
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            Some(stream) => stream,
            None => {
                let error = DataFusionError::Internal("write input consumed twice".into());
                Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&self.schema),
                    futures::stream::once(async move { Err(error) }),
                ))
            }
        }
    }
}
