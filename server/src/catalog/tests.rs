use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use super::*;
use crate::config::{ServeArgs, Settings};
use crate::storage::PRIMARY;

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn settings(name: &str) -> (Settings, TempDir) {
    let dir = std::env::temp_dir().join(format!(
        "lh-catalog-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let args = ServeArgs {
        data_dir: Some(dir.clone()),
        ..Default::default()
    };
    (Settings::resolve(args).unwrap(), TempDir(dir))
}

async fn open(settings: &Settings) -> Catalog {
    let buckets = Arc::new(BucketRegistry::open(settings).unwrap());
    Catalog::open(buckets).await.unwrap()
}

fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("a"), None])),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn created_tables_are_listed_readable_and_survive_reopening() {
    let (settings, _dir) = settings("reopen");
    let catalog = open(&settings).await;
    let data = batch();
    let entry = catalog
        .create_table("public", "people", PRIMARY, data.schema(), vec![data])
        .await
        .unwrap();
    assert_eq!(entry.qualified_name(), "public.people");
    assert!(entry.location.starts_with("tables/public/people-"));
    let table = catalog.open_table(&entry).await.unwrap();
    assert_eq!(table.version(), Some(0));

    let reopened = open(&settings).await;
    assert_eq!(reopened.table("public", "people").unwrap(), entry);
    assert_eq!(
        reopened.open_table(&entry).await.unwrap().version(),
        Some(0)
    );
}

#[tokio::test]
async fn empty_tables_get_their_schema_committed() {
    let (settings, _dir) = settings("empty");
    let catalog = open(&settings).await;
    let entry = catalog
        .create_table("public", "empty", PRIMARY, batch().schema(), vec![])
        .await
        .unwrap();
    let table = catalog.open_table(&entry).await.unwrap();
    assert_eq!(table.version(), Some(0));
}

#[tokio::test]
async fn refuses_duplicates_bad_names_and_unknown_places() {
    let (settings, _dir) = settings("refuse");
    let catalog = open(&settings).await;
    let schema = batch().schema();
    catalog
        .create_table("public", "t", PRIMARY, schema.clone(), vec![])
        .await
        .unwrap();
    let cases = [
        ("public", "t", PRIMARY, "already exists"),
        ("public", "Upper", PRIMARY, "invalid name"),
        ("public", "has space", PRIMARY, "invalid name"),
        ("public", "", PRIMARY, "invalid name"),
        ("nope", "t2", PRIMARY, "schema nope does not exist"),
        (
            "public",
            "t3",
            "nobucket",
            "bucket \"nobucket\" does not exist",
        ),
    ];
    for (schema_name, table, bucket, expected) in cases {
        let err = catalog
            .create_table(schema_name, table, bucket, schema.clone(), vec![])
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{schema_name}.{table}@{bucket}: {err}"
        );
    }
    assert!(matches!(
        catalog.table("public", "missing"),
        Err(CatalogError::TableNotFound { .. })
    ));
    assert!(matches!(
        catalog.table("nope", "t"),
        Err(CatalogError::SchemaNotFound(_))
    ));
    assert_eq!(
        catalog.snapshot().tables.len(),
        1,
        "refused tables leave no entry"
    );
}

#[tokio::test]
async fn an_unlisted_table_folder_is_invisible() {
    // A crash between the Delta commit and the catalog put leaves such a folder.
    let (settings, _dir) = settings("orphan");
    let catalog = open(&settings).await;
    let bucket = catalog.buckets().primary().unwrap();
    let orphan = TableEntry::new("public", "ghost", PRIMARY);
    let rows: datafusion::execution::SendableRecordBatchStream = Box::pin(
        RecordBatchStreamAdapter::new(batch().schema(), futures::stream::iter([Ok(batch())])),
    );
    let session = Arc::new(SessionStateBuilder::new().with_default_features().build());
    delta::write(&bucket, &orphan, WriteMode::Create, rows, session)
        .await
        .unwrap();
    let reopened = open(&settings).await;
    assert!(matches!(
        reopened.table("public", "ghost"),
        Err(CatalogError::TableNotFound { .. })
    ));
    // And the name is free: a new table gets a fresh folder.
    let entry = reopened
        .create_table("public", "ghost", PRIMARY, batch().schema(), vec![batch()])
        .await
        .unwrap();
    assert_ne!(entry.location, orphan.location);

    // The sweep at start removes the orphan, keeps listed tables and folders it did
    // not name (a user's files).
    let foreign = bucket.local_file("tables/public/notes/readme.txt").unwrap();
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    std::fs::write(&foreign, "mine").unwrap();
    let removed = reopened.sweep_orphans().await;
    assert_eq!(removed, vec![format!("primary:{}", orphan.location)]);
    assert!(bucket.list(&orphan.location).await.unwrap().is_empty());
    assert!(!bucket.list(&entry.location).await.unwrap().is_empty());
    assert!(foreign.exists());
    assert_eq!(reopened.sweep_orphans().await, Vec::<String>::new());
}

