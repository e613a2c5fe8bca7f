//! `system.lineage`: every lineage event as Arrow rows.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;

use super::Lineage;
use crate::rows::{batch, micros, timestamp_field, timestamps, utf8};

/// Every lineage event, oldest first, with the OpenLineage fields as columns and
/// the whole event as JSON.
pub(crate) async fn table(lineage: &Lineage) -> Result<RecordBatch, ArrowError> {
    use serde_json::Value;
    let events = lineage
        .events()
        .await
        .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
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
