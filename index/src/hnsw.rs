//! HNSW (Malkov & Yashunin, 2016) over flat arrays.
//!
//! Nodes are dense `u32`s in insertion order. Vectors live in one `Vec<f32>`; the
//! layer-0 neighbour lists in one `Vec<u32>` of `2·M` slots per node (with a count);
//! the few nodes above layer 0 keep their upper lists in small vectors. A search
//! marks visited nodes in a per-thread array of generation stamps, so it allocates
//! nothing per visited node and never clears the array. Neighbours are chosen with
//! the paper's heuristic (a candidate is kept only if it is closer to the node than
//! to every neighbour kept so far), which keeps clustered data navigable. Levels come
//! from a seeded generator: the same inputs build the same graph.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::Metric;

/// Highest layer a node may get (enough for billions of nodes at M ≥ 4).
const MAX_LEVEL: usize = 16;

/// A node and its distance to the point being searched for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    /// Distance (lower is closer).
    pub distance: f32,
    /// The node.
    pub node: u32,
}

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.node.cmp(&other.node))
    }
}

thread_local! {
    /// Generation stamps of visited nodes, and the current generation.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Runs `f` with a fresh visited set for `n` nodes: `f` gets a closure that marks a
/// node and says whether it was new.
fn with_visited<R>(n: usize, f: impl FnOnce(&mut dyn FnMut(u32) -> bool) -> R) -> R {
    VISITED.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (stamps, generation) = &mut *guard;
        if stamps.len() < n {
            stamps.resize(n, 0);
        }
        *generation = generation.wrapping_add(1);
        if *generation == 0 {
            stamps.fill(0);
            *generation = 1;
        }
        let current = *generation;
        let mut visit = |node: u32| {
            let slot = &mut stamps[node as usize];
            if *slot == current {
                false
            } else {
                *slot = current;
                true
            }
        };
        f(&mut visit)
    })
}

/// The graph. Not synchronised: the index wraps it in a lock (searches share it,
/// inserts take it alone).
pub struct Graph {
    dimension: usize,
    metric: Metric,
    /// Neighbours kept per node on the upper layers.
    m: usize,
    /// Neighbour slots per node on layer 0.
    m0: usize,
    ef_construction: usize,
    level_factor: f64,
    ids: Vec<u64>,
    /// Row-major, `dimension` floats per node.
    vectors: Vec<f32>,
    /// `m0` slots per node.
    layer0: Vec<u32>,
    /// Used slots of each node's layer-0 list.
    counts: Vec<u16>,
    /// `upper[node][level - 1]`: the node's neighbours on `level` ≥ 1.
    upper: Vec<Vec<Vec<u32>>>,
    entry: u32,
    top: usize,
    seed: u64,
}

