//! What an index keeps in its bucket: its vectors as an unlisted Delta table
//! (`id BIGINT`, `chunk INT`, `vector FixedSizeList<Float32, d>` with model,
//! dimension and metric in the field metadata, `text_hash`) under
//! `indexes/<name>-<id>/vectors/`, and its saved structure (an HNSW graph or a Faiss
//! index file) beside them. A server loads an index on its first search after a
//! start: it reads the vectors back and the saved structure (or, without one,
//! rebuilds the structure from the vectors; nothing is embedded again).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int32Array, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use super::error::{VectorError, internal};
use super::faiss::FaissIndex;
use super::index::{Backend, HnswIndex, LanceParams, Metric, VectorIndex};
use super::lance::{self, LanceIndex};
use super::service::VectorIndexes;
use super::state::{Embedded, Loaded, State};
use crate::catalog::{IndexEntry, TableEntry, WriteMode};
use crate::query::SessionDefaults;

impl VectorIndexes {
    /// Writes `batch` to an unlisted Delta table in one commit.
    pub(super) async fn write_vectors(
        &self,
        table: &TableEntry,
        mode: WriteMode,
        batch: RecordBatch,
    ) -> Result<(), VectorError> {
        let ctx = self.engine.session(&SessionDefaults::default());
        let stream =
            RecordBatchStreamAdapter::new(batch.schema(), futures::stream::iter([Ok(batch)]));
        self.engine
            .catalog()
            .write_unlisted(table, mode, Box::pin(stream), Arc::new(ctx.state()))
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// Keeps `loaded` as the index `name` searches use.
    pub(super) fn remember(&self, name: &str, loaded: Loaded) {
        if let Ok(mut map) = self.loaded.write() {
            map.insert(name.to_string(), Arc::new(loaded));
        }
    }

    /// The loaded index `name`, loading it from its vectors on first use.
    pub(super) async fn get(&self, name: &str) -> Result<Arc<Loaded>, VectorError> {
        let Some(entry) = self.engine.catalog().index(name) else {
            return Err(VectorError::NotFound(format!(
                "vector index {name} does not exist (see system.vector_indexes)"
            )));
        };
        // A refresh changes the entry, not the build: the location names the build.
        let cached = |this: &Self| {
            this.loaded
                .read()
                .ok()
                .and_then(|l| l.get(name).cloned())
                .filter(|l| l.entry.location == entry.location)
        };
        if let Some(loaded) = cached(self) {
            return Ok(loaded);
        }
        let _loading = self.loading.lock().await;
        if let Some(loaded) = cached(self) {
            return Ok(loaded);
        }
        let stored = self.read_vectors(&entry).await?;
        let texts = stored.texts();
        let (index, rows) = match self.restore_structure(&entry, stored).await {
            Ok(restored) => restored,
            Err(stored) => {
                // The vectors come back unless the restore crashed.
                let stored = match stored {
                    Some(stored) => stored,
                    None => self.read_vectors(&entry).await?,
                };
                let documents = stored.documents();
                let index = self
                    .build_index(
                        &entry.name,
                        &entry.build.backend,
                        Metric::parse(&entry.metric)?,
                        entry.dimension as usize,
                        stored.vectors,
                        documents,
                        &entry.bucket,
                        &entry.location,
                    )
                    .await?;
                (index, stored.rows)
            }
        };
        let loaded = Arc::new(Loaded {
            entry,
            state: Arc::new(State::new(index, rows, texts)),
        });
        if let Ok(mut map) = self.loaded.write() {
            map.insert(name.to_string(), Arc::clone(&loaded));
        }
        Ok(loaded)
    }

    /// Saves the index's structure (an HNSW graph) beside its vectors, keyed by
    /// `(row, chunk)`, so a restart reads it back instead of rebuilding. Best effort:
    /// without the file the index is rebuilt from its vectors.
    pub(super) async fn save_structure(
        &self,
        bucket: &str,
        location: &str,
        index: &dyn VectorIndex,
        rows: &[i64],
        chunks: &[i32],
    ) {
        let Some(structure) = index.saved_structure() else {
            return;
        };
        let mut bytes = Vec::with_capacity(12 + rows.len() * 12 + structure.len());
        bytes.extend_from_slice(STRUCTURE_MAGIC);
        bytes.extend_from_slice(&(rows.len() as u64).to_le_bytes());
        for (row, chunk) in rows.iter().zip(chunks) {
            bytes.extend_from_slice(&row.to_le_bytes());
            bytes.extend_from_slice(&chunk.to_le_bytes());
        }
        bytes.extend_from_slice(&structure);
        let path = format!("{location}{STRUCTURE_FILE}");
        let saved = match self.engine.catalog().buckets().get(bucket) {
            Ok(bucket) => bucket
                .put(&path, bytes.into())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = saved {
            tracing::warn!(%path, %error, "cannot save the index graph; a restart rebuilds it");
        }
    }

    /// The index and its key → row map from the saved structure and `stored`
    /// vectors: vectors the save lacks (appended later) are inserted. `None` (the
    /// caller rebuilds) when there is no save or it does not fit the vectors.
    pub(super) async fn restore_structure(
        &self,
        entry: &IndexEntry,
        stored: Embedded,
    ) -> Result<(Box<dyn VectorIndex>, Vec<i64>), Option<Embedded>> {
        if !entry.build.backend.saves_structure() {
            return Err(Some(stored));
        }
        if let Backend::Lance(params) = &entry.build.backend {
            return self.restore_lance(entry, params, stored).await;
        }
        let path = format!("{}{STRUCTURE_FILE}", entry.location);
        let saved = match self.engine.catalog().buckets().get(&entry.bucket) {
            Ok(bucket) => bucket.get_opt(&path).await,
            Err(error) => Err(error),
        };
        let saved = match saved {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(Some(stored)),
            Err(error) => {
                tracing::warn!(index = %entry.name, %error, "cannot read the saved graph; rebuilding");
                return Err(Some(stored));
            }
        };
        let Ok(metric) = Metric::parse(&entry.metric) else {
            return Err(Some(stored));
        };
        let started = Instant::now();
        let (backend, dimension, name) = (
            entry.build.backend.clone(),
            entry.dimension as usize,
            entry.name.clone(),
        );
        let faiss = match backend {
            Backend::Faiss(_) => match self.faiss_worker() {
                Ok(worker) => Some(worker),
                Err(_) => return Err(Some(stored)),
            },
            _ => None,
        };
        let runtime = tokio::runtime::Handle::current();
        let span = tracing::Span::current();
        // The vectors move into the blocking task and come back when the save does not fit.
        let restored = tokio::task::spawn_blocking(move || {
            let _in_call = span.enter();
            let restored = match (&backend, faiss) {
                (Backend::Hnsw(params), _) => {
                    restore_graph(&saved, &stored, |structure, key_of| {
                        HnswIndex::restore(dimension, metric, *params, structure, |key| {
                            stored.vectors.get(key_of(key)?).cloned()
                        })
                        .map(|index| Box::new(index) as Box<dyn VectorIndex>)
                        .map_err(|e| e.to_string())
                    })
                }
                (Backend::Faiss(params), Some((worker, dir))) => {
                    restore_graph(&saved, &stored, |structure, _| {
                        runtime
                            .block_on(FaissIndex::open(
                                worker, &dir, &name, metric, params, dimension, structure,
                            ))
                            .map(|index| Box::new(index) as Box<dyn VectorIndex>)
                            .map_err(|e| e.to_string())
                    })
                }
                (other, _) => Err(format!("a {} index saves no structure", other.name())),
            };
            match restored {
                Ok(restored) => Ok(restored),
                Err(error) => Err((error, Box::new(stored))),
            }
        })
        .await;
        match restored {
            Ok(Ok((index, rows))) => {
                tracing::info!(index = %entry.name, vectors = rows.len(),
                    seconds = started.elapsed().as_secs_f64(), "vector index graph read back");
                Ok((index, rows))
            }
            Ok(Err((error, stored))) => {
                tracing::warn!(index = %entry.name, %error, "the saved graph does not fit; rebuilding");
                Err(Some(*stored))
            }
            Err(error) => {
                tracing::warn!(index = %entry.name, %error, "reading the saved graph failed; rebuilding");
                Err(None)
            }
        }
    }

    /// A Lance index from its dataset in the bucket, given the vectors appended since
    /// it was last written; `Err` (the caller rebuilds) when there is none or it holds
    /// rows the stored vectors do not.
    async fn restore_lance(
        &self,
        entry: &IndexEntry,
        params: &LanceParams,
        stored: Embedded,
    ) -> Result<(Box<dyn VectorIndex>, Vec<i64>), Option<Embedded>> {
        let opened = async {
            let worker = self.lance_worker()?;
            let bucket = self
                .engine
                .catalog()
                .buckets()
                .get(&entry.bucket)
                .map_err(internal)?;
            let dataset = lance::dataset_of(&bucket, &entry.location)?;
            let metric = Metric::parse(&entry.metric)?;
            let index =
                LanceIndex::open(worker, dataset, metric, params, entry.dimension as usize).await?;
            Ok::<_, VectorError>(index)
        };
        let index = match opened.await {
            Ok(index) => index,
            Err(error) => {
                tracing::warn!(index = %entry.name, %error, "cannot open the Lance dataset; rebuilding");
                return Err(Some(stored));
            }
        };
        let held = index.len();
        if held > stored.vectors.len() {
            tracing::warn!(index = %entry.name, held, stored = stored.vectors.len(),
                "the Lance dataset holds rows the stored vectors do not; rebuilding");
            return Err(Some(stored));
        }
        let missing: Vec<(u64, Vec<f32>)> = stored.vectors[held..]
            .iter()
            .enumerate()
            .map(|(i, vector)| ((held + i) as u64, vector.clone()))
            .collect();
        let documents = stored.documents()[held..].to_vec();
        let index = tokio::task::spawn_blocking(move || {
            index.add_documents(&missing, &documents).map(|()| index)
        })
        .await;
        match index {
            Ok(Ok(index)) => {
                tracing::info!(index = %entry.name, rows = stored.rows.len(),
                    appended = stored.vectors.len() - held, "Lance dataset opened");
                Ok((Box::new(index), stored.rows))
            }
            Ok(Err(error)) => {
                tracing::warn!(index = %entry.name, %error, "cannot append to the Lance dataset; rebuilding");
                Err(Some(stored))
            }
            Err(error) => {
                tracing::warn!(index = %entry.name, %error, "opening the Lance dataset failed; rebuilding");
                Err(Some(stored))
            }
        }
    }

    pub(super) async fn read_vectors(&self, entry: &IndexEntry) -> Result<Embedded, VectorError> {
        let table = vectors_table(&entry.name, &entry.bucket, &entry.location);
        let batches = self.engine.read_unlisted(&table).await.map_err(|e| {
            VectorError::Internal(format!("reading the vectors of index {}: {e}", entry.name))
        })?;
        let mut stored = Embedded::default();
        for batch in batches {
            let column = |name: &str| {
                batch.column_by_name(name).ok_or_else(|| {
                    internal(format!("the vectors of index {} lack {name}", entry.name))
                })
            };
            let id = arrow::compute::cast(column("id")?, &DataType::Int64).map_err(internal)?;
            let values = vectors_of(column("vector")?)?;
            stored.rows.extend(
                id.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.unwrap_or_default()),
            );
            match batch.column_by_name("chunk") {
                Some(chunk) => {
                    let chunk = arrow::compute::cast(chunk, &DataType::Int32).map_err(internal)?;
                    stored.chunks.extend(
                        chunk
                            .as_primitive::<arrow::datatypes::Int32Type>()
                            .iter()
                            .map(|v| v.unwrap_or_default()),
                    );
                }
                None => stored.chunks.extend(std::iter::repeat_n(0, values.len())),
            }
            if let Some(hash) = batch.column_by_name(TEXT_HASH) {
                let hash = arrow::compute::cast(hash, &DataType::Int64).map_err(internal)?;
                stored.hashes.extend(
                    hash.as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.unwrap_or_default() as u64),
                );
            }
            stored.vectors.extend(values);
        }
        Ok(stored)
    }
}

