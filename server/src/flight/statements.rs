//! Running statements: the handle a statement travels in (ticket, prepared
//! statement), planning it once (the plan cache) and the FlightInfo announcing its
//! exact schema, executing queries and writes, and encoding results as Flight data.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt, TryStreamExt};
use lakehouse_flight_ext::v1::StatementHandle;
use lakehouse_flight_ext::{HANDLE_VERSION, decode_handle, encode_handle};
use prost::Message;
use tonic::{Request, Response, Status};

use super::plans::Planned;
use super::running::{Cancellable, Stop};
use super::{MAX_FLIGHT_DATA_BYTES, metadata, status};
use crate::query::{
    ParameterRows, SessionDefaults, Statement, Write, classify, count_schema, is_write,
};

use super::service::{FlightDataStream, LakehouseService};

/// FlightData messages encoded ahead of what the client has read.
const ENCODE_AHEAD: usize = 4;

impl LakehouseService {
    /// The session defaults of the caller.
    pub(super) fn defaults<T>(&self, request: &Request<T>) -> SessionDefaults {
        self.sessions.defaults(request)
    }

    /// A handle for `sql` under the caller's session defaults.
    pub(super) fn new_handle<T>(&self, request: &Request<T>, sql: String) -> StatementHandle {
        let defaults = self.defaults(request);
        StatementHandle {
            version: HANDLE_VERSION,
            sql,
            default_catalog: defaults.catalog,
            default_schema: defaults.schema,
            parameters: Vec::new(),
            affected_rows: None,
            default_profile: defaults.profile.unwrap_or_default(),
        }
    }

    /// Plans the handle's statement with its parameters bound: one plan per parameter row.
    pub(super) async fn plan_handle(
        &self,
        handle: &StatementHandle,
    ) -> Result<(SessionContext, Vec<datafusion::logical_expr::LogicalPlan>), Status> {
        let (ctx, plan) = self.plan_unbound(handle).await?;
        Ok((ctx, bind_all(handle, &plan)?))
    }

    /// GetFlightInfo of a statement, prepared or not.
    ///
    /// A query is only planned here; it runs in DoGet. A write (DDL/DML sent as a
    /// query, as ADBC's `cursor.execute` and JDBC's `execute` do) runs **here**: such
    /// clients may never fetch the result, yet expect the statement to have taken
    /// effect when `execute` returns. Its ticket then carries the row count, which
    /// DoGet answers without running anything again. GetSchema only plans.
    pub(super) async fn statement_info(
        &self,
        mut handle: StatementHandle,
        request: Request<FlightDescriptor>,
        query_ticket: impl FnOnce(&StatementHandle) -> Result<Vec<u8>, Status>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (ctx, plan) = self.plan_unbound(&handle).await?;
        let schema_only = request.extensions().get::<SchemaOnly>().is_some();
        let (schema, ticket) = if is_write(&plan) {
            if !schema_only {
                let plans = bind_all(&handle, &plan)?;
                handle.affected_rows = Some(self.apply_writes(&handle, &ctx, plans).await?);
            }
            (count_schema(), statement_ticket(&handle)?)
        } else {
            // The schema announced is the physical plan's: exactly what DoGet streams
            // (ADBC rejects a stream whose schema differs from the FlightInfo's).
            let planned = self.physical_plans(ctx, &handle, &plan).await?;
            let schema = planned.schema()?;
            let ticket = query_ticket(&handle)?;
            if !schema_only {
                self.plans.put(ticket.clone(), planned);
            }
            (schema, ticket)
        };
        Ok(Response::new(flight_info(
            &schema,
            request.into_inner(),
            ticket,
        )?))
    }

    /// The physical plans of a query's handle, one per parameter row.
    pub(super) async fn physical_plans(
        &self,
        ctx: SessionContext,
        handle: &StatementHandle,
        plan: &datafusion::logical_expr::LogicalPlan,
    ) -> Result<Planned, Status> {
        let mut plans = Vec::new();
        for bound in bind_all(handle, plan)? {
            plans.push(
                self.engine
                    .physical(&ctx, &bound)
                    .await
                    .map_err(status::from_datafusion)?,
            );
        }
        Ok(Planned { ctx, plans })
    }

    /// Runs the handle's statement, which must change something; returns the rows affected.
    pub(super) async fn execute_update(&self, handle: &StatementHandle) -> Result<i64, Status> {
        let (ctx, plans) = self.plan_handle(handle).await?;
        self.apply_writes(handle, &ctx, plans).await
    }

