//! Mapping internal errors to gRPC statuses a client can act on.
//!
//! | error                                   | status             |
//! |-----------------------------------------|--------------------|
//! | SQL syntax / planning / bad parameter   | InvalidArgument    |
//! | unknown table, schema, catalog, version | NotFound           |
//! | table or schema already exists          | AlreadyExists      |
//! | DROP SCHEMA of a non-empty schema       | FailedPrecondition |
//! | concurrent commit conflict (retryable)  | Aborted            |
//! | writing to `system`/`information_schema`| PermissionDenied   |
//! | memory pool exhausted                   | ResourceExhausted  |
//! | unsupported feature                     | Unimplemented      |
//! | vector error (also inside SQL)          | by its kind        |
//! | profile error                           | by its kind        |
//! | ingest: bad file, row, option           | InvalidArgument    |
//! | ingest: source database unreachable     | Unavailable        |
//! | bucket: unknown / exists / refused      | NotFound / AlreadyExists / PermissionDenied |
//! | bucket whose store cannot be listed     | FailedPrecondition |
//! | upload message over the size limit      | OutOfRange (the transport's code) |
//! | storage, Delta or internal failure      | Internal           |
//!
//! A job's work runs behind a call: its status becomes the job's [`JobError`], whose
//! code name is the status code's (a cancelled status is the job's cancellation).

use arrow_flight::error::FlightError;
use datafusion::error::DataFusionError;
use tonic::Status;

use lakehouse_flight_ext::names::code_name;

use crate::catalog::CatalogError;
use crate::ingest::IngestError;
use crate::jobs::JobError;
use crate::profiles::ProfileError;
use crate::storage::StorageError;
use crate::vector::VectorError;

impl From<Status> for JobError {
    fn from(status: Status) -> Self {
        match status.code() {
            tonic::Code::Cancelled => JobError::Cancelled,
            code => JobError::Failed {
                code: code_name(code as i32),
                message: status.message().to_string(),
            },
        }
    }
}

/// Status of a bucket registry error.
pub(super) fn storage_status(error: StorageError) -> Status {
    let message = error.to_string();
    match error {
        StorageError::UnknownBucket(_) => Status::not_found(message),
        StorageError::BucketExists(_) => Status::already_exists(message),
        StorageError::Refused(_) => Status::permission_denied(message),
        StorageError::InvalidUrl { .. } => Status::invalid_argument(message),
        // The new bucket's store refused the first listing: missing bucket, bad
        // credentials, unreachable endpoint.
        StorageError::ObjectStore { .. } => {
            Status::failed_precondition(format!("the bucket cannot be used: {message}"))
        }
        StorageError::Io { .. } | StorageError::CorruptRegistry { .. } => Status::internal(message),
    }
}

/// Status of an ingest error.
pub(super) fn ingest_status(error: IngestError) -> Status {
    let message = error.to_string();
    match error {
        IngestError::Invalid { .. }
        | IngestError::Read { .. }
        | IngestError::BadRow { .. }
        | IngestError::TooManyRejects { .. }
        | IngestError::AllFilesFailed(_) => Status::invalid_argument(message),
        IngestError::NotFound(_) => Status::not_found(message),
        IngestError::Storage(e) if matches!(*e, StorageError::UnknownBucket(_)) => {
            Status::not_found(message)
        }
        IngestError::PermissionDenied(_) => Status::permission_denied(message),
        IngestError::Cancelled => Status::cancelled(message),
        IngestError::Precondition(_) => Status::failed_precondition(message),
        IngestError::Source(_) => Status::unavailable(message),
        IngestError::Storage(_) => Status::internal(message),
        IngestError::Catalog(e) => from_datafusion(datafusion::error::DataFusionError::External(e)),
    }
}

/// Status for a failure reading an upload: the transport's own code when it has one
/// (a message over `max_message_size` is OUT_OF_RANGE), else INVALID_ARGUMENT.
pub(super) fn upload_error(error: FlightError) -> Status {
    match error {
        FlightError::Tonic(status) => Status::new(
            status.code(),
            format!("reading the uploaded data: {}", status.message()),
        ),
        other => Status::invalid_argument(format!("reading the uploaded data: {other}")),
    }
}

/// Status of a profile error.
pub(super) fn profile_status(error: ProfileError) -> Status {
    let message = error.to_string();
    match error {
        ProfileError::Invalid(_) => Status::invalid_argument(message),
        ProfileError::NotFound(_) => Status::not_found(message),
        ProfileError::Exists(_) => Status::already_exists(message),
        ProfileError::Precondition(_) => Status::failed_precondition(message),
        ProfileError::Unavailable(_) => Status::unavailable(message),
        ProfileError::Cancelled => Status::cancelled(message),
        ProfileError::Catalog(e) => from_catalog(&e),
    }
}

/// Status of a vector error.
pub(super) fn vector_status(error: VectorError) -> Status {
    vector_status_ref(&error)
}

