//! `system.workers`: the server's worker processes, as Arrow rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::error::ArrowError;

use super::WorkerState;

/// The server's worker processes: state, pid, restarts, last exit.
pub(crate) fn table(states: &[WorkerState]) -> Result<RecordBatch, ArrowError> {
    let text = |f: &dyn Fn(&WorkerState) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(states.iter().map(f).collect::<Vec<_>>()))
    };
    let utc = Some(Arc::from("UTC"));
    let schema = Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("pid", DataType::UInt32, true),
        Field::new("restarts", DataType::UInt64, false),
        Field::new(
            "started_at",
            DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
            true,
        ),
        Field::new("last_exit", DataType::Utf8, true),
        Field::new("binary", DataType::Utf8, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            text(&|w| Some(w.name.to_string())),
            text(&|w| Some(w.state.to_string())),
            Arc::new(arrow::array::UInt32Array::from(
                states.iter().map(|w| w.pid).collect::<Vec<_>>(),
            )),
            Arc::new(arrow::array::UInt64Array::from(
                states.iter().map(|w| w.restarts).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    states
                        .iter()
                        .map(|w| w.started_at.map(|t| t.timestamp_micros()))
                        .collect::<Vec<_>>(),
                )
                .with_timezone_opt(utc),
            ),
            text(&|w| w.last_exit.clone()),
            text(&|w| Some(w.binary.clone())),
        ],
    )
}
