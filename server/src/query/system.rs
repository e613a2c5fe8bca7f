//! The read-only `system` schema: catalog state as SQL tables.
//!
//! Each table is computed when a query names it, so it reflects the catalog at
//! planning time.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::execution::SessionState;

use super::provider::open_provider;
use crate::catalog::{CATALOG_NAME, Catalog, TableEntry};

/// Names of the system tables, sorted.
pub const SYSTEM_TABLES: [&str; 12] = [
    "buckets",
    "columns",
    "gpu_slot",
    "jobs",
    "lineage",
    "pii",
    "profiles",
    "table_versions",
    "tables",
    "vector_eval_sets",
    "vector_indexes",
    "workers",
];

/// Provider of the `system` schema.
#[derive(Debug)]
pub struct SystemSchema {
    catalog: Arc<Catalog>,
    scan_session: Arc<SessionState>,
    /// A session bound to a profile sees only that profile's indexes and eval sets.
    profile: Option<String>,
}

impl SystemSchema {
    /// Provider over `catalog`, for a session bound to `profile` (if any).
    pub fn new(
        catalog: Arc<Catalog>,
        scan_session: Arc<SessionState>,
        profile: Option<String>,
    ) -> Self {
        Self {
            catalog,
            scan_session,
            profile,
        }
    }

    /// Whether the session may see index `entry`.
    fn visible(&self, entry: &crate::catalog::IndexEntry) -> bool {
        self.profile.as_ref().is_none_or(|p| *p == entry.profile)
    }

    async fn build(&self, name: &str) -> Result<Option<RecordBatch>> {
        Ok(Some(match name {
            "tables" => tables(&self.catalog).await?,
            "columns" => columns(&self.catalog, &self.scan_session).await?,
            "buckets" => buckets(&self.catalog)?,
            "table_versions" => table_versions(&self.catalog).await?,
            "jobs" => jobs(&self.catalog)?,
            "pii" => pii(&self.catalog)?,
            "lineage" => lineage(&self.catalog).await?,
            "vector_indexes" => self.vector_indexes()?,
            "vector_eval_sets" => self.vector_eval_sets()?,
            "workers" => workers(&self.catalog)?,
            "profiles" => profiles(&self.catalog)?,
            "gpu_slot" => gpu_slot(&self.catalog)?,
            _ => return Ok(None),
        }))
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SYSTEM_TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(batch) = self.build(name).await? else {
            return Ok(None);
        };
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        SYSTEM_TABLES.contains(&name)
    }
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
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

/// The server's worker processes: state, pid, restarts, last exit.
fn workers(catalog: &Catalog) -> Result<RecordBatch> {
    let states = catalog.workers().map(|w| w.states()).unwrap_or_default();
    let text = |f: &dyn Fn(&crate::workers::WorkerState) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(states.iter().map(f).collect::<Vec<_>>()))
    };
    batch(
        vec![
            utf8("name", false),
            utf8("state", false),
            Field::new("pid", DataType::UInt32, true),
            Field::new("restarts", DataType::UInt64, false),
            timestamp_field("started_at", true),
            utf8("last_exit", true),
            utf8("binary", false),
        ],
        vec![
            text(&|w| Some(w.name.to_string())),
            text(&|w| Some(w.state.to_string())),
            Arc::new(arrow::array::UInt32Array::from(
                states.iter().map(|w| w.pid).collect::<Vec<_>>(),
            )),
            Arc::new(arrow::array::UInt64Array::from(
                states.iter().map(|w| w.restarts).collect::<Vec<_>>(),
            )),
            timestamps(
                states
                    .iter()
                    .map(|w| w.started_at.map(|t| t.timestamp_micros()))
                    .collect(),
            ),
            text(&|w| w.last_exit.clone()),
            text(&|w| Some(w.binary.clone())),
        ],
    )
}

fn timestamp_field(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        nullable,
    )
}

