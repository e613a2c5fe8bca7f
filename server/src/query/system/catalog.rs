//! The catalog's own system tables: `tables`, `columns`, `table_versions`, `buckets`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, TimeUnit};
use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::SessionState;

use super::SystemTable;
use crate::catalog::{CATALOG_NAME, Catalog, TableEntry};
use crate::query::provider::open_provider;
use crate::rows::utf8;

/// The catalog's tables, over `catalog` (Delta schemas read with `scan_session`).
pub(crate) fn catalog_tables(
    catalog: &Arc<Catalog>,
    scan_session: &Arc<SessionState>,
) -> Vec<Arc<dyn SystemTable>> {
    ["tables", "columns", "table_versions", "buckets"]
        .into_iter()
        .map(|name| {
            Arc::new(CatalogTable {
                name,
                catalog: Arc::clone(catalog),
                scan_session: Arc::clone(scan_session),
            }) as Arc<dyn SystemTable>
        })
        .collect()
}

/// One of the catalog's tables.
#[derive(Debug)]
struct CatalogTable {
    name: &'static str,
    catalog: Arc<Catalog>,
    scan_session: Arc<SessionState>,
}

#[async_trait]
impl SystemTable for CatalogTable {
    fn name(&self) -> &str {
        self.name
    }

    async fn rows(&self, _profile: Option<&str>) -> Result<RecordBatch> {
        let catalog = &self.catalog;
        match self.name {
            "tables" => tables(catalog).await,
            "columns" => columns(catalog, &self.scan_session).await,
            "table_versions" => table_versions(catalog).await,
            _ => buckets(catalog),
        }
    }
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(crate::rows::batch(fields, columns)?)
}

/// Catalog entries ordered by schema, then name.
fn sorted_entries(catalog: &Catalog) -> Vec<TableEntry> {
    let mut entries = catalog.snapshot().tables.clone();
    entries.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    entries
}

async fn tables(catalog: &Catalog) -> Result<RecordBatch> {
    let entries = sorted_entries(catalog);
    let mut versions = Vec::with_capacity(entries.len());
    let mut urls = Vec::with_capacity(entries.len());
    for entry in &entries {
        let bucket = catalog.buckets().get(&entry.bucket).ok();
        urls.push(
            bucket
                .and_then(|b| b.url_of(&entry.location).ok())
                .map(|u| u.to_string()),
        );
        // A table whose log can't be read right now still shows, with no version.
        let version = match catalog.open_table(entry).await {
            Ok(table) => table.version(),
            Err(e) => {
                tracing::warn!(table = %entry.qualified_name(), error = %e, "cannot read table version");
                None
            }
        };
        versions.push(version.map(|v| v as i64));
    }
    batch(
        vec![
            utf8("table_catalog", false),
            utf8("table_schema", false),
            utf8("table_name", false),
            utf8("table_type", false),
            utf8("bucket", false),
            utf8("location", true),
            Field::new("version", DataType::Int64, true),
            utf8("created_at", false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|_| CATALOG_NAME),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|e| e.schema.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|e| e.name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|_| "TABLE"),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|e| e.bucket.as_str()),
            )),
            Arc::new(StringArray::from(urls)),
            Arc::new(Int64Array::from(versions)),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|e| e.created_at.as_str()),
            )),
        ],
    )
}

async fn columns(catalog: &Catalog, scan_session: &Arc<SessionState>) -> Result<RecordBatch> {
    let entries = sorted_entries(catalog);
    let (mut schemas, mut tables, mut names, mut ordinals, mut types, mut nullable) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for entry in &entries {
        // A table whose log can't be read right now is left out, with a warning.
        let provider = match open_provider(catalog, scan_session, entry, None).await {
            Ok(provider) => provider,
            Err(e) => {
                tracing::warn!(table = %entry.qualified_name(), error = %e, "cannot read table schema");
                continue;
            }
        };
        for (i, field) in provider.schema().fields().iter().enumerate() {
            schemas.push(entry.schema.clone());
            tables.push(entry.name.clone());
            names.push(field.name().clone());
            ordinals.push(i as i32 + 1);
            types.push(field.data_type().to_string());
            nullable.push(field.is_nullable());
        }
    }
    batch(
        vec![
            utf8("table_catalog", false),
            utf8("table_schema", false),
            utf8("table_name", false),
            utf8("column_name", false),
            Field::new("ordinal_position", DataType::Int32, false),
            utf8("data_type", false),
            Field::new("is_nullable", DataType::Boolean, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                schemas.iter().map(|_| CATALOG_NAME),
            )),
            Arc::new(StringArray::from(schemas)),
            Arc::new(StringArray::from(tables)),
            Arc::new(StringArray::from(names)),
            Arc::new(Int32Array::from(ordinals)),
            Arc::new(StringArray::from(types)),
            Arc::new(BooleanArray::from(nullable)),
        ],
    )
}

