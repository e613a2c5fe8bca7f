//! CSV files to Arrow batches, with per-row error handling.
//!
//! Records are split by the `csv` crate (quotes, embedded newlines, escapes,
//! comments), each column is gathered as text and converted with Arrow's cast
//! kernels: a value that does not convert marks its row bad, and the row fails the
//! job or goes to the rejects, with its line number.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, StringBuilder};
use arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use lakehouse_flight_ext::v1::CsvOptions;

use super::reader::{BatchReader, Rejects, Typing};
use super::{IngestError, types};

/// Records read to infer column types.
const SAMPLE_ROWS: usize = 1000;

/// CSV options with defaults applied.
#[derive(Debug, Clone)]
pub(crate) struct CsvFormat {
    delimiter: u8,
    has_header: bool,
    quote: u8,
    escape: Option<u8>,
    comment: Option<u8>,
    null_value: Option<String>,
    /// The input's encoding label.
    pub encoding: String,
}

fn one_byte(field: &str, value: &str, default: Option<u8>) -> Result<Option<u8>, IngestError> {
    match value.as_bytes() {
        [] => Ok(default),
        [b] if b.is_ascii() => Ok(Some(*b)),
        _ if value == "\\t" => Ok(Some(b'\t')),
        _ => Err(IngestError::invalid(
            field,
            format!("{value:?} must be a single ASCII character"),
        )),
    }
}

impl CsvFormat {
    /// Validates the caller's options.
    pub(crate) fn new(options: &CsvOptions) -> Result<Self, IngestError> {
        Ok(Self {
            delimiter: one_byte("csv.delimiter", &options.delimiter, Some(b','))?.unwrap_or(b','),
            has_header: options.has_header.unwrap_or(true),
            quote: one_byte("csv.quote", &options.quote, Some(b'"'))?.unwrap_or(b'"'),
            escape: one_byte("csv.escape", &options.escape, None)?,
            comment: one_byte("csv.comment", &options.comment, None)?,
            null_value: Some(options.null_value.clone()).filter(|v| !v.is_empty()),
            encoding: options.encoding.clone(),
        })
    }
}

/// Batches of one CSV file.
pub(super) struct CsvReader {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    file: String,
    schema: SchemaRef,
    format: CsvFormat,
    /// Records read for inference, not yet returned.
    pending: VecDeque<(csv::ByteRecord, u64)>,
    batch_size: usize,
    record: csv::ByteRecord,
}

impl CsvReader {
    /// Reads the header and a sample, and settles the columns and their types.
    pub(super) fn open(
        input: Box<dyn BufRead + Send>,
        file: &str,
        format: &CsvFormat,
        typing: &Typing,
        batch_size: usize,
    ) -> Result<Self, IngestError> {
        let mut builder = csv::ReaderBuilder::new();
        builder
            .delimiter(format.delimiter)
            .quote(format.quote)
            .escape(format.escape)
            .comment(format.comment)
            .has_headers(false)
            .flexible(true);
        let mut reader = builder.from_reader(input);
        let read_error = |e: csv::Error| IngestError::Read {
            file: file.to_string(),
            message: e.to_string(),
        };
        let mut record = csv::ByteRecord::new();
        let mut pending = VecDeque::new();
        let names: Vec<String> = if format.has_header {
            if !reader.read_byte_record(&mut record).map_err(read_error)? {
                return Err(IngestError::Read {
                    file: file.into(),
                    message: "the file is empty (no header line)".into(),
                });
            }
            header_names(&record, file)?
        } else {
            while pending.len() < SAMPLE_ROWS
                && reader.read_byte_record(&mut record).map_err(read_error)?
            {
                let line = line_of(&record);
                pending.push_back((record.clone(), line));
            }
            let width = pending.front().map_or(0, |(r, _)| r.len());
            (1..=width).map(|i| format!("column_{i}")).collect()
        };
        if names.is_empty() {
            return Err(IngestError::Read {
                file: file.into(),
                message: "no columns found".into(),
            });
        }
        while pending.len() < SAMPLE_ROWS
            && reader.read_byte_record(&mut record).map_err(read_error)?
        {
            let line = line_of(&record);
            pending.push_back((record.clone(), line));
        }
        let mut fields = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let sample: Vec<&str> = pending
                .iter()
                .filter(|(r, _)| r.len() == names.len())
                .filter_map(|(r, _)| std::str::from_utf8(&r[i]).ok())
                .filter(|v| !is_null(v, &format.null_value))
                .collect();
            let data_type = typing.type_for(name, file, || types::infer(&sample))?;
            fields.push(Field::new(name, data_type, true));
        }
        typing.check_complete(&names, file)?;
        Ok(Self {
            reader,
            file: file.to_string(),
            schema: Arc::new(Schema::new(fields)),
            format: format.clone(),
            pending,
            batch_size,
            record,
        })
    }

    /// Moves to the next record (into `self.record`, reusing its buffers); returns
    /// its line, `None` at the end.
    fn advance(&mut self) -> Result<Option<u64>, IngestError> {
        if let Some((record, line)) = self.pending.pop_front() {
            self.record = record;
            return Ok(Some(line));
        }
        let more = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| IngestError::Read {
                file: self.file.clone(),
                message: e.to_string(),
            })?;
        Ok(more.then(|| line_of(&self.record)))
    }
}

