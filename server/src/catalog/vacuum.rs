//! Deleting the files no version of a Delta table reads.
//!
//! A write puts its Parquet files down first and names them in one commit at the end.
//! A write that fails, is cancelled or dies with the server leaves the files it had
//! finished (and, on local buckets, object_store's half-written `name#N` staging files)
//! in the table's folder: invisible to readers, but they take space. Two kinds of file
//! are deleted here:
//! - **uncommitted**: data files that no commit, checkpoint or tombstone of the log
//!   names. Swept after every write that did not commit (as soon as no other write to
//!   that table is in flight), after an unclean stop, and by `lakehouse.table.vacuum`.
//! - **expired** (only on request): files that a commit older than the retention period
//!   removed. Versions that read them can no longer be read; the table's entry records
//!   the oldest readable version so time travel says so instead of failing on a missing
//!   file.
//!
//! Rules: objects under `_delta_log/` are never deleted, except object_store's staging
//! files of local buckets; only `*.parquet` files count as data (deletion vectors and
//! anything else unknown stay); a log that cannot be read completely aborts the sweep of
//! that table rather than risk a file some version reads. Writes of this server hold a
//! table's gate shared; a sweep holds it exclusively, so it never sees the files of a
//! write in flight as uncommitted. One server owns a bucket's tables: a writer in another
//! process is not seen.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray, StructArray};
use arrow::datatypes::{DataType, Int64Type};
use bytes::Bytes;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use percent_encoding::percent_decode_str;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::{CatalogError, Result};
use crate::storage::Bucket;

/// At most this many paths are reported back (all are deleted).
pub(crate) const REPORTED_PATHS: usize = 1000;

/// Per-table gates: writes share a table's gate, a sweep takes it alone. A sweep
/// never queues for the gate (a queued exclusive lock would hold up every new write
/// behind a long one): it takes the gate only when it is free, and a sweep a write
/// asked for while others were in flight is run by the last of them to finish.
#[derive(Debug, Default)]
pub(super) struct Gates {
    gates: Mutex<HashMap<String, Arc<RwLock<()>>>>,
    /// Tables whose sweep waits for their writes in flight to finish.
    pending: Mutex<HashSet<String>>,
    /// Writes in flight plus sweeps running.
    busy: AtomicUsize,
    /// A sweep failed: what it should have deleted may still be there.
    dirty: AtomicBool,
}

fn key(bucket: &str, location: &str) -> String {
    format!("{bucket}:{location}")
}

impl Gates {
    fn gate(&self, bucket: &str, location: &str) -> Arc<RwLock<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the gates nobody holds or waits for (tables written once, dropped ones).
        gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        Arc::clone(
            gates
                .entry(key(bucket, location))
                .or_insert_with(|| Arc::new(RwLock::new(()))),
        )
    }

    /// Holds the table's gate for a write; until [`WriteGuard::committed`] is called,
    /// dropping the guard sweeps the table.
    pub(super) async fn write(self: &Arc<Self>, bucket: Arc<Bucket>, location: &str) -> WriteGuard {
        let shared = self.gate(bucket.name(), location).read_owned().await;
        // Counted from here: a write still waiting for the gate has put nothing down.
        self.busy.fetch_add(1, Ordering::SeqCst);
        WriteGuard {
            gates: Arc::clone(self),
            bucket,
            location: location.to_string(),
            shared: Some(shared),
            committed: false,
        }
    }

    /// The table's gate alone, as soon as no write of this server is in flight on it,
    /// waiting at most `patience` (`None` then). New writes are not held up meanwhile.
    pub(super) async fn alone(
        &self,
        bucket: &str,
        location: &str,
        patience: Duration,
    ) -> Option<OwnedRwLockWriteGuard<()>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Ok(alone) = self.gate(bucket, location).try_write_owned() {
                return Some(alone);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A write to the table ended without committing (`failed`) or ended after one
    /// did: sweep now if no other write is in flight, else leave it to the last one.
    fn ended(self: &Arc<Self>, bucket: &Arc<Bucket>, location: &str, failed: bool) {
        let key = key(bucket.name(), location);
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if failed {
                pending.insert(key.clone());
            }
            if !pending.contains(&key) {
                return;
            }
        }
        let Ok(alone) = self.gate(bucket.name(), location).try_write_owned() else {
            return; // another write is in flight; its end runs the sweep
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.mark_dirty();
            return;
        };
        self.busy.fetch_add(1, Ordering::SeqCst);
        let gates = Arc::clone(self);
        let bucket = Arc::clone(bucket);
        let location = location.to_string();
        runtime.spawn(async move {
            let _alone = alone;
            match sweep(&bucket, &location, &key, None).await {
                Ok(swept) if swept.uncommitted.is_empty() && swept.staged.is_empty() => {}
                Ok(swept) => tracing::info!(bucket = %bucket.name(), table = %location,
                    files = swept.uncommitted.len() + swept.staged.len(), bytes = swept.bytes(),
                    "deleted the files of a write that did not commit"),
                Err(error) => {
                    gates.mark_dirty();
                    tracing::warn!(bucket = %bucket.name(), table = %location, %error,
                        "cannot delete the files of a write that did not commit; the next start or lakehouse.table.vacuum will");
                }
            }
            gates.busy.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// No write in flight, no sweep waiting or running, none failed: nothing is left
    /// behind.
    pub(super) fn quiet(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
            && !self.dirty.load(Ordering::SeqCst)
            && self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
    }

    pub(super) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }
}

/// A write's hold on its table (see [`Gates::write`]).
#[derive(Debug)]
pub(super) struct WriteGuard {
    gates: Arc<Gates>,
    bucket: Arc<Bucket>,
    location: String,
    shared: Option<OwnedRwLockReadGuard<()>>,
    committed: bool,
}

impl WriteGuard {
    /// The write committed: its files are named by the log.
    pub(super) fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        drop(self.shared.take());
        self.gates.busy.fetch_sub(1, Ordering::SeqCst);
        self.gates
            .ended(&self.bucket, &self.location, !self.committed);
    }
}

