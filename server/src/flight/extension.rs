//! The `lakehouse.*` actions and the upload command: ingest, jobs, PII verdicts.
//!
//! Bodies are `lakehouse.v1` messages in protobuf or JSON; replies use the
//! encoding of the request. A request is validated before any job starts, so a
//! bad one fails the call itself with InvalidArgument/NotFound and leaves no job.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{Array, BinaryArray, LargeBinaryArray};
use arrow_flight::error::FlightError;
use arrow_flight::sql::Any;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::{Action, PutResult};
use futures::{Stream, StreamExt, TryStreamExt};
use lakehouse_flight_ext::DecodedBatches;
use lakehouse_flight_ext::v1::{
    IngestFileRequest, IngestUploadCommand, Job, JobCancelRequest, JobList, JobListRequest,
    JobState, JobStatusRequest, PiiMarkRequest, PiiMarkResult, TableVacuumRequest,
    TableVacuumResult, job,
};
use lakehouse_flight_ext::{Encoding, decode_body, encode_body};
use object_store::{ObjectStoreExt, WriteMultipart};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Code, Request, Response, Status};

use super::auth::Caller;
use super::service::LakehouseService;
use super::status;
use super::status::{ingest_status, upload_error};
use crate::ingest::database::{self, DbSource, System};
use crate::ingest::file::{self, FileIngest, split_table};
use crate::ingest::source::InputFile;
use crate::jobs::{JobHandle, STAGING};
use crate::pii::ENTITIES;
use crate::storage::PRIMARY;
use lakehouse_flight_ext::names::{is_terminal, state_label};

pub(super) type ActionStream =
    <LakehouseService as arrow_flight::flight_service_server::FlightService>::DoActionStream;
type PutStream =
    <LakehouseService as arrow_flight::flight_service_server::FlightService>::DoPutStream;

pub(super) fn decode<M: prost::Message + Default + DeserializeOwned>(
    action: &Action,
) -> Result<(M, Encoding), Status> {
    decode_body(&action.body).map_err(|e| {
        Status::invalid_argument(format!(
            "body of action {} is not valid: {e}",
            action.r#type
        ))
    })
}

fn reply<M: prost::Message + Serialize>(message: &M, encoding: Encoding) -> arrow_flight::Result {
    arrow_flight::Result {
        body: encode_body(message, encoding).into(),
    }
}

pub(super) fn one<M: prost::Message + Serialize>(
    message: &M,
    encoding: Encoding,
) -> Response<ActionStream> {
    Response::new(Box::pin(futures::stream::iter([Ok(reply(
        message, encoding,
    ))])))
}

/// The answer of an action that started a job: its first snapshot when the caller
/// detaches, else its snapshots until it ends (see [`follow_to_outcome`]).
pub(super) fn job_reply(
    handle: &JobHandle,
    detach: bool,
    encoding: Encoding,
) -> Response<ActionStream> {
    if detach {
        one(&handle.snapshot(), encoding)
    } else {
        follow_to_outcome(handle, encoding)
    }
}

/// The job's snapshots until it ends, as action results.
fn follow(handle: &JobHandle, encoding: Encoding) -> Response<ActionStream> {
    let stream = handle.follow().map(move |job| Ok(reply(&job, encoding)));
    Response::new(Box::pin(stream))
}

/// Like [`follow`], for the action that started the job: a job that fails or is
/// cancelled ends the stream with its status (after its last snapshot), so a
/// client that only checks for errors sees the failure.
pub(super) fn follow_to_outcome(handle: &JobHandle, encoding: Encoding) -> Response<ActionStream> {
    let stream = handle.follow().flat_map(move |job| {
        let mut items = vec![Ok(reply(&job, encoding))];
        if is_terminal(job.state) && job.state != JobState::Succeeded as i32 {
            items.push(Err(Status::new(
                code_of(&job.error_code),
                format!("job {}: {}", job.id, job.error),
            )));
        }
        futures::stream::iter(items)
    });
    Response::new(Box::pin(stream))
}

impl LakehouseService {
    /// `lakehouse.ingest.file`.
    pub(super) async fn ingest_file(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let user = Caller::of(&request);
        let (body, encoding): (IngestFileRequest, _) = decode(request.get_ref())?;
        let bucket_name = if body.source_bucket.is_empty() {
            PRIMARY
        } else {
            body.source_bucket.as_str()
        };
        let bucket = self
            .engine
            .catalog()
            .buckets()
            .get(bucket_name)
            .map_err(|e| ingest_status(e.into()))?;
        let ingest = FileIngest::prepare(&body, bucket, None)
            .await
            .map_err(ingest_status)?;
        let handle = self.start_ingest(ingest, user, None);
        Ok(job_reply(&handle, body.detach, encoding))
    }

