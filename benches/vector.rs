//! Vector index recall vs speed: Lakehouse's in-process HNSW (and flat) on a fixed set of
//! vectors, the figures `benches/vector_bench.py` prints beside Faiss.
//!
//! ```text
//! cargo bench -p lakehouse-index --bench vector -- --base BASE.f32 --queries QUERIES.f32 \
//!     --dim 50 [--k 10] [--m 16] [--ef-construction 200] [--ef 10,20,40,80,160,320] \
//!     [--truth TRUTH.i32] [--out FILE.json]
//! ```
//! BASE and QUERIES are raw little-endian `f32` rows of `dim` floats (cosine metric).
//! The truth (the `k` exact nearest base rows of each query, raw `i32`) is read from
//! TRUTH when given, else computed here with the flat index. Prints, and writes as JSON:
//! the HNSW build time (one thread, as the server builds), then per `ef` the recall@k
//! (mean) and queries per second on one thread, and the flat index's QPS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Instant;

use lakehouse_index::{FlatIndex, HnswIndex, HnswParams, Metric, SearchParams, VectorIndex};

fn read_f32(path: &PathBuf, dim: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    floats.chunks_exact(dim).map(<[f32]>::to_vec).collect()
}

fn read_i32(path: &PathBuf, k: usize) -> Vec<Vec<u64>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ids: Vec<u64> = bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
        .collect();
    ids.chunks_exact(k).map(<[u64]>::to_vec).collect()
}

fn recall(found: &[u64], truth: &[u64]) -> f64 {
    let hit = found.iter().filter(|id| truth.contains(id)).count();
    hit as f64 / truth.len() as f64
}

fn main() {
    let (mut base, mut queries, mut truth_path, mut out) = (None, None, None, None);
    let (mut dim, mut k, mut m, mut ef_construction) = (0usize, 10usize, 16usize, 200usize);
    let mut efs = vec![10usize, 20, 40, 80, 160, 320];
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--base" => base = Some(PathBuf::from(value())),
            "--queries" => queries = Some(PathBuf::from(value())),
            "--truth" => truth_path = Some(PathBuf::from(value())),
            "--out" => out = Some(PathBuf::from(value())),
            "--dim" => dim = value().parse().unwrap(),
            "--k" => k = value().parse().unwrap(),
            "--m" => m = value().parse().unwrap(),
            "--ef-construction" => ef_construction = value().parse().unwrap(),
            "--ef" => efs = value().split(',').map(|v| v.parse().unwrap()).collect(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(dim > 0, "--dim is required");
    let base = read_f32(&base.expect("--base"), dim);
    let queries = read_f32(&queries.expect("--queries"), dim);
    println!(
        "{} base vectors, {} queries, {dim}-d, k = {k}",
        base.len(),
        queries.len()
    );
    let items: Vec<(u64, Vec<f32>)> = (0u64..).zip(base).collect();

    let flat = FlatIndex::new(dim, Metric::Cosine);
    flat.add(&items).unwrap();
    let started = Instant::now();
    let exact: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| {
            let hits = flat.search(q, k, SearchParams::default(), None).unwrap();
            hits.iter().map(|h| h.id).collect()
        })
        .collect();
    let flat_qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    println!("flat (exact): {flat_qps:.0} QPS, one thread");
    let truth = match &truth_path {
        Some(path) => read_i32(path, k),
        None => exact.clone(),
    };
    let flat_recall = exact
        .iter()
        .zip(&truth)
        .map(|(f, t)| recall(f, t))
        .sum::<f64>()
        / queries.len() as f64;

    let params = HnswParams {
        m,
        ef_construction,
        ef_search: 64,
    };
    let started = Instant::now();
    let hnsw = HnswIndex::new(dim, Metric::Cosine, params, items.len()).unwrap();
    hnsw.add(&items).unwrap();
    let build_seconds = started.elapsed().as_secs_f64();
    println!(
        "hnsw build (M={m}, efConstruction={ef_construction}, one thread): {build_seconds:.1} s, ~{:.0} MB",
        hnsw.memory_bytes() as f64 / 1e6
    );
    let mut runs = Vec::new();
    for &ef in &efs {
        // One untimed pass, then the timed one.
        for q in queries.iter().take(100) {
            hnsw.search(
                q,
                k,
                SearchParams {
                    ef,
                    ..Default::default()
                },
                None,
            )
            .unwrap();
        }
        let started = Instant::now();
        let found: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| {
                let hits = hnsw
                    .search(
                        q,
                        k,
                        SearchParams {
                            ef,
                            ..Default::default()
                        },
                        None,
                    )
                    .unwrap();
                hits.iter().map(|h| h.id).collect()
            })
            .collect();
        let qps = queries.len() as f64 / started.elapsed().as_secs_f64();
        let mean = found
            .iter()
            .zip(&truth)
            .map(|(f, t)| recall(f, t))
            .sum::<f64>()
            / queries.len() as f64;
        println!("hnsw ef={ef:>4}: recall@{k} {mean:.4}, {qps:>8.0} QPS (one thread)");
        runs.push(serde_json::json!({"ef": ef, "recall": mean, "qps": qps}));
    }
    let result = serde_json::json!({
        "base": items.len(),
        "queries": queries.len(),
        "dim": dim,
        "k": k,
        "m": m,
        "ef_construction": ef_construction,
        "build_seconds": build_seconds,
        "bytes": hnsw.memory_bytes(),
        "flat_qps": flat_qps,
        "flat_recall": flat_recall,
        "runs": runs,
    });
    if let Some(out) = out {
        std::fs::write(&out, serde_json::to_vec_pretty(&result).unwrap()).unwrap();
    }
}
