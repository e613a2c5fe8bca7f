//! Keeping an index answering as if it were rebuilt, whatever changed its table.
//!
//! Every committed change to a source table (an append, UPDATE, DELETE, an
//! overwrite or replacing ingest, `CREATE OR REPLACE`) triggers a refresh of its
//! indexes. A refresh reads the table's `(id, text)` rows once and compares each with
//! what the index holds, by the hash of the text each row's vectors were made from
//! (for an index over precomputed vectors: `(id, vector)` rows, by the hash of the
//! vector, which is taken as it is rather than embedded):
//!
//! - a row the index lacks is embedded and added;
//! - a row whose text changed is embedded again, and its old vectors are tombstoned;
//! - a row the table no longer has is tombstoned.
//!
//! Tombstoned vector keys are filtered inside every backend's search (flat, HNSW, the
//! Faiss worker's bitmaps), and searches widen until `k` live rows are found, so a
//! deleted row is never returned and `k` rows come back whenever `k` match. BM25 drops
//! and re-adds the same rows. On disk the stale vectors are deleted from the vectors
//! table and the new ones appended (two Delta commits, then the catalog entry moves
//! to the table's version; a crash in between is caught up at the next start, since
//! the entry still names the older version). Nothing is rebuilt: only changed rows
//! are embedded. The saved structure (HNSW graph, Faiss index file) still holds the old
//! vectors, so it is deleted: the next start builds the index from the stored vectors
//! (no embedding) instead of reading it back. Vectors stored before text hashes existed have none: their rows are
//! treated as unchanged by an UPDATE (rebuild such an index to track updates).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::prelude::{col, lit};

use super::build::Chunking;
use super::error::{VectorError, internal};
use super::index::{Metric, VectorIndex};
use super::service::VectorIndexes;
use super::state::{Embedded, Loaded};
use super::store::{STRUCTURE_FILE, TEXT_HASH, keyed, vectors_batch, vectors_table};
use crate::catalog::{IndexEntry, WriteMode};
use crate::events::EventBus;
use crate::query::SessionDefaults;

/// What one refresh found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refreshed {
    /// Rows new to the index.
    pub added: u64,
    /// Rows whose text changed, embedded again.
    pub changed: u64,
    /// Rows the table no longer has.
    pub removed: u64,
}

impl Refreshed {
    /// Rows the refresh touched.
    pub(crate) fn rows(&self) -> u64 {
        self.added + self.changed + self.removed
    }
}

impl VectorIndexes {
    /// Brings index `name` up to its table's latest version (see the module docs);
    /// returns how many rows it touched. A no-op when the table has not changed.
    pub(crate) async fn refresh(&self, name: &str) -> Result<u64, VectorError> {
        Ok(self.reconcile(name).await?.rows())
    }

