//! The worker's Flight service: DoPut writes and appends, DoAction builds indexes,
//! searches, optimizes and reports, DoGet takes rows by key or by document id.

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::datasets::{DatasetError, Datasets};
use crate::v1::{LanceDataset, LanceIndexBuild, LanceSearch, LanceTake, LanceWrite, WorkerHealth};
use crate::worker_actions;

/// The service; clones share the open datasets.
#[derive(Default, Clone)]
pub(crate) struct LanceService {
    datasets: Datasets,
}

fn span_of<T>(request: &Request<T>, method: &str) -> tracing::Span {
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    tracing::info_span!("call", method, request_id)
}

fn status(error: DatasetError) -> Status {
    match error {
        DatasetError::Invalid(message) => Status::invalid_argument(message),
        DatasetError::NotFound(message) => Status::not_found(message),
        DatasetError::Failed(message) => Status::internal(message),
    }
}

fn decode<M: Message + Default>(body: &[u8], what: &str) -> Result<M, Status> {
    M::decode(body).map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

fn one<T: Send + 'static>(item: T) -> BoxStream<'static, Result<T, Status>> {
    stream::once(async move { Ok(item) }).boxed()
}

impl LanceService {
    fn health(&self) -> WorkerHealth {
        WorkerHealth {
            worker: "lance".into(),
            version: format!("{} (lance 14.0.2)", env!("CARGO_PKG_VERSION")),
            pid: std::process::id(),
            engine_available: true,
            detail: String::new(),
            indexes: self.datasets.count() as u32,
        }
    }
}

#[tonic::async_trait]
impl FlightService for LanceService {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let span = span_of(&request, "DoPut");
        let mut input = request.into_inner();
        let this = self.clone();
        async move {
            let first = input
                .message()
                .await?
                .ok_or_else(|| Status::invalid_argument("an empty put"))?;
            let spec: LanceWrite = decode(
                &first
                    .flight_descriptor
                    .as_ref()
                    .map(|d| d.cmd.clone())
                    .unwrap_or_default(),
                "LanceWrite",
            )?;
            let frames = stream::once(async move { Ok(first) })
                .chain(input)
                .map_err(FlightError::from);
            let batches: Vec<_> = FlightRecordBatchStream::new_from_flight_data(frames)
                .try_collect()
                .await
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let dataset = spec.dataset.unwrap_or_default();
            let stats = this
                .datasets
                .write(&dataset, spec.append, batches)
                .await
                .map_err(status)?;
            let result = PutResult {
                app_metadata: stats.encode_to_vec().into(),
            };
            Ok(Response::new(one(result)))
        }
        .instrument(span)
        .await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let span = span_of(&request, "DoAction");
        let action = request.into_inner();
        let this = self.clone();
        async move {
            let body = action.body;
            let datasets = &this.datasets;
            let reply: Vec<u8> = match action.r#type.as_str() {
                worker_actions::HEALTH => this.health().encode_to_vec(),
                worker_actions::LANCE_INDEX => {
                    let build: LanceIndexBuild = decode(&body, "LanceIndexBuild")?;
                    datasets
                        .build_index(&build)
                        .await
                        .map_err(status)?
                        .encode_to_vec()
                }
                worker_actions::LANCE_SEARCH => {
                    let search: LanceSearch = decode(&body, "LanceSearch")?;
                    datasets
                        .search(&search)
                        .await
                        .map_err(status)?
                        .encode_to_vec()
                }
                worker_actions::LANCE_OPTIMIZE => {
                    let dataset: LanceDataset = decode(&body, "LanceDataset")?;
                    datasets
                        .optimize(&dataset)
                        .await
                        .map_err(status)?
                        .encode_to_vec()
                }
                worker_actions::LANCE_STATS => {
                    let dataset: LanceDataset = decode(&body, "LanceDataset")?;
                    datasets
                        .stats(&dataset)
                        .await
                        .map_err(status)?
                        .encode_to_vec()
                }
                worker_actions::LANCE_FORGET => {
                    let dataset: LanceDataset = decode(&body, "LanceDataset")?;
                    datasets.forget(&dataset);
                    Vec::new()
                }
                other => {
                    return Err(Status::invalid_argument(format!(
                        "unknown worker action {other:?}"
                    )));
                }
            };
            Ok(Response::new(one(arrow_flight::Result {
                body: reply.into(),
            })))
        }
        .instrument(span)
        .await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let span = span_of(&request, "DoGet");
        let ticket = request.into_inner();
        let this = self.clone();
        async move {
            let take: LanceTake = decode(&ticket.ticket, "LanceTake")?;
            let dataset = take.dataset.unwrap_or_default();
            let batch = if take.ids.is_empty() {
                this.datasets
                    .take(&dataset, &take.keys, &take.columns)
                    .await
            } else {
                this.datasets
                    .take_ids(&dataset, &take.ids, &take.columns)
                    .await
            }
            .map_err(status)?;
            let frames = FlightDataEncoderBuilder::new()
                .build(stream::iter([Ok(batch)]))
                .map_err(|e| Status::internal(e.to_string()));
            Ok(Response::new(frames.boxed()))
        }
        .instrument(span)
        .await
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = [
            worker_actions::HEALTH,
            worker_actions::LANCE_INDEX,
            worker_actions::LANCE_SEARCH,
            worker_actions::LANCE_OPTIMIZE,
            worker_actions::LANCE_STATS,
            worker_actions::LANCE_FORGET,
        ]
        .map(|name| {
            Ok(ActionType {
                r#type: name.into(),
                description: String::new(),
            })
        });
        Ok(Response::new(stream::iter(actions).boxed()))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "workers take a bearer token, no handshake",
        ))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("the Lance worker lists no flights"))
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented(
            "the Lance worker serves takes by ticket only",
        ))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(
            "the Lance worker serves takes by ticket only",
        ))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented(
            "the Lance worker serves takes by ticket only",
        ))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("the Lance worker takes no exchanges"))
    }
}
