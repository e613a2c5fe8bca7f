//! The one write envelope: what every write that changes a table's rows does around
//! its commit, whichever door it came in by — SQL (`CREATE TABLE … AS`, `INSERT`,
//! `UPDATE`, `DELETE`), file and database ingest, ADBC bulk ingest:
//!
//! 1. lineage START before the write: its job, its source, the tables it reads;
//! 2. the rows it brings sampled for PII as they stream into the commit;
//! 3. after the commit: the PII findings recorded with the table, lineage COMPLETE
//!    (columns, rows, bytes, version, PII), the ingested-rows metric for writes
//!    that bring rows, and the dataset event (`Appended` or `Replaced`) that keeps
//!    indexes fresh; or, when the write fails, lineage FAIL and nothing else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use lakehouse_flight_ext::v1::ColumnPii;

use super::QueryEngine;
use crate::catalog::TableEntry;
use crate::events::{ChangeKind, DatasetEvent};
use crate::lineage::{Output, Run, Source};
use crate::pii::Sampler;

/// Where a write comes from.
#[derive(Debug, Clone, Default)]
pub struct WriteOrigin {
    /// Job type recorded in lineage and metrics, e.g. `lakehouse.ingest.file`,
    /// `sql.insert`.
    pub job_type: String,
    /// What the dataset event names as its source (`sql` for every SQL write).
    pub event_source: String,
    /// The source system and location, when the rows come from outside.
    pub source: Option<Source>,
    /// Tables the write reads (`schema.table`).
    pub inputs: Vec<String>,
    /// Run this one is part of.
    pub parent_run_id: Option<String>,
    /// Input bytes read (counted while the rows stream).
    pub bytes: Arc<AtomicU64>,
}

/// What a committed write did.
#[derive(Debug, Clone, Copy)]
pub struct Commit {
    /// Appended rows, or changed/replaced them.
    pub kind: ChangeKind,
    /// Rows written (or changed).
    pub rows: u64,
    /// Delta version committed, where the writer knows it.
    pub version: Option<i64>,
}

/// What the envelope recorded after a commit.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The table as the catalog now lists it (`None`: gone meanwhile).
    pub entry: Option<TableEntry>,
    /// The table's PII after this write (findings and manual verdicts).
    pub pii: Vec<ColumnPii>,
    /// Delta version committed (-1 when unknown).
    pub version: i64,
    /// Lineage run id.
    pub run_id: String,
    /// (name, Arrow type) of the table's columns.
    pub columns: Vec<(String, String)>,
}

/// One write between its lineage START and its COMPLETE or FAIL.
#[derive(Debug)]
pub struct Envelope {
    run: Run,
    origin: WriteOrigin,
    schema: String,
    table: String,
    /// Set once the write's rows are tapped ([`Self::sample`]).
    sampler: Option<Arc<Mutex<Sampler>>>,
    /// (name, Arrow type) of the rows streamed through [`Self::sample`].
    written: Option<Vec<(String, String)>>,
}

impl QueryEngine {
    /// Opens the envelope of a write into `schema.table`: records lineage START.
    pub async fn open_envelope(&self, origin: WriteOrigin, schema: &str, table: &str) -> Envelope {
        let run = self
            .services()
            .lineage
            .start(
                &origin.job_type,
                origin.source.clone(),
                origin.inputs.clone(),
                &format!("{schema}.{table}"),
                origin.parent_run_id.clone(),
            )
            .await;
        Envelope {
            run,
            origin,
            schema: schema.to_string(),
            table: table.to_string(),
            sampler: None,
            written: None,
        }
    }
}

impl Envelope {
    /// The lineage run id.
    pub fn run_id(&self) -> &str {
        self.run.id()
    }

    /// `rows` as they stream into the commit, sampled for PII on the way.
    pub fn sample(&mut self, rows: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = rows.schema();
        let sampler = Arc::new(Mutex::new(Sampler::new(&schema)));
        self.sampler = Some(Arc::clone(&sampler));
        self.written = Some(
            schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string()))
                .collect(),
        );
        let tapped = rows.map(move |item| {
            if let Ok(batch) = &item {
                sampler
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .observe(batch);
            }
            item
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, tapped))
    }

    /// The write failed: lineage FAIL, nothing else.
    pub async fn failed(self, error: &(dyn std::fmt::Display + Sync)) {
        let error = error.to_string();
        self.run.fail(&error).await;
    }

    /// The write committed: PII findings, lineage COMPLETE, metrics, dataset event.
    pub async fn committed(mut self, engine: &QueryEngine, commit: Commit) -> Sealed {
        let catalog = engine.catalog();
        let qualified = format!("{}.{}", self.schema, self.table);
        let mut entry = catalog.table(&self.schema, &self.table).ok();
        // A writer that knows its version and streamed its rows here needs no read of
        // the Delta log; an SQL write (or one that brought no rows) reads the state.
        let (columns, version) = match (commit.version, self.written.take()) {
            (Some(version), Some(columns)) => (columns, version),
            (known, _) => {
                let state = match &entry {
                    Some(listed) => catalog.table_state(listed).await.ok(),
                    None => None,
                };
                match state {
                    Some((schema, current)) => (
                        schema
                            .fields()
                            .iter()
                            .map(|f| (f.name().clone(), f.data_type().to_string()))
                            .collect(),
                        known.unwrap_or(current),
                    ),
                    None => (Vec::new(), known.unwrap_or(-1)),
                }
            }
        };
        let replaced = commit.kind == ChangeKind::Replaced;
        if let (Some(sampler), Some(listed)) = (&self.sampler, &entry) {
            let findings = sampler.lock().unwrap_or_else(|p| p.into_inner()).findings();
            // Nothing to record: no findings, and none a replace must clear.
            if !findings.is_empty() || (replaced && !listed.pii.is_empty()) {
                match catalog
                    .record_pii(&self.schema, &self.table, findings, replaced)
                    .await
                {
                    Ok(updated) => entry = Some(updated),
                    // The rows are committed; only the findings are lost.
                    Err(error) => {
                        tracing::warn!(table = %qualified, %error, "cannot record PII findings");
                    }
                }
            }
        }
        let pii = entry
            .as_ref()
            .map(|e| e.effective_pii())
            .unwrap_or_default();
        self.run
            .complete(&Output {
                columns: columns.clone(),
                rows: commit.rows,
                bytes: self.origin.bytes.load(Ordering::Relaxed),
                version,
                pii: pii
                    .iter()
                    .map(|f| (f.column.clone(), f.entity_type.clone()))
                    .collect(),
            })
            .await;
        if self.sampler.is_some() {
            crate::observe::metrics().ingested(&self.origin.job_type, commit.rows);
        }
        if commit.rows > 0 || replaced {
            engine.services().events.publish(DatasetEvent {
                kind: commit.kind,
                table: qualified,
                version,
                rows: commit.rows,
                run_id: self.run.id().to_string(),
                source: self.origin.event_source.clone(),
            });
        }
        Sealed {
            entry,
            pii,
            version,
            run_id: self.run.id().to_string(),
            columns,
        }
    }
}

/// The tables `plan` reads (`schema.table`, in `default_schema` where unqualified),
/// subqueries included, each once, sorted.
pub(super) fn read_tables(plan: &LogicalPlan, default_schema: &str) -> Vec<String> {
    let mut tables: Vec<String> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = format!(
                "{}.{}",
                scan.table_name.schema().unwrap_or(default_schema),
                scan.table_name.table()
            );
            if !tables.contains(&name) {
                tables.push(name);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables.sort();
    tables
}
