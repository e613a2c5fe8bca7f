//! Writes over Flight SQL with arrow-rs's FlightSqlServiceClient: DDL/DML,
//! prepared updates, bulk ingest, time travel, concurrency, limits and TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bulk_ingest;
#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
use bulk_ingest::{batches, ingest, ingest_command};
use common::{DataDir, TestServer, code, fetch, make_certs, query, try_fetch, update};
use tonic::Code;
use tonic::transport::Channel;

async fn count(client: &mut FlightSqlServiceClient<Channel>, table: &str) -> i64 {
    let info = client
        .execute(format!("SELECT count(*) AS n FROM {table}"), None)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
    let batches = fetch(client, info).await;
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

async fn update_err(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> tonic::Status {
    match client.execute_update(sql.to_string(), None).await {
        Ok(n) => panic!("{sql} succeeded ({n} rows)"),
        Err(arrow_flight::error::FlightError::Tonic(status)) => *status,
        Err(other) => panic!("{sql}: not a status: {other}"),
    }
}

#[tokio::test]
async fn ddl_and_dml_round_trip_with_real_row_counts() {
    let dir = DataDir::new("ddl");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;

    assert_eq!(
        update(
            &mut client,
            "CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR)"
        )
        .await,
        0
    );
    assert_eq!(
        update(
            &mut client,
            "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL)"
        )
        .await,
        3
    );
    assert_eq!(count(&mut client, "t").await, 3);
    assert_eq!(update(&mut client, "DELETE FROM t WHERE id = 2").await, 1);
    assert_eq!(
        update(&mut client, "UPDATE t SET name = 'z' WHERE id = 3").await,
        1
    );
    let text = query(&mut client, "SELECT id, name FROM t ORDER BY id").await;
    assert!(
        text.contains("| 1  | a    |") && text.contains("| 3  | z    |"),
        "{text}"
    );

    // CTAS streams a query into a new table.
    assert_eq!(
        update(&mut client, "CREATE TABLE t2 AS SELECT id * 10 AS x FROM t").await,
        2
    );
    assert_eq!(count(&mut client, "t2").await, 2);
    let status = update_err(&mut client, "CREATE TABLE t2 AS SELECT 1 AS x").await;
    assert_eq!(status.code(), Code::AlreadyExists, "{status}");
    assert_eq!(
        update(
            &mut client,
            "CREATE TABLE IF NOT EXISTS t2 AS SELECT 1 AS x"
        )
        .await,
        0
    );
    assert_eq!(
        update(
            &mut client,
            "CREATE OR REPLACE TABLE t2 AS SELECT 'new' AS y"
        )
        .await,
        1
    );
    assert!(
        query(&mut client, "SELECT * FROM t2")
            .await
            .contains("| new |")
    );

    // Bad writes: precise codes, nothing written.
    for (sql, expected) in [
        ("INSERT INTO t VALUES (NULL, 'x')", Code::InvalidArgument),
        ("INSERT INTO nope VALUES (1)", Code::NotFound),
        (
            "CREATE TABLE system.x AS SELECT 1 AS a",
            Code::PermissionDenied,
        ),
        (
            "CREATE TABLE bad AS SELECT count(*) FROM t",
            Code::InvalidArgument,
        ),
        ("CREATE TABLE k (a INT PRIMARY KEY)", Code::Unimplemented),
        ("CREATE VIEW v AS SELECT 1", Code::Unimplemented),
        ("COPY t TO '/tmp/lakehouse-copy.csv'", Code::Unimplemented),
        ("DROP TABLE nope", Code::NotFound),
    ] {
        let status = update_err(&mut client, sql).await;
        assert_eq!(status.code(), expected, "{sql}: {status}");
    }
    assert_eq!(count(&mut client, "t").await, 2);

    // Schemas.
    update(&mut client, "CREATE SCHEMA staging").await;
    update(&mut client, "CREATE TABLE staging.s AS SELECT 1 AS a").await;
    assert_eq!(count(&mut client, "staging.s").await, 1);
    let status = update_err(&mut client, "DROP SCHEMA staging").await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
    update(&mut client, "DROP SCHEMA staging CASCADE").await;
    let err = client
        .execute("SELECT * FROM staging.s".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::NotFound);

    // DDL sent as a query (ADBC's cursor.execute) runs in DoGet and answers a count.
    let info = client
        .execute("INSERT INTO t VALUES (7, 'q')".into(), None)
        .await
        .unwrap();
    assert_eq!(
        info.clone().try_decode_schema().unwrap().field(0).name(),
        "count"
    );
    assert_eq!(
        count(&mut client, "t").await,
        3,
        "a write runs in GetFlightInfo (clients may never fetch its result)"
    );
    // DoGet answers the count from the ticket, as often as asked, writing nothing more.
    for _ in 0..2 {
        let text = common::pretty(&fetch(&mut client, info.clone()).await);
        assert!(text.contains("| 1     |"), "{text}");
    }
    assert_eq!(count(&mut client, "t").await, 3);
    // GetSchema of a write only plans it.
    let command = arrow_flight::sql::CommandStatementQuery {
        query: "INSERT INTO t VALUES (8, 'r')".into(),
        transaction_id: None,
    };
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(prost::Message::encode_to_vec(
        &arrow_flight::sql::ProstMessageExt::as_any(&command),
    ));
    let schema = arrow_flight::FlightClient::new(server.channel().await)
        .get_schema(descriptor)
        .await
        .unwrap();
    assert_eq!(schema.field(0).name(), "count");
    assert_eq!(count(&mut client, "t").await, 3);

    // Drop: gone from queries and from disk.
    update(&mut client, "DROP TABLE t2").await;
    let err = client
        .execute("SELECT * FROM t2".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::NotFound);
    update(&mut client, "DROP TABLE IF EXISTS t2").await;
    let leftovers = std::fs::read_dir(dir.0.join("buckets/primary/tables/public"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("t2-"))
        .count();
    assert_eq!(leftovers, 0, "dropped table files are deleted");
}

#[tokio::test]
async fn time_travel_and_table_versions() {
    let dir = DataDir::new("versions");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    update(&mut client, "CREATE TABLE h (v BIGINT)").await; // v0
    update(&mut client, "INSERT INTO h VALUES (1), (2)").await; // v1
    update(&mut client, "INSERT INTO h VALUES (3)").await; // v2
    update(&mut client, "DELETE FROM h WHERE v = 1").await; // v3

    assert_eq!(count(&mut client, "\"h@v0\"").await, 0);
    assert_eq!(count(&mut client, "\"h@v1\"").await, 2);
    assert_eq!(count(&mut client, "\"h@v2\"").await, 3);
    assert_eq!(count(&mut client, "h").await, 2);
    assert_eq!(count(&mut client, "lakehouse.public.\"h@v2\"").await, 3);
    let err = client
        .execute("SELECT * FROM \"h@v9\"".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::NotFound, "{err}");
    assert!(err.to_string().contains("versions 0 to 3"), "{err}");
    let err = client
        .execute("SELECT * FROM \"h@yesterday\"".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");

    let text = query(
        &mut client,
        "SELECT version, operation FROM system.table_versions WHERE table_name = 'h' ORDER BY version",
    )
    .await;
    for (version, operation) in [(0, "WRITE"), (1, "WRITE"), (2, "WRITE"), (3, "DELETE")] {
        assert!(
            text.contains(&format!("| {version}       | {operation}")),
            "v{version} {operation}:\n{text}"
        );
    }
}

#[tokio::test]
async fn prepared_updates_bind_many_rows_into_one_commit() {
    let dir = DataDir::new("prepared-update");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    update(&mut client, "CREATE TABLE p (id BIGINT, name VARCHAR)").await;

    let mut statement = client
        .prepare("INSERT INTO p VALUES ($1, $2)".into(), None)
        .await
        .unwrap();
    // An empty dataset schema: JDBC then runs it as an update.
    assert!(statement.dataset_schema().unwrap().fields().is_empty());
    let params = statement.parameter_schema().unwrap().clone();
    assert_eq!(params.fields().len(), 2);
    assert_eq!(params.field(0).data_type(), &DataType::Int64);
    let rows = RecordBatch::try_new(
        Arc::new(params),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
        ],
    )
    .unwrap();
    statement.set_parameters(rows).unwrap();
    assert_eq!(statement.execute_update().await.unwrap(), 3);
    assert_eq!(count(&mut client, "p").await, 3);
    let text = query(
        &mut client,
        "SELECT count(*) AS commits FROM system.table_versions WHERE table_name = 'p'",
    )
    .await;
    assert!(text.contains("| 2       |"), "create + one write:\n{text}");

    // A prepared DELETE with a parameter.
    let mut delete = client
        .prepare("DELETE FROM p WHERE id >= $1".into(), None)
        .await
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, true)]));
    let param = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![2]))]).unwrap();
    delete.set_parameters(param).unwrap();
    assert_eq!(delete.execute_update().await.unwrap(), 2);
    assert_eq!(count(&mut client, "p").await, 1);
}

