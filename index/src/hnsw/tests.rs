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

#[test]
fn a_saved_topology_restores_the_same_graph_and_damage_is_refused() {
    let mut graph = Graph::new(4, Metric::L2, 6, 40, 0);
    let vector = |id: u64| {
        vec![
            (id % 11) as f32,
            (id % 7) as f32,
            (id % 5) as f32,
            id as f32 / 50.0,
        ]
    };
    for id in 0..400u64 {
        graph.insert(id * 3, &vector(id * 3));
    }
    let saved = graph.topology();
    let restored = Graph::restore(Metric::L2, &saved, |id| Some(vector(id))).unwrap();
    assert_eq!(restored.topology(), saved);
    let query = [3.0, 2.0, 1.0, 4.0];
    assert_eq!(
        restored.search(&query, 10, 50, None),
        graph.search(&query, 10, 50, None)
    );
    // Inserting into a restored graph goes on as in the original.
    let mut again = Graph::restore(Metric::L2, &saved, |id| Some(vector(id))).unwrap();
    again.insert(5000, &vector(5000));
    graph.insert(5000, &vector(5000));
    assert_eq!(again.topology(), graph.topology());
    // Truncated, a bad link, a missing vector: errors.
    assert!(Graph::restore(Metric::L2, &saved[..saved.len() - 3], |id| Some(vector(id))).is_err());
    let mut bad = saved.clone();
    let first_slot = 4 + 6 * 4 + 8 + 400 * 8 + 400 * 4;
    bad[first_slot..first_slot + 4].copy_from_slice(&9999u32.to_le_bytes());
    assert!(Graph::restore(Metric::L2, &bad, |id| Some(vector(id))).is_err());
    assert!(Graph::restore(Metric::L2, &saved, |id| (id != 3).then(|| vector(id))).is_err());
}
