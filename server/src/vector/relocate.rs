//! Moving an index's files to another bucket, as a job: copy (data files first,
//! the Delta log last), check, switch the catalog entry in one change, delete the
//! old files. Searches go on from memory meanwhile.

use std::sync::Arc;

use lakehouse_flight_ext::v1::VectorIndexInfo;

use super::error::{VectorError, internal};
use super::index::Backend;
use super::service::{VectorIndexes, info_of};
use super::state::Loaded;
use crate::jobs::JobContext;

impl VectorIndexes {
    /// Moves the files of index `name` to `bucket`: copies them (data files first,
    /// the Delta log last), checks the copy, switches the catalog entry to it in one
    /// change, then deletes the old files. Searches go on meanwhile from memory; a
    /// refresh waits for the move. A failed or cancelled move removes its copy and
    /// leaves the index where it was.
    pub(crate) async fn move_to(
        &self,
        name: &str,
        bucket: &str,
        ctx: &JobContext,
    ) -> Result<VectorIndexInfo, VectorError> {
        let lock = self.change_lock(name);
        let _one = lock.lock().await;
        let catalog = self.engine.catalog();
        let entry = catalog.index(name).ok_or_else(|| {
            VectorError::NotFound(format!(
                "vector index {name} does not exist (see system.vector_indexes)"
            ))
        })?;
        if entry.bucket == bucket {
            return Err(VectorError::Invalid(format!(
                "index {name} already lives in bucket {bucket}"
            )));
        }
        let buckets = catalog.buckets();
        let source = buckets
            .get(&entry.bucket)
            .map_err(|e| VectorError::NotFound(e.to_string()))?;
        let target = buckets
            .get(bucket)
            .map_err(|e| VectorError::NotFound(e.to_string()))?;
        ctx.phase("listing");
        let objects = source.list_sizes(&entry.location).await.map_err(internal)?;
        let total: u64 = objects.iter().map(|(_, size)| size).sum();
        ctx.progress(|p| {
            p.bytes_total = Some(total);
            p.files_total = objects.len() as u64;
        });
        // Leftovers of an earlier move of this build that did not finish.
        target
            .delete_folder(&entry.location)
            .await
            .map_err(internal)?;
        let mut ordered: Vec<&(String, u64)> = objects.iter().collect();
        ordered.sort_by_key(|(path, _)| (path.contains("/_delta_log/"), path.clone()));
        ctx.phase("copying");
        let copied = async {
            let mut done = 0u64;
            for (path, size) in ordered {
                if ctx.cancelled().is_cancelled() {
                    return Err(VectorError::Cancelled);
                }
                let bytes = source.copy_object(path, &target).await.map_err(internal)?;
                if bytes != *size {
                    return Err(internal(format!(
                        "copied {bytes} bytes of {path}, expected {size}"
                    )));
                }
                done += bytes;
                ctx.progress(|p| {
                    p.bytes = done;
                    p.files_done += 1;
                    p.percent = (total > 0).then(|| 100.0 * done as f64 / total as f64);
                });
            }
            let copy = target.list_sizes(&entry.location).await.map_err(internal)?;
            if copy != objects {
                return Err(internal(format!(
                    "the copy in bucket {bucket} differs from the original ({} objects, {} expected)",
                    copy.len(),
                    objects.len()
                )));
            }
            Ok(())
        }
        .await;
        let discard = || async {
            if let Err(error) = target.delete_folder(&entry.location).await {
                tracing::warn!(index = %name, %error, "could not remove an unfinished copy");
            }
        };
        if let Err(error) = copied {
            discard().await;
            return Err(error);
        }
        ctx.phase("switching");
        let updated = catalog
            .update_index(name, &entry.location, |e| e.bucket = bucket.to_string())
            .await;
        let updated = match updated {
            Ok(Some(updated)) => updated,
            Ok(None) => {
                discard().await;
                return Err(VectorError::Unavailable(format!(
                    "index {name} was rebuilt or dropped during the move; nothing moved"
                )));
            }
            Err(error) => {
                discard().await;
                return Err(internal(error));
            }
        };
        if let Ok(mut map) = self.loaded.write()
            && let Some(loaded) = map.get(name).cloned()
            && loaded.entry.location == updated.location
        {
            if matches!(updated.build.backend, Backend::Lance(_)) {
                // Its handle reads the old bucket's dataset, deleted next: the next
                // search opens the copy instead (its vectors are read, not rebuilt).
                map.remove(name);
            } else {
                let state = Arc::clone(&loaded.state);
                let entry = updated.clone();
                map.insert(name.to_string(), Arc::new(Loaded { entry, state }));
            }
        }
        ctx.phase("cleaning");
        if let Err(error) = source.delete_folder(&entry.location).await {
            tracing::warn!(index = %name, %error,
                "index moved; its old files could not be deleted");
        }
        tracing::info!(index = %name, from = %entry.bucket, to = %bucket, bytes = total, "vector index moved");
        Ok(info_of(&updated))
    }
}
