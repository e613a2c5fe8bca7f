//! PDF files: text per page into a table, plus chunk rows ready for embedding.
//!
//! Pages table: `document_id, file, page, page_count, title, author, text`.
//! Chunks table: `document_id, file, page, chunk, char_start, text` — chunks of
//! `chunk_size` characters overlapping by `chunk_overlap`, cut at white space
//! where possible and never across pages, so every chunk cites one page.
//! An encrypted or corrupt file is reported in `file_errors` and the others go on;
//! the job fails only when no file could be read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use lakehouse_flight_ext::v1::{IngestResult, PdfOptions};
use lopdf::{Document, Object};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::file::{FileIngest, file_errors, progress_stream, result_of};
use super::source;
use super::{IngestError, Origin, Target, commit};
use crate::jobs::JobContext;
use crate::query::QueryEngine;

/// How page text is cut into chunks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunking {
    size: usize,
    overlap: usize,
}

impl Chunking {
    /// Validates the caller's options (defaults 1000 / 200).
    pub(crate) fn new(options: &PdfOptions) -> Result<Self, IngestError> {
        let size = if options.chunk_size == 0 {
            1000
        } else {
            options.chunk_size as usize
        };
        let overlap = if options.chunk_overlap == 0 && options.chunk_size == 0 {
            200
        } else {
            options.chunk_overlap as usize
        };
        if overlap >= size {
            return Err(IngestError::invalid(
                "pdf.chunk_overlap",
                format!("{overlap} must be less than pdf.chunk_size ({size})"),
            ));
        }
        Ok(Self { size, overlap })
    }

    /// `(char_start, text)` chunks of `text`.
    pub(crate) fn chunks(&self, text: &str) -> Vec<(usize, String)> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = (start + self.size).min(chars.len());
            if end < chars.len() {
                // Cut at the last white space in the second half of the window.
                if let Some(cut) = (start + self.size / 2..end)
                    .rev()
                    .find(|&i| chars[i].is_whitespace())
                {
                    end = cut + 1;
                }
            }
            let chunk: String = chars[start..end].iter().collect();
            let trimmed = chunk.trim();
            if !trimmed.is_empty() {
                let leading = chunk.chars().take_while(|c| c.is_whitespace()).count();
                out.push((start + leading, trimmed.to_string()));
            }
            if end == chars.len() {
                break;
            }
            start = end.saturating_sub(self.overlap).max(start + 1);
        }
        out
    }
}

/// One readable PDF.
#[derive(Debug)]
struct Pdf {
    id: String,
    title: Option<String>,
    author: Option<String>,
    pages: Vec<String>,
}

/// Reads `bytes` as a PDF; encrypted and corrupt files are errors that say so.
fn parse(bytes: &[u8]) -> Result<Pdf, String> {
    let id = hex(&Sha256::digest(bytes)[..16]);
    let document = Document::load_mem(bytes).map_err(|e| match e {
        lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_) => {
            "the PDF is encrypted and needs a password; decrypt it first".to_string()
        }
        other => format!("not a readable PDF: {other}"),
    })?;
    if document.is_encrypted() {
        return Err("the PDF is encrypted and needs a password; decrypt it first".into());
    }
    let numbers: Vec<u32> = document.get_pages().keys().copied().collect();
    if numbers.is_empty() {
        return Err("not a readable PDF: no pages found".into());
    }
    let mut pages = Vec::with_capacity(numbers.len());
    for number in numbers {
        // A page whose text can't be extracted (images only, odd fonts) is empty.
        let text = document.extract_text(&[number]).unwrap_or_default();
        pages.push(normalize(&text));
    }
    let info = document.trailer.get(b"Info").ok().and_then(|o| match o {
        Object::Reference(id) => document.get_dictionary(*id).ok(),
        Object::Dictionary(d) => Some(d),
        _ => None,
    });
    let field = |key: &[u8]| {
        info.and_then(|d| d.get(key).ok())
            .and_then(|o| o.as_str().ok())
            .map(text_string)
            .filter(|s| !s.trim().is_empty())
    };
    Ok(Pdf {
        id,
        title: field(b"Title"),
        author: field(b"Author"),
        pages,
    })
}

