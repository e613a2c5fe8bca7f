//! What every file format's reader implements ([`BatchReader`]) and what they
//! share: how column types are settled across files ([`Typing`], [`conform`]) and
//! how bad rows are counted, kept or refused ([`Rejects`]). The formats (csv,
//! ndjson, columnar) implement the trait; the file ingest (`file.rs`) drives them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use lakehouse_flight_ext::v1::BadRows;

use super::IngestError;

/// Default bound of rejected rows.
pub(super) const DEFAULT_MAX_REJECTS: u64 = 10_000;

/// Batches of one input file.
pub(super) trait BatchReader: Send {
    /// The batches' schema.
    fn schema(&self) -> SchemaRef;
    /// The next batch (bad rows already handled), `None` at the end.
    fn next_batch(&mut self, rejects: &mut Rejects) -> Result<Option<RecordBatch>, IngestError>;
}

/// How column types are settled: the first file's schema binds later files;
/// the caller's overrides win over the target table's types, which win over inference.
#[derive(Debug, Clone, Default)]
pub(super) struct Typing {
    overrides: HashMap<String, DataType>,
    existing: Option<SchemaRef>,
    /// The first file's schema, which binds the files after it.
    pub(super) fixed: Option<SchemaRef>,
}

impl Typing {
    /// The caller's `overrides` first, then the `existing` table's types.
    pub(super) fn new(overrides: HashMap<String, DataType>, existing: Option<SchemaRef>) -> Self {
        Self {
            overrides,
            existing,
            fixed: None,
        }
    }

    /// The type of column `name` of `file`.
    pub(super) fn type_for(
        &self,
        name: &str,
        file: &str,
        infer: impl FnOnce() -> DataType,
    ) -> Result<DataType, IngestError> {
        if let Some(fixed) = &self.fixed {
            return fixed
                .field_with_name(name)
                .map(|f| f.data_type().clone())
                .map_err(|_| IngestError::Read {
                    file: file.into(),
                    message: format!(
                        "has column {name:?}, which the first file does not have (its columns: {})",
                        names(fixed).join(", ")
                    ),
                });
        }
        if let Some(t) = self.overrides.get(name) {
            return Ok(t.clone());
        }
        if let Some(t) = self
            .existing
            .as_ref()
            .and_then(|s| s.field_with_name(name).ok())
        {
            return Ok(t.data_type().clone());
        }
        Ok(infer())
    }

    /// Fails when an override names a column the file does not have.
    pub(super) fn check_complete(&self, columns: &[String], file: &str) -> Result<(), IngestError> {
        if self.fixed.is_some() {
            return Ok(());
        }
        let mut unknown: Vec<&String> = self
            .overrides
            .keys()
            .filter(|k| !columns.contains(k))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(name) => Err(IngestError::invalid(
                "column_types",
                format!(
                    "names column {name:?}, which {file} does not have (its columns: {})",
                    columns.join(", ")
                ),
            )),
        }
    }

    /// The target schema for a file whose own (typed) schema is `schema`.
    pub(super) fn target(&self, schema: &Schema, file: &str) -> Result<SchemaRef, IngestError> {
        let columns = names(schema);
        let mut fields = Vec::with_capacity(columns.len());
        for field in schema.fields() {
            let mut data_type = self.type_for(field.name(), file, || field.data_type().clone())?;
            // Delta has no column type for all-null JSON fields.
            if data_type == DataType::Null {
                data_type = DataType::Utf8;
            }
            fields.push(Field::new(field.name(), data_type, true));
        }
        self.check_complete(&columns, file)?;
        if let Some(fixed) = &self.fixed {
            return Ok(Arc::clone(fixed));
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

fn names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// `batch` with `target`'s columns (by name; missing ones null) and types.
pub(super) fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    file: &str,
) -> Result<RecordBatch, IngestError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match batch.column_by_name(field.name()) {
            None => new_null_array(field.data_type(), batch.num_rows()),
            Some(c) if c.data_type() == field.data_type() => Arc::clone(c),
            Some(c) => {
                let options = CastOptions {
                    safe: false,
                    ..CastOptions::default()
                };
                cast_with_options(c, field.data_type(), &options).map_err(|e| {
                    IngestError::Read {
                        file: file.into(),
                        message: format!(
                            "column {:?} does not convert to {}: {e}",
                            field.name(),
                            field.data_type()
                        ),
                    }
                })?
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(Arc::clone(target), columns).map_err(|e| IngestError::Read {
        file: file.into(),
        message: e.to_string(),
    })
}

/// One rejected row.
#[derive(Debug, Clone)]
pub(super) struct RejectRow {
    pub(super) file: String,
    pub(super) line: u64,
    pub(super) record: String,
    pub(super) error: String,
}

/// Where bad rows go: nowhere (the first fails the job) or the rejects table.
#[derive(Debug)]
pub(super) struct Rejects {
    reject: bool,
    max: u64,
    pub(super) rows: Vec<RejectRow>,
    pub(super) count: Arc<AtomicU64>,
}

impl Rejects {
    /// Bad rows handled per `mode`.
    pub(super) fn new(mode: BadRows, max: u64) -> Self {
        Self {
            reject: mode == BadRows::Reject,
            max,
            rows: Vec::new(),
            count: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Handles a bad row: an error in fail mode (or past the limit), else kept.
    pub(super) fn bad(
        &mut self,
        file: &str,
        line: u64,
        record: String,
        message: String,
    ) -> Result<(), IngestError> {
        if !self.reject {
            return Err(IngestError::BadRow {
                file: file.into(),
                line,
                message,
            });
        }
        if self.rows.len() as u64 >= self.max {
            return Err(IngestError::TooManyRejects {
                max: self.max,
                file: file.into(),
                line,
                message,
            });
        }
        self.rows.push(RejectRow {
            file: file.into(),
            line,
            record,
            error: message,
        });
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
