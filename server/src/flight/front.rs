//! The gRPC-facing `FlightService`: arrow-flight's Flight SQL dispatch, plus
//! GetSchema and PollFlightInfo, which its blanket implementation leaves
//! unimplemented (ADBC uses them for `execute_schema` and incremental execution).
//!
//! Every call but the Handshake must carry a valid bearer token when
//! authentication is on (see `auth`).
//!
//! GetSchema and PollFlightInfo are answered from GetFlightInfo, which only plans: GetSchema returns the
//! planned schema, PollFlightInfo returns a complete `PollInfo` (queries start on
//! DoGet, so there is nothing to poll).

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use tonic::{Request, Response, Status, Streaming};

use super::LakehouseService;
use super::auth::Caller;
use super::statements::SchemaOnly;

/// Serves [`LakehouseService`] over gRPC.
pub(crate) struct FrontDoor {
    inner: LakehouseService,
}

impl FrontDoor {
    /// Wraps the Flight SQL service.
    pub(crate) fn new(inner: LakehouseService) -> Self {
        Self { inner }
    }
}

type Inner = LakehouseService;

#[tonic::async_trait]
impl FlightService for FrontDoor {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.inner.handshake(request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.inner.auth.check(&request)?;
        self.inner.list_flights(request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.inner.auth.check(&request)?;
        self.inner.get_flight_info(request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        self.inner.auth.check(&request)?;
        let info = self.inner.get_flight_info(request).await?.into_inner();
        // No descriptor means "complete": the client goes straight to DoGet.
        Ok(Response::new(PollInfo {
            info: Some(info),
            flight_descriptor: None,
            progress: Some(1.0),
            expiration_time: None,
        }))
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.inner.auth.check(&request)?;
        let mut request = request;
        request.extensions_mut().insert(SchemaOnly);
        let info = self.inner.get_flight_info(request).await?.into_inner();
        Ok(Response::new(SchemaResult {
            schema: info.schema,
        }))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        self.inner.auth.check(&request)?;
        self.inner.do_get(request).await
    }

    async fn do_put(
        &self,
        mut request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let user = self.inner.auth.check(&request)?;
        request.extensions_mut().insert(Caller(user));
        self.inner.do_put(request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.inner.auth.check(&request)?;
        self.inner.do_exchange(request).await
    }

    async fn do_action(
        &self,
        mut request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let user = self.inner.auth.check(&request)?;
        request.extensions_mut().insert(Caller(user));
        self.inner.do_action(request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.inner.auth.check(&request)?;
        self.inner.list_actions(request).await
    }
}