/// What a sweep deleted (or, planned only, would delete).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Swept {
    /// Data files no version names, relative to the table folder, with their sizes.
    pub uncommitted: Vec<(String, u64)>,
    /// Data files removed by commits older than the retention period.
    pub expired: Vec<(String, u64)>,
    /// object_store staging files of local buckets (relative paths, sizes).
    pub staged: Vec<(String, u64)>,
    /// The newest version of the table.
    pub latest: i64,
    /// The oldest version whose files are all still there.
    pub oldest_readable: i64,
}

impl Swept {
    /// Bytes of every file in the sweep.
    pub(crate) fn bytes(&self) -> u64 {
        self.uncommitted
            .iter()
            .chain(&self.expired)
            .chain(&self.staged)
            .map(|(_, size)| size)
            .sum()
    }
}

/// How a sweep treats files that commits removed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expire {
    /// Removed before this time (milliseconds since the epoch): deleted.
    pub removed_before_ms: i64,
    /// Only report, delete nothing.
    pub dry_run: bool,
}

/// Finds (and unless `expire` says dry run, deletes) the files of the Delta table at
/// `location` that no version reads; with `expire`, also those removed before its time.
/// The caller holds the table's gate alone.
/// `table` names it in errors.
pub(super) async fn sweep(
    bucket: &Bucket,
    location: &str,
    table: &str,
    expire: Option<Expire>,
) -> Result<Swept> {
    let failed = |message: String| CatalogError::Vacuum {
        table: table.to_string(),
        message,
    };
    // The files first, then the log: a commit between the two only adds names.
    let files = bucket.list_sizes(location).await?;
    let log = read_log(bucket, location).await.map_err(failed)?;
    if log.latest < 0 {
        return Err(failed("its _delta_log holds no commit".into()));
    }
    let mut swept = Swept {
        latest: log.latest,
        oldest_readable: log.oldest,
        ..Swept::default()
    };
    let active: HashSet<String> = match expire {
        Some(_) => log.active(),
        None => HashSet::new(),
    };
    for (path, size) in files {
        let Some(relative) = path.strip_prefix(location) else {
            continue;
        };
        if relative.starts_with("_delta_log/") || !relative.ends_with(".parquet") {
            continue;
        }
        let name = decode(relative);
        if !log.named.contains(&name) {
            swept.uncommitted.push((relative.to_string(), size));
            continue;
        }
        let Some(expire) = expire else { continue };
        if let Some(removal) = log.removed.get(&name)
            && !active.contains(&name)
            && removal.deleted_ms < expire.removed_before_ms
        {
            swept.expired.push((relative.to_string(), size));
            swept.oldest_readable = swept.oldest_readable.max(removal.version);
        }
    }
    swept.staged = staged_files(bucket, location);
    if expire.is_some_and(|e| e.dry_run) {
        return Ok(swept);
    }
    for (relative, _) in swept.uncommitted.iter().chain(&swept.expired) {
        bucket.delete(&format!("{location}{relative}")).await?;
    }
    for (relative, _) in &swept.staged {
        if let Some(file) = bucket.local_file(&format!("{location}{relative}")) {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(failed(format!("removing {}: {e}", file.display())));
                }
                _ => {}
            }
        }
    }
    Ok(swept)
}

