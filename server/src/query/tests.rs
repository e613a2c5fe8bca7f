use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, UnionArray};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, Schema, UnionFields};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;

use super::*;
use crate::config::{ServeArgs, Settings};
use crate::storage::BucketRegistry;

async fn engine() -> (QueryEngine, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("lh-query-{}", uuid::Uuid::new_v4().simple()));
    let settings = Settings::resolve(ServeArgs {
        data_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    let buckets = Arc::new(BucketRegistry::open(&settings).unwrap());
    let catalog = Arc::new(
        Catalog::open(buckets, &crate::catalog::CatalogOptions::default())
            .await
            .unwrap(),
    );
    (QueryEngine::new(catalog, &settings).unwrap(), dir)
}

async fn plan(sql: &str) -> LogicalPlan {
    let (engine, dir) = engine().await;
    let ctx = engine.session(&SessionDefaults::default());
    let plan = engine.plan(&ctx, sql).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
    plan
}

#[tokio::test]
async fn refuses_session_statements_and_server_side_files() {
    let (engine, dir) = engine().await;
    let ctx = engine.session(&SessionDefaults::default());
    let err = engine.plan(&ctx, "SET x = 1").await.unwrap_err();
    assert!(err.to_string().contains("not supported"), "{err}");
    for sql in [
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "CREATE VIEW v AS SELECT 1",
        "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1 AS a",
    ] {
        let result = match engine.plan(&ctx, sql).await {
            Ok(plan) => classify(plan, &SessionDefaults::default()).map(|_| ()),
            Err(e) => Err(e),
        };
        let err = result.unwrap_err();
        assert!(
            matches!(err, datafusion::error::DataFusionError::NotImplemented(_)),
            "{sql}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn writes_are_classified_with_resolved_names() {
    let (engine, dir) = engine().await;
    let ctx = engine.session(&SessionDefaults::default());
    let plan = engine
        .plan(&ctx, "CREATE TABLE t AS SELECT 1 AS a")
        .await
        .unwrap();
    assert!(is_write(&plan));
    match classify(plan, &SessionDefaults::default()).unwrap() {
        Statement::Write(Write::CreateTable { table, .. }) => {
            assert_eq!(table.to_string(), "public.t");
        }
        other => panic!("{other:?}"),
    }
    let plan = engine
        .plan(&ctx, "DROP SCHEMA IF EXISTS s CASCADE")
        .await
        .unwrap();
    assert!(matches!(
        classify(plan, &SessionDefaults::default()).unwrap(),
        Statement::Write(Write::DropSchema {
            cascade: true,
            if_exists: true,
            ..
        })
    ));
    let plan = engine.plan(&ctx, "SELECT 1").await.unwrap();
    assert!(matches!(
        classify(plan, &SessionDefaults::default()).unwrap(),
        Statement::Query(_)
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn string_columns_are_plain_utf8() {
    let plan = plan("SELECT 'x' AS s, CAST(1 AS VARCHAR) AS v").await;
    for field in plan.schema().fields() {
        assert_eq!(field.data_type(), &DataType::Utf8, "{field}");
    }
}

#[tokio::test]
async fn parameter_schema_orders_numerically_and_types_what_it_can() {
    let plan = plan("SELECT $2 + 1 AS a, $10 AS b, $1 || 'x' AS c").await;
    let schema = parameter_schema(&plan).unwrap();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["$1", "$2", "$10"]);
    assert_eq!(
        schema.field_with_name("$10").unwrap().data_type(),
        &DataType::Utf8,
        "untyped falls back to Utf8"
    );
}

fn single(name: &str, values: ArrayRef) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        name,
        values.data_type().clone(),
        true,
    )]));
    RecordBatch::try_new(schema, vec![values]).unwrap()
}

#[tokio::test]
async fn binds_rows_by_position_through_unions_and_ipc() {
    let plan = plan("SELECT $1 * 2 AS doubled").await;
    let fields = UnionFields::try_new(
        vec![0, 1],
        vec![
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ],
    )
    .unwrap();
    let union = UnionArray::try_new(
        fields,
        ScalarBuffer::from(vec![0i8, 0]),
        Some(ScalarBuffer::from(vec![0i32, 1])),
        vec![
            Arc::new(Int64Array::from(vec![5, 7])),
            Arc::new(StringArray::from(Vec::<String>::new())),
        ],
    )
    .unwrap();
    let rows = ParameterRows::new(vec![single("param_0", Arc::new(union))]);
    let rows = ParameterRows::from_ipc(&rows.to_ipc().unwrap()).unwrap();
    assert_eq!(rows.num_rows(), 2);
    let plans = rows.bind(&plan).unwrap();
    assert_eq!(plans.len(), 2);
    assert!(
        plans[1].display_indent().to_string().contains("Int64(7)"),
        "{}",
        plans[1].display_indent()
    );
}

#[tokio::test]
async fn binding_checks_counts_and_converts_types() {
    let plan = plan("SELECT * FROM (VALUES (CAST(1 AS INT))) t(x) WHERE x = $1").await;
    let none = ParameterRows::default().bind(&plan).unwrap_err();
    assert!(none.to_string().contains("none were bound"), "{none}");
    let two = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("0", DataType::Int64, true),
            Field::new("1", DataType::Int64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int64Array::from(vec![2])),
        ],
    )
    .unwrap();
    let err = ParameterRows::new(vec![two]).bind(&plan).unwrap_err();
    assert!(err.to_string().contains("2 column(s)"), "{err}");
    // Int64 from the client becomes the Int32 the predicate expects.
    let plans = ParameterRows::new(vec![single("0", Arc::new(Int64Array::from(vec![1])))])
        .bind(&plan)
        .unwrap();
    assert!(
        plans[0]
            .display_indent()
            .to_string()
            .contains(&ScalarValue::Int32(Some(1)).to_string())
    );
    let text =
        ParameterRows::new(vec![single("0", Arc::new(StringArray::from(vec!["abc"])))]).bind(&plan);
    assert!(text.unwrap_err().to_string().contains("cannot convert"));
}

#[tokio::test]
async fn committed_writes_publish_dataset_events_and_lineage() {
    use crate::events::ChangeKind;
    use crate::ingest::{BulkIngest, IfExists, IfMissing, bulk_ingest};
    let (engine, dir) = engine().await;
    let mut events = engine.catalog().events().subscribe();
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
        engine.execute_writes(&ctx, vec![write]).await.unwrap();
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
    let lineage = engine.catalog().lineage().events().await.unwrap();
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