    /// Applies the handle's bound plans, which must all be writes, within the limits.
    pub(super) async fn apply_writes(
        &self,
        handle: &StatementHandle,
        ctx: &SessionContext,
        plans: Vec<datafusion::logical_expr::LogicalPlan>,
    ) -> Result<i64, Status> {
        let writes = writes_of(plans, &defaults_of(handle))?;
        let _permit = self.limits.admit()?;
        let affected = self
            .limits
            .timed(async {
                self.engine
                    .execute_writes(ctx, writes)
                    .await
                    .map_err(status::from_datafusion)
            })
            .await?;
        Ok(i64::try_from(affected).unwrap_or(i64::MAX))
    }

    /// Plans the handle's SQL under the session defaults it carries, parameters unbound.
    pub(super) async fn plan_unbound(
        &self,
        handle: &StatementHandle,
    ) -> Result<(SessionContext, datafusion::logical_expr::LogicalPlan), Status> {
        let ctx = self.engine.session(&defaults_of(handle));
        let plan = self
            .engine
            .plan(&ctx, &handle.sql)
            .await
            .map_err(status::from_datafusion)?;
        Ok((ctx, plan))
    }

    /// Runs the handle's statement for DoGet: a query streams its rows; a write
    /// (a client sending DDL/DML as a query, as ADBC's `cursor.execute` does) is
    /// applied here and answers one `count` row.
    pub(super) async fn run_handle(
        &self,
        ticket: &[u8],
        handle: &StatementHandle,
    ) -> Result<Response<FlightDataStream>, Status> {
        if let Some(affected) = handle.affected_rows {
            return self.count_answer(affected);
        }
        if let Some(planned) = self.plans.take(ticket) {
            return self.run(ticket, planned).await;
        }
        let (ctx, plan) = self.plan_unbound(handle).await?;
        if is_write(&plan) {
            // A DoGet that no GetFlightInfo ran first (a client replaying a prepared
            // statement's ticket): run the write now.
            let plans = bind_all(handle, &plan)?;
            let affected = self.apply_writes(handle, &ctx, plans).await?;
            return self.count_answer(affected);
        }
        let planned = self.physical_plans(ctx, handle, &plan).await?;
        self.run(ticket, planned).await
    }

    /// One `count` row: the answer of a write read as a query.
    pub(super) fn count_answer(&self, affected: i64) -> Result<Response<FlightDataStream>, Status> {
        let batch = RecordBatch::try_new(
            count_schema(),
            vec![Arc::new(arrow::array::Int64Array::from(vec![affected]))],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(self.one_batch(batch))
    }

    /// Runs the plans one after the other and streams their batches as FlightData.
    pub(super) async fn run(
        &self,
        ticket: &[u8],
        planned: Planned,
    ) -> Result<Response<FlightDataStream>, Status> {
        let permit = self.limits.admit()?;
        let engine = Arc::clone(&self.engine);
        let schema = planned.schema()?;
        let Planned { ctx, plans } = planned;
        // Start the first plan now so errors surface as the DoGet status, not mid-stream.
        let mut plans = plans.into_iter();
        let Some(first) = plans.next() else {
            return Err(Status::invalid_argument("nothing to execute"));
        };
        let first = engine
            .execute_physical(&ctx, first)
            .map_err(status::from_datafusion)?;
        let rest = futures::stream::iter(plans)
            .map(move |plan| engine.execute_physical(&ctx, plan))
            .try_flatten();
        let batches = first
            .chain(rest)
            .map_err(|e| FlightError::Tonic(Box::new(status::from_datafusion(e))));
        let batches = self.limits.bounded(batches, permit);
        Ok(self.encode(ticket, schema, batches))
    }

    pub(super) fn encode(
        &self,
        ticket: &[u8],
        schema: SchemaRef,
        batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
    ) -> Response<FlightDataStream> {
        let (guard, cancelled) = self.running.register(ticket);
        let stopped = |stop| {
            Err(FlightError::Tonic(Box::new(match stop {
                Stop::ShuttingDown => Status::unavailable(
                    "the server is shutting down; the query was stopped, run it again",
                ),
                Stop::Cancelled | Stop::No => {
                    Status::cancelled("query cancelled by CancelFlightInfo")
                }
            })))
        };
        let batches = Cancellable::new(batches, guard, cancelled, stopped).inspect(|batch| {
            if let Ok(batch) = batch {
                crate::observe::metrics().streamed(batch.num_rows() as u64, 0);
            }
        });
        let mut encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(MAX_FLIGHT_DATA_BYTES)
            .build(batches)
            .map_err(Status::from);
        // Encode in a task of its own, a few messages ahead of the network: IPC
        // encoding then overlaps with gRPC framing and socket writes. The bounded
        // channel keeps memory flat; a client that goes away drops the receiver,
        // which ends the task and, with it, the query.
        let (tx, rx) = tokio::sync::mpsc::channel(ENCODE_AHEAD);
        tokio::spawn(async move {
            while let Some(message) = encoded.next().await {
                if let Ok(data) = &message {
                    let bytes = data.data_header.len() + data.data_body.len();
                    crate::observe::metrics().streamed(0, bytes as u64);
                }
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        Response::new(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|message| (message, rx))
        })))
    }

