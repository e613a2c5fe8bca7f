//! Queries, prepared statements, sessions and errors through arrow-rs's
//! FlightSqlServiceClient against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, UnionArray};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, UnionFields};
use arrow_flight::sql::{CommandPreparedStatementQuery, ProstMessageExt};
use arrow_flight::{Action, CancelFlightInfoRequest, FlightDescriptor};
use common::{DataDir, TestServer, code, fetch, query, rows, try_fetch};
use futures::StreamExt;
use lakehouse_flight_ext::v1::session_option_value::OptionValue;
use lakehouse_flight_ext::v1::{
    GetSessionOptionsResult, SessionOptionValue, SetSessionOptionsRequest, SetSessionOptionsResult,
};
use prost::Message;
use tonic::Code;

#[tokio::test]
async fn queries_stream_results_and_map_errors() {
    let dir = DataDir::new("queries");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    client.handshake("anyone", "anything").await.unwrap();

    let text = query(
        &mut client,
        "SELECT r_name FROM region ORDER BY r_regionkey",
    )
    .await;
    assert_eq!(
        text,
        "+-------------+\n| r_name      |\n+-------------+\n| AFRICA      |\n| AMERICA     |\n| ASIA        |\n| EUROPE      |\n| MIDDLE EAST |\n+-------------+"
    );
    // Fully qualified names and a join.
    let text = query(
        &mut client,
        "SELECT count(*) AS n FROM lakehouse.public.nation n JOIN region r ON n.n_regionkey = r.r_regionkey WHERE r.r_name = 'ASIA'",
    )
    .await;
    assert!(text.contains("| 5 |"), "{text}");

    // GetFlightInfo only plans: a failing query fails at DoGet time, not before.
    let info = client
        .execute("SELECT 1 / 0 AS boom".into(), None)
        .await
        .unwrap();
    let err = try_fetch(&mut client, info).await.unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");

    for (sql, expected) in [
        ("SELECT * FROM nope", Code::NotFound),
        ("SELECT * FROM nosuchschema.t", Code::NotFound),
        ("SELEC 1", Code::InvalidArgument),
        ("SELECT no_such_column FROM region", Code::InvalidArgument),
        ("INSERT INTO region VALUES (9, 'X')", Code::InvalidArgument),
        (
            "SET datafusion.execution.batch_size = 1",
            Code::Unimplemented,
        ),
    ] {
        let err = client.execute(sql.into(), None).await.unwrap_err();
        assert_eq!(code(&err), expected, "{sql}: {err}");
    }
    let err = client
        .execute("SELECT * FROM nope".into(), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("nope"),
        "the error names the table: {err}"
    );

    // PollFlightInfo answers at once with a complete PollInfo.
    let command = arrow_flight::sql::CommandStatementQuery {
        query: "SELECT 42 AS answer".into(),
        transaction_id: None,
    };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let poll = client
        .inner_mut()
        .poll_flight_info(descriptor.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(poll.flight_descriptor.is_none(), "nothing left to poll");
    assert_eq!(poll.progress, Some(1.0));
    let info = poll.info.unwrap();
    assert!(common::pretty(&fetch(&mut client, info).await).contains("| 42 "));
    let schema = client
        .inner_mut()
        .get_schema(descriptor)
        .await
        .unwrap()
        .into_inner();
    let schema = arrow::datatypes::Schema::try_from(&schema).unwrap();
    assert_eq!(schema.field(0).name(), "answer");

    // A query sent as an update is refused, naming the right command.
    let err = client
        .execute_update("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
}

#[tokio::test]
async fn large_results_stay_under_two_mebibytes_per_message() {
    let dir = DataDir::new("large");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    let sql = "SELECT value, value * 2 AS doubled, repeat('x', 20) AS pad FROM range(3000000)";
    let info = client.execute(sql.into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    // Raw Flight to see each encoded message.
    let mut raw =
        arrow_flight::flight_service_client::FlightServiceClient::new(server.channel().await);
    let mut stream = raw.do_get(ticket).await.unwrap().into_inner();
    let (mut largest, mut messages) = (0usize, 0usize);
    let mut data = Vec::new();
    while let Some(message) = stream.next().await {
        let message = message.unwrap();
        largest = largest.max(message.encoded_len());
        messages += 1;
        data.push(message);
    }
    assert!(
        largest <= 2 * 1024 * 1024 + 64 * 1024,
        "largest message {largest} bytes"
    );
    assert!(messages > 10, "{messages} messages");
    let batches: Vec<RecordBatch> = arrow_flight::utils::flight_data_to_batches(&data).unwrap();
    assert_eq!(rows(&batches), 3_000_000);
    let sum: i64 = batches
        .iter()
        .map(|b| arrow::compute::sum(b.column(0).as_primitive::<Int64Type>()).unwrap())
        .sum();
    assert_eq!(sum, (0..3_000_000i64).sum::<i64>());
}

/// Executes `stmt` and returns its first (string) column.
async fn first_column(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    stmt: &mut arrow_flight::sql::client::PreparedStatement<tonic::transport::Channel>,
) -> Vec<String> {
    let info = stmt.execute().await.unwrap();
    let batches = fetch(client, info).await;
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_string())
        })
        .collect()
}

