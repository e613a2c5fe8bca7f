//! HNSW recall on real vectors: GloVe 6B 50-d (fetched by `scripts/fetch-data.sh`).
//! The first 10 000 words are the corpus, 100 later words the queries; exact search
//! (the flat index) is the truth. Recall@10 (cosine) must grow with `ef` and pass 0.95
//! at `ef = 200`, and filtered searches must still return k rows. (The benchmark runs
//! the same on 100 000 words in release; this debug test keeps the corpus small.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::PathBuf;

use lakehouse::vector::index::{
    FlatIndex, HnswIndex, HnswParams, Metric, SearchParams, VectorIndex,
};

const BASE: usize = 10_000;
const QUERIES: usize = 100;
const K: usize = 10;

/// Rows of a 2-d little-endian f32 `.npy` file (C or Fortran order).
fn glove() -> Vec<Vec<f32>> {
    let data = std::env::var_os("LAKEHOUSE_DATA").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/lakehouse/data"),
        PathBuf::from,
    );
    let path = data.join("glove/glove_6B_50d_emb.npy");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/fetch-data.sh to fetch GloVe",
            path.display()
        )
    });
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f4'"), "{header}");
    let fortran = header.contains("'fortran_order': True");
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let (rows, dim) = (shape[0], shape[1]);
    let floats: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(floats.len(), rows * dim);
    (0..rows)
        .map(|i| {
            (0..dim)
                .map(|j| {
                    if fortran {
                        floats[j * rows + i]
                    } else {
                        floats[i * dim + j]
                    }
                })
                .collect()
        })
        .collect()
}

fn recall(index: &dyn VectorIndex, truth: &[Vec<u64>], queries: &[Vec<f32>], ef: usize) -> f64 {
    let mut total = 0.0;
    for (query, truth) in queries.iter().zip(truth) {
        let found: HashSet<u64> = index
            .search(
                query,
                K,
                SearchParams {
                    ef,
                    ..Default::default()
                },
                None,
            )
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        total += truth.iter().filter(|id| found.contains(id)).count() as f64 / K as f64;
    }
    total / queries.len() as f64
}

#[test]
fn hnsw_recall_on_glove() {
    let vectors = glove();
    assert_eq!(vectors.len(), 400_000);
    let items: Vec<(u64, Vec<f32>)> = (0u64..).zip(vectors[..BASE].iter().cloned()).collect();
    // Queries: every 1000th word after the corpus (rarer words, not in the index).
    let queries: Vec<Vec<f32>> = vectors[BASE..]
        .iter()
        .step_by(1000)
        .take(QUERIES)
        .cloned()
        .collect();
    {
        let metric = Metric::Cosine;
        let flat = FlatIndex::new(50, metric);
        flat.add(&items).unwrap();
        let truth: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| {
                let hits = flat.search(q, K, SearchParams::default(), None).unwrap();
                hits.iter().map(|h| h.id).collect()
            })
            .collect();
        let hnsw = HnswIndex::new(50, metric, HnswParams::default(), BASE).unwrap();
        hnsw.add(&items).unwrap();
        let low = recall(&hnsw, &truth, &queries, 10);
        let high = recall(&hnsw, &truth, &queries, 200);
        assert!(high >= 0.95, "{metric:?}: recall@10 {high} at ef 200");
        assert!(high >= low, "{metric:?}: recall fell from {low} to {high}");
        // A filter keeping one vector in 50 still yields k hits.
        let keep = |id: u64| id % 50 == 7;
        for query in queries.iter().take(20) {
            let hits = hnsw
                .search(
                    query,
                    K,
                    SearchParams {
                        ef: 200,
                        ..Default::default()
                    },
                    Some(&keep),
                )
                .unwrap();
            assert_eq!(hits.len(), K);
            assert!(hits.iter().all(|h| keep(h.id)));
        }
    }
}
