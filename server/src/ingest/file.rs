//! `lakehouse.ingest.file`: files in a bucket (one, or a glob of many) into a table.
//!
//! A blocking thread reads the files one after another and sends Arrow batches
//! through a bounded channel to the Delta writer, so memory stays bounded by a few
//! batches whatever the size of the input. Bad rows fail the job (with file and
//! line) or go to the rejects table, as the caller chose. Cancelling stops the
//! reader, which fails the stream, so the write commits nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use lakehouse_flight_ext::v1::{
    BadRows, Column, FileError, FileFormat, IngestFileRequest, IngestMode, IngestResult,
};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::csv::{CsvFormat, CsvReader};
use super::reader::{BatchReader, DEFAULT_MAX_REJECTS, RejectRow, Rejects, Typing, conform};
use super::source::{self, InputFile};
use super::{
    IfExists, IfMissing, IngestError, Origin, Target, columnar, commit, ndjson, pdf, types,
};
use crate::catalog::CatalogError;
use crate::jobs::JobContext;
use crate::lineage::Source;
use crate::query::QueryEngine;
use crate::storage::{Bucket, PRIMARY};

/// A validated file-ingest request.
#[derive(Debug, Clone)]
pub(crate) struct FileIngest {
    /// Bucket of the input.
    pub(crate) bucket: Arc<Bucket>,
    /// The files, in order.
    pub(crate) files: Vec<InputFile>,
    /// Their format (never unspecified).
    pub(crate) format: FileFormat,
    /// CSV options.
    pub(crate) csv: CsvFormat,
    /// Column type overrides.
    pub(crate) overrides: HashMap<String, DataType>,
    /// The target.
    pub(crate) target: Target,
    /// CREATE, APPEND or REPLACE.
    pub(crate) mode: IngestMode,
    /// Bad-row handling.
    pub(crate) bad_rows: BadRows,
    /// Rejects table (schema, name).
    pub(crate) rejects_table: (String, String),
    /// Bad-row limit.
    pub(crate) max_rejects: u64,
    /// PDF chunking.
    pub(crate) pdf: pdf::Chunking,
    /// PDF chunk table (schema, name).
    pub(crate) chunks_table: (String, String),
    /// For lineage: where the input is.
    pub(crate) source: Source,
}

/// Splits `schema.table` (schema defaults to `public`).
pub(crate) fn split_table(name: &str, field: &str) -> Result<(String, String), IngestError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(IngestError::invalid(
            field,
            "is empty: name the target table",
        ));
    }
    crate::catalog::split_table(name).map_err(|e| IngestError::invalid(field, e.to_string()))
}

impl FileIngest {
    /// Validates `request` and resolves its files in `bucket`.
    pub(crate) async fn prepare(
        request: &IngestFileRequest,
        bucket: Arc<Bucket>,
        files: Option<Vec<InputFile>>,
    ) -> Result<Self, IngestError> {
        let (schema, table) = split_table(&request.table, "table")?;
        let files = match files {
            Some(files) => files,
            None => {
                let path = source::check_path(&request.path)?;
                source::resolve(&bucket, &path).await?
            }
        };
        let format = match FileFormat::try_from(request.format) {
            Ok(FileFormat::Unspecified) | Err(_) => format_of(&files[0].path)?,
            Ok(format) => format,
        };
        let mode = match IngestMode::try_from(request.mode) {
            Ok(IngestMode::Unspecified) => IngestMode::Create,
            Ok(mode) => mode,
            Err(_) => {
                return Err(IngestError::invalid(
                    "mode",
                    format!("{} is not a mode", request.mode),
                ));
            }
        };
        let bad_rows = match BadRows::try_from(request.bad_rows) {
            Ok(BadRows::Reject) => BadRows::Reject,
            _ => BadRows::Fail,
        };
        let mut overrides = HashMap::new();
        for (column, name) in &request.column_types {
            let data_type = types::parse_type(name)
                .map_err(|e| IngestError::invalid(&format!("column_types.{column}"), e))?;
            overrides.insert(column.clone(), data_type);
        }
        let rejects_table = if request.rejects_table.is_empty() {
            (schema.clone(), format!("{table}_rejects"))
        } else {
            split_table(&request.rejects_table, "rejects_table")?
        };
        let pdf_options = request.pdf.clone().unwrap_or_default();
        let chunks_table = if pdf_options.chunks_table.is_empty() {
            (schema.clone(), format!("{table}_chunks"))
        } else {
            split_table(&pdf_options.chunks_table, "pdf.chunks_table")?
        };
        let (if_exists, if_missing) = super::modes(mode);
        let target_bucket = if request.target_bucket.is_empty() {
            PRIMARY.to_string()
        } else {
            request.target_bucket.clone()
        };
        let location = match files.as_slice() {
            [one] => bucket
                .url_of(&one.path)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| one.path.clone()),
            _ => bucket
                .url_of(&request.path)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| request.path.clone()),
        };
        Ok(Self {
            source: Source {
                system: bucket.kind().as_str().to_string(),
                location,
            },
            bucket,
            files,
            format,
            csv: CsvFormat::new(&request.csv.clone().unwrap_or_default())?,
            overrides,
            target: Target {
                schema,
                table,
                if_exists,
                if_missing,
                bucket: target_bucket,
            },
            mode,
            bad_rows,
            rejects_table,
            max_rejects: if request.max_rejects == 0 {
                DEFAULT_MAX_REJECTS
            } else {
                request.max_rejects
            },
            pdf: pdf::Chunking::new(&pdf_options)?,
            chunks_table,
        })
    }

    /// One line for the job list.
    pub(crate) fn describe(&self) -> String {
        let what = match self.files.as_slice() {
            [one] => one.path.clone(),
            many => format!("{} files", many.len()),
        };
        format!(
            "ingest {what} ({:?}) from bucket {} into {}.{}",
            self.format,
            self.bucket.name(),
            self.target.schema,
            self.target.table
        )
    }
}

