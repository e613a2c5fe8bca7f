//! Lineage: an OpenLineage run event for every write.
//!
//! Owns: `_lakehouse/lineage/` in the primary bucket (one JSON object per event,
//! exactly the OpenLineage `RunEvent` wire format) and the optional posting of
//! events to an OpenLineage HTTP endpoint. May call: `storage` and the leaves `secrets`, `rows`. Invariants:
//! - a run records START before its work and COMPLETE or FAIL after it, with the
//!   same run id;
//! - every location is redacted before it is recorded: no password, token or
//!   secret parameter ever reaches an event, a log line or `system.lineage`;
//! - lineage never fails the write it describes: storage or endpoint failures are
//!   logged and the write's outcome stands.

pub(crate) mod system;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::secrets::redact;
use crate::storage::{Bucket, StorageError};

const FOLDER: &str = "_lakehouse/lineage/";
const PRODUCER: &str = "https://github.com/lakehouse/lakehouse";
const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// The OpenLineage namespace of Lakehouse jobs.
pub(crate) const NAMESPACE: &str = "lakehouse";
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a write's rows came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// `file`, `s3`, `upload`, `flight` (bulk ingest), `postgres`, `mysql`, `sql`.
    pub system: String,
    /// Where, e.g. `s3://bucket/landing/*.csv` (redacted when recorded).
    pub location: String,
}

/// What a run wrote, for its COMPLETE event.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    /// Arrow (name, type) of the written columns.
    pub columns: Vec<(String, String)>,
    /// Rows written.
    pub rows: u64,
    /// Input bytes read.
    pub bytes: u64,
    /// Delta version committed.
    pub version: i64,
    /// PII tags: (column, entity type).
    pub pii: Vec<(String, String)>,
}

/// The lineage store of a server.
#[derive(Debug)]
pub(crate) struct Lineage {
    bucket: Arc<Bucket>,
    endpoint: Option<url::Url>,
    http: reqwest::Client,
}

impl Lineage {
    /// A store in `bucket` (the primary), posting to `endpoint` when set.
    pub(crate) fn new(bucket: Arc<Bucket>, endpoint: Option<url::Url>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            bucket,
            endpoint,
            http,
        }
    }

    /// Records START of a run writing `output_table` (`schema.table`) from `source`
    /// and the tables `inputs` (`schema.table`), and returns it.
    pub(crate) async fn start(
        self: &Arc<Self>,
        job_type: &str,
        source: Option<Source>,
        inputs: Vec<String>,
        output_table: &str,
        parent_run_id: Option<String>,
    ) -> Run {
        let run = Run {
            lineage: Arc::clone(self),
            run_id: uuid::Uuid::new_v4().to_string(),
            job_type: job_type.to_string(),
            source,
            inputs,
            output_table: output_table.to_string(),
            parent_run_id,
        };
        let event = run.event("START", None, None);
        self.record(&run, "START", event).await;
        run
    }

    async fn record(&self, run: &Run, event_type: &str, event: Value) {
        let path = format!(
            "{FOLDER}{}-{}-{event_type}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            run.run_id
        );
        let bytes = serde_json::to_vec(&event).unwrap_or_default();
        if let Err(error) = self.bucket.put(&path, bytes.clone().into()).await {
            tracing::warn!(run = %run.run_id, %error, "cannot record a lineage event");
        }
        if let Some(endpoint) = &self.endpoint {
            let http = self.http.clone();
            let endpoint = endpoint.clone();
            // Posting never holds up the write.
            tokio::spawn(async move {
                let sent = http
                    .post(endpoint.clone())
                    .header("content-type", "application/json")
                    .body(bytes)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status());
                if let Err(error) = sent {
                    tracing::warn!(endpoint = %redact(endpoint.as_str()), error = %redact(&error.to_string()),
                        "cannot post a lineage event");
                }
            });
        }
    }

    /// Every recorded event, oldest first.
    pub(crate) async fn events(&self) -> Result<Vec<Value>, StorageError> {
        let names = self.bucket.list(FOLDER).await?;
        let bucket = Arc::clone(&self.bucket);
        let events: Vec<Option<bytes::Bytes>> = futures::stream::iter(names)
            .map(|name| {
                let bucket = Arc::clone(&bucket);
                async move { bucket.get_opt(&format!("{FOLDER}{name}")).await }
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(events
            .into_iter()
            .flatten()
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect())
    }
}

/// One run: a write between its START and its COMPLETE/FAIL.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    lineage: Arc<Lineage>,
    run_id: String,
    job_type: String,
    source: Option<Source>,
    /// Tables read (`schema.table`).
    inputs: Vec<String>,
    output_table: String,
    parent_run_id: Option<String>,
}

