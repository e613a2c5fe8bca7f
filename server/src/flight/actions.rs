//! Actions beyond the Flight SQL set: Flight sessions, CancelFlightInfo and the
//! `lakehouse.*` actions (see `extension`).

use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus,
};
use futures::stream;
use lakehouse_flight_ext::actions::{
    BUCKET_ADD, BUCKET_LIST, BUCKET_MOVE_INDEX, BUCKET_REMOVE, INGEST_FILE, INGEST_MYSQL,
    INGEST_POSTGRES, JOB_CANCEL, JOB_LIST, JOB_STATUS, PII_MARK, PROFILE_ACTIVATE, PROFILE_CREATE,
    PROFILE_DROP, PROFILE_LIST, TABLE_VACUUM, VECTOR_EVAL, VECTOR_EVAL_SET_CREATE,
    VECTOR_INDEX_CREATE, VECTOR_INDEX_OPTIMIZE, VECTOR_SEARCH, VECTOR_TAKE,
};
use lakehouse_flight_ext::session_actions::{
    CANCEL_FLIGHT_INFO, CLOSE_SESSION, GET_SESSION_OPTIONS, SET_SESSION_OPTIONS,
};
use lakehouse_flight_ext::v1::close_session_result::Status as CloseStatus;
use lakehouse_flight_ext::v1::{
    CloseSessionResult, GetSessionOptionsResult, SetSessionOptionsRequest,
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::service::LakehouseService;
use super::sessions::{SESSION_COOKIE, Sessions, options_of};
use crate::ingest::database::System;

/// (name, description) of every action beyond Flight SQL's own.
const CUSTOM_ACTIONS: [(&str, &str); 26] = [
    (
        INGEST_FILE,
        "Ingest CSV, NDJSON, Parquet, Arrow IPC or PDF files (a path or glob in a bucket) into a table, as a job; streams Job progress, then the final Job with an IngestResult. Body: IngestFileRequest (protobuf or JSON).",
    ),
    (
        INGEST_POSTGRES,
        "Ingest a PostgreSQL table or query (server-side cursor, binary, bounded memory) into a table, as a job; streams Job progress, then the final Job with an IngestResult. Body: IngestDatabaseRequest.",
    ),
    (
        INGEST_MYSQL,
        "Ingest a MySQL or MariaDB table or query (unbuffered binary-protocol stream, bounded memory) into a table, as a job; streams Job progress, then the final Job with an IngestResult. Body: IngestDatabaseRequest.",
    ),
    (
        VECTOR_INDEX_CREATE,
        "Embed a table's text column (long texts in overlapping chunks) with the built-in model or a configured HTTP embedder ([embedders.NAME], Ollama or OpenAI-compatible) and build a vector index (hnsw, flat, faiss in the Faiss worker, or lance: IVF_PQ / IVF_HNSW_SQ / IVF_FLAT over a Lance dataset in the home bucket, in the Lance worker), as a job; the vectors are stored as a Delta table in the index's home bucket, and rows appended later are embedded in the background. Body: VectorIndexCreateRequest.",
    ),
    (
        VECTOR_SEARCH,
        "The k best rows for a text or vector: by vector (nearest), text (BM25) or hybrid (both, rank-fused), optionally restricted by a SQL filter on the source table (k rows when k match). Also SQL: vector_search, text_search, hybrid_search('index', 'text', k); and as an Arrow stream: GetFlightInfo + DoGet of a VectorSearchCommand. Body: VectorSearchRequest.",
    ),
    (
        VECTOR_EVAL_SET_CREATE,
        "Store a named eval set for an index: query texts (given, or read by SQL) with their exact nearest rows by a flat scan of the index's vectors, as a Delta table in a bucket; a job. Body: VectorEvalSetCreateRequest.",
    ),
    (
        VECTOR_EVAL,
        "Measure an index against an eval set: recall@k (mean, p5), latency p50/p95/p99 and QPS on one thread, per ef value, beside build time and memory. Body: VectorEvalRequest.",
    ),
    (
        VECTOR_INDEX_OPTIMIZE,
        "Fold the rows appended to a lance index since its build into its IVF index (they are searched exactly until then; it also happens by itself past the index's optimize_fraction). Body: VectorIndexOptimizeRequest; answers VectorIndexOptimizeResult.",
    ),
    (
        VECTOR_TAKE,
        "Rows of a lance index's dataset by document id (the index's id column), through the dataset's BTREE index on id: every chunk of each id, in the order asked, with the columns id, chunk, vector (all when columns is empty); deleted rows are left out. Also as an Arrow stream: GetFlightInfo + DoGet of a VectorTakeRequest (type URL type.googleapis.com/lakehouse.v1.VectorTakeRequest). Body: VectorTakeRequest; answers VectorTakeResult.",
    ),
    (
        JOB_STATUS,
        "The state and progress of a job; with follow, streams it until the job ends. Body: JobStatusRequest.",
    ),
    (
        JOB_CANCEL,
        "Cancel a running job; it commits nothing. Body: JobCancelRequest.",
    ),
    (
        JOB_LIST,
        "Jobs, newest first (also the SQL table system.jobs). Body: JobListRequest.",
    ),
    (
        PII_MARK,
        "Record a person's PII verdict on a column (or clear it); kept across ingests. Body: PiiMarkRequest.",
    ),
    (
        BUCKET_ADD,
        "Register a bucket while the server runs: a local folder (created; only under the server's local bucket roots) or an S3 prefix (must answer a listing). Body: BucketAddRequest.",
    ),
    (
        BUCKET_REMOVE,
        "Unregister a bucket; primary and rescue are refused (PERMISSION_DENIED), a bucket holding tables, indexes, eval sets or objects only with force (its catalog entries are dropped, its objects stay). Body: BucketRemoveRequest.",
    ),
    (
        BUCKET_LIST,
        "Buckets with what the catalog keeps in each (also the SQL table system.buckets). Body: BucketListRequest.",
    ),
    (
        BUCKET_MOVE_INDEX,
        "Move a vector index's files to another bucket, as a job: copy, check, switch the catalog in one change, delete the old files; searches go on meanwhile. Body: BucketMoveIndexRequest.",
    ),
    (
        TABLE_VACUUM,
        "Delete a table's data files that no version reads: those of writes that never committed, and those that commits older than retain_hours (default 168) removed; older versions then answer NOT_FOUND to time travel. dry_run reports only. Body: TableVacuumRequest.",
    ),
    (
        PROFILE_CREATE,
        "Create (or with replace, change) a model profile: an embedder (builtin or [embedders.NAME]), an optional LLM ([llms.NAME]), a home bucket and a vector backend for its indexes. Body: ProfileCreateRequest.",
    ),
    (
        PROFILE_LIST,
        "Profiles, and the GPU slot: its state, the models it holds (with Ollama's memory figures) and the GPUs NVML reports (also the SQL tables system.profiles and system.gpu_slot). Body: ProfileListRequest.",
    ),
    (
        PROFILE_ACTIVATE,
        "Give the single GPU slot to a profile, as a job: the previous profile's models are unloaded (Ollama keep_alive 0), the new ones preloaded and pinned, shared ones kept; an empty name releases the slot. Remembered across restarts. Body: ProfileActivateRequest.",
    ),
    (
        PROFILE_DROP,
        "Drop a profile; refused (FAILED_PRECONDITION) while it holds the GPU slot or owns indexes. Body: ProfileDropRequest.",
    ),
    (
        SET_SESSION_OPTIONS,
        "Set session options: catalog (must be 'lakehouse'), schema, and profile (bind the session to a model profile: only its vector indexes are usable, others are PERMISSION_DENIED; an empty value unbinds). Body: SetSessionOptionsRequest.",
    ),
    (
        GET_SESSION_OPTIONS,
        "Get the session's catalog, schema and profile. Body: GetSessionOptionsRequest.",
    ),
    (
        CLOSE_SESSION,
        "Close the session and forget its options. Body: CloseSessionRequest.",
    ),
    (
        CANCEL_FLIGHT_INFO,
        "Cancel the running query of a FlightInfo. Body: CancelFlightInfoRequest.",
    ),
];

/// ListActions entries for [`CUSTOM_ACTIONS`].
pub(super) fn custom_action_types() -> Vec<ActionType> {
    CUSTOM_ACTIONS
        .iter()
        .map(|(name, description)| ActionType {
            r#type: name.to_string(),
            description: description.to_string(),
        })
        .collect()
}

type ActionStream =
    <LakehouseService as arrow_flight::flight_service_server::FlightService>::DoActionStream;

fn one_result(body: Vec<u8>) -> Response<ActionStream> {
    Response::new(Box::pin(stream::iter([Ok(arrow_flight::Result {
        body: body.into(),
    })])))
}

fn decode<M: Message + Default>(action: &Action) -> Result<M, Status> {
    M::decode(action.body.clone()).map_err(|e| {
        Status::invalid_argument(format!(
            "body of action {} is not valid: {e}",
            action.r#type
        ))
    })
}

impl LakehouseService {
    /// Dispatches the actions Flight SQL's trait does not know.
    pub(super) async fn custom_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let action = request.get_ref().clone();
        let action = &action;
        tracing::debug!(action = %action.r#type, session = ?Sessions::key(&request), "action");
        match action.r#type.as_str() {
            SET_SESSION_OPTIONS => {
                let body: SetSessionOptionsRequest = decode(action)?;
                let catalog = self.engine.catalog();
                let (result, cookie) = self.sessions.set(&request, catalog, body.session_options);
                let mut response = one_result(result.encode_to_vec());
                if let Some(id) = cookie {
                    let header = format!("{SESSION_COOKIE}={id}")
                        .parse()
                        .map_err(|_| Status::internal("could not encode the session cookie"))?;
                    response.metadata_mut().insert("set-cookie", header);
                }
                Ok(response)
            }
            GET_SESSION_OPTIONS => {
                let defaults = self.defaults(&request);
                let result = GetSessionOptionsResult {
                    session_options: options_of(&defaults),
                };
                Ok(one_result(result.encode_to_vec()))
            }
            CLOSE_SESSION => {
                // Closing a session that holds no options is still a successful close.
                self.sessions.close(&request);
                let result = CloseSessionResult {
                    status: CloseStatus::Closed as i32,
                };
                Ok(one_result(result.encode_to_vec()))
            }
            CANCEL_FLIGHT_INFO => {
                let body: CancelFlightInfoRequest = decode(action)?;
                let info = body.info.ok_or_else(|| {
                    Status::invalid_argument("CancelFlightInfoRequest.info is missing")
                })?;
                self.cancel(&info)?;
                let result = CancelFlightInfoResult {
                    status: CancelStatus::Cancelled as i32,
                };
                Ok(one_result(result.encode_to_vec()))
            }
            INGEST_FILE => self.ingest_file(request).await,
            INGEST_POSTGRES => self.ingest_database(request, System::Postgres).await,
            INGEST_MYSQL => self.ingest_database(request, System::Mysql).await,
            VECTOR_INDEX_CREATE => self.vector_index_create(request).await,
            VECTOR_SEARCH => self.vector_search(request).await,
            VECTOR_EVAL_SET_CREATE => self.vector_eval_set_create(request).await,
            VECTOR_EVAL => self.vector_eval(request).await,
            VECTOR_INDEX_OPTIMIZE => self.vector_index_optimize(request).await,
            VECTOR_TAKE => self.vector_take(request).await,
            JOB_STATUS => self.job_status(request),
            JOB_CANCEL => self.job_cancel(request).await,
            JOB_LIST => self.job_list(request),
            PII_MARK => self.pii_mark(request).await,
            BUCKET_ADD => self.bucket_add(request).await,
            BUCKET_REMOVE => self.bucket_remove(request).await,
            BUCKET_LIST => self.bucket_list(request),
            BUCKET_MOVE_INDEX => self.bucket_move_index(request).await,
            TABLE_VACUUM => self.table_vacuum(request).await,
            PROFILE_CREATE => self.profile_create(request).await,
            PROFILE_LIST => self.profile_list(request),
            PROFILE_ACTIVATE => self.profile_activate(request).await,
            PROFILE_DROP => self.profile_drop(request).await,
            other => {
                let mut known: Vec<&str> = CUSTOM_ACTIONS.iter().map(|(name, _)| *name).collect();
                known.extend([
                    "CreatePreparedStatement",
                    "ClosePreparedStatement",
                    "CancelQuery",
                ]);
                Err(Status::unimplemented(format!(
                    "unknown action {other:?}; known actions: {}",
                    known.join(", ")
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_extension_action_is_listed() {
        let listed: Vec<&str> = CUSTOM_ACTIONS.iter().map(|(name, _)| *name).collect();
        let declared: Vec<&str> = lakehouse_flight_ext::actions::ALL
            .into_iter()
            .chain(lakehouse_flight_ext::session_actions::ALL)
            .collect();
        assert_eq!(listed, declared);
    }
}
