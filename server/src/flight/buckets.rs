//! The `lakehouse.bucket.*` actions: add, remove and list buckets at run time, and
//! move a vector index to another bucket (a job).

use std::sync::Arc;

use arrow_flight::Action;
use lakehouse_flight_ext::actions::BUCKET_MOVE_INDEX;
use lakehouse_flight_ext::v1::{
    BucketAddRequest, BucketInfo, BucketList, BucketListRequest, BucketMoveIndexRequest,
    BucketRemoveRequest, BucketRemoveResult, job,
};
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::extension::{ActionStream, decode, job_reply, one};
use super::service::LakehouseService;
use super::status::{storage_status, vector_status};
use crate::catalog::{Catalog, validate_name};
use crate::storage::{Bucket, BucketRegistry};

/// A bucket as the protocol describes it, with what the catalog keeps there.
fn info_of(catalog: &Catalog, bucket: &Bucket) -> BucketInfo {
    let doc = catalog.snapshot();
    let name = bucket.name();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    BucketInfo {
        name: name.to_string(),
        kind: bucket.kind().as_str().to_string(),
        url: bucket.url().to_string(),
        builtin: BucketRegistry::is_builtin(name),
        tables: count(doc.tables.iter().filter(|t| t.bucket == name).count()),
        indexes: count(doc.indexes.iter().filter(|i| i.bucket == name).count()),
        eval_sets: count(doc.eval_sets.iter().filter(|e| e.bucket == name).count()),
    }
}

/// "2 tables (public.a, public.b)" for a non-empty list.
fn listed(what: &str, names: &[String]) -> Option<String> {
    const SHOWN: usize = 5;
    if names.is_empty() {
        return None;
    }
    let mut shown = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        shown.push_str(", ...");
    }
    Some(format!("{} {what} ({shown})", names.len()))
}

impl LakehouseService {
    /// `lakehouse.bucket.add`.
    pub(super) async fn bucket_add(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (BucketAddRequest, _) = decode(request.get_ref())?;
        validate_name(&body.name).map_err(|e| Status::invalid_argument(format!("name: {e}")))?;
        if body.url.trim().is_empty() {
            return Err(Status::invalid_argument(
                "url: is empty: give file:///folder, /folder or s3://bucket/prefix",
            ));
        }
        let catalog = self.engine.catalog();
        let bucket = catalog
            .buckets()
            .add(&body.name, body.url.trim())
            .await
            .map_err(storage_status)?;
        tracing::info!(bucket = %bucket.name(), url = %bucket.url(), user = %Caller::of(&request), "bucket added");
        Ok(one(&info_of(catalog, &bucket), encoding))
    }

    /// `lakehouse.bucket.remove`.
    pub(super) async fn bucket_remove(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (body, encoding): (BucketRemoveRequest, _) = decode(request.get_ref())?;
        let catalog = self.engine.catalog();
        let buckets = catalog.buckets();
        if BucketRegistry::is_builtin(&body.name) {
            return Err(Status::permission_denied(format!(
                "bucket {:?} is built in and cannot be removed",
                body.name
            )));
        }
        let bucket = buckets.get(&body.name).map_err(storage_status)?;
        let info = info_of(catalog, &bucket);
        let contents = catalog.in_bucket(&body.name);
        if !body.force {
            let mut held: Vec<String> = [
                listed("tables", &contents.tables),
                listed("vector indexes", &contents.indexes),
                listed("eval sets", &contents.eval_sets),
            ]
            .into_iter()
            .flatten()
            .collect();
            if held.is_empty()
                && let Some(object) = bucket.any_object().await.map_err(storage_status)?
            {
                held.push(format!("objects (e.g. {object})"));
            }
            if !held.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "bucket {} is not empty: it holds {}; remove with force to drop these \
                     from the catalog (the objects stay in storage)",
                    body.name,
                    held.join(", ")
                )));
            }
        }
        let dropped = catalog
            .forget_bucket(&body.name)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Some(vectors) = &self.vectors {
            vectors.forget(&dropped.indexes);
        }
        buckets.remove(&body.name).await.map_err(storage_status)?;
        tracing::info!(bucket = %body.name, user = %Caller::of(&request),
            tables = dropped.tables.len(), indexes = dropped.indexes.len(), "bucket removed");
        let result = BucketRemoveResult {
            bucket: Some(info),
            dropped_tables: dropped.tables,
            dropped_indexes: dropped.indexes,
            dropped_eval_sets: dropped.eval_sets,
        };
        Ok(one(&result, encoding))
    }

    /// `lakehouse.bucket.list`.
    pub(super) fn bucket_list(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let (_, encoding): (BucketListRequest, _) = decode(request.get_ref())?;
        let catalog = self.engine.catalog();
        let buckets = catalog
            .buckets()
            .list()
            .iter()
            .map(|bucket| info_of(catalog, bucket))
            .collect();
        Ok(one(&BucketList { buckets }, encoding))
    }

    /// `lakehouse.bucket.move_index`: checks the request, then copies and switches in
    /// a job.
    pub(super) async fn bucket_move_index(
        &self,
        request: Request<Action>,
    ) -> Result<Response<ActionStream>, Status> {
        let user = Caller::of(&request);
        let (body, encoding): (BucketMoveIndexRequest, _) = decode(request.get_ref())?;
        let vectors = Arc::clone(self.vectors_for(&request, &body.index)?);
        let catalog = self.engine.catalog();
        let entry = catalog.index(&body.index).ok_or_else(|| {
            Status::not_found(format!(
                "vector index {:?} does not exist (see system.vector_indexes)",
                body.index
            ))
        })?;
        catalog
            .buckets()
            .get(&body.bucket)
            .map_err(storage_status)?;
        if entry.bucket == body.bucket {
            return Err(Status::invalid_argument(format!(
                "index {} already lives in bucket {}",
                body.index, body.bucket
            )));
        }
        let description = format!(
            "move vector index {} from bucket {} to {}",
            body.index, entry.bucket, body.bucket
        );
        let (index, bucket) = (body.index.clone(), body.bucket.clone());
        let handle = self.engine.services().jobs.spawn(
            BUCKET_MOVE_INDEX,
            description,
            user,
            move |ctx| async move {
                vectors
                    .move_to(&index, &bucket, &ctx)
                    .await
                    .map(job::Result::VectorIndex)
                    .map_err(vector_status)
            },
        );
        Ok(job_reply(&handle, body.detach, encoding))
    }
}
