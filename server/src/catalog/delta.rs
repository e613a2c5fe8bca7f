//! Delta Lake operations on catalog tables.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder};
use std::sync::{Arc, Once};
use url::Url;

use super::{CatalogError, Result, TableEntry};
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
