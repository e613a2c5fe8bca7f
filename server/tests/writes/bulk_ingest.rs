//! Bulk ingest (CommandStatementIngest) through arrow-rs's client: create, append,
//! replace and fail modes, and what each leaves behind.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use tonic::Code;
use tonic::transport::Channel;

use crate::common::{DataDir, TestServer, code};
use crate::count;

pub(crate) fn ingest_command(
    table: &str,
    if_missing: TableNotExistOption,
    if_exists: TableExistsOption,
) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: if_missing as i32,
            if_exists: if_exists as i32,
        }),
        table: table.into(),
        schema: None,
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

pub(crate) fn batches(n_batches: i64, rows_each: i64) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, true),
    ]));
    (0..n_batches)
        .map(|b| {
            let ids: Vec<i64> = (b * rows_each..(b + 1) * rows_each).collect();
            let labels: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(labels)),
                ],
            )
            .unwrap()
        })
        .collect()
}

pub(crate) async fn ingest(
    client: &mut FlightSqlServiceClient<Channel>,
    command: CommandStatementIngest,
    data: Vec<RecordBatch>,
) -> Result<i64, arrow_flight::error::FlightError> {
    client
        .execute_ingest(command, futures::stream::iter(data.into_iter().map(Ok)))
        .await
}

#[tokio::test]
async fn bulk_ingest_modes() {
    use TableExistsOption as Exists;
    use TableNotExistOption as Missing;
    let dir = DataDir::new("ingest");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;

    // create: 20 batches streamed into one commit.
    let n = ingest(
        &mut client,
        ingest_command("up", Missing::Create, Exists::Fail),
        batches(20, 10_000),
    )
    .await
    .unwrap();
    assert_eq!(n, 200_000);
    assert_eq!(count(&mut client, "up").await, 200_000);
    let err = ingest(
        &mut client,
        ingest_command("up", Missing::Create, Exists::Fail),
        batches(1, 1),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Code::AlreadyExists, "{err}");

    // append / create_append / replace.
    ingest(
        &mut client,
        ingest_command("up", Missing::Fail, Exists::Append),
        batches(1, 5),
    )
    .await
    .unwrap();
    assert_eq!(count(&mut client, "up").await, 200_005);
    ingest(
        &mut client,
        ingest_command("up", Missing::Create, Exists::Append),
        batches(1, 5),
    )
    .await
    .unwrap();
    assert_eq!(count(&mut client, "up").await, 200_010);
    ingest(
        &mut client,
        ingest_command("fresh", Missing::Create, Exists::Append),
        batches(1, 7),
    )
    .await
    .unwrap();
    assert_eq!(count(&mut client, "fresh").await, 7);
    ingest(
        &mut client,
        ingest_command("up", Missing::Create, Exists::Replace),
        batches(1, 3),
    )
    .await
    .unwrap();
    assert_eq!(count(&mut client, "up").await, 3);
    assert_eq!(
        count(&mut client, "\"up@v0\"").await,
        200_000,
        "replace keeps history"
    );

    // Refusals, each leaving the table as it was.
    let err = ingest(
        &mut client,
        ingest_command("missing", Missing::Fail, Exists::Append),
        batches(1, 1),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Code::NotFound, "{err}");
    let mut temporary = ingest_command("tmp", Missing::Create, Exists::Fail);
    temporary.temporary = true;
    let err = ingest(&mut client, temporary, batches(1, 1))
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::Unimplemented, "{err}");
    let mut unspecified = ingest_command("x", Missing::Create, Exists::Fail);
    unspecified.table_definition_options = None;
    let err = ingest(&mut client, unspecified, batches(1, 1))
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "other",
            DataType::Int64,
            true,
        )])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let err = ingest(
        &mut client,
        ingest_command("up", Missing::Fail, Exists::Append),
        vec![wrong],
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), Code::InvalidArgument, "{err}");
    assert!(err.to_string().contains("other"), "names the column: {err}");
    assert_eq!(count(&mut client, "up").await, 3);
    let mut elsewhere = ingest_command("x", Missing::Create, Exists::Fail);
    elsewhere.schema = Some("nosuchschema".into());
    let err = ingest(&mut client, elsewhere, batches(1, 1))
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::NotFound, "{err}");

    // An upload whose connection goes away midway commits nothing: no table, no
    // leftover files. (The client task is aborted after some batches, which resets the
    // HTTP/2 stream. Note that arrow-rs's `execute_ingest` ends the stream *cleanly*
    // when its own input stream fails, which no server can tell from a complete upload.)
    let mut uploader = server.client().await;
    let data = futures::StreamExt::chain(
        futures::stream::iter(batches(3, 50_000).into_iter().map(Ok)),
        futures::stream::pending(),
    );
    let task = tokio::spawn(async move {
        uploader
            .execute_ingest(
                ingest_command("broken", Missing::Create, Exists::Fail),
                data,
            )
            .await
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    task.abort();
    assert!(task.await.is_err(), "the upload was cut off");
    // The server may still be unwinding the aborted write: give it a moment.
    let tables = dir.0.join("buckets/primary/tables/public");
    let mut leftovers = usize::MAX;
    for _ in 0..50 {
        leftovers = std::fs::read_dir(&tables)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("broken-"))
            .count();
        if leftovers == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(leftovers, 0, "the aborted table's folder is removed");
    let err = client
        .execute("SELECT * FROM broken".into(), None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Code::NotFound, "{err}");
}
