//! Writing results: aligned tables, CSV, JSON (an array or one object per line) and
//! Parquet files. Every format but the table streams batch by batch.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use futures::{Stream, StreamExt};

use super::client::CliError;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A Parquet file (needs --output).
    Parquet,
}

impl Format {
    /// Parses a format name (for `\format` in the prompt).
    pub fn parse(text: &str) -> Option<Self> {
        <Self as clap::ValueEnum>::from_str(text, true).ok()
    }
}

/// Where and how to write one result.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    pub format: Format,
    pub output: Option<PathBuf>,
    /// The table format shows at most this many rows.
    pub max_rows: usize,
}

enum Writer {
    Table(Vec<RecordBatch>, usize),
    Csv(arrow::csv::Writer<Box<dyn Write>>),
    Json(arrow::json::ArrayWriter<Box<dyn Write>>),
    Ndjson(arrow::json::LineDelimitedWriter<Box<dyn Write>>),
    Parquet(ArrowWriter<File>),
}

fn write_error(e: impl std::fmt::Display) -> CliError {
    CliError::local(format!("writing the result: {e}"))
}

fn open(output: Option<&Path>) -> Result<Box<dyn Write>, CliError> {
    Ok(match output {
        Some(path) => Box::new(std::io::BufWriter::new(File::create(path).map_err(
            |e| CliError::local(format!("cannot create {}: {e}", path.display())),
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

impl Sink {
    /// Writes every batch of `batches` (with `schema`); returns the rows written.
    pub(crate) async fn write(
        &self,
        schema: SchemaRef,
        mut batches: impl Stream<Item = Result<RecordBatch, CliError>> + Unpin,
    ) -> Result<u64, CliError> {
        let output = self.output.as_deref();
        let mut writer = match self.format {
            Format::Table => Writer::Table(Vec::new(), 0),
            Format::Csv => Writer::Csv(arrow::csv::Writer::new(open(output)?)),
            Format::Json => Writer::Json(arrow::json::ArrayWriter::new(open(output)?)),
            Format::Ndjson => Writer::Ndjson(arrow::json::LineDelimitedWriter::new(open(output)?)),
            Format::Parquet => {
                let path = output.ok_or_else(|| {
                    CliError::local("--format parquet writes a file: give --output FILE")
                })?;
                let file = File::create(path).map_err(|e| {
                    CliError::local(format!("cannot create {}: {e}", path.display()))
                })?;
                Writer::Parquet(
                    ArrowWriter::try_new(file, schema.clone(), None).map_err(write_error)?,
                )
            }
        };
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            match &mut writer {
                Writer::Table(kept, held) => {
                    if *held < self.max_rows {
                        let take = (self.max_rows - *held).min(batch.num_rows());
                        kept.push(batch.slice(0, take));
                        *held += take;
                    }
                }
                Writer::Csv(w) => w.write(&batch).map_err(write_error)?,
                Writer::Json(w) => w.write(&batch).map_err(write_error)?,
                Writer::Ndjson(w) => w.write(&batch).map_err(write_error)?,
                Writer::Parquet(w) => w.write(&batch).map_err(write_error)?,
            }
        }
        match writer {
            Writer::Table(kept, held) => {
                let text = if kept.is_empty() {
                    arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(schema)])
                } else {
                    arrow::util::pretty::pretty_format_batches(&kept)
                }
                .map_err(write_error)?;
                let mut out = open(output)?;
                writeln!(out, "{text}").map_err(write_error)?;
                if (held as u64) < rows {
                    writeln!(
                        out,
                        "(showing the first {held} of {rows} rows; --max-rows shows more, --format csv streams all)"
                    )
                    .map_err(write_error)?;
                }
                out.flush().map_err(write_error)?;
            }
            Writer::Csv(w) => w.into_inner().flush().map_err(write_error)?,
            Writer::Json(mut w) => {
                w.finish().map_err(write_error)?;
                let mut out = w.into_inner();
                writeln!(out).map_err(write_error)?;
                out.flush().map_err(write_error)?;
            }
            Writer::Ndjson(mut w) => {
                w.finish().map_err(write_error)?;
                w.into_inner().flush().map_err(write_error)?;
            }
            Writer::Parquet(w) => {
                w.close().map_err(write_error)?;
            }
        }
        Ok(rows)
    }
}
