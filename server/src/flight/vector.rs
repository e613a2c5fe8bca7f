//! The `lakehouse.vector.*` actions: build an index (a job) and search one.

use std::sync::Arc;

use arrow_flight::Action;
use lakehouse_flight_ext::v1::{
    VectorIndexCreateRequest, VectorSearchRequest, VectorSearchResult, job,
};
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::extension::{ActionStream, decode, follow_to_outcome, one};
use super::service::LakehouseService;
use crate::storage::PRIMARY;
use crate::vector::index::{HnswParams, Metric};
use crate::vector::service::{CreateIndex, VectorError, VectorIndexes};

/// Status of a vector error.
pub fn vector_status(error: VectorError) -> Status {
    let message = error.to_string();
    match error {
        VectorError::Invalid(_) => Status::invalid_argument(message),
        VectorError::NotFound(_) => Status::not_found(message),
        VectorError::Exists(_) => Status::already_exists(message),
        VectorError::Unavailable(_) => Status::failed_precondition(message),
        VectorError::Cancelled => Status::cancelled(message),
        VectorError::Internal(_) => Status::internal(message),
    }
}

impl LakehouseService {
    fn vectors(&self) -> Result<&Arc<VectorIndexes>, Status> {
        self.vectors
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this server has no vector indexes"))
    }

    /// `lakehouse.vector.index.create`.
    pub(super) async fn vector_index_create(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let user = Caller::of(&request);
        let (body, encoding): (VectorIndexCreateRequest, _) = decode(request.get_ref())?;
        let vectors = Arc::clone(self.vectors()?);
        for (field, value) in [
            ("name", &body.name),
            ("table", &body.table),
            ("text_column", &body.text_column),
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
                &body.id_column,
                body.replace,
            )
            .await
            .map_err(vector_status)?;
        let backend = match body.backend.trim().to_ascii_lowercase().as_str() {
            "" | "hnsw" => "hnsw".to_string(),
            "flat" => "flat".to_string(),
            other => {
                return Err(Status::invalid_argument(format!(
                    "backend: {other:?} is not hnsw or flat"
                )));
            }
        };
        let metric = Metric::parse(&body.metric)
            .map_err(|e| Status::invalid_argument(format!("metric: {e}")))?;
        let defaults = HnswParams::default();
        let pick = |value: u32, default: usize| if value == 0 { default } else { value as usize };
        let hnsw = HnswParams {
            m: pick(body.m, defaults.m),
            ef_construction: pick(body.ef_construction, defaults.ef_construction),
            ef_search: pick(body.ef_search, defaults.ef_search),
        };
        if backend == "hnsw" {
            // Fail the call, not the job, on parameters HNSW refuses.
            hnsw.validate(metric)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
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
        let create = CreateIndex {
            name: body.name.clone(),
            table,
            text_column: body.text_column.clone(),
            id_column: body.id_column.clone(),
            backend,
            metric,
            hnsw,
            bucket,
            replace: body.replace,
        };
        let description = format!(
            "build {} index {} over {}.{}",
            create.backend,
            create.name,
            create.table.qualified_name(),
            create.text_column
        );
        let handle = self.engine.catalog().jobs().spawn(
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
        Ok(if body.detach {
            one(&handle.snapshot(), encoding)
        } else {
            follow_to_outcome(&handle, encoding)
        })
    }

    /// `lakehouse.vector.search`.
    pub(super) async fn vector_search(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (VectorSearchRequest, _) = decode(request.get_ref())?;
        let started = std::time::Instant::now();
        let k = if body.k == 0 { 10 } else { body.k as usize };
        let hits = self
            .vectors()?
            .search(
                &body.index,
                &body.query,
                &body.vector,
                k,
                body.ef as usize,
                &body.filter,
            )
            .await
            .map_err(vector_status)?;
        let result = VectorSearchResult {
            hits,
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok(one(&result, encoding))
    }
}
