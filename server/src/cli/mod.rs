//! The client side of the `lakehouse` command: `sql`, `ingest`, `index`, `bucket`,
//! `profile` and `job` talk Flight SQL (and the `lakehouse.*` actions) to a server.
//!
//! Owns: argument parsing of the client subcommands, output formats, progress bars.
//! May call: `lakehouse_flight_ext` (the protocol) and, for shared names, `jobs`;
//! never the server's internals: everything goes over the wire, as for any client.

pub mod client;
mod output;
mod profile;
mod progress;
pub mod sql;

use std::path::PathBuf;
use std::time::Instant;

use arrow_flight::sql::Any;
use arrow_flight::{FlightData, FlightDescriptor};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use lakehouse_flight_ext::actions::{
    BUCKET_ADD, BUCKET_LIST, BUCKET_MOVE_INDEX, BUCKET_REMOVE, INGEST_FILE, INGEST_MYSQL,
    INGEST_POSTGRES, JOB_CANCEL, JOB_LIST, JOB_STATUS, TABLE_VACUUM, VECTOR_EVAL,
    VECTOR_EVAL_SET_CREATE, VECTOR_INDEX_CREATE,
};
use lakehouse_flight_ext::v1::{
    BadRows, BucketAddRequest, BucketInfo, BucketList, BucketListRequest, BucketMoveIndexRequest,
    BucketRemoveRequest, BucketRemoveResult, CsvOptions, FileFormat, IngestDatabaseRequest,
    IngestFileRequest, IngestMode, IngestUploadCommand, Job, JobCancelRequest, JobList,
    JobListRequest, JobStatusRequest, TableVacuumRequest, TableVacuumResult, VectorEvalRequest,
    VectorEvalResult, VectorEvalSetCreateRequest, VectorIndexCreateRequest, VectorSearchCommand,
    VectorSearchRequest, job,
};
use lakehouse_flight_ext::{INGEST_UPLOAD_TYPE_URL, VECTOR_SEARCH_TYPE_URL};
use prost::Message;
use serde::Serialize;

use crate::jobs::state_name;
pub use client::{CliError, Client, ConnectArgs};
use output::{Format, Sink};
use progress::Followed;

/// The client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Run SQL: an interactive prompt, or statements given with -c / -f.
    Sql {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: sql::SqlArgs,
    },
    /// Load data into a table, as a job with a progress bar.
    Ingest {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: IngestCommand,
    },
    /// Vector indexes: build, search, measure.
    Index {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Table maintenance.
    Table {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: TableCommand,
    },
    /// Buckets: the places in object storage that hold tables and indexes.
    Bucket {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: BucketCommand,
    },
    /// Model profiles and the GPU slot.
    Profile {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: profile::ProfileCommand,
    },
    /// Jobs: long work running on the server.
    Job {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: JobCommand,
    },
}

/// Flags every job-starting command shares.
#[derive(Debug, Clone, Args)]
pub struct JobFlags {
    /// Start the job and return at once, printing its id.
    #[arg(long)]
    pub detach: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Create the table; fails if it exists.
    Create,
    /// Append; creates the table if needed.
    Append,
    /// Replace the table's rows and schema.
    Replace,
}