    /// [`Self::refresh`], saying what changed.
    pub(crate) async fn reconcile(&self, name: &str) -> Result<Refreshed, VectorError> {
        let lock = self.change_lock(name);
        let _one = lock.lock().await;
        let loaded = self.get(name).await?;
        let state = Arc::clone(&loaded.state);
        let catalog = self.engine().catalog();
        let Some(entry) = catalog
            .index(name)
            .filter(|e| e.location == loaded.entry.location)
        else {
            return Ok(Refreshed::default());
        };
        let table = catalog
            .table(&entry.schema, &entry.table)
            .map_err(|e| VectorError::NotFound(format!("the source table of index {name}: {e}")))?;
        let (_, version) = catalog.table_state(&table).await.map_err(internal)?;
        if version <= entry.source_version {
            return Ok(Refreshed::default());
        }
        let known = state.texts.read().map_err(internal)?.clone();
        let first_key = state.rows.read().map_err(internal)?.len();
        let mut seen = HashSet::with_capacity(known.len());
        let mut changed = HashSet::new();
        let mut wanted = |id: i64, hash: u64| {
            seen.insert(id);
            match known.get(&id) {
                None => true,
                // Stored before hashes existed: nothing to compare with.
                Some(None) => false,
                Some(Some(held)) if *held == hash => false,
                Some(Some(_)) => {
                    changed.insert(id);
                    true
                }
            }
        };
        let mut added = Embedded::default();
        let mut documents = Vec::new();
        let mut sink = |batch: Embedded, _bytes: u64| -> Result<(), VectorError> {
            // Searchable at once, exactly, before the graph has it.
            let base = {
                let mut rows = state.rows.write().map_err(internal)?;
                let base = rows.len();
                rows.extend(&batch.rows);
                base
            };
            state.fresh.add(&keyed(base, batch.vectors.clone()))?;
            added.extend(batch);
            Ok(())
        };
        let embedded = if entry.vector_column.is_empty() {
            let model = self.index_embedder(&entry).await?;
            let stream = self
                .rows_stream(&table, &entry.id_column, &entry.text_column)
                .await?;
            self.embed_rows(
                model.as_ref(),
                stream,
                &mut wanted,
                false,
                Chunking::of(&entry.build),
                None,
                Some(&mut documents),
                &mut sink,
            )
            .await
        } else {
            let stream = self
                .vector_stream(&table, &entry.id_column, &entry.vector_column)
                .await?;
            let mut width = Some(entry.dimension as usize);
            self.read_vector_rows(
                stream,
                &entry.vector_column,
                &mut width,
                &mut wanted,
                false,
                &mut sink,
            )
            .await
        };
        let removed: HashSet<i64> = known
            .keys()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect();
        let stale: HashSet<i64> = removed.union(&changed).copied().collect();
        let stored = match embedded {
            Ok(()) => self.store(&entry, &stale, &added).await,
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            // Forget what was not stored; the next refresh does it again.
            state.fresh.clear();
            if let Ok(mut rows) = state.rows.write() {
                rows.truncate(first_key);
            }
            return Err(error);
        }
        // Old vectors of deleted and changed rows: never returned from now on.
        let dead: Vec<u64> = {
            let rows = state.rows.read().map_err(internal)?;
            let held = state.dead.read().map_err(internal)?;
            rows[..first_key]
                .iter()
                .enumerate()
                .filter(|(key, row)| stale.contains(row) && !held.contains(&(*key as u64)))
                .map(|(key, _)| key as u64)
                .collect()
        };
        state.dead.write().map_err(internal)?.extend(&dead);
        if !dead.is_empty() {
            self.forget_structure(&entry).await;
        }
        let count = added.rows.len() as u64;
        if count > 0 {
            let inner = Arc::clone(&state);
            let items = keyed(first_key, std::mem::take(&mut added.vectors));
            let documents = added.documents();
            tokio::task::spawn_blocking(move || inner.index.add_documents(&items, &documents))
                .await
                .map_err(internal)??;
            state.fresh.clear();
        }
        {
            let mut texts = state.texts.write().map_err(internal)?;
            for row in &removed {
                texts.remove(row);
            }
            for (row, hash) in added.rows.iter().zip(&added.hashes) {
                texts.insert(*row, Some(*hash));
            }
        }
        if let Some(text) = state.text.get() {
            let mut text = text.write().map_err(internal)?;
            for row in &stale {
                text.remove(*row);
            }
            for (id, document) in &documents {
                text.add(*id, document);
            }
        }
        let new_rows = added.distinct_rows() - changed.len() as u64;
        let done = Refreshed {
            added: new_rows,
            changed: changed.len() as u64,
            removed: removed.len() as u64,
        };
        let bytes = state.memory_bytes();
        let updated = catalog
            .update_index(name, &entry.location, |e| {
                e.vectors = (e.vectors + count).saturating_sub(dead.len() as u64);
                e.rows = (e.rows + done.added).saturating_sub(done.removed);
                e.source_version = version;
                e.bytes = bytes;
                e.embed_seconds += added.seconds;
            })
            .await
            .map_err(internal)?;
        if let Some(entry) = updated {
            self.remember(name, Loaded { entry, state });
        }
        if done.changed + done.removed > 0 {
            tracing::info!(index = %name, added = done.added, changed = done.changed,
                removed = done.removed, version, "vector index reconciled with its table");
        }
        Ok(done)
    }

