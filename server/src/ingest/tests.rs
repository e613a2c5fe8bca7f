//! The ingest envelope seen from outside: every committed write (SQL or bulk
//! ingest) publishes one dataset event and START/COMPLETE lineage.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

use super::{BulkIngest, IfExists, IfMissing, bulk_ingest};
use crate::config::{ServeArgs, Settings};
use crate::query::{QueryEngine, SessionDefaults, Statement, classify};

async fn engine() -> (QueryEngine, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("lh-ingest-{}", uuid::Uuid::new_v4().simple()));
    let settings = Settings::resolve(ServeArgs {
        data_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    (crate::server::open_engine(&settings).await.unwrap(), dir)
}

#[tokio::test]
async fn committed_writes_publish_dataset_events_and_lineage() {
    use crate::events::ChangeKind;
    let (engine, dir) = engine().await;
    let mut events = engine.services().events.subscribe();
    let ctx = engine.session(&SessionDefaults::default());
    // SQL writes.
    for sql in [
        "CREATE TABLE ev (id BIGINT, name VARCHAR)",
        "INSERT INTO ev VALUES (1, 'a'), (2, 'b')",
        "DELETE FROM ev WHERE id = 1",
    ] {
        let plan = engine.plan(&ctx, sql).await.unwrap();
        let Statement::Write(write) = classify(plan, &SessionDefaults::default()).unwrap() else {
            panic!("{sql} is not a write");
        };
        engine.execute_writes(&ctx, vec![*write]).await.unwrap();
    }
    // A bulk ingest (ADBC's path).
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![7, 8, 9]))],
    )
    .unwrap();
    let rows: datafusion::execution::SendableRecordBatchStream = Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter([Ok(batch)]),
        ),
    );
    let target = BulkIngest {
        schema: "public".into(),
        table: "bulk_ev".into(),
        if_exists: IfExists::Fail,
        if_missing: IfMissing::Create,
        bucket: crate::storage::PRIMARY.into(),
    };
    assert_eq!(bulk_ingest(&engine, &target, rows, "ann").await.unwrap(), 3);

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push((
            event.kind,
            event.table,
            event.version,
            event.rows,
            event.source,
        ));
    }
    assert_eq!(
        seen,
        vec![
            (
                ChangeKind::Appended,
                "public.ev".to_string(),
                1,
                2,
                "sql".to_string()
            ),
            (
                ChangeKind::Replaced,
                "public.ev".to_string(),
                2,
                1,
                "sql".to_string()
            ),
            (
                ChangeKind::Appended,
                "public.bulk_ev".to_string(),
                0,
                3,
                "flight.bulk_ingest".to_string()
            ),
        ]
    );
    // Every row change has START and COMPLETE with the same run id.
    let lineage = engine.services().lineage.events().await.unwrap();
    let kinds: Vec<&str> = lineage
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "START").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "COMPLETE").count(), 4);
    let bulk = lineage
        .iter()
        .find(|e| e["eventType"] == "COMPLETE" && e["outputs"][0]["name"] == "public.bulk_ev")
        .unwrap();
    assert_eq!(bulk["inputs"][0]["name"], "CommandStatementIngest by ann");
    assert_eq!(
        bulk["outputs"][0]["facets"]["outputStatistics"]["rowCount"],
        3
    );
    let _ = std::fs::remove_dir_all(dir);
}