    /// `lakehouse.ingest.postgres` and `lakehouse.ingest.mysql`.
    pub(super) async fn ingest_database(
        &self,
        request: Request<Action>,
        system: System,
    ) -> Result<Response<ActionStream>, Status> {
        use crate::ingest::{IfExists, IfMissing, Target};
        use lakehouse_flight_ext::v1::{IngestDatabaseRequest, IngestMode};
        let user = Caller::of(&request);
        let (body, encoding): (IngestDatabaseRequest, _) = decode(request.get_ref())?;
        let dsn = match (body.dsn.trim(), body.connection.trim()) {
            ("", "") => {
                return Err(Status::invalid_argument(format!(
                    "dsn: is empty: e.g. {}, or name a configured connection",
                    system.example_dsn()
                )));
            }
            (dsn, "") => dsn.to_string(),
            ("", name) => self.connections.dsn(name, system).map_err(ingest_status)?,
            _ => {
                return Err(Status::invalid_argument("set dsn or connection, not both"));
            }
        };
        let (table, query) = match (body.source_table.trim(), body.query.trim()) {
            ("", "") => return Err(Status::invalid_argument("set source_table or query")),
            (table, "") => (
                Some(table.to_string()),
                format!(
                    "SELECT * FROM {}",
                    system.quote_table(table).map_err(ingest_status)?
                ),
            ),
            ("", query) => (None, query.to_string()),
            _ => {
                return Err(Status::invalid_argument(
                    "set source_table or query, not both",
                ));
            }
        };
        let (schema, name) = split_table(&body.table, "table").map_err(ingest_status)?;
        let incremental = !body.watermark_column.trim().is_empty();
        let mode = IngestMode::try_from(body.mode)
            .map_err(|_| Status::invalid_argument(format!("mode: {} is not a mode", body.mode)))?;
        let (if_exists, if_missing) = if incremental {
            (IfExists::Append, IfMissing::Create)
        } else {
            crate::ingest::modes(mode)
        };
        if if_exists == IfExists::Fail && self.engine.catalog().table(&schema, &name).is_ok() {
            return Err(Status::already_exists(format!(
                "table {schema}.{name} already exists; use mode INGEST_MODE_APPEND or INGEST_MODE_REPLACE"
            )));
        }
        let target = Target {
            schema,
            table: name,
            if_exists,
            if_missing,
            bucket: if body.target_bucket.is_empty() {
                PRIMARY.to_string()
            } else {
                body.target_bucket.clone()
            },
        };
        self.engine
            .catalog()
            .buckets()
            .get(&target.bucket)
            .map_err(|e| ingest_status(e.into()))?;
        let mut source = DbSource {
            system,
            dsn,
            table,
            query,
            text_fallback: body.text_fallback,
            watermark: None,
        };
        if incremental {
            let column = body.watermark_column.trim().to_string();
            let key = source.watermark_key(&column);
            let previous = self
                .engine
                .catalog()
                .table(&target.schema, &target.table)
                .ok()
                .and_then(|entry| entry.watermarks.get(&key).cloned());
            source.watermark = Some((column, previous));
        }
        let description = format!(
            "ingest {} {} into {}.{}",
            system.label(),
            source.location(),
            target.schema,
            target.table
        );
        let engine = Arc::clone(&self.engine);
        let handle = self.engine.services().jobs.spawn(
            system.action(),
            description,
            user,
            move |ctx| async move {
                database::run(engine, ctx, source, target)
                    .await
                    .map(job::Result::Ingest)
                    .map_err(ingest_status)
            },
        );
        Ok(job_reply(&handle, body.detach, encoding))
    }

    /// Fails (NotFound) when a new table's bucket does not exist.
    fn check_target(&self, ingest: &FileIngest) -> Result<(), Status> {
        self.engine
            .catalog()
            .buckets()
            .get(&ingest.target.bucket)
            .map(drop)
            .map_err(|e| ingest_status(e.into()))
    }

    /// Starts a file-ingest job; `staging` is a folder to delete when it ends.
    fn start_ingest(
        &self,
        ingest: FileIngest,
        user: String,
        staging: Option<String>,
    ) -> Arc<JobHandle> {
        let engine = Arc::clone(&self.engine);
        let description = ingest.describe();
        let jobs = Arc::clone(&engine.services().jobs);
        jobs.spawn(
            lakehouse_flight_ext::actions::INGEST_FILE,
            description,
            user,
            move |ctx| async move {
                let primary = engine.catalog().buckets().primary();
                let outcome = file::run(engine, ctx, ingest).await;
                if let (Some(folder), Ok(primary)) = (staging, primary)
                    && let Err(error) = primary.delete_folder(&folder).await
                {
                    tracing::warn!(%folder, %error, "cannot delete an upload's staging folder");
                }
                outcome.map(job::Result::Ingest).map_err(ingest_status)
            },
        )
    }