#[tokio::test]
async fn concurrent_updates_of_one_row_lose_no_update() {
    // Read-modify-write from several connections at once: each UPDATE either commits on
    // top of the others or is refused as retryable (ABORTED). A lost update would leave
    // the counter below the number of acknowledged updates.
    let dir = DataDir::new("concurrent-update");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    update(&mut client, "CREATE TABLE counter (id BIGINT, n BIGINT)").await;
    update(&mut client, "INSERT INTO counter VALUES (1, 0)").await;
    const WRITERS: i64 = 4;
    const UPDATES: i64 = 3;
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            let mut aborted = 0;
            for _ in 0..UPDATES {
                loop {
                    match client
                        .execute_update("UPDATE counter SET n = n + 1 WHERE id = 1".into(), None)
                        .await
                    {
                        Ok(n) => {
                            assert_eq!(n, 1);
                            break;
                        }
                        Err(e) if code(&e) == Code::Aborted => aborted += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            aborted
        }));
    }
    let mut aborted = 0;
    for task in tasks {
        aborted += task.await.unwrap();
    }
    eprintln!("concurrent updates: {aborted} retried after ABORTED");
    let text = query(&mut client, "SELECT n FROM counter").await;
    assert!(
        text.contains(&format!("| {} ", WRITERS * UPDATES)),
        "{aborted} retries; counter:\n{text}"
    );
}