fn timestamps(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn micros(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Eval sets of vector indexes: what each holds and the index state its truth pins.
fn vector_eval_sets(sets: &[&crate::catalog::EvalSetEntry]) -> Result<RecordBatch> {
    let strings = |f: &dyn Fn(&crate::catalog::EvalSetEntry) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(sets.iter().map(|e| f(e))))
    };
    batch(
        vec![
            utf8("name", false),
            utf8("index_name", false),
            utf8("bucket", false),
            utf8("location", false),
            Field::new("queries", DataType::Int64, false),
            Field::new("depth", DataType::Int64, false),
            utf8("index_location", false),
            Field::new("source_version", DataType::Int64, false),
            Field::new("vectors", DataType::Int64, false),
            timestamp_field("created_at", true),
        ],
        vec![
            strings(&|e| e.name.clone()),
            strings(&|e| e.index.clone()),
            strings(&|e| e.bucket.clone()),
            strings(&|e| e.location.clone()),
            Arc::new(Int64Array::from_iter_values(
                sets.iter().map(|e| i64::from(e.queries)),
            )),
            Arc::new(Int64Array::from_iter_values(
                sets.iter().map(|e| i64::from(e.depth)),
            )),
            strings(&|e| e.index_location.clone()),
            Arc::new(Int64Array::from_iter_values(
                sets.iter().map(|e| e.source_version),
            )),
            Arc::new(Int64Array::from_iter_values(
                sets.iter().map(|e| e.vectors as i64),
            )),
            timestamps(sets.iter().map(|e| micros(&e.created_at)).collect()),
        ],
    )
}

impl SystemSchema {
    /// Vector indexes: what each covers, how it was built, what it holds.
    fn vector_indexes(&self) -> Result<RecordBatch> {
        let snapshot = self.catalog.snapshot();
        let indexes: Vec<_> = snapshot
            .indexes
            .iter()
            .filter(|i| self.visible(i))
            .collect();
        vector_indexes(&indexes)
    }

    /// Eval sets of the indexes the session sees.
    fn vector_eval_sets(&self) -> Result<RecordBatch> {
        let snapshot = self.catalog.snapshot();
        let sets: Vec<_> = snapshot
            .eval_sets
            .iter()
            .filter(|e| {
                self.profile.is_none()
                    || snapshot
                        .indexes
                        .iter()
                        .any(|i| i.name == e.index && self.visible(i))
            })
            .collect();
        vector_eval_sets(&sets)
    }
}

/// Profiles, and whether each holds the GPU slot.
fn profiles(catalog: &Catalog) -> Result<RecordBatch> {
    let doc = catalog.snapshot();
    let slot = catalog.slot().map(|s| s.view());
    let mut entries: Vec<_> = doc.profiles.iter().collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let strings = |f: &dyn Fn(&crate::catalog::ProfileEntry) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            entries.iter().map(|p| f(p)).collect::<Vec<_>>(),
        ))
    };
    batch(
        vec![
            utf8("name", false),
            utf8("embedder", false),
            utf8("llm", true),
            utf8("bucket", false),
            utf8("backend", false),
            Field::new("active", DataType::Boolean, false),
            Field::new("indexes", DataType::Int64, false),
            timestamp_field("created_at", true),
        ],
        vec![
            strings(&|p| Some(p.name.clone())),
            strings(&|p| Some(p.embedder.clone())),
            strings(&|p| (!p.llm.is_empty()).then(|| p.llm.clone())),
            strings(&|p| Some(p.bucket.clone())),
            strings(&|p| Some(p.backend.clone())),
            Arc::new(BooleanArray::from(
                entries
                    .iter()
                    .map(|p| {
                        slot.as_ref().is_some_and(|s| {
                            s.state == crate::profiles::SlotState::Active && s.profile == p.name
                        })
                    })
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(entries.iter().map(|p| {
                doc.indexes.iter().filter(|i| i.profile == p.name).count() as i64
            }))),
            timestamps(entries.iter().map(|p| micros(&p.created_at)).collect()),
        ],
    )
}