    /// Deletes the saved structure (graph, Faiss index file) of `entry`: it still holds
    /// the vectors of rows that changed or went, so a restart must build the index
    /// from the stored vectors instead (a saved Faiss index would answer with the old
    /// vectors). Best effort: a save that cannot be deleted is refused at load anyway
    /// when its rows no longer fit the vectors, and logged here.
    async fn forget_structure(&self, entry: &IndexEntry) {
        let path = format!("{}{STRUCTURE_FILE}", entry.location);
        let deleted = match self.engine().catalog().buckets().get(&entry.bucket) {
            Ok(bucket) => bucket.delete(&path).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = deleted {
            tracing::warn!(index = %entry.name, %path, %error, "cannot delete the saved index structure");
        }
    }

    /// Deletes the stored vectors of `stale` rows, then appends `added`'s.
    async fn store(
        &self,
        entry: &IndexEntry,
        stale: &HashSet<i64>,
        added: &Embedded,
    ) -> Result<(), VectorError> {
        let catalog = self.engine().catalog();
        let table = vectors_table(&entry.name, &entry.bucket, &entry.location);
        if !stale.is_empty() {
            let mut ids: Vec<i64> = stale.iter().copied().collect();
            ids.sort_unstable();
            let predicate = col("id").in_list(ids.into_iter().map(lit).collect(), false);
            let ctx = self.engine().session(&SessionDefaults::default());
            catalog
                .delete_rows(&table, Some(predicate), Arc::new(ctx.state()))
                .await
                .map_err(internal)?;
        }
        if !added.rows.is_empty() {
            let hashed = catalog
                .table_schema(&table)
                .await
                .map_err(internal)?
                .column_with_name(TEXT_HASH)
                .is_some();
            let batch = vectors_batch(
                added,
                entry.dimension as usize,
                &entry.model,
                Metric::parse(&entry.metric)?,
                hashed,
            )?;
            self.write_vectors(&table, WriteMode::Append, batch).await?;
        }
        Ok(())
    }
}

impl VectorIndexes {
    /// Keeps indexes fresh: every change to a source table refreshes its indexes
    /// (in the background, one event after another; see [`super::refresh`]). At start, indexes whose table
    /// moved on while the server was down are refreshed first.
    pub(crate) fn follow(self: &Arc<Self>, events: &EventBus) -> tokio::task::JoinHandle<()> {
        let mut receiver = events.subscribe();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            this.refresh_behind().await;
            loop {
                match receiver.recv().await {
                    // Appends, and rewrites (UPDATE, DELETE, overwrite): a refresh
                    // reconciles the index with the table either way.
                    Ok(event) => this.refresh_table(Some(&event.table)).await,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "missed dataset events; refreshing every index");
                        this.refresh_table(None).await;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// Refreshes the indexes whose source table has commits they have not seen.
    pub(super) async fn refresh_behind(&self) {
        let catalog = self.engine.catalog();
        let indexes = catalog.snapshot().indexes.clone();
        for entry in indexes {
            let Ok(table) = catalog.table(&entry.schema, &entry.table) else {
                continue;
            };
            let behind = catalog
                .table_state(&table)
                .await
                .is_ok_and(|(_, version)| version > entry.source_version);
            if behind {
                match self.refresh(&entry.name).await {
                    Ok(rows) => tracing::info!(index = %entry.name, rows, "vector index caught up"),
                    Err(error) => {
                        tracing::warn!(index = %entry.name, %error, "vector index refresh failed");
                    }
                }
            }
        }
    }

    /// Refreshes the indexes over `table` (`schema.table`), or every index.
    pub(super) async fn refresh_table(&self, table: Option<&str>) {
        let names: Vec<String> = self
            .engine
            .catalog()
            .snapshot()
            .indexes
            .iter()
            .filter(|i| table.is_none_or(|t| t == format!("{}.{}", i.schema, i.table)))
            .map(|i| i.name.clone())
            .collect();
        for name in names {
            match self.refresh(&name).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(index = %name, rows, "vector index refreshed"),
                Err(error) => tracing::warn!(index = %name, %error, "vector index refresh failed"),
            }
        }
    }
}
