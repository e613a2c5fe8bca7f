//! File ingest and jobs with arrow-rs's FlightSqlServiceClient and protobuf bodies
//! (the Python suite covers the JSON bodies): progress streaming, job listing,
//! the upload command, and jobs surviving a restart as records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use arrow::array::{BinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::Any;
use arrow_flight::{Action, FlightDescriptor};
use common::{DataDir, TestServer, query};
use futures::{StreamExt, TryStreamExt};
use lakehouse_flight_ext::v1::{
    BadRows, IngestFileRequest, IngestMode, IngestUploadCommand, Job, JobList, JobListRequest,
    JobState, job,
};
use lakehouse_flight_ext::{INGEST_UPLOAD_TYPE_URL, actions};
use prost::Message;

fn action<M: Message>(name: &str, body: &M) -> Action {
    Action::new(name, body.encode_to_vec())
}

#[tokio::test]
async fn protobuf_ingest_streams_progress_and_lists_the_job() {
    let dir = DataDir::new("ingest-proto");
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    let landing = dir.0.join("buckets/primary/landing");
    std::fs::create_dir_all(&landing).unwrap();
    let mut csv = String::from("id,name,amount\n");
    for i in 0..200_000 {
        csv.push_str(&format!("{i},name {i},{}.5\n", i % 1000));
    }
    csv.push_str("oops,bad row,x\n");
    std::fs::write(landing.join("orders.csv"), &csv).unwrap();

    let request = IngestFileRequest {
        path: "landing/orders.csv".into(),
        table: "orders_ingested".into(),
        mode: IngestMode::Create as i32,
        bad_rows: BadRows::Reject as i32,
        column_types: [("id".to_string(), "BIGINT".to_string())].into(),
        ..Default::default()
    };
    let replies: Vec<Job> = client
        .do_action(action(actions::INGEST_FILE, &request))
        .await
        .unwrap()
        .map_ok(|r| Job::decode(r.body).unwrap())
        .try_collect()
        .await
        .unwrap();
    let last = replies.last().unwrap();
    assert_eq!(last.state, JobState::Succeeded as i32, "{last:?}");
    let Some(job::Result::Ingest(result)) = &last.result else {
        panic!("no result: {last:?}");
    };
    assert_eq!(result.rows, 200_000);
    assert_eq!(result.rejected_rows, 1);
    assert_eq!(result.bytes, csv.len() as u64);
    // Progress came before the end, with rising row counts.
    let rows: Vec<u64> = replies
        .iter()
        .map(|j| j.progress.as_ref().unwrap().rows)
        .collect();
    assert!(rows.windows(2).all(|w| w[0] <= w[1]), "{rows:?}");
    assert_eq!(
        query(
            &mut client,
            "SELECT count(*) AS n, max(id) AS m FROM orders_ingested"
        )
        .await,
        "+--------+--------+\n| n      | m      |\n+--------+--------+\n| 200000 | 199999 |\n+--------+--------+"
    );

    let list = client
        .do_action(action(actions::JOB_LIST, &JobListRequest::default()))
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    let list = JobList::decode(list.body).unwrap();
    assert_eq!(list.jobs[0].id, last.id);

    // The upload command: one binary column of file chunks.
    let command = IngestUploadCommand {
        file_name: "small.csv".into(),
        request: Some(IngestFileRequest {
            table: "uploaded".into(),
            ..Default::default()
        }),
    };
    let any = Any {
        type_url: INGEST_UPLOAD_TYPE_URL.into(),
        value: command.encode_to_vec().into(),
    };
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "chunk",
        DataType::Binary,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![std::sync::Arc::new(BinaryArray::from_vec(vec![
            b"k,v\n1,",
            b"a\n2,b\n",
        ]))],
    )
    .unwrap();
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(any.encode_to_vec())))
        .build(futures::stream::iter([Ok(batch)]))
        .map(|d| d.unwrap());
    let put = client
        .do_put(data)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    let job = Job::decode(put.app_metadata).unwrap();
    assert_eq!(job.state, JobState::Succeeded as i32, "{job:?}");
    assert_eq!(
        query(&mut client, "SELECT v FROM uploaded ORDER BY k").await,
        "+---+\n| v |\n+---+\n| a |\n| b |\n+---+"
    );

    // Job records outlive the server.
    server.stop().await;
    let server = TestServer::start(&dir.0, &[]).await;
    let mut client = server.client().await;
    let jobs = query(
        &mut client,
        "SELECT state, result_table FROM system.jobs ORDER BY created_at",
    )
    .await;
    assert!(
        jobs.contains("SUCCEEDED | public.orders_ingested"),
        "{jobs}"
    );
    assert!(jobs.contains("SUCCEEDED | public.uploaded"), "{jobs}");
    server.stop().await;
}
