//! The worker's Flight service: builds, appends, loads, drops and searches Faiss
//! indexes held in memory by name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use lakehouse_flight_ext::v1::{
    FaissBuild, FaissDrop, FaissHits, FaissIndexStats, FaissLoad, FaissSearch, WorkerHealth,
};
use lakehouse_flight_ext::worker_actions;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::engine::{self, EngineError, Index};

/// One loaded index and the file it is saved in.
struct Held {
    index: RwLock<Index>,
    path: PathBuf,
}

/// Indexes by name (clones share them).
#[derive(Default, Clone)]
pub struct FaissService {
    held: Arc<RwLock<HashMap<String, Arc<Held>>>>,
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

fn internal(error: impl std::fmt::Display) -> Status {
    Status::internal(error.to_string())
}

fn engine_status(error: EngineError) -> Status {
    if error == engine::missing() {
        Status::failed_precondition(error.0)
    } else {
        Status::invalid_argument(error.0)
    }
}

fn decode<M: Message + Default>(body: &[u8], what: &str) -> Result<M, Status> {
    M::decode(body).map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

/// Writes the index beside `path` and renames it into place: whole or absent.
fn save(index: &Index, path: &Path) -> Result<u64, Status> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| internal(format!("creating {}: {e}", parent.display())))?;
    }
    let partial = path.with_extension("partial");
    index.write(&partial).map_err(engine_status)?;
    std::fs::rename(&partial, path)
        .map_err(|e| internal(format!("renaming into {}: {e}", path.display())))?;
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| internal(format!("reading {}: {e}", path.display())))
}

/// Every `step`-th row of `vectors` so at most `limit` rows train the index.
fn training_rows(vectors: &[f32], dimension: usize, limit: u64) -> Vec<f32> {
    let rows = vectors.len() / dimension.max(1);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if limit == 0 || rows <= limit {
        return vectors.to_vec();
    }
    let step = rows.div_ceil(limit);
    vectors
        .chunks_exact(dimension)
        .step_by(step)
        .flatten()
        .copied()
        .collect()
}