/// The format a file's extension names.
pub(crate) fn format_of(path: &str) -> Result<FileFormat, IngestError> {
    let lower = path.to_ascii_lowercase();
    let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    Ok(match ext {
        "csv" | "tsv" | "txt" => FileFormat::Csv,
        "json" | "jsonl" | "ndjson" => FileFormat::Ndjson,
        "parquet" | "pq" => FileFormat::Parquet,
        "arrow" | "arrows" | "ipc" | "feather" => FileFormat::ArrowIpc,
        "pdf" => FileFormat::Pdf,
        _ => {
            return Err(IngestError::invalid(
                "format",
                format!(
                    "cannot tell the format of {path:?} from its extension; set format (CSV, NDJSON, PARQUET, ARROW_IPC, PDF)"
                ),
            ));
        }
    })
}

/// Ingests `request` (files of the primary bucket) as a job of `engine` and waits for
/// its end: what `lakehouse.ingest.file` does, without a call around it. Returns the
/// job's last record (its state, error and result). For the benchmarks, which measure
/// the ingest path itself.
pub async fn ingest_and_wait(
    engine: Arc<QueryEngine>,
    request: &IngestFileRequest,
) -> Result<lakehouse_flight_ext::v1::Job, Box<dyn std::error::Error + Send + Sync>> {
    use futures::StreamExt;
    let bucket = engine.catalog().buckets().primary()?;
    let ingest = FileIngest::prepare(request, bucket, None).await?;
    let job_engine = Arc::clone(&engine);
    let handle = engine.services().jobs.spawn(
        "ingest_file",
        ingest.describe(),
        String::new(),
        move |ctx| async move {
            run(job_engine, ctx, ingest)
                .await
                .map(lakehouse_flight_ext::v1::job::Result::Ingest)
                .map_err(|e| crate::jobs::JobError::Failed {
                    code: lakehouse_flight_ext::names::INTERNAL,
                    message: e.to_string(),
                })
        },
    );
    let mut last = handle.snapshot();
    let mut follow = Box::pin(handle.follow());
    while let Some(job) = follow.next().await {
        last = job;
    }
    Ok(last)
}

