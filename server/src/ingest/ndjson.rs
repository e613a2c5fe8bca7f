//! Newline-delimited JSON to Arrow batches, one object per line.
//!
//! Lines are decoded a batch at a time by arrow-json; when a batch fails, its
//! lines are decoded one by one to find the bad ones, which fail the job or go
//! to the rejects with their line numbers.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use arrow::json::reader::infer_json_schema_from_iterator;

use super::IngestError;
use super::reader::{BatchReader, Rejects, Typing};

/// Lines read to infer the schema.
const SAMPLE_LINES: usize = 1000;

/// Batches of one NDJSON file.
pub(super) struct NdjsonReader {
    input: Box<dyn BufRead + Send>,
    file: String,
    schema: SchemaRef,
    /// Lines read for inference, not yet returned.
    pending: VecDeque<(Vec<u8>, u64)>,
    line: u64,
    batch_size: usize,
}

impl NdjsonReader {
    /// Reads a sample and settles the schema.
    pub(super) fn open(
        mut input: Box<dyn BufRead + Send>,
        file: &str,
        typing: &Typing,
        batch_size: usize,
    ) -> Result<Self, IngestError> {
        let mut pending = VecDeque::new();
        let mut line = 0;
        while pending.len() < SAMPLE_LINES {
            match next_line(&mut input, &mut line, file)? {
                Some(entry) => pending.push_back(entry),
                None => break,
            }
        }
        // Lines that are not JSON objects are left to the decoder to report.
        let values: Vec<serde_json::Value> = pending
            .iter()
            .filter_map(|(bytes, _)| serde_json::from_slice::<serde_json::Value>(bytes).ok())
            .filter(serde_json::Value::is_object)
            .collect();
        if values.is_empty() {
            return Err(IngestError::Read {
                file: file.into(),
                message: "no JSON object found in the first lines".into(),
            });
        }
        let inferred =
            infer_json_schema_from_iterator(values.into_iter().map(Ok)).map_err(|e| {
                IngestError::Read {
                    file: file.into(),
                    message: format!("cannot infer a schema: {e}"),
                }
            })?;
        let schema = typing.target(&inferred, file)?;
        Ok(Self {
            input,
            file: file.to_string(),
            schema,
            pending,
            line,
            batch_size,
        })
    }

    fn decode(&self, lines: &[&[u8]]) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
        let mut decoder = ReaderBuilder::new(Arc::clone(&self.schema))
            .with_batch_size(lines.len().max(1))
            .with_coerce_primitive(true)
            .build_decoder()?;
        for line in lines {
            decoder.decode(line)?;
            decoder.decode(b"\n")?;
        }
        decoder.flush()
    }
}

fn next_line(
    input: &mut Box<dyn BufRead + Send>,
    line: &mut u64,
    file: &str,
) -> Result<Option<(Vec<u8>, u64)>, IngestError> {
    loop {
        let mut buf = Vec::new();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|e| IngestError::Read {
                file: file.into(),
                message: e.to_string(),
            })?;
        if n == 0 {
            return Ok(None);
        }
        *line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Ok(Some((buf, *line)));
    }
}

impl BatchReader for NdjsonReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn next_batch(&mut self, rejects: &mut Rejects) -> Result<Option<RecordBatch>, IngestError> {
        let mut lines = Vec::with_capacity(self.batch_size);
        while lines.len() < self.batch_size {
            let next = match self.pending.pop_front() {
                Some(entry) => Some(entry),
                None => next_line(&mut self.input, &mut self.line, &self.file)?,
            };
            match next {
                Some(entry) => lines.push(entry),
                None => break,
            }
        }
        if lines.is_empty() {
            return Ok(None);
        }
        let all: Vec<&[u8]> = lines.iter().map(|(b, _)| b.as_slice()).collect();
        if let Ok(batch) = self.decode(&all) {
            return Ok(batch);
        }
        // Find the bad lines one by one.
        let mut good = Vec::new();
        for (bytes, line) in &lines {
            match self.decode(&[bytes.as_slice()]) {
                Ok(Some(batch)) => good.push(batch),
                Ok(None) => {}
                Err(e) => rejects.bad(
                    &self.file,
                    *line,
                    String::from_utf8_lossy(bytes).trim_end().to_string(),
                    e.to_string(),
                )?,
            }
        }
        if good.is_empty() {
            return self.next_batch(rejects);
        }
        concat_batches(&self.schema, &good)
            .map(Some)
            .map_err(|e| IngestError::Read {
                file: self.file.clone(),
                message: e.to_string(),
            })
    }
}