#[test]
fn names_are_lowercase_identifiers() {
    for ok in ["a", "_x", "lineitem_2024", &"n".repeat(128)] {
        assert!(validate_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "1abc", "A", "a-b", "a.b", "é", &"n".repeat(129)] {
        assert!(validate_name(bad).is_err(), "{bad}");
    }
}

fn rows(batches: Vec<RecordBatch>) -> datafusion::execution::SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        batch().schema(),
        futures::stream::iter(batches.into_iter().map(Ok)),
    ))
}

/// `good` batches, then the error `message`: rows whose source breaks midway.
fn failing_rows(good: usize, message: &str) -> datafusion::execution::SendableRecordBatchStream {
    let error = datafusion::error::DataFusionError::Execution(message.into());
    Box::pin(RecordBatchStreamAdapter::new(
        batch().schema(),
        futures::stream::iter((0..good).map(|_| Ok(batch())).chain([Err(error)])),
    ))
}

fn session() -> Arc<SessionState> {
    Arc::new(SessionStateBuilder::new().with_default_features().build())
}

/// The data files in the table's folder (relative, sorted), as a listing sees them.
async fn data_files(catalog: &Catalog, entry: &TableEntry) -> Vec<String> {
    let bucket = catalog.buckets().get(&entry.bucket).unwrap();
    let mut files: Vec<String> = bucket
        .list(&entry.location)
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.ends_with(".parquet") && !f.starts_with("_delta_log/"))
        .collect();
    files.sort();
    files
}

/// The files the table's latest version reads (relative, sorted).
async fn active_files(catalog: &Catalog, entry: &TableEntry) -> Vec<String> {
    let table = catalog.open_table(entry).await.unwrap();
    // Unpartitioned: every file sits in the table's folder.
    let mut files: Vec<String> = table
        .get_file_uris()
        .unwrap()
        .map(|uri| uri.rsplit('/').next().unwrap().to_string())
        .collect();
    files.sort();
    files
}

/// Puts a copy of one of the table's data files under a new name: what a write that
/// never committed leaves (a finished Parquet file no commit names).
async fn leave_uncommitted(catalog: &Catalog, entry: &TableEntry, name: &str) {
    let bucket = catalog.buckets().get(&entry.bucket).unwrap();
    let source = &data_files(catalog, entry).await[0];
    let bytes = bucket
        .get_opt(&format!("{}{source}", entry.location))
        .await
        .unwrap()
        .unwrap();
    bucket
        .put(&format!("{}{name}", entry.location), bytes)
        .await
        .unwrap();
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_write_that_does_not_commit_has_its_files_swept() {
    let (settings, _dir) = settings("failed-write");
    let catalog = open(&settings).await;
    let entry = catalog
        .create_table("public", "t", PRIMARY, batch().schema(), vec![batch()])
        .await
        .unwrap();
    let committed = data_files(&catalog, &entry).await;
    leave_uncommitted(&catalog, &entry, "part-00000-left-behind.snappy.parquet").await;
    let staged = catalog
        .buckets()
        .primary()
        .unwrap()
        .local_file(&format!("{}part-00001-half.parquet#7", entry.location))
        .unwrap();
    std::fs::write(&staged, b"half a file").unwrap();

    // An append whose rows fail midway: an error, and the sweep that follows it
    // deletes what no commit names.
    let failing = failing_rows(1, "upload broke");
    let error = catalog
        .write(&entry, WriteMode::Append, failing, session())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("upload broke"), "{error}");
    eventually("the sweep", async || {
        data_files(&catalog, &entry).await == committed && !staged.exists()
    })
    .await;
    eventually("the gates to settle", async || catalog.gates.quiet()).await;

    // A write dropped in flight (a cancelled call) is swept too.
    leave_uncommitted(&catalog, &entry, "part-00002-left-behind.snappy.parquet").await;
    let stalled: datafusion::execution::SendableRecordBatchStream =
        Box::pin(RecordBatchStreamAdapter::new(
            batch().schema(),
            futures::stream::iter([Ok(batch())]).chain(futures::stream::pending()),
        ));
    let write = catalog.write(&entry, WriteMode::Append, stalled, session());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), write)
            .await
            .is_err()
    );
    eventually("the sweep after a drop", async || {
        data_files(&catalog, &entry).await == committed
    })
    .await;

    // A committed write keeps its files, and nothing is swept after it.
    catalog
        .write(&entry, WriteMode::Append, rows(vec![batch()]), session())
        .await
        .unwrap();
    assert_eq!(
        data_files(&catalog, &entry).await.len(),
        committed.len() + 1
    );
    assert_eq!(
        data_files(&catalog, &entry).await,
        active_files(&catalog, &entry).await
    );
}

