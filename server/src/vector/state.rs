//! One build of an index in memory: the backend's structure, the vectors a refresh
//! added since (searched exactly), the key → row map, tombstones and the BM25 text
//! index; and the vectors embedded from rows on their way to it.
//!
//! Vectors are keyed by their position; `State::rows` maps a key to its row, and a
//! search returns each row once, at its best chunk, widening the backend's search
//! until `k` distinct rows (passing the filter) are found or the index is exhausted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use tokio::sync::OnceCell;

use super::bm25::Bm25;
use super::error::{VectorError, internal};
use super::index::{FlatIndex, SearchParams, VectorIndex};
use crate::catalog::IndexEntry;

/// What searches read of one build of an index; refreshes grow it in place.
pub(super) struct State {
    /// Graph or flat, keyed by vector key.
    pub(super) index: Box<dyn VectorIndex>,
    /// Vectors a refresh embedded that are not in `index` yet, searched exactly.
    pub(super) fresh: FlatIndex,
    /// Row id of each vector key.
    pub(super) rows: RwLock<Vec<i64>>,
    /// Rows that have vectors, with the hash of the text they were made from (`None`:
    /// unknown, for vectors stored before hashes were).
    pub(super) texts: RwLock<HashMap<i64, Option<u64>>>,
    /// Keys of vectors whose row was deleted or re-embedded since the build: never
    /// returned (a tombstone, for every backend, through the search filter).
    pub(super) dead: RwLock<HashSet<u64>>,
    /// BM25 over the rows' texts, built by the first text or hybrid search.
    pub(super) text: OnceCell<RwLock<Bm25>>,
}

impl State {
    /// A build whose key `k` is a vector of row `rows[k]`; `texts` has the text hash
    /// of the rows (rows it lacks are unknown).
    pub(super) fn new(
        index: Box<dyn VectorIndex>,
        rows: Vec<i64>,
        mut texts: HashMap<i64, Option<u64>>,
    ) -> Self {
        let fresh = FlatIndex::new(index.dimension(), index.metric());
        for row in &rows {
            texts.entry(*row).or_insert(None);
        }
        Self {
            index,
            fresh,
            rows: RwLock::new(rows),
            texts: RwLock::new(texts),
            dead: RwLock::new(HashSet::new()),
            text: OnceCell::new(),
        }
    }

    /// The `k` rows nearest to `query` among `allowed`, each at its best chunk,
    /// closest first. Widens the search until `k` distinct rows are found or every
    /// vector has been considered.
    pub(super) fn nearest(
        &self,
        query: &[f32],
        k: usize,
        params: SearchParams,
        allowed: Option<&HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>, VectorError> {
        let rows = self.rows.read().map_err(internal)?;
        let dead = self.dead.read().map_err(internal)?;
        let keep = |key: u64| {
            !dead.contains(&key)
                && rows
                    .get(key as usize)
                    .is_some_and(|row| allowed.is_none_or(|a| a.contains(row)))
        };
        let filter: Option<&(dyn Fn(u64) -> bool + Sync)> = match allowed {
            None if dead.is_empty() => None,
            _ => Some(&keep),
        };
        let total = self.index.len() + self.fresh.len();
        let mut want = k.min(total).max(1);
        loop {
            let mut hits = self.index.search(query, want, params, filter)?;
            hits.extend(self.fresh.search(query, want, params, filter)?);
            hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
            let mut seen = HashSet::new();
            let best: Vec<(i64, f32)> = hits
                .iter()
                .filter(|hit| !dead.contains(&hit.id))
                .filter_map(|hit| {
                    let row = *rows.get(hit.id as usize)?;
                    seen.insert(row).then_some((row, hit.distance))
                })
                .take(k)
                .collect();
            if best.len() >= k || want >= total {
                return Ok(best);
            }
            want = (want * 2).min(total);
        }
    }

    pub(super) fn memory_bytes(&self) -> u64 {
        let text = self
            .text
            .get()
            .and_then(|t| t.read().ok().map(|t| t.memory_bytes()))
            .unwrap_or(0);
        (self.index.memory_bytes() + self.fresh.memory_bytes() + text) as u64
    }
}

/// An index in memory, with what the catalog said of it when loaded or refreshed.
pub(super) struct Loaded {
    pub(super) entry: IndexEntry,
    pub(super) state: Arc<State>,
}

/// Vectors embedded from rows: per vector, its row and chunk number.
#[derive(Default)]
pub(super) struct Embedded {
    pub(super) rows: Vec<i64>,
    pub(super) chunks: Vec<i32>,
    /// Per vector, the hash of its row's whole text ([`text_hash`]); empty for
    /// vectors stored before hashes were.
    pub(super) hashes: Vec<u64>,
    pub(super) vectors: Vec<Vec<f32>>,
    pub(super) seconds: f64,
}

impl Embedded {
    /// The `(id, chunk)` of each vector.
    pub(super) fn documents(&self) -> Vec<(i64, i32)> {
        self.rows
            .iter()
            .copied()
            .zip(self.chunks.iter().copied())
            .collect()
    }