    /// `lakehouse.job.status`.
    pub(super) fn job_status(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (JobStatusRequest, _) = decode(request.get_ref())?;
        let handle = self.job(&body.job_id)?;
        Ok(if body.follow {
            follow(&handle, encoding)
        } else {
            one(&handle.snapshot(), encoding)
        })
    }

    /// `lakehouse.job.cancel`.
    pub(super) async fn job_cancel(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (JobCancelRequest, _) = decode(request.get_ref())?;
        let handle = self.job(&body.job_id)?;
        let job = handle.snapshot();
        if is_terminal(job.state) {
            return Err(Status::failed_precondition(format!(
                "job {} has already ended ({})",
                job.id,
                state_label(job.state)
            )));
        }
        handle.cancel();
        // Answer once the job has stopped, so the caller sees CANCELLED (or the
        // state it reached first).
        let last = handle.follow().fold(job, |_, j| async move { j }).await;
        Ok(one(&last, encoding))
    }

    /// `lakehouse.job.list`.
    pub(super) fn job_list(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (JobListRequest, _) = decode(request.get_ref())?;
        let limit = if body.limit == 0 {
            100
        } else {
            body.limit as usize
        };
        let jobs: Vec<Job> = self
            .engine
            .services()
            .jobs
            .list()
            .into_iter()
            .filter(|j| !body.running_only || !is_terminal(j.state))
            .take(limit)
            .collect();
        Ok(one(&JobList { jobs }, encoding))
    }

    /// `lakehouse.pii.mark`.
    pub(super) async fn pii_mark(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (PiiMarkRequest, _) = decode(request.get_ref())?;
        let (schema, table) = split_table(&body.table, "table").map_err(ingest_status)?;
        if body.column.is_empty() {
            return Err(Status::invalid_argument(
                "column: is empty: name the column",
            ));
        }
        if !body.entity_type.is_empty() && !ENTITIES.contains(&body.entity_type.as_str()) {
            return Err(Status::invalid_argument(format!(
                "entity_type: {:?} is not one of {} (or empty for \"not PII\")",
                body.entity_type,
                ENTITIES.join(", ")
            )));
        }
        let entry = self
            .engine
            .catalog()
            .mark_pii(&schema, &table, &body.column, &body.entity_type, body.clear)
            .await
            .map_err(|e| ingest_status(e.into()))?;
        let result = PiiMarkResult {
            table: entry.qualified_name(),
            columns: entry.effective_pii(),
        };
        Ok(one(&result, encoding))
    }

    /// `lakehouse.table.vacuum`.
    pub(super) async fn table_vacuum(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        /// Delta Lake's default retention: a week of versions stays readable.
        const DEFAULT_RETAIN_HOURS: f64 = 168.0;
        let (body, encoding): (TableVacuumRequest, _) = decode(request.get_ref())?;
        let (schema, table) = split_table(&body.table, "table").map_err(ingest_status)?;
        let hours = body.retain_hours.unwrap_or(DEFAULT_RETAIN_HOURS);
        if !hours.is_finite() || hours < 0.0 {
            return Err(Status::invalid_argument(format!(
                "retain_hours: {hours} is not a number of hours >= 0 (default {DEFAULT_RETAIN_HOURS})"
            )));
        }
        let retain = std::time::Duration::try_from_secs_f64(hours * 3600.0)
            .map_err(|_| Status::invalid_argument(format!("retain_hours: {hours} is too large")))?;
        let (entry, swept) = self
            .engine
            .catalog()
            .vacuum_table(&schema, &table, retain, body.dry_run)
            .await
            .map_err(|e| status::from_catalog(&e))?;
        tracing::info!(table = %entry.qualified_name(), dry_run = body.dry_run,
            uncommitted = swept.uncommitted.len(), expired = swept.expired.len(),
            staged = swept.staged.len(), bytes = swept.bytes(),
            oldest_readable = swept.oldest_readable, "vacuum");
        let result = TableVacuumResult {
            table: entry.qualified_name(),
            version: swept.latest,
            uncommitted_files: swept.uncommitted.len() as u64,
            expired_files: swept.expired.len() as u64,
            staged_files: swept.staged.len() as u64,
            bytes: swept.bytes(),
            oldest_readable_version: swept.oldest_readable,
            dry_run: body.dry_run,
            files: swept
                .uncommitted
                .iter()
                .chain(&swept.expired)
                .chain(&swept.staged)
                .take(crate::catalog::REPORTED_PATHS)
                .map(|(path, _)| path.clone())
                .collect(),
        };
        Ok(one(&result, encoding))
    }