impl Graph {
    /// An empty graph; `capacity` vectors are reserved for.
    pub fn new(
        dimension: usize,
        metric: Metric,
        m: usize,
        ef_construction: usize,
        capacity: usize,
    ) -> Self {
        let m = m.max(2);
        Self {
            dimension,
            metric,
            m,
            m0: 2 * m,
            ef_construction: ef_construction.max(m),
            level_factor: 1.0 / (m as f64).ln(),
            ids: Vec::with_capacity(capacity),
            vectors: Vec::with_capacity(capacity * dimension),
            layer0: Vec::with_capacity(capacity * 2 * m),
            counts: Vec::with_capacity(capacity),
            upper: Vec::with_capacity(capacity),
            entry: 0,
            top: 0,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Vector length.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Neighbours per node on the upper layers (M).
    pub fn m(&self) -> usize {
        self.m
    }

    /// Nodes held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Bytes held by vectors, ids and neighbour lists.
    pub fn memory_bytes(&self) -> usize {
        let upper: usize = self
            .upper
            .iter()
            .flat_map(|levels| levels.iter())
            .map(|list| list.capacity() * 4 + 24)
            .sum();
        self.vectors.capacity() * 4
            + self.ids.capacity() * 8
            + self.layer0.capacity() * 4
            + self.counts.capacity() * 2
            + self.upper.capacity() * 24
            + upper
    }

    fn vector(&self, node: u32) -> &[f32] {
        let start = node as usize * self.dimension;
        &self.vectors[start..start + self.dimension]
    }

    fn distance(&self, query: &[f32], node: u32) -> f32 {
        self.metric.distance(query, self.vector(node))
    }

    fn neighbours(&self, node: u32, level: usize) -> &[u32] {
        if level == 0 {
            let start = node as usize * self.m0;
            &self.layer0[start..start + usize::from(self.counts[node as usize])]
        } else {
            &self.upper[node as usize][level - 1]
        }
    }

    fn set_neighbours(&mut self, node: u32, level: usize, list: &[u32]) {
        if level == 0 {
            let start = node as usize * self.m0;
            self.layer0[start..start + list.len()].copy_from_slice(list);
            // At most m0 ≤ 510 entries.
            self.counts[node as usize] = list.len() as u16;
        } else {
            self.upper[node as usize][level - 1] = list.to_vec();
        }
    }

    fn random_level(&mut self) -> usize {
        // xorshift64*: a uniform draw in (0, 1].
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        let bits = self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let uniform = (bits as f64 + 1.0) / (1u64 << 53) as f64;
        ((-uniform.ln() * self.level_factor) as usize).min(MAX_LEVEL)
    }

    /// Adds `vector` (already normalised for cosine) as `id`.
    pub fn insert(&mut self, id: u64, vector: &[f32]) {
        let node = self.ids.len() as u32;
        let level = self.random_level();
        self.ids.push(id);
        self.vectors.extend_from_slice(vector);
        self.layer0.resize(self.layer0.len() + self.m0, 0);
        self.counts.push(0);
        self.upper.push(vec![Vec::new(); level]);
        if node == 0 {
            self.entry = 0;
            self.top = level;
            return;
        }
        let mut nearest = self.descend(vector, level + 1);
        for layer in (0..=level.min(self.top)).rev() {
            let found = self.search_layer(vector, &nearest, self.ef_construction, layer, None);
            // As Faiss does: a new node may fill all 2·M slots of layer 0 at once.
            let max = if layer == 0 { self.m0 } else { self.m };
            let chosen = self.select(&found, max);
            self.set_neighbours(node, layer, &chosen);
            for &neighbour in &chosen {
                self.link(neighbour, node, layer);
            }
            nearest = found;
        }
        if level > self.top {
            self.top = level;
            self.entry = node;
        }
    }

    /// Greedy descent from the entry point down to layer `floor`: the closest node found.
    fn descend(&self, query: &[f32], floor: usize) -> Vec<Near> {
        let mut best = Near {
            distance: self.distance(query, self.entry),
            node: self.entry,
        };
        for layer in (floor..=self.top).rev() {
            loop {
                let mut moved = false;
                for &neighbour in self.neighbours(best.node, layer) {
                    let distance = self.distance(query, neighbour);
                    if distance < best.distance {
                        best = Near {
                            distance,
                            node: neighbour,
                        };
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        vec![best]
    }

    /// Up to `max` of `candidates` (sorted, closest first) by the paper's heuristic.
    fn select(&self, candidates: &[Near], max: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(max);
        for candidate in candidates {
            if kept.len() >= max {
                break;
            }
            let vector = self.vector(candidate.node);
            let diverse = kept
                .iter()
                .all(|&other| self.distance(vector, other) > candidate.distance);
            if diverse {
                kept.push(candidate.node);
            }
        }
        kept
    }

    /// Adds `to` to `from`'s list on `layer`, re-choosing the list when it is full.
    fn link(&mut self, from: u32, to: u32, layer: usize) {
        let max = if layer == 0 { self.m0 } else { self.m };
        let current = self.neighbours(from, layer);
        if current.len() < max {
            let mut list = current.to_vec();
            list.push(to);
            self.set_neighbours(from, layer, &list);
            return;
        }
        let base = self.vector(from);
        let mut candidates: Vec<Near> = current
            .iter()
            .chain(std::iter::once(&to))
            .map(|&node| Near {
                distance: self.metric.distance(base, self.vector(node)),
                node,
            })
            .collect();
        candidates.sort_unstable();
        let chosen = self.select(&candidates, max);
        self.set_neighbours(from, layer, &chosen);
    }

    /// The best `ef` nodes of `layer` reachable from `entries` (closest first); with
    /// a filter, only nodes whose id passes are kept, but every node is walked through.
    fn search_layer(
        &self,
        query: &[f32],
        entries: &[Near],
        ef: usize,
        layer: usize,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<Near> {
        let passes = |node: u32| filter.is_none_or(|keep| keep(self.ids[node as usize]));
        with_visited(self.len(), |visit| {
            let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef * 2);
            let mut results: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
            for &entry in entries {
                if visit(entry.node) {
                    candidates.push(Reverse(entry));
                    if passes(entry.node) {
                        results.push(entry);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
            while let Some(Reverse(closest)) = candidates.pop() {
                if results.len() >= ef
                    && results
                        .peek()
                        .is_some_and(|w| closest.distance > w.distance)
                {
                    break;
                }
                for &neighbour in self.neighbours(closest.node, layer) {
                    if !visit(neighbour) {
                        continue;
                    }
                    let distance = self.distance(query, neighbour);
                    let worth =
                        results.len() < ef || results.peek().is_some_and(|w| distance < w.distance);
                    if worth {
                        let near = Near {
                            distance,
                            node: neighbour,
                        };
                        candidates.push(Reverse(near));
                        if passes(neighbour) {
                            results.push(near);
                            if results.len() > ef {
                                results.pop();
                            }
                        }
                    }
                }
            }
            results.into_sorted_vec()
        })
    }

    /// The `k` nearest ids passing `filter`, searching `ef` ≥ `k` candidates.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        if self.ids.is_empty() || k == 0 {
            return Vec::new();
        }
        let entries = self.descend(query, 1);
        self.search_layer(query, &entries, ef.max(k), 0, filter)
            .into_iter()
            .take(k)
            .map(|near| (self.ids[near.node as usize], near.distance))
            .collect()
    }
}

/// Start of a saved topology (format version 1).
const MAGIC: &[u8; 4] = b"LHG1";

/// Reads little-endian numbers off a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or("the saved graph is truncated")?;
        self.0 = rest;
        Ok(*head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.take::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.take::<8>().map(u64::from_le_bytes)
    }
}

impl Graph {
    /// The graph without its vectors: ids, levels and neighbour lists. With the
    /// vectors, [`Graph::restore`] gives back the same graph.
    pub fn topology(&self) -> Vec<u8> {
        let n = self.len();
        let mut out = Vec::with_capacity(40 + n * (8 + 2 + 4 * self.m0 + 1));
        out.extend_from_slice(MAGIC);
        for value in [self.dimension, self.m, self.ef_construction, n, self.top] {
            out.extend_from_slice(&(value as u32).to_le_bytes());
        }
        out.extend_from_slice(&self.entry.to_le_bytes());
        out.extend_from_slice(&self.seed.to_le_bytes());
        for id in &self.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for count in &self.counts {
            out.extend_from_slice(&u32::from(*count).to_le_bytes());
        }
        for slot in &self.layer0 {
            out.extend_from_slice(&slot.to_le_bytes());
        }
        for levels in &self.upper {
            out.extend_from_slice(&(levels.len() as u32).to_le_bytes());
            for list in levels {
                out.extend_from_slice(&(list.len() as u32).to_le_bytes());
                for node in list {
                    out.extend_from_slice(&node.to_le_bytes());
                }
            }
        }
        out
    }

    /// The graph saved by [`Graph::topology`], with `vector(id)` giving each node's
    /// vector (as it was inserted). Every field is checked: a damaged or mismatched
    /// save is an error, never a graph that reads out of bounds.
    pub fn restore(
        metric: Metric,
        topology: &[u8],
        vector: impl Fn(u64) -> Option<Vec<f32>>,
    ) -> Result<Self, String> {
        let mut r = Reader(topology);
        if &r.take::<4>()? != MAGIC {
            return Err("not a saved graph (or another format version)".into());
        }
        let dimension = r.u32()? as usize;
        let m = r.u32()? as usize;
        let ef_construction = r.u32()? as usize;
        let n = r.u32()? as usize;
        let top = r.u32()? as usize;
        let entry = r.u32()?;
        let seed = r.u64()?;
        if !(2..=255).contains(&m) || top > MAX_LEVEL || (n > 0 && entry as usize >= n) {
            return Err("the saved graph's header is inconsistent".into());
        }
        // Sizes are checked against what is left before anything is allocated.
        let m0 = 2 * m;
        if r.0.len() < n.saturating_mul(8 + 4 + 4 * m0 + 4) {
            return Err("the saved graph is truncated".into());
        }
        let mut graph = Self::new(dimension, metric, m, ef_construction, n);
        graph.seed = seed;
        graph.entry = entry;
        graph.top = top;
        for _ in 0..n {
            let id = r.u64()?;
            let v = vector(id).ok_or_else(|| format!("no vector for node id {id}"))?;
            if v.len() != dimension {
                return Err(format!("the vector of id {id} has {} dimensions", v.len()));
            }
            graph.ids.push(id);
            graph.vectors.extend_from_slice(&v);
        }
        let bound = |node: u32| -> Result<u32, String> {
            if (node as usize) < n {
                Ok(node)
            } else {
                Err("the saved graph links a node that does not exist".into())
            }
        };
        for _ in 0..n {
            let count = r.u32()?;
            if count as usize > m0 {
                return Err("the saved graph has an overfull neighbour list".into());
            }
            graph.counts.push(count as u16);
        }
        for _ in 0..n * m0 {
            graph.layer0.push(r.u32()?);
        }
        for node in 0..n {
            let used = usize::from(graph.counts[node]);
            for slot in &graph.layer0[node * m0..node * m0 + used] {
                bound(*slot)?;
            }
        }
        for _ in 0..n {
            let levels = r.u32()? as usize;
            if levels > MAX_LEVEL {
                return Err("the saved graph has a node above the top level".into());
            }
            let mut lists = Vec::with_capacity(levels);
            for _ in 0..levels {
                let len = r.u32()? as usize;
                if len > m {
                    return Err("the saved graph has an overfull neighbour list".into());
                }
                let list = (0..len)
                    .map(|_| r.u32().and_then(bound))
                    .collect::<Result<Vec<_>, _>>()?;
                lists.push(list);
            }
            graph.upper.push(lists);
        }
        if n > 0 && graph.upper[entry as usize].len() != top {
            return Err("the saved graph's entry point is not on its top level".into());
        }
        if !r.0.is_empty() {
            return Err("the saved graph has trailing bytes".into());
        }
        Ok(graph)
    }
}

#[cfg(test)]
mod tests;
