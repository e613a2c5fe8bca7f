//! `FlightSqlService` implementation: statement queries, metadata commands and
//! streaming of results.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginTransactionRequest, ActionBeginTransactionResult, ActionCancelQueryRequest,
    ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    ActionCreatePreparedSubstraitPlanRequest, ActionEndTransactionRequest, Any, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementSubstraitPlan,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, Ticket,
};
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt, TryStreamExt};
use lakehouse_flight_ext::v1::StatementHandle;
use lakehouse_flight_ext::{HANDLE_VERSION, decode_handle, encode_handle};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Authenticator;
use super::limits::Limits;
use super::plans::{PlanCache, Planned};
use super::running::{Cancellable, RunningQueries, Stop};
use super::sessions::Sessions;
use super::{MAX_FLIGHT_DATA_BYTES, metadata, sql_info, status};
use crate::ingest::database::Connections;
use crate::query::{
    ParameterRows, QueryEngine, SessionDefaults, Statement, Write, classify, count_schema, is_write,
};
use crate::vector::VectorIndexes;

/// FlightData messages encoded ahead of what the client has read.
const ENCODE_AHEAD: usize = 4;

pub(super) type FlightDataStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// The Lakehouse Flight SQL service.
pub struct LakehouseService {
    pub(super) engine: Arc<QueryEngine>,
    pub(super) sessions: Sessions,
    pub(super) running: Arc<RunningQueries>,
    pub(super) auth: Authenticator,
    pub(super) limits: Limits,
    /// Named source databases of the ingest actions.
    pub(super) connections: Connections,
    /// Vector indexes (absent in services built without them).
    pub(super) vectors: Option<Arc<VectorIndexes>>,
    /// Model profiles and the GPU slot (absent in services built without them).
    pub(super) profiles: Option<Arc<crate::profiles::Profiles>>,
    /// Physical plans made by GetFlightInfo, waiting for their DoGet.
    plans: PlanCache,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
}

impl LakehouseService {
    /// A service answering queries with `engine`.
    pub fn new(
        engine: Arc<QueryEngine>,
        auth: Authenticator,
        limits: Limits,
    ) -> Result<Self, FlightError> {
        let state = engine.session(&SessionDefaults::default()).state();
        Ok(Self {
            sql_info: sql_info::sql_info(&state, limits.timeout_ms())?,
            xdbc: sql_info::xdbc_type_info()?,
            engine,
            sessions: Sessions::default(),
            running: Arc::default(),
            connections: Connections::default(),
            vectors: None,
            profiles: None,
            plans: PlanCache::default(),
            auth,
            limits,
        })
    }

    /// Serves the ingest actions' named connections.
    pub fn with_connections(mut self, connections: Connections) -> Self {
        self.connections = connections;
        self
    }

    /// The queries this service streams, for stopping them at shutdown.
    pub fn running_queries(&self) -> Arc<RunningQueries> {
        Arc::clone(&self.running)
    }

    /// Serves the vector actions over `vectors`.
    pub fn with_vectors(mut self, vectors: Arc<VectorIndexes>) -> Self {
        self.vectors = Some(vectors);
        self
    }

