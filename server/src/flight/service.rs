//! `FlightSqlService` implementation: statement queries, metadata commands and
//! streaming of results.

use std::pin::Pin;
use std::sync::Arc;

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
    Action, ActionType, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use futures::Stream;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Authenticator;
use super::limits::Limits;
use super::plans::PlanCache;
use super::running::RunningQueries;
use super::sessions::Sessions;
use super::statements::{handle_from, metadata_info, refuse_transaction, statement_ticket};

use super::{metadata, sql_info};
use crate::ingest::database::Connections;
use crate::query::{QueryEngine, SessionDefaults};
use crate::vector::VectorIndexes;

pub(super) type FlightDataStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// The Lakehouse Flight SQL service.
pub(crate) struct LakehouseService {
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
    pub(super) plans: PlanCache,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
}

impl LakehouseService {
    /// A service answering queries with `engine`.
    pub(crate) fn new(
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
    pub(crate) fn with_connections(mut self, connections: Connections) -> Self {
        self.connections = connections;
        self
    }

    /// The queries this service streams, for stopping them at shutdown.
    pub(crate) fn running_queries(&self) -> Arc<RunningQueries> {
        Arc::clone(&self.running)
    }

    /// Serves the vector actions over `vectors`.
    pub(crate) fn with_vectors(mut self, vectors: Arc<VectorIndexes>) -> Self {
        self.vectors = Some(vectors);
        self
    }

    /// Serves the profile actions over `profiles`.
    pub(crate) fn with_profiles(mut self, profiles: Arc<crate::profiles::Profiles>) -> Self {
        self.profiles = Some(profiles);
        self
    }
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
        if super::vector::is_vector_take(&any) {
            return self.vector_take_info(any, request).await;
        }
        Err(Status::invalid_argument(format!(
            "GetFlightInfo command of type {} is not known; Lakehouse accepts the Flight SQL commands, {} and {}",
            any.type_url,
            lakehouse_flight_ext::VECTOR_SEARCH_TYPE_URL,
            lakehouse_flight_ext::VECTOR_TAKE_TYPE_URL
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
        if super::vector::is_vector_take(&message) {
            return self.vector_take_get(request, message).await;
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
