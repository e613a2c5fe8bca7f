//! `CommandStatementIngest`: ADBC bulk ingest over DoPut.

use std::sync::Arc;

use arrow_flight::error::FlightError;
use arrow_flight::sql::CommandStatementIngest;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use lakehouse_flight_ext::DecodedBatches;
use tonic::Status;

use super::service::LakehouseService;
use super::status::{self, upload_error};
use crate::catalog::{CATALOG_NAME, CatalogError, TRUNCATE_NANOSECONDS, truncate_nanoseconds};
use crate::ingest::{BulkIngest, IfExists, IfMissing, bulk_ingest};
use crate::query::SessionDefaults;

/// The request's target and modes, validated.
fn request_of(
    command: &CommandStatementIngest,
    defaults: &SessionDefaults,
) -> Result<BulkIngest, Status> {
    if command.temporary {
        return Err(Status::unimplemented(
            "temporary tables are not supported: ingest into a regular table and DROP it afterwards",
        ));
    }
    if let Some(catalog) = command.catalog.as_deref().filter(|c| !c.is_empty())
        && catalog != CATALOG_NAME
    {
        return Err(Status::not_found(format!(
            "catalog {catalog:?} does not exist (the only catalog is {CATALOG_NAME:?})"
        )));
    }
    if command.table.is_empty() {
        return Err(Status::invalid_argument(
            "bulk ingest needs a target table name",
        ));
    }
    let options = command.table_definition_options.unwrap_or_default();
    let if_missing = match TableNotExistOption::try_from(options.if_not_exist) {
        Ok(TableNotExistOption::Create) => IfMissing::Create,
        Ok(TableNotExistOption::Fail) => IfMissing::Fail,
        _ => {
            return Err(Status::invalid_argument(
                "table_definition_options.if_not_exist must be CREATE or FAIL",
            ));
        }
    };
    let if_exists = match TableExistsOption::try_from(options.if_exists) {
        Ok(TableExistsOption::Fail) => IfExists::Fail,
        Ok(TableExistsOption::Append) => IfExists::Append,
        Ok(TableExistsOption::Replace) => IfExists::Replace,
        _ => {
            return Err(Status::invalid_argument(
                "table_definition_options.if_exists must be FAIL, APPEND or REPLACE",
            ));
        }
    };
    Ok(BulkIngest {
        schema: command
            .schema
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| defaults.schema.clone()),
        table: command.table.clone(),
        if_exists,
        if_missing,
        bucket: crate::ingest::BULK_BUCKET.to_string(),
    })
}

impl LakehouseService {
    /// Streams the DoPut's batches into the target table; returns the rows written.
    pub(super) async fn bulk_ingest(
        &self,
        command: CommandStatementIngest,
        defaults: SessionDefaults,
        data: PeekableFlightDataStream,
        user: &str,
    ) -> Result<i64, Status> {
        let request = request_of(&command, &defaults)?;
        let _permit = self.limits.admit()?;
        let mut rows = decode(data).await?;
        if command
            .options
            .get(TRUNCATE_NANOSECONDS)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            rows = truncate_nanoseconds(rows);
        }
        let create_append =
            request.if_missing == IfMissing::Create && request.if_exists == IfExists::Append;
        let written = bulk_ingest(&self.engine, &request, rows, user)
            .await
            .map_err(|e| match e {
                // ADBC's create_append onto a table of another schema: the table
                // "already exists" as something else (the ADBC spec's status).
                CatalogError::SchemaMismatch { .. } if create_append => {
                    Status::already_exists(e.to_string())
                }
                e => status::from_datafusion(DataFusionError::External(Box::new(e))),
            })?;
        tracing::info!(
            table = %format!("{}.{}", request.schema, request.table),
            rows = written,
            "bulk ingest committed"
        );
        Ok(i64::try_from(written).unwrap_or(i64::MAX))
    }
}

/// The DoPut stream as record batches; its schema is known once the first
/// message (the schema) has been read.
async fn decode(data: PeekableFlightDataStream) -> Result<SendableRecordBatchStream, Status> {
    let mut batches = DecodedBatches::new(data.map_err(FlightError::from));
    let first = batches.next().await.transpose().map_err(upload_error)?;
    let Some(schema) = batches.schema().cloned() else {
        return Err(Status::invalid_argument(
            "the upload carries no Arrow schema: send a schema message, then the batches",
        ));
    };
    let rest = batches.map_err(|e| DataFusionError::External(Box::new(upload_error(e))));
    let stream = futures::stream::iter(first.map(Ok)).chain(rest);
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(&schema),
        stream,
    )))
}