/// object_store's staging files (`name#N`) under the table folder of a local bucket:
/// what a put that never finished leaves. Listings never show them.
fn staged_files(bucket: &Bucket, location: &str) -> Vec<(String, u64)> {
    let Some(root) = bucket.local_file(location) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                folders.push(path);
                continue;
            }
            let staged = entry.file_name().to_str().is_some_and(|name| {
                name.rsplit_once('#').is_some_and(|(stem, n)| {
                    !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                })
            });
            if staged && let Ok(relative) = path.strip_prefix(&root) {
                found.push((relative.to_string_lossy().replace('\\', "/"), meta.len()));
            }
        }
    }
    found.sort();
    found
}

/// A `remove` action of the log.
#[derive(Debug, Clone, Copy)]
struct Removal {
    /// The commit that removed the file (for a checkpoint's tombstone, its version).
    version: i64,
    /// `deletionTimestamp`, milliseconds since the epoch.
    deleted_ms: i64,
}

/// What a table's log says about its files.
#[derive(Debug, Default)]
struct LogFiles {
    /// Every file an `add`, `remove` or `cdc` action names (decoded, relative).
    named: HashSet<String>,
    /// `add` actions by version (commits only; a checkpoint's adds are in `checkpoint`).
    adds: Vec<(i64, String)>,
    /// The last removal of each removed file.
    removed: HashMap<String, Removal>,
    /// The newest checkpoint: its version and the files it holds as added.
    checkpoint: Option<(i64, Vec<String>)>,
    /// Newest and oldest version the log holds (-1 when none).
    latest: i64,
    oldest: i64,
}

impl LogFiles {
    /// The files of the newest version: the newest checkpoint's, then the commits after it.
    fn active(&self) -> HashSet<String> {
        let (from, mut files) = match &self.checkpoint {
            Some((version, files)) => (*version, files.iter().cloned().collect()),
            None => (-1, HashSet::new()),
        };
        let mut actions: Vec<(i64, bool, &String)> = self
            .adds
            .iter()
            .filter(|(v, _)| *v > from)
            .map(|(v, path)| (*v, true, path))
            .chain(
                self.removed
                    .iter()
                    .filter(|(_, r)| r.version > from)
                    .map(|(path, r)| (r.version, false, path)),
            )
            .collect();
        // Within one commit a file is removed or added, never both; order by version.
        actions.sort_by_key(|(version, _, _)| *version);
        for (_, added, path) in actions {
            if added {
                files.insert(path.clone());
            } else {
                files.remove(path);
            }
        }
        files
    }
}

/// Reads every commit, checkpoint and sidecar of the table's `_delta_log/`.
async fn read_log(bucket: &Bucket, location: &str) -> std::result::Result<LogFiles, String> {
    let folder = format!("{location}_delta_log/");
    let objects = bucket
        .list_sizes(&folder)
        .await
        .map_err(|e| e.to_string())?;
    let mut log = LogFiles {
        latest: -1,
        oldest: i64::MAX,
        ..LogFiles::default()
    };
    for (path, _) in objects {
        let Some(name) = path.strip_prefix(&folder) else {
            continue;
        };
        let is_json = name.ends_with(".json");
        let is_parquet = name.ends_with(".parquet");
        if !is_json && !is_parquet {
            continue; // _last_checkpoint, .crc, temporary files
        }
        let version = log_version(name);
        let Some(bytes) = bucket.get_opt(&path).await.map_err(|e| e.to_string())? else {
            continue; // removed by log cleanup since the listing
        };
        let top_level_commit = !name.contains('/') && is_json && version.is_some();
        if is_json {
            read_json_actions(&bytes, version, &mut log).map_err(|e| format!("{name}: {e}"))?;
        } else {
            read_checkpoint(bytes, version, &mut log).map_err(|e| format!("{name}: {e}"))?;
        }
        if let Some(version) = version
            && (top_level_commit || name.contains(".checkpoint."))
        {
            log.latest = log.latest.max(version);
            log.oldest = log.oldest.min(version);
        }
    }
    if log.oldest == i64::MAX {
        log.oldest = 0;
    }
    Ok(log)
}

