use super::*;

#[test]
fn versions_of_log_files() {
    assert_eq!(log_version("00000000000000000012.json"), Some(12));
    assert_eq!(
        log_version("00000000000000000010.checkpoint.parquet"),
        Some(10)
    );
    assert_eq!(
        log_version("00000000000000000010.checkpoint.0000000001.0000000002.parquet"),
        Some(10)
    );
    assert_eq!(
        log_version("00000000000000000004.00000000000000000009.compacted.json"),
        Some(9)
    );
    assert_eq!(log_version("_sidecars/3a0d65cd-4056-49b8.parquet"), None);
    assert_eq!(log_version("_last_checkpoint"), None);
}

#[test]
fn the_active_set_replays_commits_after_the_checkpoint() {
    let mut log = LogFiles {
        checkpoint: Some((2, vec!["a.parquet".into(), "b.parquet".into()])),
        adds: vec![(1, "a.parquet".into()), (3, "c.parquet".into())],
        ..LogFiles::default()
    };
    note_removal(&mut log, "b.parquet".into(), 4, 10);
    note_removal(&mut log, "old.parquet".into(), 1, 5);
    let active = log.active();
    let mut active: Vec<_> = active.into_iter().collect();
    active.sort();
    assert_eq!(active, ["a.parquet", "c.parquet"]);
}

#[test]
fn json_actions_name_their_files_decoded() {
    let mut log = LogFiles::default();
    let commit = br#"{"commitInfo":{"operation":"WRITE"}}
{"add":{"path":"x%3D1/part-1.parquet","size":1}}
{"remove":{"path":"part-0.parquet","deletionTimestamp":77}}
"#;
    read_json_actions(commit, Some(5), &mut log).unwrap();
    assert!(log.named.contains("x=1/part-1.parquet"));
    let removal = log.removed["part-0.parquet"];
    assert_eq!((removal.version, removal.deleted_ms), (5, 77));
    assert!(read_json_actions(b"{\"add\":", Some(6), &mut log).is_err());
}