impl FaissService {
    fn get(&self, name: &str) -> Result<Arc<Held>, Status> {
        self.held
            .read()
            .map_err(internal)?
            .get(name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no Faiss index {name} is loaded")))
    }

    fn stats(name: &str, index: &Index, file_bytes: u64) -> FaissIndexStats {
        FaissIndexStats {
            name: name.to_string(),
            vectors: index.count() as u64,
            dimension: index.dimension() as u32,
            file_bytes,
            ..Default::default()
        }
    }

    /// Builds or grows an index from `vectors` (row-major).
    fn build(&self, spec: &FaissBuild, vectors: Vec<f32>) -> Result<FaissIndexStats, Status> {
        let dimension = spec.dimension as usize;
        if spec.append {
            let held = self.get(&spec.name)?;
            let mut index = held.index.write().map_err(internal)?;
            let started = Instant::now();
            index.add(&vectors).map_err(engine_status)?;
            let add_seconds = started.elapsed().as_secs_f64();
            let bytes = save(&index, &held.path)?;
            return Ok(FaissIndexStats {
                add_seconds,
                ..Self::stats(&spec.name, &index, bytes)
            });
        }
        let mut index =
            Index::new(dimension, &spec.factory, spec.inner_product).map_err(engine_status)?;
        let started = Instant::now();
        if !index.is_trained() {
            let sample = training_rows(&vectors, dimension, spec.train_limit);
            index.train(&sample).map_err(engine_status)?;
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        index.add(&vectors).map_err(engine_status)?;
        let add_seconds = started.elapsed().as_secs_f64();
        let path = PathBuf::from(&spec.path);
        let bytes = save(&index, &path)?;
        let stats = FaissIndexStats {
            train_seconds,
            add_seconds,
            ..Self::stats(&spec.name, &index, bytes)
        };
        self.held.write().map_err(internal)?.insert(
            spec.name.clone(),
            Arc::new(Held {
                index: RwLock::new(index),
                path,
            }),
        );
        Ok(stats)
    }

    fn load(&self, load: &FaissLoad) -> Result<FaissIndexStats, Status> {
        let path = PathBuf::from(&load.path);
        let index = Index::read(&path).map_err(|e| match engine::availability() {
            Err(missing) => engine_status(missing),
            Ok(()) => Status::not_found(format!("reading {}: {e}", path.display())),
        })?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let stats = Self::stats(&load.name, &index, bytes);
        self.held.write().map_err(internal)?.insert(
            load.name.clone(),
            Arc::new(Held {
                index: RwLock::new(index),
                path,
            }),
        );
        Ok(stats)
    }

    fn search(&self, search: &FaissSearch) -> Result<FaissHits, Status> {
        let held = self.get(&search.name)?;
        let allowed = (!search.allowed.is_empty() || search.allowed_bits > 0).then(|| {
            (
                search.allowed.as_ref(),
                usize::try_from(search.allowed_bits).unwrap_or(usize::MAX),
            )
        });
        let run = |index: &Index| {
            index
                .search(
                    &search.query,
                    search.k as usize,
                    search.nprobe as usize,
                    search.ef_search as usize,
                    allowed,
                )
                .map_err(engine_status)
        };
        let ef = search.ef_search as usize;
        let hits = {
            let index = held.index.read().map_err(internal)?;
            let current = index.hnsw_ef();
            (ef == 0 || current == 0 || current == ef)
                .then(|| run(&index))
                .transpose()?
        };
        let hits = match hits {
            Some(hits) => hits,
            // An HNSW search with other candidates: set them alone, then search.
            None => {
                let mut index = held.index.write().map_err(internal)?;
                index.set_hnsw_ef(ef);
                run(&index)?
            }
        };
        let (keys, distances) = hits.into_iter().unzip();
        Ok(FaissHits { keys, distances })
    }

    fn health(&self) -> WorkerHealth {
        let available = engine::availability();
        WorkerHealth {
            worker: "faiss".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            engine_available: available.is_ok(),
            detail: available.err().map(|e| e.0).unwrap_or_default(),
            indexes: self.held.read().map(|h| h.len() as u32).unwrap_or(0),
        }
    }
}

/// Runs blocking Faiss work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work).await.map_err(internal)?
}

fn one<T: Send + 'static>(item: T) -> BoxStream<'static, Result<T, Status>> {
    stream::once(async move { Ok(item) }).boxed()
}

#[tonic::async_trait]
impl FlightService for FaissService {
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
            let spec: FaissBuild = decode(
                &first
                    .flight_descriptor
                    .as_ref()
                    .map(|d| d.cmd.clone())
                    .unwrap_or_default(),
                "FaissBuild",
            )?;
            let dimension = spec.dimension as usize;
            if dimension == 0 {
                return Err(Status::invalid_argument("dimension must be positive"));
            }
            let frames = stream::once(async move { Ok(first) })
                .chain(input)
                .map_err(FlightError::from);
            let mut batches = FlightRecordBatchStream::new_from_flight_data(frames);
            let mut vectors = Vec::new();
            while let Some(batch) = batches.next().await {
                let batch = batch.map_err(|e| Status::invalid_argument(e.to_string()))?;
                let column = batch
                    .column_by_name("vector")
                    .and_then(|c| c.as_fixed_size_list_opt())
                    .ok_or_else(|| {
                        Status::invalid_argument("the batches need a FixedSizeList column vector")
                    })?;
                if column.value_length() as usize != dimension {
                    return Err(Status::invalid_argument(format!(
                        "vectors of {} values, the build says {dimension}",
                        column.value_length()
                    )));
                }
                let values = column
                    .values()
                    .as_primitive_opt::<Float32Type>()
                    .ok_or_else(|| Status::invalid_argument("vectors must be float32"))?;
                let start = column.offset() * dimension;
                let end = start + column.len() * dimension;
                vectors.extend_from_slice(&values.values()[start..end]);
            }
            tracing::info!(name = %spec.name, factory = %spec.factory, append = spec.append,
                vectors = vectors.len() / dimension, "building");
            let stats = blocking(move || this.build(&spec, vectors)).await?;
            tracing::info!(name = %stats.name, vectors = stats.vectors,
                train_seconds = stats.train_seconds, add_seconds = stats.add_seconds, "built");
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
            let reply: Vec<u8> = match action.r#type.as_str() {
                worker_actions::HEALTH => this.health().encode_to_vec(),
                worker_actions::FAISS_LOAD => {
                    let load: FaissLoad = decode(&body, "FaissLoad")?;
                    let stats = blocking(move || this.load(&load)).await?;
                    tracing::info!(name = %stats.name, vectors = stats.vectors, "loaded");
                    stats.encode_to_vec()
                }
                worker_actions::FAISS_DROP => {
                    let drop: FaissDrop = decode(&body, "FaissDrop")?;
                    this.held.write().map_err(internal)?.remove(&drop.name);
                    Vec::new()
                }
                worker_actions::FAISS_SEARCH => {
                    let search: FaissSearch = decode(&body, "FaissSearch")?;
                    blocking(move || this.search(&search))
                        .await?
                        .encode_to_vec()
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

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = [
            worker_actions::HEALTH,
            worker_actions::FAISS_LOAD,
            worker_actions::FAISS_DROP,
            worker_actions::FAISS_SEARCH,
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
        Err(Status::unimplemented("the Faiss worker lists no flights"))
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("the Faiss worker serves no flights"))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("the Faiss worker serves no flights"))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("the Faiss worker serves no flights"))
    }

    async fn do_get(
        &self,
        _request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        Err(Status::unimplemented("the Faiss worker serves no flights"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("the Faiss worker takes no exchanges"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_takes_an_even_sample() {
        let rows: Vec<f32> = (0..10).flat_map(|i| [i as f32, -(i as f32)]).collect();
        assert_eq!(training_rows(&rows, 2, 0).len(), 20);
        assert_eq!(training_rows(&rows, 2, 20).len(), 20);
        let sample = training_rows(&rows, 2, 4);
        // Every third row: 0, 3, 6, 9.
        assert_eq!(sample, vec![0.0, -0.0, 3.0, -3.0, 6.0, -6.0, 9.0, -9.0]);
    }
}
