use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, UnionArray};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, Schema, UnionFields};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;

use super::*;
use crate::config::{ServeArgs, Settings};

async fn engine() -> (QueryEngine, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("lh-query-{}", uuid::Uuid::new_v4().simple()));
    let settings = Settings::resolve(ServeArgs {
        data_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    (crate::server::open_engine(&settings).await.unwrap(), dir)
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
    let Statement::Write(write) = classify(plan, &SessionDefaults::default()).unwrap() else {
        panic!("CREATE TABLE is a write");
    };
    match *write {
        Write::CreateTable { table, .. } => assert_eq!(table.to_string(), "public.t"),
        other => panic!("{other:?}"),
    }
    let plan = engine
        .plan(&ctx, "DROP SCHEMA IF EXISTS s CASCADE")
        .await
        .unwrap();
    let Statement::Write(write) = classify(plan, &SessionDefaults::default()).unwrap() else {
        panic!("DROP SCHEMA is a write");
    };
    assert!(matches!(
        *write,
        Write::DropSchema {
            cascade: true,
            if_exists: true,
            ..
        }
    ));
    let plan = engine.plan(&ctx, "SELECT 1").await.unwrap();
    assert!(matches!(
        classify(plan, &SessionDefaults::default()).unwrap(),
        Statement::Query
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

/// Runs SQL writes through the one write path (as DoPut does).
async fn write_sql(engine: &QueryEngine, statements: &[&str]) {
    let ctx = engine.session(&SessionDefaults::default());
    for sql in statements {
        let plan = engine.plan(&ctx, sql).await.unwrap();
        let Statement::Write(write) = classify(plan, &SessionDefaults::default()).unwrap() else {
            panic!("{sql} is not a write");
        };
        engine.execute_writes(&ctx, vec![*write]).await.unwrap();
    }
}

#[tokio::test]
async fn an_sql_insert_is_sampled_for_pii_and_counted() {
    let (engine, dir) = engine().await;
    let before = crate::observe::metrics().render(&Default::default());
    let values: Vec<String> = (0..40)
        .map(|i| format!("({i}, 'person{i}@example.org')"))
        .collect();
    let insert = format!("INSERT INTO contacts VALUES {}", values.join(", "));
    write_sql(
        &engine,
        &[
            "CREATE TABLE contacts (id BIGINT, contact VARCHAR)",
            &insert,
        ],
    )
    .await;
    let entry = engine.catalog().table("public", "contacts").unwrap();
    let pii = entry.effective_pii();
    assert!(
        pii.iter()
            .any(|f| f.column == "contact" && f.entity_type == "email"),
        "{pii:?}"
    );
    assert!(!pii.iter().any(|f| f.column == "id"), "{pii:?}");
    // The ingested-rows counter counts SQL rows under their job type.
    let after = crate::observe::metrics().render(&Default::default());
    let count = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("lakehouse_ingest_rows_total{kind=\"sql.insert\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(count(&after) - count(&before) >= 40.0, "{after}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sql_writes_name_the_tables_they_read_in_lineage() {
    let (engine, dir) = engine().await;
    write_sql(
        &engine,
        &[
            "CREATE TABLE orders (id BIGINT, customer BIGINT)",
            "CREATE TABLE customers (id BIGINT, name VARCHAR)",
            "INSERT INTO orders VALUES (1, 10), (2, 20)",
            "INSERT INTO customers VALUES (10, 'a'), (20, 'b')",
            "CREATE TABLE joined AS SELECT o.id, c.name FROM orders o JOIN customers c ON o.customer = c.id",
            "INSERT INTO joined SELECT id, 'x' FROM orders WHERE customer IN (SELECT id FROM customers)",
        ],
    )
    .await;
    let events = engine.services().lineage.events().await.unwrap();
    let inputs = |job: &str| -> Vec<String> {
        let event = events
            .iter()
            .find(|e| e["eventType"] == "COMPLETE" && e["job"]["name"] == job)
            .unwrap_or_else(|| panic!("no COMPLETE of {job}"));
        event["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["namespace"] == crate::lineage::NAMESPACE)
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        inputs("sql.create_table:public.joined"),
        ["public.customers", "public.orders"]
    );
    assert_eq!(
        inputs("sql.insert:public.joined"),
        ["public.customers", "public.orders"]
    );
    // VALUES read no table.
    assert!(inputs("sql.insert:public.orders").is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
