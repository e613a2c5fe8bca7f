//! The catalog: which tables exist, in which schema, in which bucket.
//!
//! Owns: `_lakehouse/catalog.json` in the primary bucket, and the Delta tables
//! it points to. May call: `storage` and the leaves `config`, `names`. Invariants:
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
mod entries;
mod error;
mod order;
mod sweep;
mod vacuum;

use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, SessionState};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::DeltaTable;
use tokio::sync::Mutex;

pub(crate) use convert::{TRUNCATE_NANOSECONDS, truncate_nanoseconds};
pub(crate) use delta::{Commit, WriteMode, Written};
pub(crate) use document::{
    CatalogDocument, EvalSetEntry, IndexBuild, IndexEntry, ProfileEntry, TableEntry,
};
pub(crate) use error::{CatalogError, Result};
pub(crate) use vacuum::{REPORTED_PATHS, Swept};

use crate::storage::BucketRegistry;
use order::Access;

/// The one catalog name Lakehouse serves.
pub(crate) const CATALOG_NAME: &str = "lakehouse";
/// Schema of user tables.
pub(crate) const DEFAULT_SCHEMA: &str = "public";
/// Read-only schema of system tables.
pub(crate) const SYSTEM_SCHEMA: &str = "system";
/// DataFusion's standard views.
pub(crate) const INFORMATION_SCHEMA: &str = "information_schema";

