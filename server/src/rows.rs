//! Arrow columns for the rows of `system` tables: the few field and array shapes
//! every subsystem's table is made of.
//!
//! Owns: nothing. May call: nothing (a leaf, used by each subsystem's system table).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::error::ArrowError;

/// A UTF-8 column.
pub(crate) fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// A UTC timestamp column in microseconds.
pub(crate) fn timestamp_field(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        nullable,
    )
}

/// The values of a [`timestamp_field`].
pub(crate) fn timestamps(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

/// Microseconds since the epoch of an RFC 3339 time (none when unset or unreadable).
pub(crate) fn micros(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// One batch of `columns` under `fields`.
pub(crate) fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