/// The GPU slot: one row per model it holds (one row with null model columns when it
/// holds none), with the GPUs' memory as NVML reports it.
fn gpu_slot(catalog: &Catalog) -> Result<RecordBatch> {
    let report = catalog.slot().map(|s| s.report()).unwrap_or_default();
    let rows: Vec<Option<&lakehouse_flight_ext::v1::SlotModel>> = if report.models.is_empty() {
        vec![None]
    } else {
        report.models.iter().map(Some).collect()
    };
    let text = |f: &dyn Fn(&lakehouse_flight_ext::v1::SlotModel) -> String| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|m| m.map(f)).collect::<Vec<_>>(),
        ))
    };
    let same = |value: Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(vec![value; rows.len()]))
    };
    let bytes = |f: &dyn Fn(&lakehouse_flight_ext::v1::SlotModel) -> Option<u64>| -> ArrayRef {
        Arc::new(Int64Array::from(
            rows.iter()
                .map(|m| m.and_then(f).map(|b| b as i64))
                .collect::<Vec<_>>(),
        ))
    };
    let gpu_total: u64 = report.gpus.iter().map(|g| g.memory_total_bytes).sum();
    let gpu_used: u64 = report.gpus.iter().map(|g| g.memory_used_bytes).sum();
    let present = !report.gpus.is_empty();
    let gpu_bytes = |value: u64| -> ArrayRef {
        Arc::new(Int64Array::from(vec![
            present.then_some(value as i64);
            rows.len()
        ]))
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    batch(
        vec![
            utf8("state", false),
            utf8("profile", true),
            timestamp_field("since", true),
            utf8("error", true),
            utf8("role", true),
            utf8("model_name", true),
            utf8("protocol", true),
            utf8("model", true),
            utf8("placement", true),
            Field::new("model_bytes", DataType::Int64, true),
            Field::new("model_vram_bytes", DataType::Int64, true),
            utf8("gpus", true),
            Field::new("gpu_memory_total_bytes", DataType::Int64, true),
            Field::new("gpu_memory_used_bytes", DataType::Int64, true),
            utf8("gpu_absent", true),
        ],
        vec![
            Arc::new(StringArray::from(vec![report.state.clone(); rows.len()])),
            same(nonempty(&report.profile)),
            timestamps(vec![micros(&report.since); rows.len()]),
            same(nonempty(&report.error)),
            text(&|m| m.role.clone()),
            text(&|m| m.name.clone()),
            text(&|m| m.protocol.clone()),
            text(&|m| m.model.clone()),
            text(&|m| m.placement.clone()),
            bytes(&|m| m.size_bytes),
            bytes(&|m| m.vram_bytes),
            same(present.then(|| {
                report
                    .gpus
                    .iter()
                    .map(|g| g.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            })),
            gpu_bytes(gpu_total),
            gpu_bytes(gpu_used),
            same(nonempty(&report.gpu_absent)),
        ],
    )
}

/// Vector indexes: what each covers, how it was built, what it holds.
fn vector_indexes(indexes: &[&crate::catalog::IndexEntry]) -> Result<RecordBatch> {
    let strings = |f: &dyn Fn(&crate::catalog::IndexEntry) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(indexes.iter().map(|i| f(i))))
    };
    batch(
        vec![
            utf8("name", false),
            utf8("table_schema", false),
            utf8("table_name", false),
            utf8("text_column", false),
            utf8("id_column", false),
            utf8("backend", false),
            utf8("metric", false),
            utf8("model", false),
            utf8("embedder", false),
            utf8("profile", true),
            Field::new("dimension", DataType::Int32, false),
            utf8("parameters", false),
            utf8("bucket", false),
            utf8("location", false),
            Field::new("source_version", DataType::Int64, false),
            Field::new("vectors", DataType::Int64, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
            Field::new("build_seconds", DataType::Float64, false),
            Field::new("embed_seconds", DataType::Float64, false),
            timestamp_field("built_at", true),
        ],
        vec![
            strings(&|i| i.name.clone()),
            strings(&|i| i.schema.clone()),
            strings(&|i| i.table.clone()),
            strings(&|i| i.text_column.clone()),
            strings(&|i| i.id_column.clone()),
            strings(&|i| i.backend.clone()),
            strings(&|i| i.metric.clone()),
            strings(&|i| i.model.clone()),
            strings(&|i| crate::vector::service::embedder_name(i).to_string()),
            Arc::new(StringArray::from(
                indexes
                    .iter()
                    .map(|i| (!i.profile.is_empty()).then(|| i.profile.clone()))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from_iter_values(
                indexes.iter().map(|i| i.dimension as i32),
            )),
            strings(&|i| i.parameters.to_string()),
            strings(&|i| i.bucket.clone()),
            strings(&|i| i.location.clone()),
            Arc::new(Int64Array::from_iter_values(
                indexes.iter().map(|i| i.source_version),
            )),
            Arc::new(Int64Array::from_iter_values(
                indexes.iter().map(|i| i.vectors as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                indexes.iter().map(|i| i.rows as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                indexes.iter().map(|i| i.bytes as i64),
            )),
            Arc::new(Float64Array::from_iter_values(
                indexes.iter().map(|i| i.build_seconds),
            )),
            Arc::new(Float64Array::from_iter_values(
                indexes.iter().map(|i| i.embed_seconds),
            )),
            timestamps(indexes.iter().map(|i| micros(&i.built_at)).collect()),
        ],
    )
}

/// Jobs of this server, newest first (`lakehouse.job.list` as SQL).
fn jobs(catalog: &Catalog) -> Result<RecordBatch> {
    use lakehouse_flight_ext::v1::{JobState, job};
    let jobs = catalog.jobs().list();
    let progress: Vec<_> = jobs
        .iter()
        .map(|j| j.progress.clone().unwrap_or_default())
        .collect();
    let state = |s: i32| match JobState::try_from(s) {
        Ok(JobState::Running) => "RUNNING",
        Ok(JobState::Succeeded) => "SUCCEEDED",
        Ok(JobState::Failed) => "FAILED",
        Ok(JobState::Cancelled) => "CANCELLED",
        _ => "UNSPECIFIED",
    };
    // (table, version) of what the job wrote: an ingest's table, an index's source.
    let written = |j: &lakehouse_flight_ext::v1::Job| match j.result.as_ref() {
        Some(job::Result::Ingest(r)) => Some((r.table.clone(), r.version)),
        Some(job::Result::VectorIndex(i)) => Some((i.table.clone(), i.source_version)),
        Some(job::Result::VectorEvalSet(_) | job::Result::ProfileActivation(_)) | None => None,
    };
    let results: Vec<_> = jobs.iter().map(written).collect();
    let result_table: Vec<Option<String>> = results
        .iter()
        .map(|r| r.as_ref().map(|r| r.0.clone()))
        .collect();
    let result_version: Vec<Option<i64>> =
        results.iter().map(|r| r.as_ref().map(|r| r.1)).collect();
    let opt = |s: &String| (!s.is_empty()).then(|| s.clone());
    batch(
        vec![
            utf8("job_id", false),
            utf8("kind", false),
            utf8("state", false),
            utf8("description", false),
            utf8("user", true),
            timestamp_field("created_at", true),
            timestamp_field("finished_at", true),
            utf8("phase", true),
            Field::new("rows", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
            Field::new("bytes_total", DataType::Int64, true),
            Field::new("percent", DataType::Float64, true),
            Field::new("files_done", DataType::Int64, false),
            Field::new("files_total", DataType::Int64, false),
            Field::new("rejected_rows", DataType::Int64, false),
            utf8("error", true),
            utf8("error_code", true),
            utf8("result_table", true),
            Field::new("result_version", DataType::Int64, true),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                jobs.iter().map(|j| j.id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                jobs.iter().map(|j| j.kind.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                jobs.iter().map(|j| state(j.state)),
            )),
            Arc::new(StringArray::from_iter_values(
                jobs.iter().map(|j| j.description.as_str()),
            )),
            Arc::new(StringArray::from(
                jobs.iter().map(|j| opt(&j.user)).collect::<Vec<_>>(),
            )),
            timestamps(jobs.iter().map(|j| micros(&j.created_at)).collect()),
            timestamps(jobs.iter().map(|j| micros(&j.finished_at)).collect()),
            Arc::new(StringArray::from(
                progress.iter().map(|p| opt(&p.phase)).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(
                progress.iter().map(|p| p.rows as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                progress.iter().map(|p| p.bytes as i64),
            )),
            Arc::new(Int64Array::from(
                progress
                    .iter()
                    .map(|p| p.bytes_total.map(|b| b as i64))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                progress.iter().map(|p| p.percent).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(
                progress.iter().map(|p| p.files_done as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                progress.iter().map(|p| p.files_total as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                progress.iter().map(|p| p.rejected_rows as i64),
            )),
            Arc::new(StringArray::from(
                jobs.iter().map(|j| opt(&j.error)).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                jobs.iter().map(|j| opt(&j.error_code)).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(result_table)),
            Arc::new(Int64Array::from(result_version)),
        ],
    )
}

/// PII of every table: detector findings with manual verdicts on top.
fn pii(catalog: &Catalog) -> Result<RecordBatch> {
    let mut rows = Vec::new();
    for entry in sorted_entries(catalog) {
        for finding in entry.effective_pii() {
            rows.push((entry.schema.clone(), entry.name.clone(), finding));
        }
    }
    let alternates: Vec<String> = rows
        .iter()
        .map(|(_, _, f)| {
            f.alternates
                .iter()
                .map(|a| format!("{}:{}", a.entity_type, a.match_share))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    batch(
        vec![
            utf8("table_schema", false),
            utf8("table_name", false),
            utf8("column_name", false),
            utf8("entity_type", false),
            Field::new("confidence", DataType::Float64, false),
            Field::new("match_share", DataType::Float64, true),
            Field::new("checksum_pass_share", DataType::Float64, true),
            Field::new("sample_size", DataType::Int64, true),
            utf8("alternates", false),
            utf8("detector_version", false),
            Field::new("manual", DataType::Boolean, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.column.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.entity_type.as_str()),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.2.confidence),
            )),
            Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| (!r.2.manual).then_some(r.2.match_share))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| r.2.checksum_pass_share)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| (!r.2.manual).then_some(r.2.sample_size as i64))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(alternates)),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.detector_version.as_str()),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.2.manual)),
            )),
        ],
    )
}