fn vector_status_ref(error: &VectorError) -> Status {
    let message = error.to_string();
    match error {
        VectorError::Invalid(_) => Status::invalid_argument(message),
        VectorError::NotFound(_) => Status::not_found(message),
        VectorError::Exists(_) => Status::already_exists(message),
        VectorError::Unavailable(_) => Status::failed_precondition(message),
        VectorError::WorkerDown(_) => Status::unavailable(message),
        VectorError::Forbidden(_) => Status::permission_denied(message),
        VectorError::Cancelled => Status::cancelled(message),
        VectorError::Internal(_) => Status::internal(message),
    }
}

/// Status for a DataFusion error (planning or execution).
pub(super) fn from_datafusion(error: DataFusionError) -> Status {
    from_datafusion_ref(&error)
}

fn from_datafusion_ref(error: &DataFusionError) -> Status {
    let root = root_cause(error);
    if let Some(status) = not_found(root) {
        return status;
    }
    if let DataFusionError::External(e) = root
        && let Some(status) = e.downcast_ref::<Status>()
    {
        return Status::new(status.code(), status.message());
    }
    let message = error.to_string();
    match root {
        DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
            Status::invalid_argument(message)
        }
        DataFusionError::NotImplemented(_) => Status::unimplemented(message),
        DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(message),
        DataFusionError::ArrowError(e, _) if is_user_arrow_error(e) => {
            Status::invalid_argument(message)
        }
        DataFusionError::Execution(_) => Status::invalid_argument(message),
        DataFusionError::External(e) => {
            if let Some(catalog) = e.downcast_ref::<CatalogError>() {
                from_catalog_ref(catalog, message)
            } else if let Some(vector) = e.downcast_ref::<VectorError>() {
                // A search table function inside SQL: the same status as the action's.
                Status::new(vector_status_ref(vector).code(), message)
            } else {
                Status::internal(message)
            }
        }
        _ => Status::internal(message),
    }
}

/// The status a client gets for a catalog error.
pub(super) fn from_catalog(error: &CatalogError) -> Status {
    from_catalog_ref(error, error.to_string())
}

fn from_catalog_ref(error: &CatalogError, message: String) -> Status {
    match error {
        CatalogError::TableNotFound { .. }
        | CatalogError::SchemaNotFound(_)
        | CatalogError::VersionNotFound { .. }
        | CatalogError::VersionVacuumed { .. }
        | CatalogError::ColumnNotFound { .. } => Status::not_found(message),
        CatalogError::TableExists { .. } | CatalogError::SchemaExists(_) => {
            Status::already_exists(message)
        }
        CatalogError::InvalidName { .. } | CatalogError::SchemaMismatch { .. } => {
            Status::invalid_argument(message)
        }
        CatalogError::SchemaNotEmpty { .. } | CatalogError::Vacuum { .. } => {
            Status::failed_precondition(message)
        }
        CatalogError::Conflict { .. } => Status::aborted(message),
        CatalogError::Busy { .. } => Status::unavailable(message),
        CatalogError::Input { source, .. } => {
            let inner = from_datafusion_ref(source);
            Status::new(inner.code(), message)
        }
        CatalogError::ReadOnly(_) => Status::permission_denied(message),
        CatalogError::Storage(_) | CatalogError::Delta { .. } | CatalogError::Corrupt { .. } => {
            Status::internal(message)
        }
    }
}

fn root_cause(error: &DataFusionError) -> &DataFusionError {
    match error {
        DataFusionError::Context(_, inner) => root_cause(inner),
        DataFusionError::Diagnostic(_, inner) => root_cause(inner),
        DataFusionError::Shared(inner) => root_cause(inner),
        other => other,
    }
}

/// DataFusion reports unknown tables and schemas as planning errors; they are NotFound to clients.
fn not_found(error: &DataFusionError) -> Option<Status> {
    let DataFusionError::Plan(message) = error else {
        return None;
    };
    let unknown_table = message.starts_with("table '") && message.ends_with("not found");
    let unknown_schema =
        message.contains("failed to resolve schema") || message.contains("schema not found");
    let unknown_catalog = message.contains("failed to resolve catalog");
    (unknown_table || unknown_schema || unknown_catalog).then(|| Status::not_found(message.clone()))
}

fn is_user_arrow_error(error: &arrow::error::ArrowError) -> bool {
    use arrow::error::ArrowError::*;
    matches!(
        error,
        DivideByZero
            | CastError(_)
            | ParseError(_)
            | ArithmeticOverflow(_)
            | InvalidArgumentError(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn maps_planning_errors() {
        let status = from_datafusion(DataFusionError::Plan(
            "table 'lakehouse.public.nope' not found".into(),
        ));
        assert_eq!(status.code(), Code::NotFound);
        let status = from_datafusion(DataFusionError::Plan("Invalid function 'nope'".into()));
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = from_datafusion(DataFusionError::ResourcesExhausted("pool".into()));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let wrapped = DataFusionError::Context(
            "planning".into(),
            Box::new(DataFusionError::NotImplemented("x".into())),
        );
        assert_eq!(from_datafusion(wrapped).code(), Code::Unimplemented);
    }

    #[test]
    fn maps_catalog_errors() {
        let error = CatalogError::TableNotFound {
            schema: "public".into(),
            table: "t".into(),
        };
        let status = from_datafusion(DataFusionError::External(Box::new(error)));
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("public.t"));
    }
}