/// The unlisted Delta table of an index's vectors.
pub(super) fn vectors_table(name: &str, bucket: &str, location: &str) -> TableEntry {
    TableEntry::unlisted("_index", name, bucket, &format!("{location}vectors/"))
}

/// The rows of a list column of `f32` (Delta stores a fixed-size list as a list).
pub(super) fn vectors_of(list: &ArrayRef) -> Result<Vec<Vec<f32>>, VectorError> {
    match list.data_type() {
        DataType::FixedSizeList(..) => list_values(list.as_fixed_size_list().iter()),
        DataType::List(_) => list_values(list.as_list::<i32>().iter()),
        DataType::LargeList(_) => list_values(list.as_list::<i64>().iter()),
        other => Err(VectorError::Internal(format!("vectors stored as {other}"))),
    }
}

pub(super) fn list_values<'a>(
    rows: impl Iterator<Item = Option<ArrayRef>> + 'a,
) -> Result<Vec<Vec<f32>>, VectorError> {
    rows.map(|row| {
        let row = row.ok_or_else(|| internal("a stored vector is NULL"))?;
        let values = row
            .as_any()
            .downcast_ref::<Float32Array>()
            .ok_or_else(|| internal("stored vectors are not float32"))?;
        Ok(values.values().to_vec())
    })
    .collect()
}