impl BatchReader for CsvReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn next_batch(&mut self, rejects: &mut Rejects) -> Result<Option<RecordBatch>, IngestError> {
        let width = self.schema.fields().len();
        let mut builders: Vec<StringBuilder> = (0..width)
            .map(|_| StringBuilder::with_capacity(self.batch_size, self.batch_size * 8))
            .collect();
        let mut lines: Vec<u64> = Vec::with_capacity(self.batch_size);
        // Bad rows of this batch as (line, record, error), handed to `rejects` in
        // line order once the batch is converted, so "fail" reports the first one.
        let mut bad: Vec<(u64, String, String)> = Vec::new();
        while lines.len() < self.batch_size && bad.len() < self.batch_size {
            let Some(line) = self.advance()? else {
                break;
            };
            let record = &self.record;
            if record.len() != width {
                // A blank line is not a row.
                if record.len() == 1 && record[0].is_empty() {
                    continue;
                }
                bad.push((
                    line,
                    raw(record, self.format.delimiter),
                    format!("expected {width} fields, found {}", record.len()),
                ));
                continue;
            }
            let mut fields = Vec::with_capacity(width);
            let mut invalid = None;
            for (i, bytes) in record.iter().enumerate() {
                match std::str::from_utf8(bytes) {
                    Ok(text) => fields.push(text),
                    Err(_) => {
                        invalid = Some(i);
                        break;
                    }
                }
            }
            if let Some(i) = invalid {
                bad.push((
                    line,
                    raw(record, self.format.delimiter),
                    format!(
                        "column {:?} is not valid UTF-8; set csv.encoding (e.g. \"latin1\")",
                        self.schema.field(i).name()
                    ),
                ));
                continue;
            }
            for (builder, value) in builders.iter_mut().zip(fields) {
                if is_null(value, &self.format.null_value) {
                    builder.append_null();
                } else {
                    builder.append_value(value);
                }
            }
            lines.push(line);
        }
        if lines.is_empty() && bad.is_empty() {
            return Ok(None);
        }
        let texts: Vec<StringArray> = builders.iter_mut().map(|b| b.finish()).collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(width);
        // Per row: the first conversion error.
        let mut errors: Vec<Option<String>> = vec![None; lines.len()];
        let mut any_error = false;
        for (field, text) in self.schema.fields().iter().zip(&texts) {
            if field.data_type() == &DataType::Utf8 {
                columns.push(Arc::new(text.clone()));
                continue;
            }
            let converted = cast_with_options(text, field.data_type(), &CastOptions::default())
                .map_err(|e| IngestError::Read {
                    file: self.file.clone(),
                    message: format!("column {:?}: {e}", field.name()),
                })?;
            if converted.null_count() != text.null_count() {
                for (row, error) in errors.iter_mut().enumerate() {
                    if text.is_valid(row) && converted.is_null(row) && error.is_none() {
                        any_error = true;
                        *error = Some(format!(
                            "column {:?}: cannot read {:?} as {}",
                            field.name(),
                            text.value(row),
                            field.data_type()
                        ));
                    }
                }
            }
            columns.push(converted);
        }
        let batch =
            RecordBatch::try_new(self.schema(), columns).map_err(|e| IngestError::Read {
                file: self.file.clone(),
                message: e.to_string(),
            })?;
        if !any_error && bad.is_empty() {
            return Ok(Some(batch));
        }
        let delimiter = char::from(self.format.delimiter).to_string();
        let mut keep = Vec::with_capacity(lines.len());
        for (row, error) in errors.into_iter().enumerate() {
            match error {
                None => keep.push(true),
                Some(message) => {
                    let record = texts
                        .iter()
                        .map(|t| if t.is_valid(row) { t.value(row) } else { "" })
                        .collect::<Vec<_>>()
                        .join(&delimiter);
                    bad.push((lines[row], record, message));
                    keep.push(false);
                }
            }
        }
        bad.sort_by_key(|(line, _, _)| *line);
        for (line, record, message) in bad {
            rejects.bad(&self.file, line, record, message)?;
        }
        let kept = filter_record_batch(&batch, &BooleanArray::from(keep)).map_err(|e| {
            IngestError::Read {
                file: self.file.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(Some(kept))
    }
}

fn is_null(value: &str, null_value: &Option<String>) -> bool {
    value.is_empty() || null_value.as_deref() == Some(value)
}

fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

fn raw(record: &csv::ByteRecord, delimiter: u8) -> String {
    let parts: Vec<String> = record
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    parts.join(&char::from(delimiter).to_string())
}

/// Column names from a header: trimmed, blanks named `column_N`, duplicates suffixed.
fn header_names(record: &csv::ByteRecord, file: &str) -> Result<Vec<String>, IngestError> {
    let mut names: Vec<String> = Vec::with_capacity(record.len());
    for (i, bytes) in record.iter().enumerate() {
        let name = std::str::from_utf8(bytes)
            .map_err(|_| IngestError::Read {
                file: file.into(),
                message: "the header is not valid UTF-8; set csv.encoding (e.g. \"latin1\")".into(),
            })?
            .trim();
        let mut name = if name.is_empty() {
            format!("column_{}", i + 1)
        } else {
            name.to_string()
        };
        if names.contains(&name) {
            let mut n = 2;
            while names.contains(&format!("{name}_{n}")) {
                n += 1;
            }
            name = format!("{name}_{n}");
        }
        names.push(name);
    }
    Ok(names)
}