    /// Key commands: the named tables must exist; Lakehouse tables declare no keys,
    /// so the answer is the spec schema with no rows.
    pub(super) async fn key_answer(
        &self,
        request: &Request<Ticket>,
        schema: SchemaRef,
        tables: &[(Option<&str>, Option<&str>, &str)],
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.engine.session(&self.defaults(request));
        for (catalog, db_schema, table) in tables {
            metadata::ensure_table(&ctx, *catalog, *db_schema, table)?;
        }
        Ok(self.one_batch(RecordBatch::new_empty(schema)))
    }

    /// A metadata answer: one small batch, encoded in place (nothing to cancel or pipeline).
    pub(super) fn one_batch(&self, batch: RecordBatch) -> Response<FlightDataStream> {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(batch.schema())
            .build(futures::stream::iter([Ok(batch)]))
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }
}

/// Marks a GetFlightInfo made on behalf of GetSchema: plan only, run nothing.
#[derive(Debug, Clone, Copy)]
pub(super) struct SchemaOnly;

/// Decodes a statement handle sent by a client.
pub(super) fn handle_from(bytes: &[u8]) -> Result<StatementHandle, Status> {
    decode_handle(bytes).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Encodes a statement handle for a client.
pub(super) fn handle_bytes(handle: &StatementHandle) -> Result<Vec<u8>, Status> {
    encode_handle(handle).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A `TicketStatementQuery` carrying `handle`.
pub(super) fn statement_ticket(handle: &StatementHandle) -> Result<Vec<u8>, Status> {
    let bytes = handle_bytes(handle)?;
    Ok(TicketStatementQuery {
        statement_handle: bytes.into(),
    }
    .as_any()
    .encode_to_vec())
}

/// `plan` with each parameter row the handle carries bound: one plan per row.
pub(super) fn bind_all(
    handle: &StatementHandle,
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Result<Vec<datafusion::logical_expr::LogicalPlan>, Status> {
    let params = ParameterRows::from_ipc(&handle.parameters).map_err(status::from_datafusion)?;
    params.bind(plan).map_err(status::from_datafusion)
}

/// The session defaults a handle carries.
pub(super) fn defaults_of(handle: &StatementHandle) -> SessionDefaults {
    SessionDefaults {
        catalog: handle.default_catalog.clone(),
        schema: handle.default_schema.clone(),
        profile: (!handle.default_profile.is_empty()).then(|| handle.default_profile.clone()),
    }
}

/// The bound plans as writes; a query sent as an update is refused.
pub(super) fn writes_of(
    plans: Vec<datafusion::logical_expr::LogicalPlan>,
    defaults: &SessionDefaults,
) -> Result<Vec<Write>, Status> {
    plans
        .into_iter()
        .map(|plan| match classify(plan, defaults) {
            Ok(Statement::Write(write)) => Ok(*write),
            Ok(Statement::Query) => Err(Status::invalid_argument(
                "this statement returns rows: send it as a query (CommandStatementQuery or \
                 CommandPreparedStatementQuery), not as an update",
            )),
            Err(e) => Err(status::from_datafusion(e)),
        })
        .collect()
}

/// A FlightInfo with one endpoint whose ticket is `ticket`, on this same server.
pub(super) fn flight_info(
    schema: &arrow::datatypes::Schema,
    descriptor: FlightDescriptor,
    ticket: Vec<u8>,
) -> Result<FlightInfo, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("encoding result schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor)
        .with_ordered(true))
}

/// FlightInfo of a metadata command: its schema, and the command itself as the ticket.
pub(super) fn metadata_info(
    command: &impl ProstMessageExt,
    schema: &arrow::datatypes::Schema,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = command.as_any().encode_to_vec();
    Ok(Response::new(flight_info(
        schema,
        request.into_inner(),
        ticket,
    )?))
}

/// Refuses a command that names a transaction: none are offered.
pub(super) fn refuse_transaction(transaction_id: Option<&bytes::Bytes>) -> Result<(), Status> {
    match transaction_id {
        Some(id) if !id.is_empty() => Err(no_transactions()),
        _ => Ok(()),
    }
}

pub(super) fn no_transactions() -> Status {
    Status::invalid_argument(
        "transactions are not supported (GetSqlInfo reports FLIGHT_SQL_SERVER_TRANSACTION = NONE)",
    )
}
