//! `system.jobs`: the server's jobs as Arrow rows (`lakehouse.job.list` as SQL).

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;
use lakehouse_flight_ext::names::state_label;
use lakehouse_flight_ext::v1::{Job, job};

use super::Jobs;
use crate::rows::{batch, micros, timestamp_field, timestamps, utf8};

/// Jobs of this server, newest first (`lakehouse.job.list` as SQL).
pub(crate) fn table(jobs: &Jobs) -> Result<RecordBatch, ArrowError> {
    let jobs = jobs.list();
    let progress: Vec<_> = jobs
        .iter()
        .map(|j| j.progress.clone().unwrap_or_default())
        .collect();
    // (table, version) of what the job wrote: an ingest's table, an index's source.
    let written = |j: &Job| match j.result.as_ref() {
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
                jobs.iter().map(|j| state_label(j.state)),
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