    /// Serves the profile actions over `profiles`.
    pub fn with_profiles(mut self, profiles: Arc<crate::profiles::Profiles>) -> Self {
        self.profiles = Some(profiles);
        self
    }

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
    async fn apply_writes(
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
    async fn run_handle(
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
    fn count_answer(&self, affected: i64) -> Result<Response<FlightDataStream>, Status> {
        let batch = RecordBatch::try_new(
            count_schema(),
            vec![Arc::new(arrow::array::Int64Array::from(vec![affected]))],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(self.one_batch(batch))
    }

    /// Runs the plans one after the other and streams their batches as FlightData.
    async fn run(
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

    fn encode(
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
    async fn key_answer(
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
    fn one_batch(&self, batch: RecordBatch) -> Response<FlightDataStream> {
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
fn statement_ticket(handle: &StatementHandle) -> Result<Vec<u8>, Status> {
    let bytes = handle_bytes(handle)?;
    Ok(TicketStatementQuery {
        statement_handle: bytes.into(),
    }
    .as_any()
    .encode_to_vec())
}

/// `plan` with each parameter row the handle carries bound: one plan per row.
fn bind_all(
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
fn writes_of(
    plans: Vec<datafusion::logical_expr::LogicalPlan>,
    defaults: &SessionDefaults,
) -> Result<Vec<Write>, Status> {
    plans
        .into_iter()
        .map(|plan| match classify(plan, defaults) {
            Ok(Statement::Write(write)) => Ok(write),
            Ok(Statement::Query(_)) => Err(Status::invalid_argument(
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
fn metadata_info(
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
fn refuse_transaction(transaction_id: Option<&bytes::Bytes>) -> Result<(), Status> {
    match transaction_id {
        Some(id) if !id.is_empty() => Err(no_transactions()),
        _ => Ok(()),
    }
}

fn no_transactions() -> Status {
    Status::invalid_argument(
        "transactions are not supported (GetSqlInfo reports FLIGHT_SQL_SERVER_TRANSACTION = NONE)",
    )
}

#[tonic::async_trait]
impl FlightSqlService for LakehouseService {
    type FlightService = LakehouseService;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // Credentials come in the header (ADBC sends no payload, the arrow-rs CLI an
        // empty one); the token goes back in the header and the payload.
        let token = self.auth.login(request.metadata()).await?;
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter([Ok(response)])));
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("could not encode the bearer token header"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        refuse_transaction(query.transaction_id.as_ref())?;
        let handle = self.new_handle(&request, query.query);
        self.statement_info(handle, request, statement_ticket).await
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented(
            "Substrait plans are not supported; send SQL (GetSqlInfo FLIGHT_SQL_SERVER_SUBSTRAIT = false)",
        ))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = handle_from(&query.prepared_statement_handle)?;
        let ticket = query.as_any().encode_to_vec();
        self.statement_info(handle, request, |_| Ok(ticket)).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, &metadata::catalogs_schema(), request)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, &metadata::db_schemas_schema(), request)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::tables_schema(query.include_schema);
        metadata_info(&query, &schema, request)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, &metadata::table_types_schema(), request)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, SqlInfoDataBuilder::schema(), request)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, &metadata::primary_keys_schema(), request)
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, &metadata::foreign_keys_schema(), request)
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(&query, &self.xdbc.schema(), request)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let handle = handle_from(&ticket.statement_handle)?;
        self.run_handle(&request.get_ref().ticket, &handle).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let handle = handle_from(&query.prepared_statement_handle)?;
        self.run_handle(&request.get_ref().ticket, &handle).await
    }

    async fn do_get_catalogs(
        &self,
        _query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(self.one_batch(metadata::catalogs()?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let ctx = self.engine.session(&self.defaults(&request));
        Ok(self.one_batch(metadata::db_schemas(&ctx, query)?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let ctx = self.engine.session(&self.defaults(&request));
        Ok(self.one_batch(metadata::tables(&ctx, query).await?))
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(self.one_batch(metadata::table_types()?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(self.one_batch(batch))
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.key_answer(
            &request,
            metadata::primary_keys_schema(),
            &[(
                query.catalog.as_deref(),
                query.db_schema.as_deref(),
                query.table.as_str(),
            )],
        )
        .await
    }

    async fn do_get_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.key_answer(
            &request,
            metadata::foreign_keys_schema(),
            &[(
                query.catalog.as_deref(),
                query.db_schema.as_deref(),
                query.table.as_str(),
            )],
        )
        .await
    }

    async fn do_get_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.key_answer(
            &request,
            metadata::foreign_keys_schema(),
            &[(
                query.catalog.as_deref(),
                query.db_schema.as_deref(),
                query.table.as_str(),
            )],
        )
        .await
    }

    async fn do_get_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let tables = [
            (
                query.pk_catalog.as_deref(),
                query.pk_db_schema.as_deref(),
                query.pk_table.as_str(),
            ),
            (
                query.fk_catalog.as_deref(),
                query.fk_db_schema.as_deref(),
                query.fk_table.as_str(),
            ),
        ];
        self.key_answer(&request, metadata::foreign_keys_schema(), &tables)
            .await
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(&self.xdbc)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(self.one_batch(batch))
    }

    async fn get_flight_info_fallback(
        &self,
        command: arrow_flight::sql::Command,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let any = command.into_any();
        if super::vector::is_vector_search(&any) {
            return self.vector_search_info(any, request).await;
        }
        Err(Status::invalid_argument(format!(
            "GetFlightInfo command of type {} is not known; Lakehouse accepts the Flight SQL commands and {}",
            any.type_url,
            lakehouse_flight_ext::VECTOR_SEARCH_TYPE_URL
        )))
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        if super::vector::is_vector_search(&message) {
            return self.vector_search_get(request, message).await;
        }
        Err(Status::invalid_argument(format!(
            "ticket of type {} is not a Lakehouse ticket",
            message.type_url
        )))
    }

    async fn do_put_fallback(
        &self,
        request: Request<PeekableFlightDataStream>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        if message.type_url == lakehouse_flight_ext::INGEST_UPLOAD_TYPE_URL {
            return self.ingest_upload(request, message).await;
        }
        Err(Status::invalid_argument(format!(
            "DoPut command of type {} is not known; Lakehouse accepts the Flight SQL commands and {}",
            message.type_url,
            lakehouse_flight_ext::INGEST_UPLOAD_TYPE_URL
        )))
    }

    async fn do_put_error_callback(
        &self,
        _request: Request<PeekableFlightDataStream>,
        error: arrow_flight::sql::server::DoPutError,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        use arrow_flight::sql::server::DoPutError;
        Err(Status::invalid_argument(match error {
            // The ADBC Flight SQL driver (Go) sends nothing at all for an empty table:
            // no descriptor, so not even the target table's name arrives.
            DoPutError::MissingCommand => {
                "the DoPut stream carried no message (no descriptor, no schema). The ADBC \
                 Flight SQL driver sends nothing when adbc_ingest gets no rows: create the \
                 empty table with CREATE TABLE, or upload its schema with any Flight client \
                 (the Lakehouse Python client's write() does)"
                    .to_string()
            }
            DoPutError::MissingFlightDescriptor => {
                "the first DoPut message must carry the FlightDescriptor with the command"
                    .to_string()
            }
        }))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        refuse_transaction(command.transaction_id.as_ref())?;
        let handle = self.new_handle(&request, command.query);
        self.execute_update(&handle).await
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        refuse_transaction(command.transaction_id.as_ref())?;
        let defaults = self.defaults(&request);
        let user = super::auth::Caller::of(&request);
        self.bulk_ingest(command, defaults, request.into_inner(), &user)
            .await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.bind_parameters(query, request).await
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.prepared_update(query, request).await
    }

    async fn do_put_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(Status::unimplemented(
            "Substrait plans are not supported; send SQL",
        ))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        refuse_transaction(query.transaction_id.as_ref())?;
        self.create_prepared(&request, query.query).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles are self-contained: there is nothing to release.
        Ok(())
    }

    async fn do_action_create_prepared_substrait_plan(
        &self,
        _query: ActionCreatePreparedSubstraitPlanRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        Err(Status::unimplemented(
            "Substrait plans are not supported; send SQL",
        ))
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        Err(Status::unimplemented(
            "transactions are not supported (FLIGHT_SQL_SERVER_TRANSACTION = NONE)",
        ))
    }

    async fn do_action_end_transaction(
        &self,
        _query: ActionEndTransactionRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented(
            "transactions are not supported (FLIGHT_SQL_SERVER_TRANSACTION = NONE)",
        ))
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("info is not a FlightInfo: {e}")))?;
        self.cancel(&info)?;
        // CANCEL_RESULT_CANCELLED
        Ok(ActionCancelQueryResult { result: 1 })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        self.custom_action(request).await
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(
            super::actions::custom_action_types()
                .into_iter()
                .map(Ok)
                .collect(),
        )
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