impl Run {
    /// The OpenLineage run id.
    pub(crate) fn id(&self) -> &str {
        &self.run_id
    }

    /// Records COMPLETE with what was written.
    pub(crate) async fn complete(&self, output: &Output) {
        let event = self.event("COMPLETE", Some(output), None);
        self.lineage.record(self, "COMPLETE", event).await;
    }

    /// Records FAIL with the error (redacted).
    pub(crate) async fn fail(&self, error: &str) {
        let event = self.event("FAIL", None, Some(error));
        self.lineage.record(self, "FAIL", event).await;
    }

    fn event(&self, event_type: &str, output: Option<&Output>, error: Option<&str>) -> Value {
        let mut run_facets = serde_json::Map::new();
        if let Some(parent) = &self.parent_run_id {
            run_facets.insert(
                "parent".into(),
                json!({
                    "_producer": PRODUCER,
                    "run": {"runId": parent},
                    "job": {"namespace": NAMESPACE, "name": "lakehouse"},
                }),
            );
        }
        if let Some(error) = error {
            run_facets.insert(
                "errorMessage".into(),
                json!({"_producer": PRODUCER, "message": redact(error), "programmingLanguage": "rust"}),
            );
        }
        let inputs: Vec<Value> = self
            .source
            .iter()
            .map(|source| {
                let location = redact(&source.location);
                json!({
                    "namespace": source.system,
                    "name": location,
                    "facets": {"dataSource": {"_producer": PRODUCER, "name": source.system, "uri": location}},
                })
            })
            .chain(
                self.inputs
                    .iter()
                    .map(|table| json!({"namespace": NAMESPACE, "name": table})),
            )
            .collect();
        let mut output_facets = serde_json::Map::new();
        if let Some(out) = output {
            output_facets.insert(
                "schema".into(),
                json!({"_producer": PRODUCER, "fields": out.columns.iter()
                    .map(|(name, ty)| json!({"name": name, "type": ty})).collect::<Vec<_>>()}),
            );
            output_facets.insert(
                "outputStatistics".into(),
                json!({"_producer": PRODUCER, "rowCount": out.rows, "size": out.bytes}),
            );
            output_facets.insert(
                "version".into(),
                json!({"_producer": PRODUCER, "datasetVersion": out.version.to_string()}),
            );
            output_facets.insert(
                "lakehouse_pii".into(),
                json!({"_producer": PRODUCER, "columns": out.pii.iter()
                    .map(|(column, entity)| json!({"column": column, "entityType": entity})).collect::<Vec<_>>()}),
            );
        }
        json!({
            "eventType": event_type,
            "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": self.run_id, "facets": run_facets},
            "job": {
                "namespace": NAMESPACE,
                "name": format!("{}:{}", self.job_type, self.output_table),
                "facets": {"jobType": {"_producer": PRODUCER, "processingType": "BATCH",
                    "integration": "LAKEHOUSE", "jobType": self.job_type}},
            },
            "inputs": inputs,
            "outputs": [{"namespace": NAMESPACE, "name": self.output_table, "facets": output_facets}],
        })
    }
}