/// Runs the ingest; the job's progress follows it.
pub(crate) async fn run(
    engine: Arc<QueryEngine>,
    job: JobContext,
    ingest: FileIngest,
) -> Result<IngestResult, IngestError> {
    let started = Instant::now();
    let catalog = Arc::clone(engine.catalog());
    let bytes_total: u64 = ingest.files.iter().map(|f| f.size).sum();
    job.progress(|p| {
        p.phase = "reading".into();
        p.files_total = ingest.files.len() as u64;
        p.bytes_total = Some(bytes_total);
    });
    let existing = match catalog.table(&ingest.target.schema, &ingest.target.table) {
        Ok(entry) if ingest.mode == IngestMode::Create => {
            return Err(CatalogError::TableExists {
                schema: entry.schema,
                table: entry.name,
            }
            .into());
        }
        Ok(entry) if ingest.mode == IngestMode::Append => Some(catalog.table_schema(&entry).await?),
        Ok(_) | Err(CatalogError::TableNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if ingest.format == FileFormat::Pdf {
        return pdf::run(engine, job, ingest, started).await;
    }
    let bytes = Arc::new(AtomicU64::new(0));
    let rejects = Rejects::new(ingest.bad_rows, ingest.max_rejects);
    let rejected = Arc::clone(&rejects.count);
    let (schema_tx, schema_rx) = oneshot::channel();
    let (batch_tx, batch_rx) = mpsc::channel(4);
    let typing = Typing::new(ingest.overrides.clone(), existing);
    let producer = {
        let ingest = ingest.clone();
        let bytes = Arc::clone(&bytes);
        let job = job.clone();
        let runtime = Handle::current();
        let batch_size = engine.batch_size();
        tokio::task::spawn_blocking(move || {
            let mut rejects = rejects;
            let outcome = produce(
                &ingest,
                typing,
                &runtime,
                &bytes,
                &job,
                batch_size,
                schema_tx,
                &batch_tx,
                &mut rejects,
            );
            if let Err(error) = &outcome {
                // The writer must fail too, so nothing is committed.
                let _ = batch_tx.blocking_send(Err(DataFusionError::Execution(error.to_string())));
            }
            outcome.map(|()| rejects.rows)
        })
    };
    let origin = Origin {
        job_type: "lakehouse.ingest.file".into(),
        source: Some(ingest.source.clone()),
        parent_run_id: None,
        bytes: Arc::clone(&bytes),
    };
    let (committed, reject_rows) = super::commit_produced(
        &engine,
        &job,
        &ingest.target,
        &origin,
        schema_rx,
        batch_rx,
        producer,
        rejected,
    )
    .await?;
    let mut result = result_of(
        &committed,
        bytes.load(Ordering::Relaxed),
        ingest.files.len(),
    );
    if !reject_rows.is_empty() {
        job.phase("writing rejects");
        result.rejected_rows = reject_rows.len() as u64;
        result.rejects_table =
            write_rejects(&engine, &ingest, reject_rows, committed.run_id.clone()).await?;
    }
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}

/// The reader thread: every file in turn, batches into `batches`.
#[allow(clippy::too_many_arguments)]
fn produce(
    ingest: &FileIngest,
    mut typing: Typing,
    runtime: &Handle,
    bytes: &Arc<AtomicU64>,
    job: &JobContext,
    batch_size: usize,
    schema_tx: oneshot::Sender<SchemaRef>,
    batches: &mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    rejects: &mut Rejects,
) -> Result<(), IngestError> {
    let mut schema_tx = Some(schema_tx);
    for file in &ingest.files {
        let mut reader = open_reader(ingest, file, &typing, runtime, bytes, batch_size)?;
        let schema = reader.schema();
        if let Some(tx) = schema_tx.take() {
            if tx.send(Arc::clone(&schema)).is_err() {
                return Ok(());
            }
            typing.fixed = Some(Arc::clone(&schema));
        }
        let target = typing.fixed.clone().unwrap_or(schema);
        while let Some(batch) = reader.next_batch(rejects)? {
            if job.cancelled().is_cancelled() {
                return Err(IngestError::Cancelled);
            }
            let batch = conform(&batch, &target, &file.path)?;
            if batch.num_rows() > 0 && batches.blocking_send(Ok(batch)).is_err() {
                // The writer is gone (it failed); its error is reported.
                return Ok(());
            }
        }
        job.progress(|p| p.files_done += 1);
    }
    Ok(())
}

fn open_reader(
    ingest: &FileIngest,
    file: &InputFile,
    typing: &Typing,
    runtime: &Handle,
    bytes: &Arc<AtomicU64>,
    batch_size: usize,
) -> Result<Box<dyn BatchReader>, IngestError> {
    let path = file.path.as_str();
    Ok(match ingest.format {
        FileFormat::Csv => {
            let input = source::open(&ingest.bucket, file, runtime, Arc::clone(bytes))?;
            let input = source::utf8_reader(input, &ingest.csv.encoding)?;
            Box::new(CsvReader::open(
                input,
                path,
                &ingest.csv,
                typing,
                batch_size,
            )?)
        }
        FileFormat::Ndjson => {
            let input = source::open(&ingest.bucket, file, runtime, Arc::clone(bytes))?;
            let input = source::utf8_reader(input, &ingest.csv.encoding)?;
            Box::new(ndjson::NdjsonReader::open(input, path, typing, batch_size)?)
        }
        FileFormat::Parquet => Box::new(columnar::ParquetReader::open(
            &ingest.bucket,
            file,
            typing,
            runtime,
            Arc::clone(bytes),
            batch_size,
        )?),
        FileFormat::ArrowIpc => {
            let input = source::open(&ingest.bucket, file, runtime, Arc::clone(bytes))?;
            Box::new(columnar::IpcReader::open(input, path, typing)?)
        }
        FileFormat::Pdf | FileFormat::Unspecified => {
            return Err(IngestError::invalid("format", "not a tabular format"));
        }
    })
}

/// The writer's input: batches from the reader thread, counted into the job's progress.
pub(crate) fn progress_stream(
    schema: SchemaRef,
    batches: mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
    job: JobContext,
    bytes: Arc<AtomicU64>,
    rejected: Arc<AtomicU64>,
) -> SendableRecordBatchStream {
    // A cancelled job ends the stream with an error, also after the last batch, so
    // the write fails instead of committing: a cancel never loses to the commit.
    let stream = futures::stream::unfold(Some(batches), move |rx| {
        let job = job.clone();
        let bytes = Arc::clone(&bytes);
        let rejected = Arc::clone(&rejected);
        async move {
            let mut rx = rx?;
            let item = rx.recv().await;
            if job.cancelled().is_cancelled() {
                let error = DataFusionError::External(Box::new(IngestError::Cancelled));
                return Some((Err(error), None));
            }
            let item = item?;
            if let Ok(batch) = &item {
                let rows = batch.num_rows() as u64;
                job.progress(|p| {
                    p.rows += rows;
                    p.bytes = bytes.load(Ordering::Relaxed);
                    p.rejected_rows = rejected.load(Ordering::Relaxed);
                });
            }
            Some((item, Some(rx)))
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// The result of a committed ingest.
pub(crate) fn result_of(committed: &super::Committed, bytes: u64, files: usize) -> IngestResult {
    IngestResult {
        table: committed.entry.qualified_name(),
        version: committed.written.version,
        rows: committed.written.rows,
        bytes,
        files: files as u64,
        pii: committed.pii.clone(),
        run_id: committed.run_id.clone(),
        columns: committed
            .columns
            .iter()
            .map(|(name, data_type)| Column {
                name: name.clone(),
                data_type: data_type.clone(),
            })
            .collect(),
        ..IngestResult::default()
    }
}

/// Appends the rejected rows to the rejects table (created on first use).
async fn write_rejects(
    engine: &Arc<QueryEngine>,
    ingest: &FileIngest,
    rows: Vec<RejectRow>,
    parent_run_id: String,
) -> Result<String, IngestError> {
    let utc: Arc<str> = Arc::from("UTC");
    let schema = Arc::new(Schema::new(vec![
        Field::new("target_table", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("record", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new(
            "rejected_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::clone(&utc))),
            false,
        ),
    ]));
    let now = chrono::Utc::now().timestamp_micros();
    let target = format!("{}.{}", ingest.target.schema, ingest.target.table);
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|_| target.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.file.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.line as i64),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.record.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.error.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|_| parent_run_id.as_str()),
            )),
            Arc::new(TimestampMicrosecondArray::from(vec![now; rows.len()]).with_timezone(utc)),
        ],
    )
    .map_err(|e| IngestError::Read {
        file: String::new(),
        message: e.to_string(),
    })?;
    let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter([Ok(batch)]),
    ));
    let target = Target {
        schema: ingest.rejects_table.0.clone(),
        table: ingest.rejects_table.1.clone(),
        if_exists: IfExists::Append,
        if_missing: IfMissing::Create,
        bucket: ingest.target.bucket.clone(),
    };
    let origin = Origin {
        job_type: "lakehouse.ingest.rejects".into(),
        source: Some(ingest.source.clone()),
        parent_run_id: Some(parent_run_id),
        bytes: Arc::new(AtomicU64::new(0)),
    };
    let committed = commit(engine, &target, stream, &origin).await?;
    Ok(committed.entry.qualified_name())
}

/// Files that failed while others went on (PDF).
pub(crate) fn file_errors(errors: Vec<(String, String)>) -> Vec<FileError> {
    errors
        .into_iter()
        .map(|(file, error)| FileError { file, error })
        .collect()
}