/// Vectors keyed by their position, from `first` on (moved, not copied).
/// The saved graph of an HNSW index, in its folder beside the vectors' Delta table.
pub(super) const STRUCTURE_FILE: &str = "graph.bin";
/// Start of [`STRUCTURE_FILE`]: format version 1 (keys, then the graph's topology).
pub(super) const STRUCTURE_MAGIC: &[u8; 4] = b"LHI1";

/// Rebuilds the graph saved as `saved` over `vectors` (at `positions` by `(row,
/// chunk)`); the vectors it lacks are inserted after. Returns the index and the row
/// of each key.
pub(super) fn restore_graph(
    saved: &[u8],
    stored: &Embedded,
    index_of: impl FnOnce(&[u8], &dyn Fn(u64) -> Option<usize>) -> Result<Box<dyn VectorIndex>, String>,
) -> Result<(Box<dyn VectorIndex>, Vec<i64>), String> {
    let positions: HashMap<(i64, i32), usize> = stored
        .rows
        .iter()
        .zip(&stored.chunks)
        .enumerate()
        .map(|(position, (row, chunk))| ((*row, *chunk), position))
        .collect();
    let rest = saved
        .strip_prefix(STRUCTURE_MAGIC)
        .ok_or("not a saved graph of this version")?;
    let (count, rest) = rest.split_first_chunk::<8>().ok_or("truncated")?;
    let count = usize::try_from(u64::from_le_bytes(*count)).map_err(|e| e.to_string())?;
    if rest.len() < count.saturating_mul(12) {
        return Err("truncated".into());
    }
    let (keys, structure) = rest.split_at(count * 12);
    let mut rows = Vec::with_capacity(count);
    let mut key_positions = Vec::with_capacity(count);
    for key in keys.chunks_exact(12) {
        let (row, chunk) = key.split_at(8);
        let row = i64::from_le_bytes(row.try_into().map_err(|_| "truncated")?);
        let chunk = i32::from_le_bytes(chunk.try_into().map_err(|_| "truncated")?);
        let position = *positions.get(&(row, chunk)).ok_or_else(|| {
            format!("row {row} chunk {chunk} is in the graph, not in the vectors")
        })?;
        rows.push(row);
        key_positions.push(position);
    }
    let key_of = |key: u64| key_positions.get(usize::try_from(key).ok()?).copied();
    let index = index_of(structure, &key_of)?;
    if index.len() != count {
        return Err("the graph and its keys disagree".into());
    }
    let mut used = vec![false; stored.vectors.len()];
    for &position in &key_positions {
        used[position] = true;
    }
    // Vectors appended after the save (refreshes) get the next keys.
    let mut appended = Vec::new();
    for (position, vector) in stored.vectors.iter().enumerate() {
        if !used[position] {
            appended.push((rows.len() as u64, vector.clone()));
            rows.push(stored.rows[position]);
        }
    }
    index.add(&appended).map_err(|e| e.to_string())?;
    Ok((index, rows))
}

