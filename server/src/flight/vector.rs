//! The `lakehouse.vector.*` actions (build an index as a job, search one, take rows
//! by id) and the `VectorSearchCommand` and `VectorTakeRequest` Flight commands,
//! whose DoGet streams the hits or rows as Arrow.

use std::sync::Arc;

use arrow_flight::sql::Any;
use arrow_flight::{Action, FlightDescriptor, FlightInfo, Ticket};
use lakehouse_flight_ext::v1::{
    VectorEvalRequest, VectorEvalSetCreateRequest, VectorIndexCreateRequest,
    VectorIndexOptimizeRequest, VectorSearchCommand, VectorSearchRequest, VectorSearchResult,
    VectorTakeRequest, VectorTakeResult, VectorTakeRow, job,
};
use lakehouse_flight_ext::{VECTOR_SEARCH_TYPE_URL, VECTOR_TAKE_TYPE_URL, decode_body};
use prost::Message;
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::extension::{ActionStream, decode, job_reply, one};
use super::service::{FlightDataStream, LakehouseService};
use super::statements::flight_info;
use super::status::vector_status;
use crate::storage::PRIMARY;
use crate::vector::index::{LanceParams, Metric};
use crate::vector::{
    Backend, Chunking, CreateIndex, EvalKnobs, Mode, Search, VectorError, VectorIndexes,
};

impl LakehouseService {
    pub(super) fn vectors(&self) -> Result<&Arc<VectorIndexes>, Status> {
        self.vectors
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this server has no vector indexes"))
    }

    /// The vector indexes, once index `name` is checked against the profile the
    /// caller's session is bound to.
    pub(super) fn vectors_for<T>(
        &self,
        request: &Request<T>,
        name: &str,
    ) -> Result<&Arc<VectorIndexes>, Status> {
        let vectors = self.vectors()?;
        vectors
            .check_profile(name, self.defaults(request).profile.as_deref())
            .map_err(vector_status)?;
        Ok(vectors)
    }

    /// `lakehouse.vector.index.create`.
    pub(super) async fn vector_index_create(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let user = Caller::of(&request);
        let (mut body, encoding): (VectorIndexCreateRequest, _) = decode(request.get_ref())?;
        let vectors = Arc::clone(self.vectors()?);
        let bound = self.defaults(&request).profile;
        vectors
            .check_profile(&body.name, bound.as_deref())
            .map_err(vector_status)?;
        let profile = self.index_profile(&mut body, bound)?;
        for (field, value) in [
            ("name", &body.name),
            ("table", &body.table),
            ("id_column", &body.id_column),
        ] {
            if value.trim().is_empty() {
                return Err(Status::invalid_argument(format!("{field}: is empty")));
            }
        }
        let table = vectors
            .validate(
                &body.name,
                &body.table,
                &body.text_column,
                &body.vector_column,
                &body.id_column,
                body.replace,
            )
            .await
            .map_err(vector_status)?;
        let metric = Metric::parse(&body.metric)
            .map_err(|e| Status::invalid_argument(format!("metric: {e}")))?;
        // Fail the call, not the job, on parameters the backend refuses.
        let backend = requested_backend(&body, metric).map_err(vector_status)?;
        let bucket = if body.bucket.is_empty() {
            PRIMARY.to_string()
        } else {
            body.bucket.clone()
        };
        self.engine
            .catalog()
            .buckets()
            .get(&bucket)
            .map_err(|e| Status::not_found(e.to_string()))?;
        let chunking =
            Chunking::new(body.chunk_tokens, body.chunk_overlap).map_err(vector_status)?;
        let precomputed = !body.vector_column.trim().is_empty();
        let embedder = match body.embedder.trim() {
            // Precomputed vectors need no embedder; searched by vector only.
            "" if precomputed => String::new(),
            "" => crate::vector::embed::BUILTIN.to_string(),
            name => name.to_string(),
        };
        if !embedder.is_empty() {
            vectors.check_embedder(&embedder).map_err(vector_status)?;
        }
        let create = CreateIndex {
            embedder,
            name: body.name.clone(),
            table,
            text_column: body.text_column.trim().to_string(),
            vector_column: body.vector_column.trim().to_string(),
            id_column: body.id_column.clone(),
            backend,
            metric,
            chunking,
            bucket,
            profile,
        };
        let description = format!(
            "build {} index {} over {}.{}",
            create.backend.name(),
            create.name,
            create.table.qualified_name(),
            if precomputed {
                &create.vector_column
            } else {
                &create.text_column
            }
        );
        let handle = self.engine.services().jobs.spawn(
            lakehouse_flight_ext::actions::VECTOR_INDEX_CREATE,
            description,
            user,
            move |ctx| async move {
                vectors
                    .create(create, &ctx)
                    .await
                    .map(job::Result::VectorIndex)
                    .map_err(vector_status)
            },
        );
        Ok(job_reply(&handle, body.detach, encoding))
    }