const CATALOG_OBJECT: &str = "_lakehouse/catalog.json";
/// How long `lakehouse.table.vacuum` waits for the table's writes in flight to end.
const VACUUM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Tables and schemas, persisted in the primary bucket.
#[derive(Debug)]
pub(crate) struct Catalog {
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
    pub(crate) async fn open(buckets: Arc<BucketRegistry>) -> Result<Self> {
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
    pub(crate) fn buckets(&self) -> &Arc<BucketRegistry> {
        &self.buckets
    }

    /// A consistent view of the committed catalog.
    pub(crate) fn snapshot(&self) -> Arc<CatalogDocument> {
        // A poisoned lock still holds a complete document: publishing is a single assignment.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// User schemas, sorted.
    pub(crate) fn schema_names(&self) -> Vec<String> {
        self.snapshot().schemas.clone()
    }

    /// Entry of `schema.table`.
    pub(crate) fn table(&self, schema: &str, table: &str) -> Result<TableEntry> {
        lookup(&self.snapshot(), schema, table)
    }

    /// Opens the latest version of a listed table.
    pub(crate) async fn open_table(&self, entry: &TableEntry) -> Result<DeltaTable> {
        let bucket = self.buckets.get(&entry.bucket)?;
        delta::open(&bucket, entry).await
    }

    /// Opens the table as of `version` (time travel).
    pub(crate) async fn open_table_version(
        &self,
        entry: &TableEntry,
        version: u64,
    ) -> Result<DeltaTable> {
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
    pub(crate) async fn table_schema(&self, entry: &TableEntry) -> Result<SchemaRef> {
        Ok(self.table_state(entry).await?.0)
    }

    /// The Arrow schema and the version of the table's latest version.
    pub(crate) async fn table_state(&self, entry: &TableEntry) -> Result<(SchemaRef, i64)> {
        let bucket = self.buckets.get(&entry.bucket)?;
        delta::arrow_schema(&bucket, entry).await
    }

    /// Every commit of the table, oldest first.
    pub(crate) async fn history(&self, entry: &TableEntry) -> Result<Vec<Commit>> {
        let bucket = self.buckets.get(&entry.bucket)?;
        delta::history(&bucket, entry).await
    }

    /// Creates schema `name`; `Ok(false)` when it existed and `if_not_exists` is set.
    pub(crate) async fn create_schema(&self, name: &str, if_not_exists: bool) -> Result<bool> {
        validate_schema_name(name)?;
        self.change(|doc| {
            if doc.schemas.iter().any(|s| s == name) {
                return if if_not_exists {
                    Ok(false)
                } else {
                    Err(CatalogError::SchemaExists(name.to_string()))
                };
            }
            doc.schemas.push(name.to_string());
            doc.schemas.sort();
            Ok(true)
        })
        .await
    }

    /// Drops schema `name`; with `cascade` its tables go too. `Ok(false)` when it
    /// did not exist and `if_exists` is set.
    pub(crate) async fn drop_schema(
        &self,
        name: &str,
        if_exists: bool,
        cascade: bool,
    ) -> Result<bool> {
        validate_schema_name(name)?;
        let dropped = self
            .change(|doc| {
                if !doc.schemas.iter().any(|s| s == name) {
                    return if if_exists {
                        Ok(None)
                    } else {
                        Err(CatalogError::SchemaNotFound(name.to_string()))
                    };
                }
                let tables: Vec<TableEntry> = doc.tables_in(name).into_iter().cloned().collect();
                if !tables.is_empty() && !cascade {
                    return Err(CatalogError::SchemaNotEmpty {
                        schema: name.to_string(),
                        tables: tables.len(),
                    });
                }
                doc.schemas.retain(|s| s != name);
                doc.tables.retain(|t| t.schema != name);
                Ok(Some(tables))
            })
            .await?;
        let Some(dropped) = dropped else {
            return Ok(false);
        };
        for entry in &dropped {
            self.remove_files(entry).await;
        }
        Ok(true)
    }

    /// Unlists `schema.table`, then deletes its files. `Ok(None)` when it did not
    /// exist and `if_exists` is set.
    pub(crate) async fn drop_table(
        &self,
        schema: &str,
        table: &str,
        if_exists: bool,
    ) -> Result<Option<TableEntry>> {
        validate_schema_name(schema)?;
        let entry = self
            .change(|doc| {
                let entry = match lookup(doc, schema, table) {
                    Ok(entry) => entry,
                    Err(CatalogError::TableNotFound { .. }) if if_exists => return Ok(None),
                    Err(e) => return Err(e),
                };
                doc.tables
                    .retain(|t| !(t.schema == schema && t.name == table));
                Ok(Some(entry))
            })
            .await?;
        if let Some(entry) = &entry {
            self.remove_files(entry).await;
        }
        Ok(entry)
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
    pub(crate) async fn create_table_from(
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
        check_free(&self.snapshot(), schema, table)?;
        let entry = TableEntry::new(schema, table, bucket.name());
        let written = delta::write(&bucket, &entry, WriteMode::Create, input, session).await;
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                self.remove_files(&entry).await;
                return Err(e);
            }
        };
        let published = self
            .change(|doc| {
                check_free(doc, schema, table)?;
                doc.tables.push(entry.clone());
                Ok(())
            })
            .await;
        if let Err(e) = published {
            self.remove_files(&entry).await;
            return Err(e);
        }
        Ok((entry, written))
    }

    /// Appends or replaces the rows of a listed table in one Delta commit; returns
    /// what it committed.
    pub(crate) async fn write(
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
    pub(crate) async fn delete_rows(
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
    pub(crate) async fn update_rows(
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

    /// Writes a Delta table that the catalog does not list (an index's vectors) in
    /// one commit: its first (`WriteMode::Create`) or more rows (`Append`).
    pub(crate) async fn write_unlisted(
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
    pub(crate) async fn vacuum_table(
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

    /// Changes the entry of a listed table and persists the catalog.
    async fn update_entry(
        &self,
        schema: &str,
        table: &str,
        change: impl FnOnce(&mut TableEntry) -> Result<()>,
    ) -> Result<TableEntry> {
        self.change(|doc| {
            let Some(entry) = doc
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
            Ok(entry.clone())
        })
        .await
    }

    /// Creates `schema.table` in `bucket` holding `batches` (at least the schema),
    /// atomically: the table is listed only once its first Delta commit exists.
    /// For callers without a query session (the demo data, tests).
    pub(crate) async fn create_table(
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

/// The entry of `schema.table` in `doc`.
fn lookup(doc: &CatalogDocument, schema: &str, table: &str) -> Result<TableEntry> {
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

/// Fails unless `schema` exists in `doc` and holds no table named `table`.
fn check_free(doc: &CatalogDocument, schema: &str, table: &str) -> Result<()> {
    if !doc.schemas.iter().any(|s| s == schema) {
        return Err(CatalogError::SchemaNotFound(schema.to_string()));
    }
    if doc.table(schema, table).is_some() {
        return Err(CatalogError::TableExists {
            schema: schema.into(),
            table: table.into(),
        });
    }
    Ok(())
}

/// A user schema name: a valid identifier that is not one of the built-in schemas.
fn validate_schema_name(name: &str) -> Result<()> {
    if name == SYSTEM_SCHEMA || name == INFORMATION_SCHEMA {
        return Err(CatalogError::ReadOnly(name.to_string()));
    }
    validate_name(name)
}

/// Accepts lower-case ASCII identifiers of at most 128 characters.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    crate::names::check(name).map_err(|reason| CatalogError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// Splits `schema.table` (the schema defaults to `public`), both names checked.
pub(crate) fn split_table(name: &str) -> Result<(String, String)> {
    let name = name.trim();
    let (schema, table) = match name.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => (DEFAULT_SCHEMA.to_string(), name.to_string()),
    };
    validate_name(&schema)?;
    validate_name(&table)?;
    Ok((schema, table))
}

#[cfg(test)]
mod tests;
