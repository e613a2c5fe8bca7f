use super::*;
use crate::distance::{dot_portable, squared_l2_portable};

/// Deterministic pseudo-random vectors (xorshift), clustered so search is non-trivial.
fn vectors(n: usize, dimension: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.max(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..dimension).map(|_| next() * 4.0).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            c.iter().map(|x| x + next()).collect()
        })
        .collect()
}

#[test]
fn dispatched_distances_agree_with_the_portable_ones() {
    for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 31, 50, 384, 385] {
        let a: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..n)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) / 5.0)
            .collect();
        let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1.0);
        assert!(close(dot(&a, &b), dot_portable(&a, &b)), "dot, n = {n}");
        assert!(
            close(squared_l2(&a, &b), squared_l2_portable(&a, &b)),
            "l2, n = {n}"
        );
    }
}

#[test]
fn flat_is_exact_and_filters() {
    let index = FlatIndex::new(3, Metric::L2);
    index
        .add(&[
            (10, vec![0.0, 0.0, 0.0]),
            (11, vec![1.0, 0.0, 0.0]),
            (12, vec![0.0, 2.0, 0.0]),
            (13, vec![5.0, 5.0, 5.0]),
        ])
        .unwrap();
    let hits = index
        .search(&[0.9, 0.0, 0.0], 2, SearchParams::default(), None)
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![11, 10]);
    assert!((hits[0].distance - 0.01).abs() < 1e-6);
    let odd = |id: u64| id % 2 == 1;
    let hits = index
        .search(&[0.0, 0.0, 0.0], 5, SearchParams::default(), Some(&odd))
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![11, 13]);
    assert!(
        index
            .search(&[1.0], 1, SearchParams::default(), None)
            .is_err()
    );
    assert!(index.add(&[(1, vec![f32::NAN, 0.0, 0.0])]).is_err());
}

#[test]
fn cosine_ignores_length_and_dot_prefers_it() {
    let cosine = FlatIndex::new(2, Metric::Cosine);
    let dot = FlatIndex::new(2, Metric::Dot);
    let items = [(1, vec![10.0, 0.0]), (2, vec![0.6, 0.8])];
    cosine.add(&items).unwrap();
    dot.add(&items).unwrap();
    let q = [0.5, 0.9];
    let top = |i: &FlatIndex| i.search(&q, 1, SearchParams::default(), None).unwrap()[0].id;
    assert_eq!(top(&cosine), 2);
    assert_eq!(top(&dot), 1);
}

#[test]
fn hnsw_recall_against_flat_grows_with_ef() {
    let dimension = 32;
    let data = vectors(5000, dimension, 7);
    let items: Vec<(u64, Vec<f32>)> = data
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let flat = FlatIndex::new(dimension, Metric::Cosine);
    flat.add(&items).unwrap();
    let hnsw = HnswIndex::new(
        dimension,
        Metric::Cosine,
        HnswParams::default(),
        items.len(),
    )
    .unwrap();
    hnsw.add(&items).unwrap();
    assert_eq!(hnsw.len(), 5000);
    let queries = vectors(100, dimension, 99);
    let recall = |ef: usize| {
        let mut found = 0;
        for q in &queries {
            let truth: Vec<u64> = flat
                .search(q, 10, SearchParams::default(), None)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            let got = hnsw
                .search(
                    q,
                    10,
                    SearchParams {
                        ef,
                        ..Default::default()
                    },
                    None,
                )
                .unwrap();
            found += got.iter().filter(|h| truth.contains(&h.id)).count();
        }
        found as f64 / (queries.len() * 10) as f64
    };
    // Uniform noise in 32 dimensions inside each cluster makes near-ties common.
    let (low, high) = (recall(10), recall(200));
    assert!(high >= 0.9, "recall@10 with ef=200: {high}");
    assert!(high >= low, "ef 10: {low}, ef 200: {high}");
    // Filters return k hits when k match (here: ids divisible by 7).
    let keep = |id: u64| id.is_multiple_of(7);
    let hits = hnsw
        .search(
            &queries[0],
            10,
            SearchParams {
                ef: 200,
                ..Default::default()
            },
            Some(&keep),
        )
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.id % 7 == 0));
    // Incremental adds are found.
    hnsw.add(&[(99_999, queries[1].clone())]).unwrap();
    let hits = hnsw
        .search(
            &queries[1],
            1,
            SearchParams {
                ef: 64,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(hits[0].id, 99_999);
    assert!(hits[0].distance < 1e-5);
}

#[test]
fn hnsw_rejects_bad_parameters() {
    let bad = HnswParams {
        m: 300,
        ..HnswParams::default()
    };
    assert!(HnswIndex::new(8, Metric::Cosine, bad, 10).is_err());
    assert!(HnswIndex::new(8, Metric::Dot, HnswParams::default(), 10).is_err());
}