    /// `lakehouse.vector.search`.
    pub(super) async fn vector_search(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (VectorSearchRequest, _) = decode(request.get_ref())?;
        let started = std::time::Instant::now();
        let hits = self
            .vectors_for(&request, &body.index)?
            .search(&search_of(body)?)
            .await
            .map_err(vector_status)?;
        let result = VectorSearchResult {
            hits,
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok(one(&result, encoding))
    }

    /// `lakehouse.vector.eval_set.create`: embeds the queries and computes their exact
    /// nearest rows, as a job.
    pub(super) async fn vector_eval_set_create(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let user = Caller::of(&request);
        let (body, encoding): (VectorEvalSetCreateRequest, _) = decode(request.get_ref())?;
        let vectors = Arc::clone(self.vectors_for(&request, &body.index)?);
        let create = vectors
            .validate_eval_set(&body)
            .await
            .map_err(vector_status)?;
        let description = format!(
            "eval set {} of {} queries over index {}",
            create.name,
            create.queries.len().max(create.sample_rows),
            create.index
        );
        let handle = self.engine.services().jobs.spawn(
            lakehouse_flight_ext::actions::VECTOR_EVAL_SET_CREATE,
            description,
            user,
            move |ctx| async move {
                vectors
                    .create_eval_set(create, &ctx)
                    .await
                    .map(job::Result::VectorEvalSet)
                    .map_err(vector_status)
            },
        );
        Ok(job_reply(&handle, body.detach, encoding))
    }

    /// `lakehouse.vector.eval`: recall@k and latency of an index against an eval set.
    pub(super) async fn vector_eval(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (VectorEvalRequest, _) = decode(request.get_ref())?;
        let all = |values: &[u32]| values.iter().map(|&v| v as usize).collect::<Vec<_>>();
        let knobs = EvalKnobs {
            ef: all(&body.ef),
            nprobe: all(&body.nprobe),
            refine_factor: all(&body.refine_factor),
        };
        let result = self
            .vectors_for(&request, &body.index)?
            .eval(
                &body.index,
                &body.eval_set,
                body.k as usize,
                &knobs,
                body.embed_queries,
            )
            .await
            .map_err(vector_status)?;
        Ok(one(&result, encoding))
    }

    /// `lakehouse.vector.index.optimize`: folds a lance index's appended rows into
    /// its IVF index.
    pub(super) async fn vector_index_optimize(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (VectorIndexOptimizeRequest, _) = decode(request.get_ref())?;
        if body.index.trim().is_empty() {
            return Err(Status::invalid_argument("index: is empty"));
        }
        let result = self
            .vectors_for(&request, &body.index)?
            .optimize(&body.index)
            .await
            .map_err(vector_status)?;
        Ok(one(&result, encoding))
    }

    /// `lakehouse.vector.take`: rows of a lance index's dataset by document id.
    pub(super) async fn vector_take(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (VectorTakeRequest, _) = decode(request.get_ref())?;
        let started = std::time::Instant::now();
        let batch = self.take_batch(&request, &body).await?;
        let result = VectorTakeResult {
            rows: take_rows(&batch),
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok(one(&result, encoding))
    }

    async fn take_batch<T>(
        &self,
        request: &Request<T>,
        body: &VectorTakeRequest,
    ) -> Result<arrow::array::RecordBatch, Status> {
        if body.index.trim().is_empty() {
            return Err(Status::invalid_argument("index: is empty"));
        }
        self.vectors_for(request, &body.index)?
            .take(&body.index, &body.ids, &body.columns)
            .await
            .map_err(vector_status)
    }

    /// GetFlightInfo of a `VectorTakeRequest`: the rows' schema, and the request
    /// itself as the ticket. Nothing runs yet.
    pub(super) async fn vector_take_info(
        &self,
        any: Any,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let body = take_of(&any)?;
        if body.index.trim().is_empty() {
            return Err(Status::invalid_argument("index: is empty"));
        }
        let schema = self
            .vectors_for(&request, &body.index)?
            .take_schema(&body.index, &body.columns)
            .await
            .map_err(vector_status)?;
        let descriptor = request.into_inner();
        let info = flight_info(&schema, descriptor, any.encode_to_vec())?;
        Ok(Response::new(info))
    }

    /// DoGet of a `VectorTakeRequest` ticket: takes the rows, streams them.
    pub(super) async fn vector_take_get(
        &self,
        request: Request<Ticket>,
        any: Any,
    ) -> Result<Response<FlightDataStream>, Status> {
        let body = take_of(&any)?;
        let batch = self.take_batch(&request, &body).await?;
        Ok(self.one_batch(batch))
    }

    /// GetFlightInfo of a `VectorSearchCommand`: the hits' schema (checked against
    /// the index's table), and the command itself as the ticket. Nothing runs yet.
    pub(super) async fn vector_search_info(
        &self,
        any: Any,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = command_of(&any)?;
        let search = search_of(command.search.unwrap_or_default())?;
        let schema = self
            .vectors_for(&request, &search.index)?
            .hits_schema_for(&search.index, &command.columns)
            .await
            .map_err(vector_status)?;
        let descriptor = request.into_inner();
        let info = flight_info(&schema, descriptor, any.encode_to_vec())?;
        Ok(Response::new(info))
    }

    /// DoGet of a `VectorSearchCommand` ticket: runs the search, streams the hits.
    pub(super) async fn vector_search_get(
        &self,
        request: Request<Ticket>,
        any: Any,
    ) -> Result<Response<FlightDataStream>, Status> {
        let command = command_of(&any)?;
        let search = search_of(command.search.unwrap_or_default())?;
        let batch = self
            .vectors_for(&request, &search.index)?
            .hits_batch(&search, &command.columns)
            .await
            .map_err(vector_status)?;
        Ok(self.one_batch(batch))
    }
}

impl LakehouseService {
    /// The profile a new index belongs to: the session's, else the request's (which
    /// must then agree). The profile's embedder is the index's; its backend and bucket
    /// fill in what the request leaves empty.
    fn index_profile(
        &self,
        body: &mut VectorIndexCreateRequest,
        bound: Option<String>,
    ) -> Result<String, Status> {
        let requested = body.profile.trim().to_string();
        let name = match bound {
            Some(bound) if !requested.is_empty() && requested != bound => {
                return Err(Status::permission_denied(format!(
                    "profile: this session is bound to profile {bound}; an index of profile {requested} needs a session bound to it (or none)"
                )));
            }
            Some(bound) => bound,
            None if requested.is_empty() => return Ok(String::new()),
            None => requested,
        };
        let snapshot = self.engine.catalog().snapshot();
        let profile = snapshot.profile(&name).ok_or_else(|| {
            Status::not_found(format!(
                "profile {name:?} does not exist (see lakehouse.profile.list)"
            ))
        })?;
        match body.embedder.trim() {
            "" => body.embedder = profile.embedder.clone(),
            given if given == profile.embedder => {}
            given => {
                return Err(Status::invalid_argument(format!(
                    "embedder: profile {name} embeds with {}, not {given}; leave embedder empty",
                    profile.embedder
                )));
            }
        }
        if body.backend.trim().is_empty() {
            body.backend = profile.backend.clone();
        }
        if body.bucket.trim().is_empty() {
            body.bucket = profile.bucket.clone();
        }
        Ok(name)
    }
}

/// Whether `any` is a `VectorSearchCommand`.
pub(super) fn is_vector_search(any: &Any) -> bool {
    any.type_url == VECTOR_SEARCH_TYPE_URL
}

/// Whether `any` is a `VectorTakeRequest`.
pub(super) fn is_vector_take(any: &Any) -> bool {
    any.type_url == VECTOR_TAKE_TYPE_URL
}

fn take_of(any: &Any) -> Result<VectorTakeRequest, Status> {
    decode_body(&any.value)
        .map(|(body, _)| body)
        .map_err(|e| Status::invalid_argument(format!("VectorTakeRequest is not valid: {e}")))
}

/// A take's batch as result rows (the columns it lacks left empty).
fn take_rows(batch: &arrow::array::RecordBatch) -> Vec<VectorTakeRow> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float32Type, Int32Type, Int64Type};
    let ids = batch
        .column_by_name("id")
        .map(|c| c.as_primitive::<Int64Type>().clone());
    let chunks = batch
        .column_by_name("chunk")
        .map(|c| c.as_primitive::<Int32Type>().clone());
    let vectors = batch
        .column_by_name("vector")
        .and_then(|c| c.as_fixed_size_list_opt().cloned());
    (0..batch.num_rows())
        .map(|row| VectorTakeRow {
            id: ids.as_ref().map_or(0, |ids| ids.value(row)),
            chunk: chunks.as_ref().map_or(0, |chunks| chunks.value(row)),
            vector: vectors.as_ref().map_or_else(Vec::new, |vectors| {
                vectors
                    .value(row)
                    .as_primitive::<Float32Type>()
                    .values()
                    .to_vec()
            }),
        })
        .collect()
}