/// One parameter row of Int64 columns with the given names.
fn int64_row(columns: &[(&str, i64)]) -> RecordBatch {
    let fields: Vec<_> = columns
        .iter()
        .map(|(name, _)| Field::new(*name, DataType::Int64, false))
        .collect();
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|(_, v)| Arc::new(Int64Array::from(vec![*v])) as ArrayRef)
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

#[tokio::test]
async fn prepared_statements_bind_by_position_whatever_the_names() {
    let dir = DataDir::new("prepared");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;

    let mut stmt = client
        .prepare("SELECT n_name FROM nation WHERE n_nationkey >= $1 AND n_regionkey = $2 ORDER BY n_nationkey".into(), None)
        .await
        .unwrap();
    let params = stmt.parameter_schema().unwrap().clone();
    let names: Vec<_> = params.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["$1", "$2"]);
    assert_eq!(params.field(0).data_type(), &DataType::Int64);
    assert_eq!(stmt.dataset_schema().unwrap().field(0).name(), "n_name");

    // ADBC style: columns named "0", "1".
    let batch = int64_row(&[("0", 10), ("1", 2)]);
    stmt.set_parameters(batch).unwrap();
    let names = first_column(&mut client, &mut stmt).await;
    assert_eq!(names, ["JAPAN", "CHINA", "VIETNAM"]);

    // flightsql-dbapi style: dense unions named param_0, param_1; two rows run twice.
    let union_fields = UnionFields::try_new(
        vec![0, 1],
        vec![
            Field::new("int64", DataType::Int64, true),
            Field::new("string", DataType::Utf8, true),
        ],
    )
    .unwrap();
    let union = |values: Vec<i64>| -> ArrayRef {
        let n = values.len();
        Arc::new(
            UnionArray::try_new(
                union_fields.clone(),
                ScalarBuffer::from(vec![0i8; n]),
                Some(ScalarBuffer::from((0..n as i32).collect::<Vec<_>>())),
                vec![
                    Arc::new(Int64Array::from(values)),
                    Arc::new(StringArray::from(Vec::<String>::new())),
                ],
            )
            .unwrap(),
        )
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("param_0", union(vec![0]).data_type().clone(), false),
        Field::new("param_1", union(vec![0]).data_type().clone(), false),
    ]));
    let batch = RecordBatch::try_new(schema, vec![union(vec![24, 0]), union(vec![1, 0])]).unwrap();
    stmt.set_parameters(batch).unwrap();
    let names = first_column(&mut client, &mut stmt).await;
    assert_eq!(
        names,
        [
            "UNITED STATES",
            "ALGERIA",
            "ETHIOPIA",
            "KENYA",
            "MOROCCO",
            "MOZAMBIQUE"
        ]
    );
    stmt.close().await.unwrap();

    // Parameter schemas order $10 after $2.
    let sql = (1..=10)
        .map(|i| format!("${i} + 0 AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let stmt = client
        .prepare(
            format!("SELECT {sql} FROM region WHERE r_regionkey = $1"),
            None,
        )
        .await
        .unwrap();
    let names: Vec<_> = stmt
        .parameter_schema()
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, (1..=10).map(|i| format!("${i}")).collect::<Vec<_>>());

    // Wrong parameter count is refused where it is sent.
    let mut stmt = client
        .prepare("SELECT $1 + 1 AS x".into(), None)
        .await
        .unwrap();
    let batch = int64_row(&[("a", 1), ("b", 2)]);
    stmt.set_parameters(batch).unwrap();
    let err = stmt.execute().await.unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
}

#[tokio::test]
async fn handles_and_catalog_survive_a_restart() {
    let dir = DataDir::new("restart");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    let mut stmt = client
        .prepare(
            "SELECT count(*) AS n FROM lineitem WHERE l_quantity > $1".into(),
            None,
        )
        .await
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("0", DataType::Int64, false)]));
    stmt.set_parameters(
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![40]))]).unwrap(),
    )
    .unwrap();
    let info = stmt.execute().await.unwrap();
    let before = common::pretty(&fetch(&mut client, info.clone()).await);
    let command = info.flight_descriptor.clone().unwrap().cmd;
    let status = server.stop().await;
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    // The catalog came back, with no demo tables created twice.
    let text = query(&mut client, "SELECT count(*) AS n FROM system.tables").await;
    assert!(text.contains("| 8 |"), "{text}");
    // The handle (with its bound parameter) still works on the new process.
    let any = arrow_flight::sql::Any::decode(command).unwrap();
    let cmd: CommandPreparedStatementQuery = any.unpack().unwrap().unwrap();
    let descriptor = FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec());
    let info = client
        .inner_mut()
        .get_flight_info(descriptor)
        .await
        .unwrap()
        .into_inner();
    let after = common::pretty(&fetch(&mut client, info).await);
    assert_eq!(before, after);
}

