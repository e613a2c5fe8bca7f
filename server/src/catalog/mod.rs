//! The catalog: which tables exist, in which schema, in which bucket.
//!
//! Owns: `_lakehouse/catalog.json` in the primary bucket, and the Delta tables
//! it points to. May call: `storage`. Invariants:
//! - every catalog write is one atomic put of the whole document;
//! - a table is created by committing its Delta log *first* and only then adding its
//!   entry, so a listed table always exists and is readable, and a crash in between
//!   leaves at most an unlisted folder (table folders carry a unique suffix, so a
//!   leftover never collides with a later table of the same name);
//! - every change to a table's rows is one Delta commit, fed by a stream that is
//!   never collected; an input error aborts the write before the commit;
//! - dropping a table unlists it first, then deletes its folder;
//! - `system` and `information_schema` are read-only;
//! - names are validated here: lower-case ASCII identifiers, which is what DataFusion
//!   resolves unquoted identifiers to.

mod convert;
mod delta;
mod document;
mod order;
mod vacuum;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, SessionState};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::DeltaTable;
use lakehouse_flight_ext::v1::ColumnPii;
use tokio::sync::Mutex;

pub use convert::{TRUNCATE_NANOSECONDS, truncate_nanoseconds};
pub use delta::{Commit, WriteMode, Written};
pub use document::{
    CatalogDocument, EvalSetEntry, IndexBuild, IndexEntry, ProfileEntry, TableEntry,
};
pub use vacuum::{REPORTED_PATHS, Swept};

use crate::storage::{BucketRegistry, StorageError};
use order::Access;

/// The one catalog name Lakehouse serves.
pub const CATALOG_NAME: &str = "lakehouse";
/// Schema of user tables.
pub const DEFAULT_SCHEMA: &str = "public";
/// Read-only schema of system tables.
pub const SYSTEM_SCHEMA: &str = "system";
/// DataFusion's standard views.
pub const INFORMATION_SCHEMA: &str = "information_schema";

const CATALOG_OBJECT: &str = "_lakehouse/catalog.json";
/// How long `lakehouse.table.vacuum` waits for the table's writes in flight to end.
const VACUUM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// How long the sweep after an unclean stop waits for a table's writes to end.
const SWEEP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);
/// Present while a server runs; still there at start means the last run did not stop
/// cleanly (or left files of an unfinished write), so every table gets swept.
const RUNNING_OBJECT: &str = "_lakehouse/running.json";

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
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Tables and schemas, persisted in the primary bucket.
#[derive(Debug)]
pub struct Catalog {
    buckets: Arc<BucketRegistry>,
    /// The committed document; readers clone the `Arc` and never wait for writers.
    current: RwLock<Arc<CatalogDocument>>,
    /// Held by writers across "compute, put, publish", so two writers never
    /// overwrite each other's change.
    writer: Mutex<()>,
    /// Writes share a table's gate; sweeps of its leftover files take it alone.
    gates: Arc<vacuum::Gates>,
    /// The order of each table's writes (appends together, rewrites alone).
    order: order::WriteOrder,
}

impl Catalog {
    /// Loads the catalog from the primary bucket (an empty one if none exists yet).
    pub async fn open(buckets: Arc<BucketRegistry>) -> Result<Self> {
        let primary = buckets.primary()?;
        let document = match primary.get_opt(CATALOG_OBJECT).await? {
            Some(bytes) => {
                CatalogDocument::decode(&bytes).map_err(|message| CatalogError::Corrupt {
                    path: format!("{}{CATALOG_OBJECT}", primary.url()),
                    message,
                })?
            }
            None => CatalogDocument::new(),
        };
        Ok(Self {
            buckets,
            current: RwLock::new(Arc::new(document)),
            writer: Mutex::new(()),
            gates: Arc::default(),
            order: order::WriteOrder::default(),
        })
    }

    /// The bucket registry tables live in.
    pub fn buckets(&self) -> &Arc<BucketRegistry> {
        &self.buckets
    }