fn command_of(any: &Any) -> Result<VectorSearchCommand, Status> {
    decode_body(&any.value)
        .map(|(command, _)| command)
        .map_err(|e| Status::invalid_argument(format!("VectorSearchCommand is not valid: {e}")))
}

/// A search request as the service takes it (k defaults to 10).
fn search_of(body: VectorSearchRequest) -> Result<Search, Status> {
    if body.index.trim().is_empty() {
        return Err(Status::invalid_argument("index: is empty"));
    }
    Ok(Search {
        mode: Mode::parse(&body.mode).map_err(vector_status)?,
        k: if body.k == 0 { 10 } else { body.k as usize },
        ef: body.ef as usize,
        nprobe: body.nprobe as usize,
        refine_factor: body.refine_factor as usize,
        index: body.index,
        query: body.query,
        vector: body.vector,
        filter: body.filter,
    })
}

/// The backend a create request names, with its parameters checked: HNSW's `m`,
/// `ef_construction` and `ef_search`, Faiss's `factory`, `nprobe` and `ef_search`,
/// or Lance's `lance` options with `nprobe`, `ef_search` and (IVF_HNSW_SQ) `m` and
/// `ef_construction`; a parameter of another backend is refused rather than ignored.
fn requested_backend(
    body: &VectorIndexCreateRequest,
    metric: Metric,
) -> Result<Backend, VectorError> {
    let invalid = |e: crate::vector::index::IndexError| VectorError::Invalid(e.to_string());
    let backend = Backend::named(&body.backend).map_err(invalid)?;
    if body.lance.is_some() && !matches!(backend, Backend::Lance(_)) {
        return Err(VectorError::Invalid(
            "lance options are for backend \"lance\"".into(),
        ));
    }
    if let Backend::Lance(_) = backend {
        if !body.factory.is_empty() {
            return Err(VectorError::Invalid(
                "factory is a Faiss parameter: set backend \"faiss\"".into(),
            ));
        }
        let options = body.lance.clone().unwrap_or_default();
        return Backend::lance(LanceParams {
            index_type: options.index_type,
            partitions: options.partitions as usize,
            sub_vectors: options.sub_vectors as usize,
            bits: options.bits as usize,
            max_iterations: options.max_iterations as usize,
            sample_rate: options.sample_rate as usize,
            m: body.m as usize,
            ef_construction: body.ef_construction as usize,
            nprobe: body.nprobe as usize,
            refine_factor: options.refine_factor as usize,
            ef: body.ef_search as usize,
            optimize_fraction: options.optimize_fraction,
        })
        .map_err(invalid);
    }
    let faiss_only = !body.factory.is_empty() || body.nprobe != 0;
    match backend {
        Backend::Faiss(_) => {
            Backend::faiss(&body.factory, body.nprobe as usize, body.ef_search as usize)
                .map_err(invalid)
        }
        _ if faiss_only => Err(VectorError::Invalid(
            "factory and nprobe are Faiss parameters: set backend \"faiss\"".into(),
        )),
        Backend::Hnsw(_) => Backend::hnsw(
            body.m as usize,
            body.ef_construction as usize,
            body.ef_search as usize,
            metric,
        )
        .map_err(invalid),
        Backend::Flat => Ok(Backend::flat()),
        Backend::Lance(_) => Err(VectorError::Internal("lance is handled above".into())),
    }
}