#[tokio::test]
async fn vacuum_deletes_expired_files_and_time_travel_says_so() {
    let (settings, _dir) = settings("vacuum");
    let catalog = open(&settings).await;
    let entry = catalog
        .create_table("public", "t", PRIMARY, batch().schema(), vec![batch()])
        .await
        .unwrap();
    for mode in [WriteMode::Append, WriteMode::Replace] {
        catalog
            .write(&entry, mode, rows(vec![batch()]), session())
            .await
            .unwrap();
    }
    leave_uncommitted(&catalog, &entry, "part-00009-left-behind.snappy.parquet").await;
    let week = std::time::Duration::from_secs(7 * 24 * 3600);

    // Dry run with the default retention: only the uncommitted file, nothing deleted.
    let before = data_files(&catalog, &entry).await;
    let (_, plan) = catalog
        .vacuum_table("public", "t", week, true)
        .await
        .unwrap();
    assert_eq!(plan.uncommitted.len(), 1);
    assert!(plan.expired.is_empty());
    assert_eq!((plan.latest, plan.oldest_readable), (2, 0));
    assert_eq!(data_files(&catalog, &entry).await, before);

    // Retain a week: the uncommitted file goes, every version stays readable.
    let (entry, swept) = catalog
        .vacuum_table("public", "t", week, false)
        .await
        .unwrap();
    assert_eq!(swept.uncommitted.len(), 1);
    assert_eq!(entry.vacuumed_before, None);
    catalog.open_table_version(&entry, 0).await.unwrap();

    // Retain nothing: the files of versions 0 and 1, which the overwrite removed, go.
    let (entry, swept) = catalog
        .vacuum_table("public", "t", std::time::Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(swept.expired.len(), 2);
    assert_eq!(swept.oldest_readable, 2);
    assert_eq!(entry.vacuumed_before, Some(2));
    assert_eq!(
        data_files(&catalog, &entry).await,
        active_files(&catalog, &entry).await
    );
    let error = catalog.open_table_version(&entry, 1).await.unwrap_err();
    assert!(matches!(
        error,
        CatalogError::VersionVacuumed {
            version: 1,
            oldest: 2,
            ..
        }
    ));
    assert!(
        error.to_string().contains("versions 2 and later"),
        "{error}"
    );
    catalog.open_table_version(&entry, 2).await.unwrap();
    // The bound is kept in the catalog.
    let reopened = open(&settings).await;
    assert_eq!(
        reopened.table("public", "t").unwrap().vacuumed_before,
        Some(2)
    );
    // Nothing left to do.
    let (_, again) = catalog
        .vacuum_table("public", "t", std::time::Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(again.bytes(), 0);
}

#[tokio::test]
async fn files_named_only_by_a_checkpoint_are_kept() {
    let (settings, _dir) = settings("checkpoint");
    let catalog = open(&settings).await;
    let entry = catalog
        .create_table("public", "t", PRIMARY, batch().schema(), vec![batch()])
        .await
        .unwrap();
    for _ in 0..2 {
        catalog
            .write(&entry, WriteMode::Append, rows(vec![batch()]), session())
            .await
            .unwrap();
    }
    let table = catalog.open_table(&entry).await.unwrap();
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .unwrap();
    // Log clean-up removes the commits the checkpoint replaces.
    let bucket = catalog.buckets().primary().unwrap();
    for version in 0..2 {
        bucket
            .delete(&format!("{}_delta_log/{version:020}.json", entry.location))
            .await
            .unwrap();
    }
    catalog
        .write(&entry, WriteMode::Append, rows(vec![batch()]), session())
        .await
        .unwrap();
    let before = data_files(&catalog, &entry).await;
    assert_eq!(before.len(), 4);
    let (_, swept) = catalog
        .vacuum_table("public", "t", std::time::Duration::ZERO, false)
        .await
        .unwrap();
    assert!(swept.uncommitted.is_empty(), "{swept:?}");
    assert!(swept.expired.is_empty(), "{swept:?}");
    assert_eq!(swept.oldest_readable, 2);
    assert_eq!(data_files(&catalog, &entry).await, before);
    assert_eq!(active_files(&catalog, &entry).await, before);
}

#[tokio::test]
async fn an_unclean_stop_is_noticed_at_the_next_start() {
    let (settings, _dir) = settings("running");
    let catalog = open(&settings).await;
    assert!(!catalog.begin_run().await.unwrap(), "first start");
    // Killed: no end_run.
    let again = open(&settings).await;
    assert!(again.begin_run().await.unwrap(), "after a kill");
    assert!(again.end_run(std::time::Duration::ZERO).await.unwrap());
    let third = open(&settings).await;
    assert!(!third.begin_run().await.unwrap(), "after a clean stop");
    let entry = third
        .create_table("public", "t", PRIMARY, batch().schema(), vec![batch()])
        .await
        .unwrap();
    leave_uncommitted(&third, &entry, "part-00003-left-behind.snappy.parquet").await;
    assert_eq!(third.sweep_tables().await.0, 1);
    assert_eq!(
        data_files(&third, &entry).await,
        active_files(&third, &entry).await
    );
}

#[tokio::test]
async fn a_sweep_waits_for_writes_in_flight_without_holding_up_new_ones() {
    let (settings, _dir) = settings("pending-sweep");
    let catalog = Arc::new(open(&settings).await);
    let entry = catalog
        .create_table("public", "t", PRIMARY, batch().schema(), vec![batch()])
        .await
        .unwrap();
    leave_uncommitted(&catalog, &entry, "part-00005-left-behind.snappy.parquet").await;
    // A: a long write in flight (its rows keep coming until `more` is dropped).
    let (more, rows_of_a) = futures::channel::mpsc::unbounded();
    more.unbounded_send(Ok(batch())).unwrap();
    let long: datafusion::execution::SendableRecordBatchStream =
        Box::pin(RecordBatchStreamAdapter::new(batch().schema(), rows_of_a));
    let a = tokio::spawn({
        let catalog = Arc::clone(&catalog);
        let entry = entry.clone();
        async move {
            catalog
                .write(&entry, WriteMode::Append, long, session())
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // B fails meanwhile: its sweep must wait for A (A's files look uncommitted until
    // A commits).
    let failing = failing_rows(0, "broken");
    catalog
        .write(&entry, WriteMode::Append, failing, session())
        .await
        .unwrap_err();
    // C is not held up by the pending sweep.
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        catalog.write(&entry, WriteMode::Append, rows(vec![batch()]), session()),
    )
    .await
    .expect("a new write goes ahead while a sweep waits")
    .unwrap();
    assert!(
        data_files(&catalog, &entry)
            .await
            .contains(&"part-00005-left-behind.snappy.parquet".to_string()),
        "no sweep while A is in flight"
    );
    assert!(!catalog.gates.quiet());
    // A ends and commits; the sweep runs then and keeps every committed file.
    drop(more);
    a.await.unwrap().unwrap();
    eventually("the pending sweep", async || {
        data_files(&catalog, &entry).await == active_files(&catalog, &entry).await
    })
    .await;
    assert_eq!(active_files(&catalog, &entry).await.len(), 3);
    eventually("the gates to settle", async || catalog.gates.quiet()).await;
}