/// Every commit of every table, from the Delta logs: what `"name@vN"` can read.
async fn table_versions(catalog: &Catalog) -> Result<RecordBatch> {
    let (mut schemas, mut tables, mut versions, mut times, mut operations) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut parameters, mut metrics) = (vec![], vec![]);
    for entry in sorted_entries(catalog) {
        let commits = match catalog.history(&entry).await {
            Ok(commits) => commits,
            Err(e) => {
                tracing::warn!(table = %entry.qualified_name(), error = %e, "cannot read table history");
                continue;
            }
        };
        for commit in commits {
            schemas.push(entry.schema.clone());
            tables.push(entry.name.clone());
            versions.push(commit.version);
            times.push(commit.timestamp_ms);
            operations.push(commit.operation);
            parameters.push(commit.parameters);
            metrics.push(commit.metrics);
        }
    }
    let utc: Arc<str> = Arc::from("UTC");
    batch(
        vec![
            utf8("table_catalog", false),
            utf8("table_schema", false),
            utf8("table_name", false),
            Field::new("version", DataType::Int64, false),
            Field::new(
                "committed_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::clone(&utc))),
                true,
            ),
            utf8("operation", true),
            utf8("operation_parameters", true),
            utf8("operation_metrics", true),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                schemas.iter().map(|_| CATALOG_NAME),
            )),
            Arc::new(StringArray::from(schemas)),
            Arc::new(StringArray::from(tables)),
            Arc::new(Int64Array::from(versions)),
            Arc::new(TimestampMillisecondArray::from(times).with_timezone(utc)),
            Arc::new(StringArray::from(operations)),
            Arc::new(StringArray::from(parameters)),
            Arc::new(StringArray::from(metrics)),
        ],
    )
}

/// Buckets, with what each holds.
fn buckets(catalog: &Catalog) -> Result<RecordBatch> {
    let buckets = catalog.buckets().list();
    let doc = catalog.snapshot();
    let count = |of: &dyn Fn(&str) -> usize| -> ArrayRef {
        Arc::new(UInt32Array::from_iter_values(
            buckets
                .iter()
                .map(|b| u32::try_from(of(b.name())).unwrap_or(u32::MAX)),
        ))
    };
    let tables = count(&|name| doc.tables.iter().filter(|t| t.bucket == name).count());
    let indexes = count(&|name| doc.indexes.iter().filter(|i| i.bucket == name).count());
    let eval_sets = count(&|name| doc.eval_sets.iter().filter(|e| e.bucket == name).count());
    batch(
        vec![
            utf8("name", false),
            utf8("kind", false),
            utf8("url", false),
            Field::new("builtin", DataType::Boolean, false),
            Field::new("tables", DataType::UInt32, false),
            Field::new("indexes", DataType::UInt32, false),
            Field::new("eval_sets", DataType::UInt32, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                buckets.iter().map(|b| b.name()),
            )),
            Arc::new(StringArray::from_iter_values(
                buckets.iter().map(|b| b.kind().as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                buckets.iter().map(|b| b.url().to_string()),
            )),
            Arc::new(BooleanArray::from_iter(buckets.iter().map(|b| {
                Some(crate::storage::BucketRegistry::is_builtin(b.name()))
            }))),
            tables,
            indexes,
            eval_sets,
        ],
    )
}
