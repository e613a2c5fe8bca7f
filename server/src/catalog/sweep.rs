//! Crash recovery: a server marks its run in the primary bucket; at start, when the
//! last run did not end cleanly, the folders and Delta files that unfinished writes
//! left behind (never listed, never committed) are swept away.

use std::collections::HashSet;

use super::{Catalog, Result, vacuum};

/// How long the sweep after an unclean stop waits for a table's writes to end.
pub(super) const SWEEP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);
/// Present while a server runs; still there at start means the last run did not stop
/// cleanly (or left files of an unfinished write), so every table gets swept.
pub(super) const RUNNING_OBJECT: &str = "_lakehouse/running.json";

/// Whether `folder` ("tables/s/name-0123456789ab/", "indexes/n-0123456789ab/") ends in
/// the 12-hex-digit suffix this server gives every folder it creates: the sweep never
/// touches folders someone else put in a bucket.
pub(super) fn generated_folder(folder: &str) -> bool {
    let last = folder
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    last.rsplit_once('-').is_some_and(|(name, suffix)| {
        !name.is_empty() && suffix.len() == 12 && suffix.chars().all(|c| c.is_ascii_hexdigit())
    })
}

impl Catalog {
    /// Deletes the folders of writes that never committed: a table, index or eval set
    /// folder (by the names this server gives them) that no catalog entry points at —
    /// what a crash in the middle of a create leaves. Only at start, before any call is
    /// served (a create in flight writes its folder before it is listed). Returns the
    /// folders removed.
    pub(crate) async fn sweep_orphans(&self) -> Vec<String> {
        let doc = self.snapshot();
        let mut removed = Vec::new();
        for bucket in self.buckets.list() {
            let name = bucket.name().to_string();
            let known: HashSet<&str> = doc
                .tables
                .iter()
                .filter(|t| t.bucket == name)
                .map(|t| t.location.as_str())
                .chain(
                    doc.indexes
                        .iter()
                        .filter(|i| i.bucket == name)
                        .map(|i| i.location.as_str()),
                )
                .chain(
                    doc.eval_sets
                        .iter()
                        .filter(|e| e.bucket == name)
                        .map(|e| e.location.as_str()),
                )
                .collect();
            let mut candidates = Vec::new();
            match bucket.folders("tables/").await {
                Ok(schemas) => {
                    for schema in schemas {
                        let folder = format!("tables/{schema}/");
                        match bucket.folders(&folder).await {
                            Ok(tables) => candidates
                                .extend(tables.into_iter().map(|t| format!("{folder}{t}/"))),
                            Err(error) => tracing::warn!(bucket = %name, %folder, %error,
                                "cannot list for the orphan sweep"),
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(bucket = %name, %error, "cannot list for the orphan sweep");
                    continue;
                }
            }
            for top in ["indexes/", "evalsets/"] {
                if let Ok(folders) = bucket.folders(top).await {
                    candidates.extend(folders.into_iter().map(|f| format!("{top}{f}/")));
                }
            }
            for folder in candidates {
                if known.contains(folder.as_str()) || !generated_folder(&folder) {
                    continue;
                }
                match bucket.delete_folder(&folder).await {
                    Ok(objects) => {
                        tracing::warn!(bucket = %name, %folder, objects,
                            "removed the folder of a write that never committed");
                        removed.push(format!("{name}:{folder}"));
                    }
                    Err(error) => {
                        tracing::warn!(bucket = %name, %folder, %error, "cannot remove an orphan folder");
                    }
                }
            }
        }
        removed
    }

    /// Notes that a server runs on this catalog; `true` when the last run did not
    /// stop cleanly (killed, or stopped with a write unfinished), so files of writes
    /// that never committed may be left in tables: see [`Catalog::sweep_tables`].
    pub(crate) async fn begin_run(&self) -> Result<bool> {
        let primary = self.buckets.primary()?;
        let unclean = primary.get_opt(RUNNING_OBJECT).await?.is_some();
        let note = serde_json::json!({
            "pid": std::process::id(),
            "started_at": chrono::Utc::now().to_rfc3339(),
        });
        primary.put(RUNNING_OBJECT, note.to_string().into()).await?;
        Ok(unclean)
    }

    /// Notes a clean stop, unless a write is still unfinished or a sweep failed (the
    /// next start then sweeps every table). Waits up to `wait` for sweeps of writes
    /// that just failed.
    pub(crate) async fn end_run(&self, wait: std::time::Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.gates.quiet() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if !self.gates.quiet() {
            return Ok(false);
        }
        self.buckets.primary()?.delete(RUNNING_OBJECT).await?;
        Ok(true)
    }

    /// Deletes what writes that never committed left in every Delta table the
    /// catalog knows (tables, and the vectors of indexes and eval sets), one table at
    /// a time while the server serves. Returns the files and bytes deleted.
    pub(crate) async fn sweep_tables(&self) -> (usize, u64) {
        let doc = self.snapshot();
        let mut tables: Vec<(String, String)> = doc
            .tables
            .iter()
            .map(|t| (t.bucket.clone(), t.location.clone()))
            .collect();
        let folders = doc
            .indexes
            .iter()
            .map(|i| (i.bucket.clone(), i.location.clone()))
            .chain(
                doc.eval_sets
                    .iter()
                    .map(|e| (e.bucket.clone(), e.location.clone())),
            );
        for (bucket, folder) in folders {
            let Ok(store) = self.buckets.get(&bucket) else {
                continue;
            };
            for sub in store.folders(&folder).await.unwrap_or_default() {
                let inner = format!("{folder}{sub}/");
                let is_delta = store
                    .folders(&inner)
                    .await
                    .is_ok_and(|f| f.iter().any(|n| n == "_delta_log"));
                if is_delta {
                    tables.push((bucket.clone(), inner));
                }
            }
        }
        let (mut files, mut bytes) = (0, 0);
        for (bucket, location) in tables {
            let Ok(store) = self.buckets.get(&bucket) else {
                continue;
            };
            // A write in flight now (the server serves meanwhile) gets time to end.
            let Some(_alone) = self.gates.alone(&bucket, &location, SWEEP_PATIENCE).await else {
                self.gates.mark_dirty();
                tracing::warn!(%bucket, table = %location,
                    "a write kept the table busy; the next start sweeps it");
                continue;
            };
            match vacuum::sweep(&store, &location, &format!("{bucket}:{location}"), None).await {
                Ok(swept) => {
                    let found = swept.uncommitted.len() + swept.staged.len();
                    if found > 0 {
                        tracing::warn!(%bucket, table = %location, files = found, bytes = swept.bytes(),
                            "deleted the files of a write that never committed");
                    }
                    files += found;
                    bytes += swept.bytes();
                }
                Err(error) => {
                    self.gates.mark_dirty();
                    tracing::warn!(%bucket, table = %location, %error,
                        "cannot sweep the files of unfinished writes");
                }
            }
        }
        (files, bytes)
    }
}