    pub(super) fn distinct_rows(&self) -> u64 {
        self.chunks.iter().filter(|&&c| c == 0).count() as u64
    }

    /// Each row's text hash, where known.
    pub(super) fn texts(&self) -> HashMap<i64, Option<u64>> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, row)| (*row, self.hashes.get(i).copied()))
            .collect()
    }

    /// Appends `other`.
    pub(super) fn extend(&mut self, other: Embedded) {
        self.seconds += other.seconds;
        self.rows.extend(other.rows);
        self.chunks.extend(other.chunks);
        self.hashes.extend(other.hashes);
        self.vectors.extend(other.vectors);
    }
}

/// A stable 64-bit hash of a row's text (FNV-1a): what tells a refresh that an
/// updated row's text changed and its vectors must be made again.
pub(super) fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// [`text_hash`] of a precomputed vector's bits: what tells a refresh that an
/// updated row's vector changed.
pub(super) fn vector_hash(vector: &[f32]) -> u64 {
    vector
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::index::Metric;

    /// Keys 0 and 1 are two chunks of row 10; keys 2 and 3 are rows 20 and 30.
    fn state() -> State {
        let index = FlatIndex::new(2, Metric::L2);
        index
            .add(&[
                (0, vec![0.0, 0.0]),
                (1, vec![5.0, 5.0]),
                (2, vec![0.1, 0.0]),
                (3, vec![0.2, 0.0]),
            ])
            .unwrap();
        State::new(Box::new(index), vec![10, 10, 20, 30], HashMap::new())
    }

    fn ids(found: &[(i64, f32)]) -> Vec<i64> {
        found.iter().map(|f| f.0).collect()
    }

    #[test]
    fn a_row_comes_back_once_at_its_best_chunk() {
        let s = state();
        assert_eq!(
            ids(&s
                .nearest(&[0.0, 0.0], 3, SearchParams::default(), None)
                .unwrap()),
            [10, 20, 30]
        );
        assert_eq!(
            s.nearest(&[5.0, 5.0], 10, SearchParams::default(), None)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            s.nearest(&[5.0, 5.0], 1, SearchParams::default(), None)
                .unwrap(),
            vec![(10, 0.0)]
        );
        let allowed = HashSet::from([30]);
        assert_eq!(
            ids(&s
                .nearest(&[0.0, 0.0], 2, SearchParams::default(), Some(&allowed))
                .unwrap()),
            [30]
        );
    }

    #[test]
    fn fresh_vectors_are_searched_beside_the_index() {
        let s = state();
        s.rows.write().unwrap().push(40);
        s.fresh.add(&[(4, vec![-0.05, 0.0])]).unwrap();
        assert_eq!(
            ids(&s
                .nearest(&[-0.1, 0.0], 2, SearchParams::default(), None)
                .unwrap()),
            [40, 10]
        );
        s.fresh.clear();
        assert_eq!(
            ids(&s
                .nearest(&[-0.1, 0.0], 1, SearchParams::default(), None)
                .unwrap()),
            [10]
        );
    }
}