/// A PDF text string: UTF-16BE with a byte-order mark, else PDFDocEncoding (≈ Latin-1).
fn text_string(bytes: &[u8]) -> String {
    match bytes.strip_prefix(&[0xFE, 0xFF]) {
        Some(utf16) => {
            let units: Vec<u16> = utf16
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        None => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Collapses runs of spaces and trims lines.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn page_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("document_id", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("page", DataType::Int32, false),
        Field::new("page_count", DataType::Int32, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("author", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, false),
    ]))
}

fn chunk_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("document_id", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("page", DataType::Int32, false),
        Field::new("chunk", DataType::Int32, false),
        Field::new("char_start", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

fn batches(
    pdf: &Pdf,
    file: &str,
    chunking: &Chunking,
) -> Result<(RecordBatch, RecordBatch), arrow::error::ArrowError> {
    let n = pdf.pages.len();
    let pages = RecordBatch::try_new(
        page_schema(),
        vec![
            Arc::new(StringArray::from(vec![pdf.id.as_str(); n])),
            Arc::new(StringArray::from(vec![file; n])),
            Arc::new(Int32Array::from_iter_values((1..=n).map(|p| p as i32))),
            Arc::new(Int32Array::from(vec![n as i32; n])),
            Arc::new(StringArray::from(vec![pdf.title.as_deref(); n])),
            Arc::new(StringArray::from(vec![pdf.author.as_deref(); n])),
            Arc::new(StringArray::from_iter_values(pdf.pages.iter())),
        ],
    )?;
    let (mut page_no, mut chunk_no, mut starts, mut texts) = (vec![], vec![], vec![], vec![]);
    let mut index = 0;
    for (p, text) in pdf.pages.iter().enumerate() {
        for (start, chunk) in chunking.chunks(text) {
            page_no.push(p as i32 + 1);
            chunk_no.push(index);
            starts.push(start as i64);
            texts.push(chunk);
            index += 1;
        }
    }
    let m = texts.len();
    let chunks = RecordBatch::try_new(
        chunk_schema(),
        vec![
            Arc::new(StringArray::from(vec![pdf.id.as_str(); m])),
            Arc::new(StringArray::from(vec![file; m])),
            Arc::new(Int32Array::from(page_no)),
            Arc::new(Int32Array::from(chunk_no)),
            Arc::new(Int64Array::from(starts)),
            Arc::new(StringArray::from(texts)),
        ],
    )?;
    Ok((pages, chunks))
}

type Sender = mpsc::Sender<Result<RecordBatch, DataFusionError>>;

/// Reads every PDF on a blocking thread; returns the files that failed.
fn produce(
    ingest: &FileIngest,
    runtime: &Handle,
    bytes: &AtomicU64,
    job: &JobContext,
    pages_tx: &Sender,
    chunks_tx: &Sender,
) -> Result<Vec<(String, String)>, IngestError> {
    let mut errors = Vec::new();
    let mut read = 0;
    for file in &ingest.files {
        if job.cancelled().is_cancelled() {
            return Err(IngestError::Cancelled);
        }
        let outcome = source::read_all(&ingest.bucket, file, runtime, bytes)
            .map_err(|e| e.to_string())
            .and_then(|data| parse(&data));
        job.progress(|p| p.files_done += 1);
        let pdf = match outcome {
            Ok(pdf) => pdf,
            Err(error) => {
                tracing::info!(file = %file.path, %error, "PDF skipped");
                errors.push((file.path.clone(), error));
                continue;
            }
        };
        let (pages, chunks) =
            batches(&pdf, &file.path, &ingest.pdf).map_err(|e| IngestError::Read {
                file: file.path.clone(),
                message: e.to_string(),
            })?;
        read += 1;
        if pages_tx.blocking_send(Ok(pages)).is_err()
            || chunks_tx.blocking_send(Ok(chunks)).is_err()
        {
            return Ok(errors);
        }
    }
    if read == 0 {
        let summary = errors
            .iter()
            .map(|(f, e)| format!("{f}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(IngestError::AllFilesFailed(summary));
    }
    Ok(errors)
}

/// Ingests the PDFs of `ingest` into its table and its chunks table.
pub(super) async fn run(
    engine: Arc<QueryEngine>,
    job: JobContext,
    ingest: FileIngest,
    started: Instant,
) -> Result<IngestResult, IngestError> {
    let bytes = Arc::new(AtomicU64::new(0));
    let (pages_tx, pages_rx) = mpsc::channel(4);
    let (chunks_tx, chunks_rx) = mpsc::channel(4);
    let producer = {
        let ingest = ingest.clone();
        let bytes = Arc::clone(&bytes);
        let job = job.clone();
        let runtime = Handle::current();
        tokio::task::spawn_blocking(move || {
            let outcome = produce(&ingest, &runtime, &bytes, &job, &pages_tx, &chunks_tx);
            if let Err(error) = &outcome {
                for tx in [&pages_tx, &chunks_tx] {
                    let _ = tx.blocking_send(Err(DataFusionError::Execution(error.to_string())));
                }
            }
            outcome
        })
    };
    let none = Arc::new(AtomicU64::new(0));
    let pages = progress_stream(
        page_schema(),
        pages_rx,
        job.clone(),
        Arc::clone(&bytes),
        Arc::clone(&none),
    );
    // Chunk rows are not counted as progress rows: the pages are the job's rows.
    let chunks: datafusion::execution::SendableRecordBatchStream = Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            chunk_schema(),
            futures::stream::unfold(chunks_rx, |mut rx| async move {
                rx.recv().await.map(|i| (i, rx))
            }),
        ),
    );
    let origin = Origin {
        job_type: "lakehouse.ingest.file".into(),
        source: Some(ingest.source.clone()),
        parent_run_id: None,
        bytes: Arc::clone(&bytes),
    };
    let chunk_target = Target {
        schema: ingest.chunks_table.0.clone(),
        table: ingest.chunks_table.1.clone(),
        ..ingest.target.clone()
    };
    job.phase("writing");
    let (pages_done, chunks_done) = tokio::join!(
        commit(&engine, &ingest.target, pages, &origin),
        commit(&engine, &chunk_target, chunks, &origin),
    );
    let errors = producer.await.map_err(|e| IngestError::Read {
        file: String::new(),
        message: format!("the PDF reader crashed: {e}"),
    })??;
    let pages_done = pages_done?;
    let chunks_done = chunks_done?;
    let mut result = result_of(
        &pages_done,
        bytes.load(Ordering::Relaxed),
        ingest.files.len(),
    );
    result.chunks_table = chunks_done.entry.qualified_name();
    result.chunk_rows = chunks_done.written.rows;
    result.file_errors = file_errors(errors);
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_overlap_and_cover_the_text() {
        let chunking = Chunking::new(&PdfOptions {
            chunk_size: 20,
            chunk_overlap: 5,
            ..Default::default()
        })
        .unwrap();
        let text = "one two three four five six seven eight nine ten eleven twelve";
        let chunks = chunking.chunks(text);
        assert!(chunks.len() > 2);
        for (start, chunk) in &chunks {
            assert!(chunk.chars().count() <= 20, "{chunk}");
            assert!(
                text[*start..].starts_with(chunk.as_str()),
                "{start} {chunk}"
            );
        }
        // Consecutive chunks share text.
        let (s0, c0) = &chunks[0];
        let (s1, _) = &chunks[1];
        assert!(s1 < &(s0 + c0.len()));
        assert!(chunks.last().unwrap().1.ends_with("twelve"));
        assert!(
            Chunking::new(&PdfOptions {
                chunk_size: 10,
                chunk_overlap: 10,
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn corrupt_bytes_are_a_clear_error() {
        let error = parse(b"%PDF-1.4\nthis is not really a pdf").unwrap_err();
        assert!(error.contains("not a readable PDF"), "{error}");
    }
}