/// The version a log file belongs to: the leading digits of its name (the second
/// number of a compacted `a.b.compacted.json`); `None` for sidecars and unknown names.
fn log_version(name: &str) -> Option<i64> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let mut parts = file.split('.');
    let first = parts.next()?;
    let second = parts.next();
    let third = parts.next();
    let digits = match (second, third) {
        (Some(end), Some("compacted")) => end,
        _ => first,
    };
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn read_json_actions(
    bytes: &[u8],
    version: Option<i64>,
    log: &mut LogFiles,
) -> std::result::Result<(), String> {
    for (number, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let action: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", number + 1))?;
        let path = |key: &str| {
            action
                .get(key)
                .and_then(|a| a.get("path"))
                .and_then(serde_json::Value::as_str)
                .map(decode)
        };
        if let Some(path) = path("add") {
            log.named.insert(path.clone());
            match version {
                Some(v) => log.adds.push((v, path)),
                // A sidecar's adds belong to its checkpoint; keep them active to be safe.
                None => log.checkpoint.get_or_insert((-1, Vec::new())).1.push(path),
            }
        }
        if let Some(path) = path("cdc") {
            log.named.insert(path);
        }
        if let Some(path) = path("remove") {
            let deleted_ms = action
                .get("remove")
                .and_then(|r| r.get("deletionTimestamp"))
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(i64::MAX);
            note_removal(log, path, version.unwrap_or(i64::MAX), deleted_ms);
        }
    }
    Ok(())
}

fn note_removal(log: &mut LogFiles, path: String, version: i64, deleted_ms: i64) {
    log.named.insert(path.clone());
    let removal = Removal {
        version,
        deleted_ms,
    };
    log.removed
        .entry(path)
        .and_modify(|r| {
            if version > r.version {
                *r = removal;
            }
        })
        .or_insert(removal);
}

/// Reads the `add` and `remove` paths of a checkpoint (or sidecar) Parquet file.
fn read_checkpoint(
    bytes: Bytes,
    version: Option<i64>,
    log: &mut LogFiles,
) -> std::result::Result<(), String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let mask = ProjectionMask::columns(
        builder.parquet_schema(),
        ["add.path", "remove.path", "remove.deletionTimestamp"],
    );
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;
    let mut added = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        if let Some(add) = struct_column(&batch, "add") {
            for path in strings(add, "path")?.into_iter().flatten() {
                let path = decode(&path);
                log.named.insert(path.clone());
                added.push(path);
            }
        }
        if let Some(remove) = struct_column(&batch, "remove") {
            let paths = strings(remove, "path")?;
            let times = remove
                .column_by_name("deletionTimestamp")
                .and_then(|c| c.as_primitive_opt::<Int64Type>());
            for (row, path) in paths.into_iter().enumerate() {
                let Some(path) = path else { continue };
                let deleted_ms = times
                    .filter(|t| t.is_valid(row))
                    .map_or(i64::MAX, |t| t.value(row));
                note_removal(log, decode(&path), version.unwrap_or(i64::MAX), deleted_ms);
            }
        }
    }
    match version {
        Some(version) => {
            let newer = log.checkpoint.as_ref().is_none_or(|(v, _)| version >= *v);
            if newer {
                log.checkpoint = Some((version, added));
            }
        }
        None => log
            .checkpoint
            .get_or_insert((-1, Vec::new()))
            .1
            .extend(added),
    }
    Ok(())
}

fn struct_column<'a>(batch: &'a arrow::array::RecordBatch, name: &str) -> Option<&'a StructArray> {
    batch.column_by_name(name)?.as_struct_opt()
}

/// The strings of a struct's child column (null where the struct or the value is null).
fn strings(parent: &StructArray, name: &str) -> std::result::Result<Vec<Option<String>>, String> {
    let Some(column) = parent.column_by_name(name) else {
        return Ok(Vec::new());
    };
    let column = arrow::compute::cast(column, &DataType::Utf8).map_err(|e| e.to_string())?;
    let column = column.as_string::<i32>();
    Ok((0..column.len())
        .map(|i| (parent.is_valid(i) && column.is_valid(i)).then(|| column.value(i).to_string()))
        .collect())
}

/// A log path in the form listings give: percent-decoded.
fn decode(path: &str) -> String {
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests;
