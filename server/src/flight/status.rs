//! Mapping internal errors to gRPC statuses a client can act on.
//!
//! | error                                   | status             |
//! |-----------------------------------------|--------------------|
//! | SQL syntax / planning / bad parameter   | InvalidArgument    |
//! | unknown table, schema or catalog        | NotFound           |
//! | memory pool exhausted                   | ResourceExhausted  |
//! | unsupported feature                     | Unimplemented      |
//! | storage, Delta or internal failure      | Internal           |

use datafusion::error::DataFusionError;
use tonic::Status;

use crate::catalog::CatalogError;

/// Status for a DataFusion error (planning or execution).
pub fn from_datafusion(error: DataFusionError) -> Status {
    let root = root_cause(&error);
    if let Some(status) = not_found(root) {
        return status;
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
        DataFusionError::External(e) => match e.downcast_ref::<CatalogError>() {
            Some(catalog) => from_catalog_ref(catalog, message),
            None => Status::internal(message),
        },
        _ => Status::internal(message),
    }
}

fn from_catalog_ref(error: &CatalogError, message: String) -> Status {
    match error {
        CatalogError::TableNotFound { .. } | CatalogError::SchemaNotFound(_) => {
            Status::not_found(message)
        }
        CatalogError::TableExists { .. } => Status::already_exists(message),
        CatalogError::InvalidName { .. } => Status::invalid_argument(message),
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
