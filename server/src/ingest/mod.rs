//! Getting data into tables.
//!
//! Owns: the rules of bulk ingest (ADBC `adbc_ingest`, Flight SQL
//! `CommandStatementIngest`): which mode creates, appends to or replaces a table.
//! May call: `catalog`, `query`. Invariants:
//! - rows stream from the client into one Delta commit; nothing holds the whole
//!   upload in memory, and a failed or abandoned upload commits nothing;
//! - a new table appears in the catalog only after its data is committed.

use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;

use crate::catalog::{CatalogError, WriteMode};
use crate::query::{QueryEngine, SessionDefaults};
use crate::storage::PRIMARY;

/// What to do when the target table exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Refuse (ADBC mode `create`).
    Fail,
    /// Add the rows (`append`, `create_append`).
    Append,
    /// Replace rows and schema with the upload, as a new version (`replace`).
    Replace,
}

/// What to do when the target table does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Create it with the upload's schema.
    Create,
    /// Refuse (ADBC mode `append`).
    Fail,
}

/// One bulk upload.
#[derive(Debug, Clone)]
pub struct BulkIngest {
    /// Target schema.
    pub schema: String,
    /// Target table.
    pub table: String,
    /// Behaviour when the table exists.
    pub if_exists: IfExists,
    /// Behaviour when it does not.
    pub if_missing: IfMissing,
}

/// Writes `rows` into the target as one commit; returns the number of rows written.
pub async fn bulk_ingest(
    engine: &QueryEngine,
    request: &BulkIngest,
    rows: SendableRecordBatchStream,
) -> Result<u64, CatalogError> {
    let catalog = engine.catalog();
    let session = Arc::new(
        engine
            .session(&SessionDefaults {
                schema: request.schema.clone(),
                ..SessionDefaults::default()
            })
            .state(),
    );
    match catalog.table(&request.schema, &request.table) {
        Ok(entry) => {
            let mode = match request.if_exists {
                IfExists::Fail => {
                    return Err(CatalogError::TableExists {
                        schema: request.schema.clone(),
                        table: request.table.clone(),
                    });
                }
                IfExists::Append => WriteMode::Append,
                IfExists::Replace => WriteMode::Replace,
            };
            catalog.write(&entry, mode, rows, session).await
        }
        Err(CatalogError::TableNotFound { .. }) if request.if_missing == IfMissing::Create => {
            catalog
                .create_table_from(&request.schema, &request.table, PRIMARY, rows, session)
                .await
                .map(|(_, written)| written)
        }
        Err(e) => Err(e),
    }
}
