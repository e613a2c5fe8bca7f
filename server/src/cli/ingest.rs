//! `lakehouse ingest`: files (server-side paths and URLs, or local files uploaded
//! over DoPut in chunks) and PostgreSQL/MySQL databases.

use arrow_flight::sql::Any;
use arrow_flight::{FlightData, FlightDescriptor};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use lakehouse_flight_ext::INGEST_UPLOAD_TYPE_URL;
use lakehouse_flight_ext::actions::{INGEST_FILE, INGEST_MYSQL, INGEST_POSTGRES};
use lakehouse_flight_ext::v1::{
    BadRows, CsvOptions, FileFormat, IngestDatabaseRequest, IngestFileRequest, IngestUploadCommand,
};
use prost::Message;

use super::client::{CliError, Client};
use super::{JobFlags, Mode, decode_job, key_value, report_job, some, start_job};

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

pub(super) async fn run(client: &mut Client, command: IngestCommand) -> Result<(), CliError> {
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

pub(super) async fn database(
    client: &mut Client,
    action: &str,
    args: DatabaseArgs,
) -> Result<(), CliError> {
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
pub(super) const UPLOAD_CHUNK: usize = 1 << 20;

/// Sends a local file with DoPut (`IngestUploadCommand`): one binary column of
/// consecutive chunks; the answer is the finished job.
pub(super) async fn upload_file(
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
pub(super) fn tokio_stream<T: Send + 'static>(
    receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}