pub(super) fn keyed(first: usize, vectors: Vec<Vec<f32>>) -> Vec<(u64, Vec<f32>)> {
    (first as u64..).zip(vectors).collect()
}

/// The vectors as one batch: `id BIGINT`, `chunk INT`, `vector FixedSizeList<Float32, d>`.
pub(super) fn vectors_batch(
    embedded: &Embedded,
    dimension: usize,
    model: &str,
    metric: Metric,
    hashed: bool,
) -> Result<RecordBatch, VectorError> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let flat: Vec<f32> = embedded.vectors.iter().flatten().copied().collect();
    let list = FixedSizeListArray::try_new(
        Arc::clone(&item),
        dimension as i32,
        Arc::new(Float32Array::from(flat)),
        None,
    )
    .map_err(internal)?;
    let metadata = HashMap::from([
        ("lakehouse.model".to_string(), model.to_string()),
        ("lakehouse.dimension".to_string(), dimension.to_string()),
        ("lakehouse.metric".to_string(), metric.name().to_string()),
    ]);
    let mut fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("chunk", DataType::Int32, false),
        Field::new("vector", list.data_type().clone(), false).with_metadata(metadata),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(embedded.rows.clone())),
        Arc::new(Int32Array::from(embedded.chunks.clone())),
        Arc::new(list),
    ];
    if hashed && embedded.hashes.len() == embedded.rows.len() {
        // The hash's bits as a signed integer (Delta has no unsigned type).
        fields.push(Field::new(TEXT_HASH, DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from_iter_values(
            embedded.hashes.iter().map(|h| *h as i64),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(internal)
}

/// The column of the vectors table holding each vector's [`text_hash`] (absent in
/// tables written before it existed).
pub(super) const TEXT_HASH: &str = "text_hash";