async fn action(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    name: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, arrow_flight::error::FlightError> {
    let mut results = client.do_action(Action::new(name, body)).await?;
    let mut out = Vec::new();
    while let Some(result) = results.message().await? {
        out = result.body.to_vec();
    }
    Ok(out)
}

#[tokio::test]
async fn session_options_system_tables_and_cancel() {
    let dir = DataDir::new("session");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    client.handshake("u", "p").await.unwrap();

    let string = |s: &str| SessionOptionValue {
        option_value: Some(OptionValue::StringValue(s.into())),
    };
    let request = SetSessionOptionsRequest {
        session_options: [
            ("schema".to_string(), string("system")),
            ("bogus".to_string(), string("x")),
        ]
        .into(),
    };
    let body = action(&mut client, "SetSessionOptions", request.encode_to_vec())
        .await
        .unwrap();
    let result = SetSessionOptionsResult::decode(body.as_slice()).unwrap();
    assert_eq!(result.errors.len(), 1, "{result:?}");
    assert!(result.errors.contains_key("bogus"));
    let body = action(&mut client, "GetSessionOptions", vec![])
        .await
        .unwrap();
    let options = GetSessionOptionsResult::decode(body.as_slice())
        .unwrap()
        .session_options;
    assert_eq!(options["schema"], string("system"));
    // Unqualified names now resolve in `system`.
    let text = query(
        &mut client,
        "SELECT name, kind, builtin FROM buckets ORDER BY name",
    )
    .await;
    assert!(text.contains("| primary | local | true"), "{text}");
    assert!(text.contains("| rescue  | local | true"), "{text}");
    let text = query(
        &mut client,
        "SELECT count(*) AS n FROM columns WHERE table_name = 'lineitem'",
    )
    .await;
    assert!(text.contains("| 16 |"), "{text}");
    let request = SetSessionOptionsRequest {
        session_options: [("schema".to_string(), string("nope"))].into(),
    };
    let body = action(&mut client, "SetSessionOptions", request.encode_to_vec())
        .await
        .unwrap();
    assert_eq!(
        SetSessionOptionsResult::decode(body.as_slice())
            .unwrap()
            .errors
            .len(),
        1
    );
    action(&mut client, "CloseSession", vec![]).await.unwrap();
    let body = action(&mut client, "GetSessionOptions", vec![])
        .await
        .unwrap();
    let options = GetSessionOptionsResult::decode(body.as_slice())
        .unwrap()
        .session_options;
    assert_eq!(options["schema"], string("public"));

    // Unknown actions are Unimplemented and name the known ones.
    let err = action(&mut client, "lakehouse.nope", vec![])
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::Unimplemented);
    assert!(err.to_string().contains("SetSessionOptions"), "{err}");

    // Cancel a long query while it streams.
    let info = client
        .execute("SELECT count(*) FROM range(100000000000) a".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut running = server.client().await;
    let fetching = tokio::spawn(async move {
        running
            .do_get(ticket)
            .await
            .unwrap()
            .collect::<Vec<_>>()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let request = CancelFlightInfoRequest {
        info: Some(info.clone()),
    };
    action(&mut client, "CancelFlightInfo", request.encode_to_vec())
        .await
        .unwrap();
    let results = tokio::time::timeout(std::time::Duration::from_secs(30), fetching)
        .await
        .unwrap()
        .unwrap();
    let last = results.last().expect("stream ends with an error");
    assert!(
        matches!(last, Err(e) if code(e) == Code::Cancelled),
        "{last:?}"
    );
    // Nothing runs now: cancelling again is NotFound.
    let request = CancelFlightInfoRequest { info: Some(info) };
    let err = action(&mut client, "CancelFlightInfo", request.encode_to_vec())
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::NotFound);
}

#[tokio::test]
async fn memory_limit_bounds_queries() {
    let dir = DataDir::new("memory");
    let server = TestServer::start(&dir.0, &["--memory-limit", "8MiB"]).await;
    let mut client = server.client().await;
    let info = client
        .execute("SELECT array_agg(value) FROM range(50000000)".into(), None)
        .await
        .unwrap();
    let err = try_fetch(&mut client, info).await.unwrap_err();
    assert_eq!(code(&err), Code::ResourceExhausted, "{err}");
    // The server is fine afterwards.
    assert!(query(&mut client, "SELECT 1 AS one").await.contains("| 1 "));
}