impl Mode {
    fn proto(self) -> i32 {
        match self {
            Self::Create => IngestMode::Create as i32,
            Self::Append => IngestMode::Append as i32,
            Self::Replace => IngestMode::Replace as i32,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileKind {
    Csv,
    Ndjson,
    Parquet,
    Arrow,
    Pdf,
}

#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// Files in a bucket (a path or a glob), or with --upload a local file.
    File {
        /// Path (or glob, e.g. "landing/2024-*/*.csv") in the bucket; with --upload, a local file.
        path: String,
        /// Target table, optionally schema.table.
        #[arg(long, short = 't')]
        table: String,
        /// Send the local file to the server (DoPut) instead of reading a bucket.
        #[arg(long)]
        upload: bool,
        /// Bucket holding the input [default: primary].
        #[arg(long)]
        bucket: Option<String>,
        /// Bucket of a new table [default: primary].
        #[arg(long)]
        target_bucket: Option<String>,
        #[arg(long, value_enum, default_value = "create")]
        mode: Mode,
        /// Input format [default: from the file extension].
        #[arg(long, value_enum)]
        format: Option<FileKind>,
        /// CSV delimiter (one character).
        #[arg(long)]
        delimiter: Option<String>,
        /// The CSV has no header line.
        #[arg(long)]
        no_header: bool,
        /// Text encoding of the input (a WHATWG label, e.g. latin1, windows-1252, utf-16le)
        /// [default: utf-8].
        #[arg(long)]
        encoding: Option<String>,
        /// CSV quote character [default: "].
        #[arg(long)]
        quote: Option<String>,
        /// Text read as NULL besides the empty field, e.g. NA.
        #[arg(long)]
        null_value: Option<String>,
        /// Send rows that do not parse to a rejects table instead of failing the job.
        #[arg(long)]
        reject_bad_rows: bool,
        /// The rejects table [default: <table>_rejects].
        #[arg(long, requires = "reject_bad_rows")]
        rejects_table: Option<String>,
        /// Fail the job past this many rejected rows.
        #[arg(long, requires = "reject_bad_rows")]
        max_rejects: Option<u64>,
        /// Column type overrides, NAME=TYPE (repeatable), e.g. id=BIGINT.
        #[arg(long = "column-type", value_parser = key_value)]
        column_types: Vec<(String, String)>,
        #[command(flatten)]
        job: JobFlags,
    },
    /// A PostgreSQL table or query.
    Postgres(DatabaseArgs),
    /// A MySQL or MariaDB table or query.
    Mysql(DatabaseArgs),
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Target table, optionally schema.table.
    #[arg(long, short = 't')]
    pub table: String,
    /// Source URL, e.g. postgres://user@host:5432/db (or --connection).
    #[arg(long, env = "LAKEHOUSE_SOURCE_DSN", hide_env_values = true)]
    pub dsn: Option<String>,
    /// A connection named in the server's configuration.
    #[arg(long)]
    pub connection: Option<String>,
    /// Source table (or --query).
    #[arg(long)]
    pub source_table: Option<String>,
    /// A SELECT to run instead of a table.
    #[arg(long)]
    pub query: Option<String>,
    #[arg(long, value_enum, default_value = "create")]
    pub mode: Mode,
    /// Incremental: append only rows above the stored watermark of this column.
    #[arg(long)]
    pub watermark_column: Option<String>,
    /// Read columns of unmapped types as text.
    #[arg(long)]
    pub text_fallback: bool,
    /// Bucket of a new table [default: primary].
    #[arg(long)]
    pub target_bucket: Option<String>,
    #[command(flatten)]
    pub job: JobFlags,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Embed a table's text column and build an index over it.
    Create {
        /// Index name.
        name: String,
        #[arg(long, short = 't')]
        table: String,
        #[arg(long)]
        text_column: String,
        #[arg(long)]
        id_column: String,
        /// hnsw, flat, or faiss (built by the Faiss worker from --factory) [default: the
        /// profile's, else hnsw].
        #[arg(long)]
        backend: Option<String>,
        /// cosine, l2 or dot.
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// Home bucket of the index's files [default: primary].
        #[arg(long)]
        bucket: Option<String>,
        /// Replace an index of the same name.
        #[arg(long)]
        replace: bool,
        /// HNSW neighbours per node.
        #[arg(long)]
        m: Option<u32>,
        /// HNSW candidates while building.
        #[arg(long)]
        ef_construction: Option<u32>,
        /// HNSW default candidates of a search.
        #[arg(long)]
        ef_search: Option<u32>,
        /// Faiss index_factory string, e.g. IVF256,Flat or HNSW32 [default: IVF{n},Flat].
        #[arg(long)]
        factory: Option<String>,
        /// Faiss IVF lists a search probes by default [default: 16].
        #[arg(long)]
        nprobe: Option<u32>,
        /// Tokens per chunk of long texts (at most 254).
        #[arg(long)]
        chunk_tokens: Option<u32>,
        /// Tokens neighbouring chunks share.
        #[arg(long)]
        chunk_overlap: Option<u32>,
        /// What embeds the texts: builtin, or an [embedders.NAME] the server configures
        /// [default: the profile's, else builtin].
        #[arg(long)]
        embedder: Option<String>,
        /// The model profile the index belongs to (its embedder, backend and bucket are
        /// the defaults).
        #[arg(long)]
        profile: Option<String>,
        #[command(flatten)]
        job: JobFlags,
    },
    /// The k best rows for a text.
    Search {
        /// Index name.
        name: String,
        /// Query text.
        query: String,
        #[arg(short = 'k', long, default_value_t = 10)]
        k: u32,
        /// HNSW candidates.
        #[arg(long)]
        ef: Option<u32>,
        /// Faiss IVF lists probed.
        #[arg(long)]
        nprobe: Option<u32>,
        /// SQL predicate on the source table.
        #[arg(long)]
        filter: Option<String>,
        /// vector, text (BM25) or hybrid.
        #[arg(long, default_value = "vector")]
        mode: String,
        /// Source table columns to show beside each hit (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Store an eval set: queries with their exact nearest rows.
    EvalSet {
        /// Eval set name.
        name: String,
        /// The index whose vectors define the truth.
        #[arg(long)]
        index: String,
        /// A query text (repeatable).
        #[arg(long = "query")]
        queries: Vec<String>,
        /// SQL whose first column is the query text.
        #[arg(long)]
        queries_sql: Option<String>,
        /// Exact nearest rows kept per query.
        #[arg(long)]
        depth: Option<u32>,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Recall and speed of an index against an eval set.
    Eval {
        /// Index name.
        name: String,
        #[arg(long)]
        eval_set: String,
        #[arg(short = 'k', long)]
        k: Option<u32>,
        /// HNSW candidate counts to try (comma-separated).
        #[arg(long, value_delimiter = ',')]
        ef: Vec<u32>,
        /// Embed the queries inside the timed loop (end-to-end latency).
        #[arg(long)]
        embed_queries: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Register a bucket: a local folder (/path or file:///path) or s3://bucket/prefix.
    Add {
        name: String,
        /// /folder, file:///folder or s3://bucket/prefix.
        #[arg(value_name = "URL")]
        location: String,
        #[arg(long)]
        json: bool,
    },
    /// Unregister a bucket (never primary or rescue).
    Remove {
        name: String,
        /// Also when it holds tables, indexes or files (they are dropped from the
        /// catalog; the files stay).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Buckets and what each holds.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Move a vector index's files to another bucket.
    Move {
        /// Index name.
        index: String,
        /// The new home bucket.
        bucket: String,
        #[command(flatten)]
        job: JobFlags,
    },
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Delete data files no version reads: those of writes that never committed, and
    /// those that commits older than --retain-hours removed (older versions then can
    /// no longer be read).
    Vacuum {
        /// "schema.table" or "table".
        table: String,
        /// Keep what commits of the last this-many hours removed (server default 168).
        #[arg(long, value_name = "HOURS")]
        retain_hours: Option<f64>,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Jobs, newest first.
    List {
        /// Only running jobs.
        #[arg(long)]
        running: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One job; with --follow, its progress until it ends.
    Status {
        id: String,
        #[arg(long, short = 'f')]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running job.
    Cancel { id: String },
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not NAME=TYPE"))
}

/// Runs a client subcommand; the exit code on failure comes with the error.
pub async fn run(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Sql { connect, args } => {
            sql::run(&mut Client::connect(&connect).await?, args).await
        }
        ClientCommand::Ingest { connect, command } => {
            ingest(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Index { connect, command } => {
            index(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Table { connect, command } => {
            table(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Bucket { connect, command } => {
            bucket(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Profile { connect, command } => {
            profile::run(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Job { connect, command } => {
            jobs(&mut Client::connect(&connect).await?, command).await
        }
    }
}

fn print_json(message: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(message)
        .map_err(|e| CliError::local(format!("encoding JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn some(text: Option<String>) -> String {
    text.unwrap_or_default()
}

/// Starts a job with action `name` and follows it (or not, with --detach); prints
/// its outcome.
async fn start_job(
    client: &mut Client,
    name: &str,
    body: Vec<u8>,
    flags: &JobFlags,
) -> Result<(), CliError> {
    let snapshots = client.action_stream(name, body).await?;
    finish_job(client, Box::pin(snapshots), flags).await
}

async fn finish_job(
    client: &mut Client,
    snapshots: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<bytes::Bytes, CliError>> + Send>,
    >,
    flags: &JobFlags,
) -> Result<(), CliError> {
    if flags.detach {
        let mut snapshots = snapshots;
        let first = snapshots
            .next()
            .await
            .ok_or_else(|| CliError::local("the server did not answer with the job"))??;
        let job = decode_job(first)?;
        if flags.json {
            return print_json(&job);
        }
        println!("job {} started: {}", job.id, job.description);
        println!("follow it with: lakehouse job status {} --follow", job.id);
        return Ok(());
    }
    match progress::follow(client, snapshots, flags.quiet).await? {
        Followed::Detached(id) => {
            eprintln!(
                "job {id} keeps running on the server.\n  follow: lakehouse job status {id} --follow\n  cancel: lakehouse job cancel {id}"
            );
            Ok(())
        }
        Followed::Ended(job) => report_job(&job, flags.json),
    }
}

fn decode_job(body: bytes::Bytes) -> Result<Job, CliError> {
    Job::decode(body).map_err(|e| CliError::local(format!("unreadable job from the server: {e}")))
}

/// Prints a finished job's result; a failed or cancelled job is an error.
fn report_job(job: &Job, json: bool) -> Result<(), CliError> {
    if json {
        print_json(job)?;
    }
    if let Some(error) = progress::failure(job) {
        return Err(error);
    }
    if json {
        return Ok(());
    }
    let seconds = seconds_between(&job.created_at, &job.finished_at);
    match &job.result {
        Some(job::Result::Ingest(r)) => {
            println!(
                "ingested {} rows into {} (version {}) in {:.1} s",
                r.rows, r.table, r.version, r.seconds
            );
            if r.rejected_rows > 0 {
                println!("{} rows rejected into {}", r.rejected_rows, r.rejects_table);
            }
            if !r.chunks_table.is_empty() {
                println!("{} chunk rows in {}", r.chunk_rows, r.chunks_table);
            }
            for error in &r.file_errors {
                println!("skipped {}: {}", error.file, error.error);
            }
            let pii: Vec<String> = r
                .pii
                .iter()
                .map(|c| format!("{} ({})", c.column, c.entity_type))
                .collect();
            if !pii.is_empty() {
                println!("PII found: {}", pii.join(", "));
            }
        }
        Some(job::Result::VectorIndex(i)) => println!(
            "index {} over {}.{}: {} vectors for {} rows, {} in bucket {} ({:.1} s)",
            i.name, i.table, i.text_column, i.vectors, i.rows, i.backend, i.bucket, seconds
        ),
        Some(job::Result::VectorEvalSet(e)) => println!(
            "eval set {} for index {}: {} queries, {} true neighbours each",
            e.name, e.index, e.queries, e.depth
        ),
        Some(job::Result::ProfileActivation(a)) => profile::print_activation(a),
        None => println!("job {} finished: {}", job.id, job.description),
    }
    Ok(())
}

fn seconds_between(start: &str, end: &str) -> f64 {
    match (
        chrono::DateTime::parse_from_rfc3339(start),
        chrono::DateTime::parse_from_rfc3339(end),
    ) {
        (Ok(a), Ok(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    }
}

async fn ingest(client: &mut Client, command: IngestCommand) -> Result<(), CliError> {
    match command {
        IngestCommand::File {
            path,
            table,
            upload,
            bucket,
            target_bucket,
            mode,
            format,
            delimiter,
            no_header,
            encoding,
            quote,
            null_value,
            reject_bad_rows,
            rejects_table,
            max_rejects,
            column_types,
            job,
        } => {
            let csv = (delimiter.is_some()
                || no_header
                || encoding.is_some()
                || quote.is_some()
                || null_value.is_some())
            .then(|| CsvOptions {
                delimiter: some(delimiter),
                has_header: no_header.then_some(false),
                encoding: some(encoding),
                quote: some(quote),
                null_value: some(null_value),
                ..CsvOptions::default()
            });
            let request = IngestFileRequest {
                source_bucket: some(bucket),
                path: path.clone(),
                table,
                mode: mode.proto(),
                format: format.map_or(FileFormat::Unspecified, |f| match f {
                    FileKind::Csv => FileFormat::Csv,
                    FileKind::Ndjson => FileFormat::Ndjson,
                    FileKind::Parquet => FileFormat::Parquet,
                    FileKind::Arrow => FileFormat::ArrowIpc,
                    FileKind::Pdf => FileFormat::Pdf,
                }) as i32,
                csv,
                column_types: column_types.into_iter().collect(),
                target_bucket: some(target_bucket),
                bad_rows: if reject_bad_rows {
                    BadRows::Reject as i32
                } else {
                    BadRows::Unspecified as i32
                },
                rejects_table: some(rejects_table),
                max_rejects: max_rejects.unwrap_or_default(),
                detach: job.detach,
                ..IngestFileRequest::default()
            };
            if upload {
                upload_file(client, &path, request, &job).await
            } else {
                start_job(client, INGEST_FILE, request.encode_to_vec(), &job).await
            }
        }
        IngestCommand::Postgres(args) => database(client, INGEST_POSTGRES, args).await,
        IngestCommand::Mysql(args) => database(client, INGEST_MYSQL, args).await,
    }
}

async fn database(client: &mut Client, action: &str, args: DatabaseArgs) -> Result<(), CliError> {
    if args.dsn.is_some() == args.connection.is_some() {
        return Err(CliError::local("give one of --dsn or --connection"));
    }
    if args.source_table.is_some() == args.query.is_some() {
        return Err(CliError::local("give one of --source-table or --query"));
    }
    let request = IngestDatabaseRequest {
        dsn: some(args.dsn),
        connection: some(args.connection),
        source_table: some(args.source_table),
        query: some(args.query),
        table: args.table,
        mode: args.mode.proto(),
        text_fallback: args.text_fallback,
        detach: args.job.detach,
        target_bucket: some(args.target_bucket),
        watermark_column: some(args.watermark_column),
    };
    start_job(client, action, request.encode_to_vec(), &args.job).await
}

/// Chunk size of uploads.
const UPLOAD_CHUNK: usize = 1 << 20;

/// Sends a local file with DoPut (`IngestUploadCommand`): one binary column of
/// consecutive chunks; the answer is the finished job.
async fn upload_file(
    client: &mut Client,
    path: &str,
    mut request: IngestFileRequest,
    flags: &JobFlags,
) -> Result<(), CliError> {
    use arrow::array::BinaryArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use tokio::io::AsyncReadExt;

    if flags.detach {
        return Err(CliError::local(
            "an upload is ingested while it is sent: --detach does not apply",
        ));
    }
    let local = std::path::Path::new(path);
    let file_name = local
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CliError::local(format!("{path}: not a file name")))?
        .to_string();
    let size = std::fs::metadata(local)
        .map_err(|e| CliError::local(format!("cannot read {path}: {e}")))?
        .len();
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| CliError::local(format!("cannot open {path}: {e}")))?;
    request.path.clear();
    request.source_bucket.clear();
    let command = IngestUploadCommand {
        file_name,
        request: Some(request),
    };
    let any = Any {
        type_url: INGEST_UPLOAD_TYPE_URL.to_string(),
        value: command.encode_to_vec().into(),
    };
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "chunk",
        DataType::Binary,
        false,
    )]));
    let bar = if flags.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(size)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} uploading [{bar:30}] {bytes}/{total_bytes} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let progress = bar.clone();
    // The file is read in chunks on a task of its own, feeding the encoder. A read
    // error must not end the upload cleanly (the server would ingest half a file):
    // it aborts the call instead, and the server commits nothing.
    let (sender, receiver) = tokio::sync::mpsc::channel::<
        Result<arrow::array::RecordBatch, arrow_flight::error::FlightError>,
    >(4);
    let reader_schema = schema.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; UPLOAD_CHUNK];
        loop {
            let item = match file.read(&mut buffer).await {
                Ok(0) => return,
                Ok(read) => {
                    progress.inc(read as u64);
                    let chunk = BinaryArray::from_iter_values([&buffer[..read]]);
                    arrow::array::RecordBatch::try_new(
                        reader_schema.clone(),
                        vec![std::sync::Arc::new(chunk)],
                    )
                    .map_err(arrow_flight::error::FlightError::from)
                }
                Err(e) => Err(arrow_flight::error::FlightError::ExternalError(Box::new(e))),
            };
            let failed = item.is_err();
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let (abort, aborted) = tokio::sync::oneshot::channel::<String>();
    let abort = std::sync::Mutex::new(Some(abort));
    let descriptor = FlightDescriptor::new_cmd(any.encode_to_vec());
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_flight_descriptor(Some(descriptor))
        .build(tokio_stream(receiver))
        .flat_map(move |data: Result<FlightData, _>| match data {
            Ok(data) => futures::stream::once(futures::future::ready(data)).boxed(),
            Err(error) => {
                if let Some(abort) = abort.lock().ok().and_then(|mut a| a.take()) {
                    let _ = abort.send(error.to_string());
                }
                // Never end: the call is dropped (and so cancelled) instead.
                futures::stream::pending().boxed()
            }
        });
    let answer = tokio::select! {
        answer = client.put(data) => answer,
        Ok(error) = aborted => Err(CliError::local(format!(
            "reading {path} failed, the upload was abandoned (nothing was ingested): {error}"
        ))),
    };
    bar.finish_and_clear();
    let job = decode_job(answer?.app_metadata)?;
    report_job(&job, flags.json)
}

/// A stream over an mpsc receiver.
fn tokio_stream<T: Send + 'static>(
    receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

async fn index(client: &mut Client, command: IndexCommand) -> Result<(), CliError> {
    match command {
        IndexCommand::Create {
            name,
            table,
            text_column,
            id_column,
            backend,
            metric,
            bucket,
            replace,
            m,
            ef_construction,
            ef_search,
            factory,
            nprobe,
            chunk_tokens,
            chunk_overlap,
            embedder,
            profile,
            job,
        } => {
            let request = VectorIndexCreateRequest {
                embedder: embedder.unwrap_or_default(),
                profile: profile.unwrap_or_default(),
                name,
                table,
                text_column,
                id_column,
                backend: backend.unwrap_or_default(),
                metric,
                m: m.unwrap_or_default(),
                ef_construction: ef_construction.unwrap_or_default(),
                ef_search: ef_search.unwrap_or_default(),
                bucket: some(bucket),
                replace,
                detach: job.detach,
                chunk_tokens: chunk_tokens.unwrap_or_default(),
                chunk_overlap,
                factory: factory.unwrap_or_default(),
                nprobe: nprobe.unwrap_or_default(),
            };
            start_job(client, VECTOR_INDEX_CREATE, request.encode_to_vec(), &job).await
        }
        IndexCommand::Search {
            name,
            query,
            k,
            ef,
            nprobe,
            filter,
            mode,
            columns,
            format,
            output,
        } => {
            let command = VectorSearchCommand {
                search: Some(VectorSearchRequest {
                    index: name,
                    query,
                    k,
                    ef: ef.unwrap_or_default(),
                    nprobe: nprobe.unwrap_or_default(),
                    filter: some(filter),
                    mode,
                    ..VectorSearchRequest::default()
                }),
                columns,
            };
            let started = Instant::now();
            let info = client
                .plan_command(VECTOR_SEARCH_TYPE_URL, command.encode_to_vec())
                .await?;
            let schema = client::info_schema(&info)?;
            let batches = client.fetch(&info).await?;
            let sink = Sink {
                format,
                output,
                max_rows: usize::MAX,
            };
            let rows = sink.write(schema, Box::pin(batches)).await?;
            if format == Format::Table {
                println!("({rows} hits in {:.3} s)", started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        IndexCommand::EvalSet {
            name,
            index,
            queries,
            queries_sql,
            depth,
            bucket,
            replace,
            job,
        } => {
            if queries.is_empty() == queries_sql.is_none() {
                return Err(CliError::local(
                    "give --query (repeatable) or --queries-sql",
                ));
            }
            let request = VectorEvalSetCreateRequest {
                name,
                index,
                queries,
                queries_sql: some(queries_sql),
                depth: depth.unwrap_or_default(),
                bucket: some(bucket),
                replace,
                detach: job.detach,
            };
            start_job(
                client,
                VECTOR_EVAL_SET_CREATE,
                request.encode_to_vec(),
                &job,
            )
            .await
        }
        IndexCommand::Eval {
            name,
            eval_set,
            k,
            ef,
            embed_queries,
            json,
        } => {
            let request = VectorEvalRequest {
                index: name,
                eval_set,
                k: k.unwrap_or_default(),
                ef,
                embed_queries,
            };
            let result: VectorEvalResult = client.action(VECTOR_EVAL, &request).await?;
            if json {
                return print_json(&result);
            }
            println!(
                "index {} ({}, {} vectors) against eval set {}: {} queries, recall@{}",
                result.index,
                result.backend,
                result.vectors,
                result.eval_set,
                result.queries,
                result.k
            );
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
            table.set_header([
                "ef",
                "recall mean",
                "recall p5",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "QPS",
            ]);
            for run in &result.runs {
                table.add_row([
                    run.ef.to_string(),
                    format!("{:.4}", run.recall_mean),
                    format!("{:.4}", run.recall_p5),
                    format!("{:.3}", run.latency_p50_ms),
                    format!("{:.3}", run.latency_p95_ms),
                    format!("{:.3}", run.latency_p99_ms),
                    format!("{:.0}", run.qps),
                ]);
            }
            println!("{table}");
            if !result.warning.is_empty() {
                eprintln!("warning: {}", result.warning);
            }
            Ok(())
        }
    }
}

fn bucket_table(buckets: &[BucketInfo]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    table.set_header(["name", "kind", "url", "tables", "indexes", "eval sets"]);
    for b in buckets {
        let name = if b.builtin {
            format!("{} (built in)", b.name)
        } else {
            b.name.clone()
        };
        table.add_row([
            name,
            b.kind.clone(),
            b.url.clone(),
            b.tables.to_string(),
            b.indexes.to_string(),
            b.eval_sets.to_string(),
        ]);
    }
    table
}

async fn table(client: &mut Client, command: TableCommand) -> Result<(), CliError> {
    let TableCommand::Vacuum {
        table,
        retain_hours,
        dry_run,
        json,
    } = command;
    let result: TableVacuumResult = client
        .action(
            TABLE_VACUUM,
            &TableVacuumRequest {
                table,
                retain_hours,
                dry_run,
            },
        )
        .await?;
    if json {
        return print_json(&result);
    }
    let verb = if result.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "{}: {verb} {} files ({} bytes): {} of writes that never committed, {} removed by old commits, {} unfinished uploads",
        result.table,
        result.uncommitted_files + result.expired_files + result.staged_files,
        result.bytes,
        result.uncommitted_files,
        result.expired_files,
        result.staged_files,
    );
    println!(
        "versions {} to {} can be read",
        result.oldest_readable_version, result.version
    );
    Ok(())
}

async fn bucket(client: &mut Client, command: BucketCommand) -> Result<(), CliError> {
    match command {
        BucketCommand::Add {
            name,
            location,
            json,
        } => {
            let info: BucketInfo = client
                .action(
                    BUCKET_ADD,
                    &BucketAddRequest {
                        name,
                        url: location,
                    },
                )
                .await?;
            if json {
                return print_json(&info);
            }
            println!("bucket {} added: {} ({})", info.name, info.url, info.kind);
            Ok(())
        }
        BucketCommand::Remove { name, force, json } => {
            let result: BucketRemoveResult = client
                .action(BUCKET_REMOVE, &BucketRemoveRequest { name: name.clone(), force })
                .await
                .map_err(|e| {
                    if e.code == Some(tonic::Code::FailedPrecondition) {
                        e.with_hint(format!(
                            "lakehouse bucket move moves indexes out first; or remove it anyway with: lakehouse bucket remove {name} --force"
                        ))
                    } else {
                        e
                    }
                })?;
            if json {
                return print_json(&result);
            }
            println!("bucket {name} removed");
            for (what, names) in [
                ("tables", &result.dropped_tables),
                ("vector indexes", &result.dropped_indexes),
                ("eval sets", &result.dropped_eval_sets),
            ] {
                if !names.is_empty() {
                    println!("dropped from the catalog: {what} {}", names.join(", "));
                }
            }
            Ok(())
        }
        BucketCommand::List { json } => {
            let list: BucketList = client.action(BUCKET_LIST, &BucketListRequest {}).await?;
            if json {
                return print_json(&list);
            }
            println!("{}", bucket_table(&list.buckets));
            Ok(())
        }
        BucketCommand::Move { index, bucket, job } => {
            let request = BucketMoveIndexRequest {
                index,
                bucket,
                detach: job.detach,
            };
            start_job(client, BUCKET_MOVE_INDEX, request.encode_to_vec(), &job).await
        }
    }
}

async fn jobs(client: &mut Client, command: JobCommand) -> Result<(), CliError> {
    match command {
        JobCommand::List {
            running,
            limit,
            json,
        } => {
            let request = JobListRequest {
                running_only: running,
                limit,
            };
            let list: JobList = client.action(JOB_LIST, &request).await?;
            if json {
                return print_json(&list);
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
            table.set_header(["id", "state", "phase", "created", "description"]);
            for job in &list.jobs {
                let phase = job
                    .progress
                    .as_ref()
                    .map(|p| p.phase.clone())
                    .unwrap_or_default();
                table.add_row([
                    job.id.clone(),
                    state_name(job.state).to_string(),
                    phase,
                    job.created_at.clone(),
                    job.description.clone(),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        JobCommand::Status { id, follow, json } => {
            let request = JobStatusRequest { job_id: id, follow };
            if follow {
                let flags = JobFlags {
                    detach: false,
                    quiet: false,
                    json,
                };
                return start_job(client, JOB_STATUS, request.encode_to_vec(), &flags).await;
            }
            let job: Job = client.action(JOB_STATUS, &request).await?;
            if json {
                return print_json(&job);
            }
            let progress = job.progress.clone().unwrap_or_default();
            println!("job {}: {}", job.id, job.description);
            println!("state: {} ({})", state_name(job.state), progress.phase);
            if progress.rows > 0 {
                println!("rows: {}", progress.rows);
            }
            if let Some(percent) = progress.percent {
                println!("done: {percent:.0}%");
            }
            if !job.error.is_empty() {
                println!("error ({}): {}", job.error_code, job.error);
            }
            Ok(())
        }
        JobCommand::Cancel { id } => {
            let job: Job = client
                .action(JOB_CANCEL, &JobCancelRequest { job_id: id })
                .await?;
            println!("job {}: {}", job.id, state_name(job.state));
            Ok(())
        }
    }
}