/// Every lineage event, oldest first, with the OpenLineage fields as columns and
/// the whole event as JSON.
async fn lineage(catalog: &Catalog) -> Result<RecordBatch> {
    use serde_json::Value;
    let events = catalog
        .lineage()
        .events()
        .await
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    let text = |v: &Value, path: &[&str]| -> Option<String> {
        let mut at = v;
        for key in path {
            at = at.get(key)?;
        }
        match at {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    let number = |v: &Value, path: &[&str]| -> Option<i64> {
        let mut at = v;
        for key in path {
            at = at.get(key)?;
        }
        at.as_i64()
            .or_else(|| at.as_str().and_then(|s| s.parse().ok()))
    };
    let output = |v: &Value| {
        v.get("outputs")
            .and_then(|o| o.get(0))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let input = |v: &Value| {
        v.get("inputs")
            .and_then(|o| o.get(0))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let pii_tags = |v: &Value| -> Option<String> {
        let columns = output(v)
            .pointer("/facets/lakehouse_pii/columns")?
            .as_array()?
            .iter()
            .filter_map(|c| {
                Some(format!(
                    "{}:{}",
                    c.get("column")?.as_str()?,
                    c.get("entityType")?.as_str()?
                ))
            })
            .collect::<Vec<_>>();
        Some(columns.join(","))
    };
    batch(
        vec![
            timestamp_field("event_time", true),
            utf8("event_type", true),
            utf8("run_id", true),
            utf8("parent_run_id", true),
            utf8("job_name", true),
            utf8("job_type", true),
            utf8("source_system", true),
            utf8("source_location", true),
            utf8("output_table", true),
            Field::new("row_count", DataType::Int64, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("delta_version", DataType::Int64, true),
            utf8("pii_tags", true),
            utf8("error", true),
            utf8("event", false),
        ],
        vec![
            timestamps(
                events
                    .iter()
                    .map(|e| text(e, &["eventTime"]).and_then(|t| micros(&t)))
                    .collect(),
            ),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(e, &["eventType"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(e, &["run", "runId"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(e, &["run", "facets", "parent", "run", "runId"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(e, &["job", "name"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(e, &["job", "facets", "jobType", "jobType"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(&input(e), &["namespace"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(&input(e), &["name"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(&output(e), &["name"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                events
                    .iter()
                    .map(|e| number(&output(e), &["facets", "outputStatistics", "rowCount"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                events
                    .iter()
                    .map(|e| number(&output(e), &["facets", "outputStatistics", "size"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                events
                    .iter()
                    .map(|e| number(&output(e), &["facets", "version", "datasetVersion"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events.iter().map(pii_tags).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events
                    .iter()
                    .map(|e| text(e, &["run", "facets", "errorMessage", "message"]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.to_string()),
            )),
        ],
    )
}
