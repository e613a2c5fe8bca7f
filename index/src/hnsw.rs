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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exact_matches_and_respects_filters() {
        let mut graph = Graph::new(2, Metric::L2, 4, 32, 0);
        for i in 0..500u64 {
            let x = (i % 25) as f32;
            let y = (i / 25) as f32;
            graph.insert(i, &[x, y]);
        }
        assert_eq!(graph.len(), 500);
        for i in [0u64, 137, 499] {
            let point = [(i % 25) as f32, (i / 25) as f32];
            let hits = graph.search(&point, 1, 32, None);
            assert_eq!(hits[0], (i, 0.0));
        }
        let even = |id: u64| id.is_multiple_of(2);
        let hits = graph.search(&[3.0, 3.0], 10, 40, Some(&even));
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|(id, _)| id.is_multiple_of(2)));
        assert!(hits.windows(2).all(|w| w[0].1 <= w[1].1));
        // A filter nothing passes: no hits, and the walk still ends.
        assert!(
            graph
                .search(&[3.0, 3.0], 5, 40, Some(&|_| false))
                .is_empty()
        );
    }

    #[test]
    fn the_same_inputs_build_the_same_graph() {
        let build = || {
            let mut graph = Graph::new(3, Metric::L2, 8, 64, 0);
            for i in 0..300u64 {
                let v = [(i * 7 % 13) as f32, (i * 3 % 17) as f32, (i % 5) as f32];
                graph.insert(i, &v);
            }
            graph
        };
        let (a, b) = (build(), build());
        assert_eq!(a.layer0, b.layer0);
        assert_eq!(a.top, b.top);
        assert_eq!(a.entry, b.entry);
    }
}
