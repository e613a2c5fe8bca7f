use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

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
    Catalog::open(buckets, &CatalogOptions::default())
        .await
        .unwrap()
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
