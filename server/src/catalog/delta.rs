//! Delta Lake operations on catalog tables.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder};

use super::{CatalogError, Result, TableEntry};
use crate::storage::Bucket;

fn builder(bucket: &Bucket, entry: &TableEntry) -> Result<DeltaTableBuilder> {
    let url = bucket.url_of(&entry.location)?;
    let delta = |source| CatalogError::Delta {
        table: entry.qualified_name(),
        source,
    };
    Ok(DeltaTableBuilder::from_url(url.clone())
        .map_err(delta)?
        .with_storage_backend(bucket.store(), url))
}

/// Loads the latest version of the table.
pub(super) async fn open(bucket: &Bucket, entry: &TableEntry) -> Result<DeltaTable> {
    let delta = |source| CatalogError::Delta {
        table: entry.qualified_name(),
        source,
    };
    builder(bucket, entry)?.load().await.map_err(delta)
}

/// Creates the table with its first commit: the schema, and `batches` if any.
pub(super) async fn create(
    bucket: &Bucket,
    entry: &TableEntry,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<DeltaTable> {
    let delta = |source| CatalogError::Delta {
        table: entry.qualified_name(),
        source,
    };
    let table = builder(bucket, entry)?.build().map_err(delta)?;
    if batches.is_empty() {
        let columns: StructType = schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| delta(e.into()))?;
        table
            .create()
            .with_table_name(&entry.name)
            .with_columns(columns.fields().cloned())
            .with_save_mode(SaveMode::ErrorIfExists)
            .await
            .map_err(delta)
    } else {
        table
            .write(batches)
            .with_table_name(&entry.name)
            .with_save_mode(SaveMode::ErrorIfExists)
            .await
            .map_err(delta)
    }
}