    fn job(&self, id: &str) -> Result<Arc<JobHandle>, Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument("job_id: is empty"));
        }
        self.engine.services().jobs.get(id).ok_or_else(|| {
            Status::not_found(format!(
                "no job {id:?} (lakehouse.job.list shows the known jobs)"
            ))
        })
    }

    /// DoPut with `IngestUploadCommand`: stages the uploaded file in the primary
    /// bucket, ingests it as a job, and answers the finished job.
    pub(super) async fn ingest_upload(
        &self,
        request: Request<PeekableFlightDataStream>,
        message: Any,
    ) -> Result<Response<PutStream>, Status> {
        let user = Caller::of(&request);
        let (command, encoding): (IngestUploadCommand, _) =
            decode_body(&message.value).map_err(|e| {
                Status::invalid_argument(format!("IngestUploadCommand is not valid: {e}"))
            })?;
        let name = command.file_name.trim();
        if name.is_empty()
            || name.contains('/')
            || name.contains('\\')
            || name == ".."
            || name == "."
        {
            return Err(Status::invalid_argument(
                "file_name: must be a plain file name such as \"sales.csv\" (no folders)",
            ));
        }
        let body = command.request.unwrap_or_default();
        // Validate before reading a byte of the upload.
        split_table(&body.table, "request.table").map_err(ingest_status)?;
        let primary = self
            .engine
            .catalog()
            .buckets()
            .primary()
            .map_err(|e| ingest_status(e.into()))?;
        let folder = format!("{STAGING}{}/", uuid::Uuid::new_v4().simple());
        let path = format!("{folder}{name}");
        let size = match stage(&primary, &path, request.into_inner()).await {
            Ok(size) => size,
            Err(status) => {
                let _ = primary.delete_folder(&folder).await;
                return Err(status);
            }
        };
        let files = vec![InputFile { path, size }];
        let prepared = FileIngest::prepare(&body, Arc::clone(&primary), Some(files))
            .await
            .map_err(ingest_status)
            .and_then(|ingest| self.check_target(&ingest).map(|()| ingest));
        let ingest = match prepared {
            Ok(mut ingest) => {
                ingest.source = crate::lineage::Source {
                    system: "upload".into(),
                    location: format!("{name} (uploaded by DoPut)"),
                };
                ingest
            }
            Err(status) => {
                let _ = primary.delete_folder(&folder).await;
                return Err(status);
            }
        };
        let handle = self.start_ingest(ingest, user, Some(folder));
        let last = handle
            .follow()
            .fold(handle.snapshot(), |_, j| async move { j })
            .await;
        if last.state != JobState::Succeeded as i32 {
            return Err(Status::new(
                code_of(&last.error_code),
                format!("job {}: {}", last.id, last.error),
            ));
        }
        let result = PutResult {
            app_metadata: encode_body(&last, encoding).into(),
        };
        let stream: Pin<Box<dyn Stream<Item = Result<PutResult, Status>> + Send>> =
            Box::pin(futures::stream::iter([Ok(result)]));
        Ok(Response::new(stream))
    }
}

/// Streams the upload's binary chunks into `path`; returns the bytes written.
async fn stage(
    bucket: &crate::storage::Bucket,
    path: &str,
    data: PeekableFlightDataStream,
) -> Result<u64, Status> {
    let mut batches = DecodedBatches::new(data.map_err(FlightError::from));
    let upload = bucket
        .store()
        .put_multipart(&bucket.path(path))
        .await
        .map_err(|e| Status::internal(format!("cannot stage the upload: {e}")))?;
    let mut writer = WriteMultipart::new(upload);
    let mut size = 0u64;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(upload_error)?;
        if batch.num_columns() != 1 {
            writer.abort().await.ok();
            return Err(Status::invalid_argument(
                "an upload carries record batches of one binary column: consecutive chunks of the file",
            ));
        }
        let column = batch.column(0);
        let chunks: Vec<&[u8]> = if let Some(a) = column.as_any().downcast_ref::<BinaryArray>() {
            a.iter().flatten().collect()
        } else if let Some(a) = column.as_any().downcast_ref::<LargeBinaryArray>() {
            a.iter().flatten().collect()
        } else {
            writer.abort().await.ok();
            return Err(Status::invalid_argument(format!(
                "the upload's column is {}, expected binary chunks of the file",
                column.data_type()
            )));
        };
        for chunk in chunks {
            size += chunk.len() as u64;
            writer.write(chunk);
        }
        writer
            .wait_for_capacity(4)
            .await
            .map_err(|e| Status::internal(format!("cannot stage the upload: {e}")))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| Status::internal(format!("cannot stage the upload: {e}")))?;
    if size == 0 {
        return Err(Status::invalid_argument("the upload is empty"));
    }
    Ok(size)
}

fn code_of(name: &str) -> Code {
    Code::from(lakehouse_flight_ext::names::code_of(name))
}
