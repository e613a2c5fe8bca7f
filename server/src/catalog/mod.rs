//! The catalog: which tables exist, in which schema, in which bucket.
//!
//! Owns: `_lakehouse/catalog.json` in the primary bucket, and the Delta tables
//! it points to. May call: `storage`. Invariants:
//! - every catalog write is one atomic put of the whole document;
//! - a table is created by committing its Delta log *first* and only then adding its
//!   entry, so a listed table always exists and is readable, and a crash in between
//!   leaves at most an unlisted folder (table folders carry a unique suffix, so a
//!   leftover never collides with a later table of the same name);
//! - names are validated here: lower-case ASCII identifiers, which is what DataFusion
//!   resolves unquoted identifiers to.

mod delta;
mod document;

use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use deltalake::DeltaTable;
use tokio::sync::Mutex;

pub use document::{CatalogDocument, TableEntry};

use crate::storage::{BucketRegistry, StorageError};

/// The one catalog name Lakehouse serves.
pub const CATALOG_NAME: &str = "lakehouse";
/// Schema of user tables.
pub const DEFAULT_SCHEMA: &str = "public";
/// Read-only schema of system tables.
pub const SYSTEM_SCHEMA: &str = "system";
/// DataFusion's standard views.
pub const INFORMATION_SCHEMA: &str = "information_schema";

const CATALOG_OBJECT: &str = "_lakehouse/catalog.json";

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

    /// Creates `schema.table` in `bucket` holding `batches` (at least the schema),
    /// atomically: the table is listed only once its first Delta commit exists.
    pub async fn create_table(
        &self,
        schema: &str,
        table: &str,
        bucket: &str,
        arrow_schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<TableEntry> {
        validate_name(schema)?;
        validate_name(table)?;
        let bucket = self.buckets.get(bucket)?;
        let _writer = self.writer.lock().await;
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
        let entry = TableEntry::new(schema, table, bucket.name());
        delta::create(&bucket, &entry, arrow_schema, batches).await?;
        let mut next = (*current).clone();
        next.tables.push(entry.clone());
        self.publish(next).await?;
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

/// Accepts lower-case ASCII identifiers of at most 128 characters.
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(CatalogError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return invalid("empty"),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return invalid("must start with a lower-case letter or underscore");
        }
        _ => {}
    }
    if name.len() > 128 {
        return invalid("longer than 128 characters");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return invalid("only lower-case letters, digits and underscores are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
