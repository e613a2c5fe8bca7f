//! The Lakehouse extension protocol, shared by the server, workers and clients.
//!
//! `proto/lakehouse/v1/*.proto` is the single source of truth; this crate holds
//! the generated types (with their proto3 JSON mapping) and the codecs around them.

/// Generated `lakehouse.v1` messages.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/lakehouse.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/lakehouse.v1.serde.rs"));
}

mod body;
mod handle;
pub mod names;
mod upload;

pub use body::{BodyError, Encoding, decode_body, encode_body};
pub use handle::{
    HANDLE_VERSION, HandleError, MAX_HANDLE_BYTES, decode_handle, decode_parameters, encode_handle,
    encode_parameters,
};
pub use upload::DecodedBatches;

/// Names of the standard Flight session actions (bodies are raw, not `Any`-wrapped).
pub mod session_actions {
    /// `SetSessionOptionsRequest` → `SetSessionOptionsResult`.
    pub const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
    /// `GetSessionOptionsRequest` → `GetSessionOptionsResult`.
    pub const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
    /// `CloseSessionRequest` → `CloseSessionResult`.
    pub const CLOSE_SESSION: &str = "CloseSession";
    /// `CancelFlightInfoRequest` → `CancelFlightInfoResult`.
    pub const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

    /// Every session action.
    pub const ALL: [&str; 4] = [
        SET_SESSION_OPTIONS,
        GET_SESSION_OPTIONS,
        CLOSE_SESSION,
        CANCEL_FLIGHT_INFO,
    ];
}

/// Names of the `lakehouse.*` actions; bodies are `v1` messages, protobuf or JSON.
pub mod actions {
    /// `IngestFileRequest` → stream of `Job`.
    pub const INGEST_FILE: &str = "lakehouse.ingest.file";
    /// `IngestDatabaseRequest` → stream of `Job`.
    pub const INGEST_POSTGRES: &str = "lakehouse.ingest.postgres";
    /// `IngestDatabaseRequest` → stream of `Job`.
    pub const INGEST_MYSQL: &str = "lakehouse.ingest.mysql";
    /// `VectorIndexCreateRequest` → stream of `Job`.
    pub const VECTOR_INDEX_CREATE: &str = "lakehouse.vector.index.create";
    /// `VectorSearchRequest` → `VectorSearchResult`.
    pub const VECTOR_SEARCH: &str = "lakehouse.vector.search";
    /// `VectorEvalSetCreateRequest` → stream of `Job`.
    pub const VECTOR_EVAL_SET_CREATE: &str = "lakehouse.vector.eval_set.create";
    /// `VectorEvalRequest` → `VectorEvalResult`.
    pub const VECTOR_EVAL: &str = "lakehouse.vector.eval";
    /// `VectorIndexOptimizeRequest` → `VectorIndexOptimizeResult`.
    pub const VECTOR_INDEX_OPTIMIZE: &str = "lakehouse.vector.index.optimize";
    /// `VectorTakeRequest` → `VectorTakeResult`.
    pub const VECTOR_TAKE: &str = "lakehouse.vector.take";
    /// `JobStatusRequest` → `Job` (a stream of them with `follow`).
    pub const JOB_STATUS: &str = "lakehouse.job.status";
    /// `JobCancelRequest` → `Job`.
    pub const JOB_CANCEL: &str = "lakehouse.job.cancel";
    /// `JobListRequest` → `JobList`.
    pub const JOB_LIST: &str = "lakehouse.job.list";
    /// `PiiMarkRequest` → `PiiMarkResult`.
    pub const PII_MARK: &str = "lakehouse.pii.mark";
    /// `BucketAddRequest` → `BucketInfo`.
    pub const BUCKET_ADD: &str = "lakehouse.bucket.add";
    /// `BucketRemoveRequest` → `BucketRemoveResult`.
    pub const BUCKET_REMOVE: &str = "lakehouse.bucket.remove";
    /// `BucketListRequest` → `BucketList`.
    pub const BUCKET_LIST: &str = "lakehouse.bucket.list";
    /// `BucketMoveIndexRequest` → stream of `Job`.
    pub const BUCKET_MOVE_INDEX: &str = "lakehouse.bucket.move_index";
    /// `TableVacuumRequest` → `TableVacuumResult`.
    pub const TABLE_VACUUM: &str = "lakehouse.table.vacuum";
    /// `ProfileCreateRequest` → `Profile`.
    pub const PROFILE_CREATE: &str = "lakehouse.profile.create";
    /// `ProfileListRequest` → `ProfileList`.
    pub const PROFILE_LIST: &str = "lakehouse.profile.list";
    /// `ProfileActivateRequest` → stream of `Job`.
    pub const PROFILE_ACTIVATE: &str = "lakehouse.profile.activate";
    /// `ProfileDropRequest` → `Profile`.
    pub const PROFILE_DROP: &str = "lakehouse.profile.drop";

    /// Every `lakehouse.*` action.
    pub const ALL: [&str; 22] = [
        INGEST_FILE,
        INGEST_POSTGRES,
        INGEST_MYSQL,
        VECTOR_INDEX_CREATE,
        VECTOR_SEARCH,
        VECTOR_EVAL_SET_CREATE,
        VECTOR_EVAL,
        VECTOR_INDEX_OPTIMIZE,
        VECTOR_TAKE,
        JOB_STATUS,
        JOB_CANCEL,
        JOB_LIST,
        PII_MARK,
        BUCKET_ADD,
        BUCKET_REMOVE,
        BUCKET_LIST,
        BUCKET_MOVE_INDEX,
        TABLE_VACUUM,
        PROFILE_CREATE,
        PROFILE_LIST,
        PROFILE_ACTIVATE,
        PROFILE_DROP,
    ];
}

/// Type URL of `IngestUploadCommand` when `Any`-wrapped in a DoPut descriptor.
pub const INGEST_UPLOAD_TYPE_URL: &str = "type.googleapis.com/lakehouse.v1.IngestUploadCommand";

/// Type URL of `VectorSearchCommand` when `Any`-wrapped in a GetFlightInfo descriptor
/// (and in the ticket it returns).
pub const VECTOR_SEARCH_TYPE_URL: &str = "type.googleapis.com/lakehouse.v1.VectorSearchCommand";

/// Type URL of `VectorTakeRequest` when `Any`-wrapped in a GetFlightInfo descriptor
/// (and in the ticket it returns).
pub const VECTOR_TAKE_TYPE_URL: &str = "type.googleapis.com/lakehouse.v1.VectorTakeRequest";

/// Actions of the server's worker processes (internal: see `worker.proto` and
/// `lance_worker.proto`). One file, also included by the Lance worker, which is
/// built in a workspace of its own and cannot depend on this crate.
pub mod worker_actions {
    include!("worker_actions.rs");
}