    /// A consistent view of the committed catalog.
    pub fn snapshot(&self) -> Arc<CatalogDocument> {
        // A poisoned lock still holds a complete document: publishing is a single assignment.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// User schemas, sorted.
    pub fn schema_names(&self) -> Vec<String> {
        self.snapshot().schemas.clone()
    }

    /// Entry of `schema.table`.
    pub fn table(&self, schema: &str, table: &str) -> Result<TableEntry> {
        let doc = self.snapshot();
        if !doc.schemas.iter().any(|s| s == schema) {
            return Err(CatalogError::SchemaNotFound(schema.to_string()));
        }
        doc.table(schema, table)
            .cloned()
            .ok_or_else(|| CatalogError::TableNotFound {
                schema: schema.to_string(),
                table: table.to_string(),
            })
    }

    /// Opens the latest version of a listed table.
    pub async fn open_table(&self, entry: &TableEntry) -> Result<DeltaTable> {
        let bucket = self.buckets.get(&entry.bucket)?;
        delta::open(&bucket, entry).await
    }

    /// Opens the table as of `version` (time travel).
    pub async fn open_table_version(&self, entry: &TableEntry, version: u64) -> Result<DeltaTable> {
        if let Some(oldest) = entry.vacuumed_before
            && i64::try_from(version).is_ok_and(|v| v < oldest)
        {
            return Err(CatalogError::VersionVacuumed {
                table: entry.qualified_name(),
                version: version as i64,
                oldest,
            });
        }
        let bucket = self.buckets.get(&entry.bucket)?;
        delta::open_version(&bucket, entry, version).await
    }

    /// The Arrow schema of the table's latest version.
    pub async fn table_schema(&self, entry: &TableEntry) -> Result<SchemaRef> {
        Ok(self.table_state(entry).await?.0)
    }

    /// The Arrow schema and the version of the table's latest version.
    pub async fn table_state(&self, entry: &TableEntry) -> Result<(SchemaRef, i64)> {
        let bucket = self.buckets.get(&entry.bucket)?;
        delta::arrow_schema(&bucket, entry).await
    }

    /// Every commit of the table, oldest first.
    pub async fn history(&self, entry: &TableEntry) -> Result<Vec<Commit>> {
        let bucket = self.buckets.get(&entry.bucket)?;
        delta::history(&bucket, entry).await
    }

    /// Creates schema `name`; `Ok(false)` when it existed and `if_not_exists` is set.
    pub async fn create_schema(&self, name: &str, if_not_exists: bool) -> Result<bool> {
        validate_schema_name(name)?;
        let _writer = self.writer.lock().await;
        let current = self.snapshot();
        if current.schemas.iter().any(|s| s == name) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(CatalogError::SchemaExists(name.to_string()))
            };
        }
        let mut next = (*current).clone();
        next.schemas.push(name.to_string());
        next.schemas.sort();
        self.publish(next).await?;
        Ok(true)
    }

    /// Drops schema `name`; with `cascade` its tables go too. `Ok(false)` when it
    /// did not exist and `if_exists` is set.
    pub async fn drop_schema(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        validate_schema_name(name)?;
        let dropped = {
            let _writer = self.writer.lock().await;
            let current = self.snapshot();
            if !current.schemas.iter().any(|s| s == name) {
                return if if_exists {
                    Ok(false)
                } else {
                    Err(CatalogError::SchemaNotFound(name.to_string()))
                };
            }
            let tables: Vec<TableEntry> = current.tables_in(name).into_iter().cloned().collect();
            if !tables.is_empty() && !cascade {
                return Err(CatalogError::SchemaNotEmpty {
                    schema: name.to_string(),
                    tables: tables.len(),
                });
            }
            let mut next = (*current).clone();
            next.schemas.retain(|s| s != name);
            next.tables.retain(|t| t.schema != name);
            self.publish(next).await?;
            tables
        };
        for entry in &dropped {
            self.remove_files(entry).await;
        }
        Ok(true)
    }

    /// Unlists `schema.table`, then deletes its files. `Ok(None)` when it did not
    /// exist and `if_exists` is set.
    pub async fn drop_table(
        &self,
        schema: &str,
        table: &str,
        if_exists: bool,
    ) -> Result<Option<TableEntry>> {
        validate_schema_name(schema)?;
        let entry = {
            let _writer = self.writer.lock().await;
            let current = self.snapshot();
            let entry = match self.table(schema, table) {
                Ok(entry) => entry,
                Err(CatalogError::TableNotFound { .. }) if if_exists => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut next = (*current).clone();
            next.tables
                .retain(|t| !(t.schema == schema && t.name == table));
            self.publish(next).await?;
            entry
        };
        self.remove_files(&entry).await;
        Ok(Some(entry))
    }

    /// Deletes an unlisted table's folder; a failure leaves an invisible orphan, logged.
    async fn remove_files(&self, entry: &TableEntry) {
        self.delete_folder(&entry.bucket, &entry.location, &entry.qualified_name())
            .await;
    }

    /// Deletes a folder no entry points at any more; a failure is logged (the files
    /// are orphans, not data).
    async fn delete_folder(&self, bucket: &str, location: &str, owner: &str) {
        let result = match self.buckets.get(bucket) {
            Ok(bucket) => bucket.delete_folder(location).await,
            Err(e) => Err(e),
        };
        if let Err(error) = result {
            tracing::warn!(%owner, %location, %error,
                "no longer listed but its files could not be deleted");
        }
    }

    /// Creates `schema.table` in `bucket` from a stream of rows, in one Delta commit;
    /// returns its entry and the rows written.
    ///
    /// The data is written first, into a fresh folder and without holding the catalog
    /// lock; the table is listed only after that commit. If the name was taken in the
    /// meantime, or the write fails, the folder is removed and nothing is listed.
    pub async fn create_table_from(
        &self,
        schema: &str,
        table: &str,
        bucket: &str,
        input: SendableRecordBatchStream,
        session: Arc<SessionState>,
    ) -> Result<(TableEntry, Written)> {
        validate_schema_name(schema)?;
        validate_name(table)?;
        let bucket = self.buckets.get(bucket)?;
        self.check_free(schema, table)?;
        let entry = TableEntry::new(schema, table, bucket.name());
        let written = delta::write(&bucket, &entry, WriteMode::Create, input, session).await;
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                self.remove_files(&entry).await;
                return Err(e);
            }
        };
        let published = {
            let _writer = self.writer.lock().await;
            match self.check_free(schema, table) {
                Ok(()) => {
                    let mut next = (*self.snapshot()).clone();
                    next.tables.push(entry.clone());
                    self.publish(next).await
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = published {
            self.remove_files(&entry).await;
            return Err(e);
        }
        Ok((entry, written))
    }

    /// Appends or replaces the rows of a listed table in one Delta commit; returns
    /// what it committed.
    pub async fn write(
        &self,
        entry: &TableEntry,
        mode: WriteMode,
        input: SendableRecordBatchStream,
        session: Arc<SessionState>,
    ) -> Result<Written> {
        let access = match mode {
            WriteMode::Append => Access::Append,
            WriteMode::Create | WriteMode::Replace => Access::Rewrite,
        };
        self.guarded(entry, access, async |bucket| {
            delta::write(&bucket, entry, mode, input, session).await
        })
        .await
    }

    /// Runs `change` on the table's files holding its write gate; if it does not
    /// commit (an error, or the call dropped), what it put down is swept.
    /// The write waits for its turn on the table first (see [`order`]).
    async fn guarded<T>(
        &self,
        entry: &TableEntry,
        access: Access,
        change: impl AsyncFnOnce(Arc<crate::storage::Bucket>) -> Result<T>,
    ) -> Result<T> {
        let bucket = self.buckets.get(&entry.bucket)?;
        let _turn = self
            .order
            .enter(&format!("{}:{}", entry.bucket, entry.location), access)
            .await;
        let guard = self.gates.write(Arc::clone(&bucket), &entry.location).await;
        let done = change(bucket).await?;
        guard.committed();
        Ok(done)
    }

    /// Deletes the rows matching `predicate` (all without one) in one Delta commit;
    /// returns how many were deleted.
    pub async fn delete_rows(
        &self,
        entry: &TableEntry,
        predicate: Option<Expr>,
        session: Arc<SessionState>,
    ) -> Result<u64> {
        self.guarded(entry, Access::Rewrite, async |bucket| {
            let (_, deleted) = delta::delete(&bucket, entry, predicate, session).await?;
            Ok(deleted)
        })
        .await
    }

    /// Updates the rows matching `predicate` (all without one) in one Delta commit;
    /// returns how many were updated.
    pub async fn update_rows(
        &self,
        entry: &TableEntry,
        assignments: Vec<(String, Expr)>,
        predicate: Option<Expr>,
        session: Arc<SessionState>,
    ) -> Result<u64> {
        self.guarded(entry, Access::Rewrite, async |bucket| {
            delta::update(&bucket, entry, assignments, predicate, session).await
        })
        .await
    }

    /// Records the detector's PII findings for `schema.table`: each replaces the
    /// earlier finding of its column, other columns keep theirs.
    pub async fn record_pii(
        &self,
        schema: &str,
        table: &str,
        findings: Vec<ColumnPii>,
        replace_all: bool,
    ) -> Result<TableEntry> {
        self.update_entry(schema, table, |entry| {
            if replace_all {
                entry.pii.clear();
            }
            for finding in findings {
                entry.pii.retain(|f| f.column != finding.column);
                entry.pii.push(finding);
            }
            entry.pii.sort_by(|a, b| a.column.cmp(&b.column));
            Ok(())
        })
        .await
    }

    /// Records a manual PII verdict on a column (`entity_type` empty: not PII), or
    /// with `clear` removes it. The column must exist.
    pub async fn mark_pii(
        &self,
        schema: &str,
        table: &str,
        column: &str,
        entity_type: &str,
        clear: bool,
    ) -> Result<TableEntry> {
        let entry = self.table(schema, table)?;
        let columns = self.table_schema(&entry).await?;
        if columns.field_with_name(column).is_err() {
            return Err(CatalogError::ColumnNotFound {
                table: entry.qualified_name(),
                column: column.to_string(),
            });
        }
        self.update_entry(schema, table, |entry| {
            entry.pii_manual.retain(|f| f.column != column);
            if !clear {
                entry.pii_manual.push(ColumnPii {
                    column: column.to_string(),
                    entity_type: entity_type.to_string(),
                    confidence: 1.0,
                    manual: true,
                    detector_version: "manual".into(),
                    ..ColumnPii::default()
                });
                entry.pii_manual.sort_by(|a, b| a.column.cmp(&b.column));
            }
            Ok(())
        })
        .await
    }

    /// Stores an incremental-ingest watermark with `schema.table`.
    pub async fn set_watermark(
        &self,
        schema: &str,
        table: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        self.update_entry(schema, table, |entry| {
            entry.watermarks.insert(key.to_string(), value.to_string());
            Ok(())
        })
        .await
        .map(drop)
    }

    /// The vector index `name`.
    pub fn index(&self, name: &str) -> Option<IndexEntry> {
        self.snapshot()
            .indexes
            .iter()
            .find(|i| i.name == name)
            .cloned()
    }

    /// Records an index (its files are written); returns the entry it replaced.
    pub async fn put_index(&self, entry: IndexEntry) -> Result<Option<IndexEntry>> {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        let old = upsert(&mut next.indexes, entry, |i| &i.name);
        self.publish(next).await?;
        Ok(old)
    }

    /// Changes the entry of index `name` if it is still the build at `location` (a
    /// rebuild or drop in between wins); returns the updated entry, `None` if not.
    pub async fn update_index(
        &self,
        name: &str,
        location: &str,
        change: impl FnOnce(&mut IndexEntry),
    ) -> Result<Option<IndexEntry>> {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        let Some(entry) = next
            .indexes
            .iter_mut()
            .find(|i| i.name == name && i.location == location)
        else {
            return Ok(None);
        };
        change(entry);
        let updated = entry.clone();
        self.publish(next).await?;
        Ok(Some(updated))
    }

    /// Applies `change` to the document and publishes the result, in turn with every
    /// other catalog write; when `change` refuses, nothing is written.
    pub async fn change<T, E: From<CatalogError>>(
        &self,
        change: impl FnOnce(&mut CatalogDocument) -> Result<T, E>,
    ) -> Result<T, E> {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        let outcome = change(&mut next)?;
        self.publish(next).await?;
        Ok(outcome)
    }

    /// The eval set `name`.
    pub fn eval_set(&self, name: &str) -> Option<EvalSetEntry> {
        self.snapshot()
            .eval_sets
            .iter()
            .find(|e| e.name == name)
            .cloned()
    }

    /// Records an eval set (its files are written); returns the entry it replaced.
    pub async fn put_eval_set(&self, entry: EvalSetEntry) -> Result<Option<EvalSetEntry>> {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        let old = upsert(&mut next.eval_sets, entry, |e| &e.name);
        self.publish(next).await?;
        Ok(old)
    }

    /// Deletes the files of an eval set that is no longer recorded.
    pub async fn remove_eval_set_files(&self, entry: &EvalSetEntry) {
        self.delete_folder(&entry.bucket, &entry.location, &entry.name)
            .await;
    }

    /// Deletes the files of an index that is no longer recorded.
    pub async fn remove_index_files(&self, entry: &IndexEntry) {
        self.delete_folder(&entry.bucket, &entry.location, &entry.name)
            .await;
    }

    /// Deletes the folders of writes that never committed: a table, index or eval set
    /// folder (by the names this server gives them) that no catalog entry points at —
    /// what a crash in the middle of a create leaves. Only at start, before any call is
    /// served (a create in flight writes its folder before it is listed). Returns the
    /// folders removed.
    pub async fn sweep_orphans(&self) -> Vec<String> {
        let doc = self.snapshot();
        let mut removed = Vec::new();
        for bucket in self.buckets.list() {
            let name = bucket.name().to_string();
            let known: HashSet<&str> = doc
                .tables
                .iter()
                .filter(|t| t.bucket == name)
                .map(|t| t.location.as_str())
                .chain(
                    doc.indexes
                        .iter()
                        .filter(|i| i.bucket == name)
                        .map(|i| i.location.as_str()),
                )
                .chain(
                    doc.eval_sets
                        .iter()
                        .filter(|e| e.bucket == name)
                        .map(|e| e.location.as_str()),
                )
                .collect();
            let mut candidates = Vec::new();
            match bucket.folders("tables/").await {
                Ok(schemas) => {
                    for schema in schemas {
                        let folder = format!("tables/{schema}/");
                        match bucket.folders(&folder).await {
                            Ok(tables) => candidates
                                .extend(tables.into_iter().map(|t| format!("{folder}{t}/"))),
                            Err(error) => tracing::warn!(bucket = %name, %folder, %error,
                                "cannot list for the orphan sweep"),
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(bucket = %name, %error, "cannot list for the orphan sweep");
                    continue;
                }
            }
            for top in ["indexes/", "evalsets/"] {
                if let Ok(folders) = bucket.folders(top).await {
                    candidates.extend(folders.into_iter().map(|f| format!("{top}{f}/")));
                }
            }
            for folder in candidates {
                if known.contains(folder.as_str()) || !generated_folder(&folder) {
                    continue;
                }
                match bucket.delete_folder(&folder).await {
                    Ok(objects) => {
                        tracing::warn!(bucket = %name, %folder, objects,
                            "removed the folder of a write that never committed");
                        removed.push(format!("{name}:{folder}"));
                    }
                    Err(error) => {
                        tracing::warn!(bucket = %name, %folder, %error, "cannot remove an orphan folder");
                    }
                }
            }
        }
        removed
    }

    /// What the catalog keeps in `bucket`: tables there, indexes whose files are
    /// there or whose table is, eval sets whose files are there or whose index goes.
    pub fn in_bucket(&self, bucket: &str) -> BucketContents {
        let doc = self.snapshot();
        let tables: Vec<String> = doc
            .tables
            .iter()
            .filter(|t| t.bucket == bucket)
            .map(TableEntry::qualified_name)
            .collect();
        let indexes: Vec<String> = doc
            .indexes
            .iter()
            .filter(|i| i.bucket == bucket || tables.contains(&format!("{}.{}", i.schema, i.table)))
            .map(|i| i.name.clone())
            .collect();
        let eval_sets = doc
            .eval_sets
            .iter()
            .filter(|e| e.bucket == bucket || indexes.contains(&e.index))
            .map(|e| e.name.clone())
            .collect();
        BucketContents {
            tables,
            indexes,
            eval_sets,
        }
    }

    /// Unlists, in one change, everything [`Self::in_bucket`] finds for `bucket`
    /// (a forced bucket removal); the files are left where they are.
    pub async fn forget_bucket(&self, bucket: &str) -> Result<BucketContents> {
        let _writer = self.writer.lock().await;
        let gone = self.in_bucket(bucket);
        if gone.is_empty() {
            return Ok(gone);
        }
        let mut next = (*self.snapshot()).clone();
        next.tables
            .retain(|t| !gone.tables.contains(&t.qualified_name()));
        next.indexes.retain(|i| !gone.indexes.contains(&i.name));
        next.eval_sets.retain(|e| !gone.eval_sets.contains(&e.name));
        self.publish(next).await?;
        Ok(gone)
    }

    /// Writes a Delta table that the catalog does not list (an index's vectors) in
    /// one commit: its first (`WriteMode::Create`) or more rows (`Append`).
    pub async fn write_unlisted(
        &self,
        entry: &TableEntry,
        mode: WriteMode,
        input: SendableRecordBatchStream,
        session: Arc<SessionState>,
    ) -> Result<Written> {
        if mode == WriteMode::Create {
            // A failed first write leaves a folder that is not listed yet: the caller
            // removes it (or the start's folder sweep does).
            let bucket = self.buckets.get(&entry.bucket)?;
            return delta::write(&bucket, entry, mode, input, session).await;
        }
        self.write(entry, mode, input, session).await
    }

    /// Deletes the files of `schema.table` that no version reads: those of writes that
    /// never committed, and those that commits before `retain` ago removed (versions
    /// that read them become unreadable, which the entry records). With `dry_run`,
    /// only reports. Starts once no write to the table is in flight; new writes wait
    /// while it deletes.
    pub async fn vacuum_table(
        &self,
        schema: &str,
        table: &str,
        retain: std::time::Duration,
        dry_run: bool,
    ) -> Result<(TableEntry, Swept)> {
        let entry = self.table(schema, table)?;
        let bucket = self.buckets.get(&entry.bucket)?;
        let retain_ms = i64::try_from(retain.as_millis()).unwrap_or(i64::MAX);
        let expire = vacuum::Expire {
            removed_before_ms: chrono::Utc::now()
                .timestamp_millis()
                .saturating_sub(retain_ms),
            dry_run,
        };
        let mut swept = {
            let _alone = self
                .gates
                .alone(bucket.name(), &entry.location, VACUUM_PATIENCE)
                .await
                .ok_or_else(|| CatalogError::Busy {
                    table: entry.qualified_name(),
                    waited: VACUUM_PATIENCE,
                })?;
            vacuum::sweep(
                &bucket,
                &entry.location,
                &entry.qualified_name(),
                Some(expire),
            )
            .await?
        };
        let before = entry.vacuumed_before.unwrap_or(0);
        swept.oldest_readable = swept.oldest_readable.max(before);
        if dry_run || swept.oldest_readable <= before {
            return Ok((entry, swept));
        }
        let oldest = swept.oldest_readable;
        let entry = self
            .update_entry(schema, table, |entry| {
                entry.vacuumed_before = Some(oldest);
                Ok(())
            })
            .await?;
        Ok((entry, swept))
    }

    /// Notes that a server runs on this catalog; `true` when the last run did not
    /// stop cleanly (killed, or stopped with a write unfinished), so files of writes
    /// that never committed may be left in tables: see [`Catalog::sweep_tables`].
    pub async fn begin_run(&self) -> Result<bool> {
        let primary = self.buckets.primary()?;
        let unclean = primary.get_opt(RUNNING_OBJECT).await?.is_some();
        let note = serde_json::json!({
            "pid": std::process::id(),
            "started_at": chrono::Utc::now().to_rfc3339(),
        });
        primary.put(RUNNING_OBJECT, note.to_string().into()).await?;
        Ok(unclean)
    }

    /// Notes a clean stop, unless a write is still unfinished or a sweep failed (the
    /// next start then sweeps every table). Waits up to `wait` for sweeps of writes
    /// that just failed.
    pub async fn end_run(&self, wait: std::time::Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.gates.quiet() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if !self.gates.quiet() {
            return Ok(false);
        }
        self.buckets.primary()?.delete(RUNNING_OBJECT).await?;
        Ok(true)
    }

    /// Deletes what writes that never committed left in every Delta table the
    /// catalog knows (tables, and the vectors of indexes and eval sets), one table at
    /// a time while the server serves. Returns the files and bytes deleted.
    pub async fn sweep_tables(&self) -> (usize, u64) {
        let doc = self.snapshot();
        let mut tables: Vec<(String, String)> = doc
            .tables
            .iter()
            .map(|t| (t.bucket.clone(), t.location.clone()))
            .collect();
        let folders = doc
            .indexes
            .iter()
            .map(|i| (i.bucket.clone(), i.location.clone()))
            .chain(
                doc.eval_sets
                    .iter()
                    .map(|e| (e.bucket.clone(), e.location.clone())),
            );
        for (bucket, folder) in folders {
            let Ok(store) = self.buckets.get(&bucket) else {
                continue;
            };
            for sub in store.folders(&folder).await.unwrap_or_default() {
                let inner = format!("{folder}{sub}/");
                let is_delta = store
                    .folders(&inner)
                    .await
                    .is_ok_and(|f| f.iter().any(|n| n == "_delta_log"));
                if is_delta {
                    tables.push((bucket.clone(), inner));
                }
            }
        }
        let (mut files, mut bytes) = (0, 0);
        for (bucket, location) in tables {
            let Ok(store) = self.buckets.get(&bucket) else {
                continue;
            };
            // A write in flight now (the server serves meanwhile) gets time to end.
            let Some(_alone) = self.gates.alone(&bucket, &location, SWEEP_PATIENCE).await else {
                self.gates.mark_dirty();
                tracing::warn!(%bucket, table = %location,
                    "a write kept the table busy; the next start sweeps it");
                continue;
            };
            match vacuum::sweep(&store, &location, &format!("{bucket}:{location}"), None).await {
                Ok(swept) => {
                    let found = swept.uncommitted.len() + swept.staged.len();
                    if found > 0 {
                        tracing::warn!(%bucket, table = %location, files = found, bytes = swept.bytes(),
                            "deleted the files of a write that never committed");
                    }
                    files += found;
                    bytes += swept.bytes();
                }
                Err(error) => {
                    self.gates.mark_dirty();
                    tracing::warn!(%bucket, table = %location, %error,
                        "cannot sweep the files of unfinished writes");
                }
            }
        }
        (files, bytes)
    }

    /// Changes the entry of a listed table and persists the catalog.
    async fn update_entry(
        &self,
        schema: &str,
        table: &str,
        change: impl FnOnce(&mut TableEntry) -> Result<()>,
    ) -> Result<TableEntry> {
        let _writer = self.writer.lock().await;
        self.table(schema, table)?;
        let mut next = (*self.snapshot()).clone();
        let Some(entry) = next
            .tables
            .iter_mut()
            .find(|t| t.schema == schema && t.name == table)
        else {
            return Err(CatalogError::TableNotFound {
                schema: schema.into(),
                table: table.into(),
            });
        };
        change(entry)?;
        let updated = entry.clone();
        self.publish(next).await?;
        Ok(updated)
    }

    /// Fails unless `schema` exists and holds no table named `table`.
    fn check_free(&self, schema: &str, table: &str) -> Result<()> {
        let current = self.snapshot();
        if !current.schemas.iter().any(|s| s == schema) {
            return Err(CatalogError::SchemaNotFound(schema.to_string()));
        }
        if current.table(schema, table).is_some() {
            return Err(CatalogError::TableExists {
                schema: schema.into(),
                table: table.into(),
            });
        }
        Ok(())
    }

    /// Creates `schema.table` in `bucket` holding `batches` (at least the schema),
    /// atomically: the table is listed only once its first Delta commit exists.
    /// For callers without a query session (the demo data, tests).
    pub async fn create_table(
        &self,
        schema: &str,
        table: &str,
        bucket: &str,
        arrow_schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<TableEntry> {
        let input: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
            arrow_schema,
            futures::stream::iter(batches.into_iter().map(Ok)),
        ));
        let session = Arc::new(SessionStateBuilder::new().with_default_features().build());
        let (entry, _) = self
            .create_table_from(schema, table, bucket, input, session)
            .await?;
        Ok(entry)
    }

    /// Persists `next` and makes it current. Callers hold `self.writer`.
    async fn publish(&self, next: CatalogDocument) -> Result<()> {
        let bytes = next.encode().map_err(|message| CatalogError::Corrupt {
            path: CATALOG_OBJECT.into(),
            message,
        })?;
        self.buckets
            .primary()?
            .put(CATALOG_OBJECT, bytes.into())
            .await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }
}

/// Whether `folder` ("tables/s/name-0123456789ab/", "indexes/n-0123456789ab/") ends in
/// the 12-hex-digit suffix this server gives every folder it creates: the sweep never
/// touches folders someone else put in a bucket.
fn generated_folder(folder: &str) -> bool {
    let last = folder
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    last.rsplit_once('-').is_some_and(|(name, suffix)| {
        !name.is_empty() && suffix.len() == 12 && suffix.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// Catalog entries that live in one bucket (see [`Catalog::in_bucket`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketContents {
    /// `schema.table` of the tables.
    pub tables: Vec<String>,
    /// Index names.
    pub indexes: Vec<String>,
    /// Eval set names.
    pub eval_sets: Vec<String>,
}

impl BucketContents {
    /// Nothing listed.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.indexes.is_empty() && self.eval_sets.is_empty()
    }
}

/// A user schema name: a valid identifier that is not one of the built-in schemas.
fn validate_schema_name(name: &str) -> Result<()> {
    if name == SYSTEM_SCHEMA || name == INFORMATION_SCHEMA {
        return Err(CatalogError::ReadOnly(name.to_string()));
    }
    validate_name(name)
}

/// Accepts lower-case ASCII identifiers of at most 128 characters.
pub fn validate_name(name: &str) -> Result<()> {
    crate::names::check(name).map_err(|reason| CatalogError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// Puts `item` in the list kept sorted by name, replacing (and returning) the item of
/// the same name.
fn upsert<T>(items: &mut Vec<T>, item: T, name: impl Fn(&T) -> &String) -> Option<T> {
    let old = items
        .iter()
        .position(|i| name(i) == name(&item))
        .map(|at| items.remove(at));
    items.push(item);
    items.sort_by(|a, b| name(a).cmp(name(b)));
    old
}

#[cfg(test)]
mod tests;