#[tokio::test]
async fn concurrent_appends_from_several_connections_lose_no_rows() {
    let dir = DataDir::new("concurrent");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    update(&mut client, "CREATE TABLE c (writer BIGINT, v BIGINT)").await;
    const WRITERS: i64 = 6;
    const APPENDS: i64 = 4;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            let mut retries = 0;
            for _ in 0..APPENDS {
                let sql = format!("INSERT INTO c SELECT {writer}, value FROM range(100)");
                loop {
                    match client.execute_update(sql.clone(), None).await {
                        Ok(n) => {
                            assert_eq!(n, 100);
                            break;
                        }
                        // A conflict is reported as retryable and writes nothing.
                        Err(e) if code(&e) == Code::Aborted => retries += 1,
                        Err(e) => panic!("writer {writer}: {e}"),
                    }
                }
            }
            retries
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(count(&mut client, "c").await, WRITERS * APPENDS * 100);
    let text = query(
        &mut client,
        "SELECT count(DISTINCT writer) AS writers FROM c",
    )
    .await;
    assert!(text.contains(&format!("| {WRITERS}       |")), "{text}");
}

#[tokio::test]
async fn limits_answer_with_actionable_codes() {
    let dir = DataDir::new("limits");
    let server = TestServer::start(
        &dir.0,
        &[
            "--max-concurrent-queries",
            "1",
            "--query-timeout-secs",
            "2",
            "--max-message-size",
            "1MiB",
        ],
    )
    .await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    // A long query holds the only slot while its stream is open.
    let info = first
        .execute("SELECT value FROM range(1000000000)".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = first.do_get(ticket).await.unwrap();
    let _ = futures::StreamExt::next(&mut stream).await;
    let info = second.execute("SELECT 1".into(), None).await.unwrap();
    let err = try_fetch(&mut second, info).await.unwrap_err();
    assert_eq!(code(&err), Code::ResourceExhausted, "{err}");
    // It runs into the statement timeout, which frees the slot.
    let mut ended = None;
    while let Some(item) = futures::StreamExt::next(&mut stream).await {
        if let Err(e) = item {
            ended = Some(e);
            break;
        }
    }
    let ended = ended.expect("the stream ends with an error");
    assert_eq!(code(&ended), Code::DeadlineExceeded, "{ended}");
    drop(stream);
    assert!(
        query(&mut second, "SELECT 1 AS one")
            .await
            .contains("| 1   |")
    );

    // An upload message above max_message_size is refused, not buffered.
    let big = batches(1, 200_000);
    let err = ingest(
        &mut second,
        ingest_command("big", TableNotExistOption::Create, TableExistsOption::Fail),
        big,
    )
    .await
    .unwrap_err();
    let status = code(&err);
    assert!(
        matches!(status, Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}: {err}"
    );
}

#[tokio::test]
async fn tls_with_auth_and_mutual_tls() {
    let dir = DataDir::new("tls");
    let certs = dir.0.join("certs");
    make_certs(&certs);
    let read = |name: &str| std::fs::read(certs.join(name)).unwrap();
    let hash = lakehouse::flight::hash_password("s3cret").unwrap();
    let user = format!("alice={hash}");
    let cert = certs.join("server.pem");
    let key = certs.join("server.key");
    let data = dir.0.join("data");
    let server = TestServer::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--user",
            &user,
        ],
    )
    .await;
    let channel = server.tls_channel(&read("ca.pem"), None).await.unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake("alice", "s3cret").await.unwrap();
    assert!(
        query(&mut client, "SELECT 1 AS one")
            .await
            .contains("| 1   |")
    );
    // Plain text to a TLS port fails.
    let plain = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut plain = FlightSqlServiceClient::new(channel);
        assert!(plain.handshake("alice", "s3cret").await.is_err());
    }
    drop(server);

    // Mutual TLS: a client certificate from the configured CA is required.
    let ca = certs.join("ca.pem");
    let server = TestServer::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-client-ca",
            ca.to_str().unwrap(),
            "--user",
            &user,
        ],
    )
    .await;
    let without = match server.tls_channel(&read("ca.pem"), None).await {
        Ok(channel) => {
            let mut client = FlightSqlServiceClient::new(channel);
            client.handshake("alice", "s3cret").await.is_err()
        }
        Err(_) => true,
    };
    assert!(without, "a client without a certificate is refused");
    let identity = (read("client.pem"), read("client.key"));
    let channel = server
        .tls_channel(&read("ca.pem"), Some(identity))
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake("alice", "s3cret").await.unwrap();
    assert!(
        query(&mut client, "SELECT 2 AS two")
            .await
            .contains("| 2   |")
    );
}
