//! Prepared statements with self-contained handles.
//!
//! ```text
//! CreatePreparedStatement(sql) ──► handle{sql, session defaults}  + dataset/parameter schemas
//! DoPut(handle, parameter rows) ──► handle{sql, defaults, rows}    (DoPutPreparedStatementResult)
//! GetFlightInfo(handle)         ──► plan with the first row bound  (schema only)
//! DoGet(handle)                 ──► run once per parameter row, results concatenated
//! ```
//! Nothing is kept on the server between calls, so handles survive restarts.

use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionCreatePreparedStatementResult, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, DoPutPreparedStatementResult,
};
use arrow_flight::{Action, FlightInfo, IpcMessage, SchemaAsIpc};
use futures::TryStreamExt;
use lakehouse_flight_ext::DecodedBatches;

use tonic::{Request, Status};

use super::service::LakehouseService;
use super::statements::{handle_bytes, handle_from};
use super::status;
use crate::query::{ParameterRows, is_write, parameter_schema};

/// Parameter rows sent in a DoPut stream.
async fn read_parameters(
    request: Request<PeekableFlightDataStream>,
) -> Result<ParameterRows, Status> {
    // The peekable stream itself: its first (already peeked) message carries the schema.
    // A message without an IPC header carries no data: arrow-rs sends the command
    // alone that way when the parameters were bound by an earlier DoPut.
    let stream = request
        .into_inner()
        .try_filter(|message| std::future::ready(!message.data_header.is_empty()))
        .map_err(FlightError::from);
    let batches: Vec<_> = DecodedBatches::new(stream)
        .try_collect()
        .await
        .map_err(super::status::upload_error)?;
    Ok(ParameterRows::new(batches))
}

fn schema_bytes(schema: &Schema) -> Result<Vec<u8>, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(format!("encoding schema: {e}")))?;
    Ok(bytes.to_vec())
}

impl LakehouseService {
    /// CreatePreparedStatement: plans `sql` and describes its result and parameters.
    pub(super) async fn create_prepared(
        &self,
        request: &Request<Action>,
        sql: String,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let handle = self.new_handle(request, sql);
        let (ctx, plan) = self.plan_unbound(&handle).await?;
        let parameters = parameter_schema(&plan).map_err(status::from_datafusion)?;
        // An empty dataset schema tells clients (JDBC) to run it as an update.
        let dataset = if is_write(&plan) {
            Schema::empty()
        } else if parameters.fields().is_empty() {
            // What the statement will stream (see `statement_info`).
            let planned = self.physical_plans(ctx, &handle, &plan).await?;
            planned.schema()?.as_ref().clone()
        } else {
            // Placeholders cannot be planned physically; the schema of GetFlightInfo
            // after binding is the exact one.
            plan.schema().as_arrow().clone()
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle_bytes(&handle)?.into(),
            dataset_schema: schema_bytes(&dataset)?.into(),
            parameter_schema: schema_bytes(&parameters)?.into(),
        })
    }

    /// DoPut of parameter rows: validates them against the statement and returns a
    /// new handle that carries them.
    pub(super) async fn bind_parameters(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let mut handle = handle_from(&query.prepared_statement_handle)?;
        let rows = read_parameters(request).await?;
        handle.parameters = rows.to_ipc().map_err(status::from_datafusion)?;
        // Bind now so a wrong parameter count or type fails here, where the client sent it.
        self.plan_handle(&handle).await?;
        let bytes = handle_bytes(&handle)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(bytes.into()),
        })
    }

    /// DoPut(CommandPreparedStatementUpdate): runs the update once per parameter row
    /// sent with it (or bound earlier, when the stream carries none).
    pub(super) async fn prepared_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let mut handle = handle_from(&query.prepared_statement_handle)?;
        let rows = read_parameters(request).await?;
        if !rows.is_empty() {
            handle.parameters = rows.to_ipc().map_err(status::from_datafusion)?;
        }
        self.execute_update(&handle).await
    }

    /// Cancels the queries of every endpoint of `info`; NotFound when none is running.
    pub(super) fn cancel(&self, info: &FlightInfo) -> Result<(), Status> {
        let mut cancelled = false;
        for endpoint in &info.endpoint {
            if let Some(ticket) = &endpoint.ticket {
                cancelled |= self.running.cancel(&ticket.ticket);
            }
        }
        if cancelled {
            Ok(())
        } else {
            Err(Status::not_found(
                "no running query matches this FlightInfo",
            ))
        }
    }
}
