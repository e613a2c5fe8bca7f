//! Writes a seed corpus for every fuzz target: valid messages as real clients send
//! them, so the fuzzers start from the shapes the server sees.
//!
//! Usage: `seeds DIR` (writes `DIR/<target>/<name>`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    UnionArray,
};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, CommandGetTables,
    CommandPreparedStatementQuery, CommandStatementIngest, CommandStatementQuery, ProstMessageExt,
    TicketStatementQuery,
};
use arrow_flight::{CancelFlightInfoRequest, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use arrow_schema::{DataType, Field, Schema, UnionFields};
use futures::TryStreamExt;
use lakehouse_flight_ext::v1::session_option_value::OptionValue;
use lakehouse_flight_ext::v1::{
    BucketAddRequest, CsvOptions, IngestDatabaseRequest, IngestFileRequest, IngestUploadCommand,
    JobStatusRequest, ProfileActivateRequest, ProfileCreateRequest, SessionOptionValue,
    SetSessionOptionsRequest, StatementHandle, TableVacuumRequest, VectorIndexCreateRequest,
    VectorSearchCommand, VectorSearchRequest,
};
use lakehouse_flight_ext::{
    Encoding, HANDLE_VERSION, INGEST_UPLOAD_TYPE_URL, VECTOR_SEARCH_TYPE_URL, encode_body,
    encode_handle, encode_parameters,
};
use lakehouse_fuzz::action_names;
use prost::Message;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let dir = std::env::args().nth(1).ok_or("usage: seeds DIR")?;
    let dir = Path::new(&dir);
    action_seeds(&dir.join("action_bodies"))?;
    let handle = sample_handle()?;
    command_seeds(&dir.join("commands"), &handle)?;
    handle_seeds(&dir.join("statement_handles"), &handle)?;
    flight_data_seeds(&dir.join("flight_data"))?;
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// Protobuf and JSON bodies, each behind the selector byte of its action.
fn action_seeds(dir: &Path) -> Result<()> {
    let names = action_names();
    let selector = |name: &str| -> Result<u8> {
        let index = names
            .iter()
            .position(|n| *n == name)
            .ok_or("unknown action")?;
        Ok(u8::try_from(index)?)
    };
    let mut bodies: Vec<(&str, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut both = |name: &'static str, proto: Vec<u8>, json: Vec<u8>| {
        bodies.push((name, proto, json));
    };
    let file = IngestFileRequest {
        path: "landing/*.csv".into(),
        table: "sales.orders".into(),
        mode: 1,
        csv: Some(CsvOptions {
            delimiter: ";".into(),
            has_header: Some(true),
            ..Default::default()
        }),
        column_types: BTreeMap::from([("amount".into(), "decimal(10,2)".into())]),
        ..Default::default()
    };
    both(
        lakehouse_flight_ext::actions::INGEST_FILE,
        enc(&file, Encoding::Protobuf),
        enc(&file, Encoding::Json),
    );
    let db = IngestDatabaseRequest {
        dsn: "postgres://user:secret@127.0.0.1/db".into(),
        source_table: "public.orders".into(),
        table: "orders".into(),
        watermark_column: "updated_at".into(),
        ..Default::default()
    };
    both(
        lakehouse_flight_ext::actions::INGEST_POSTGRES,
        enc(&db, Encoding::Protobuf),
        enc(&db, Encoding::Json),
    );
    let create = VectorIndexCreateRequest {
        name: "docs_idx".into(),
        table: "docs".into(),
        text_column: "body".into(),
        id_column: "id".into(),
        backend: "hnsw".into(),
        metric: "cosine".into(),
        m: 16,
        ef_construction: 200,
        chunk_overlap: Some(32),
        ..Default::default()
    };
    both(
        lakehouse_flight_ext::actions::VECTOR_INDEX_CREATE,
        enc(&create, Encoding::Protobuf),
        enc(&create, Encoding::Json),
    );
    let search = search_request();
    both(
        lakehouse_flight_ext::actions::VECTOR_SEARCH,
        enc(&search, Encoding::Protobuf),
        enc(&search, Encoding::Json),
    );
    let job = JobStatusRequest {
        job_id: "0123456789abcdef".into(),
        follow: true,
    };
    both(
        lakehouse_flight_ext::actions::JOB_STATUS,
        enc(&job, Encoding::Protobuf),
        enc(&job, Encoding::Json),
    );
    let bucket = BucketAddRequest {
        name: "archive".into(),
        url: "s3://archive/lake".into(),
    };
    both(
        lakehouse_flight_ext::actions::BUCKET_ADD,
        enc(&bucket, Encoding::Protobuf),
        enc(&bucket, Encoding::Json),
    );
    let vacuum = TableVacuumRequest {
        table: "sales.orders".into(),
        retain_hours: Some(0.5),
        dry_run: true,
    };
    both(
        lakehouse_flight_ext::actions::TABLE_VACUUM,
        enc(&vacuum, Encoding::Protobuf),
        enc(&vacuum, Encoding::Json),
    );
    let profile = ProfileCreateRequest {
        name: "support".into(),
        embedder: "ollama_nomic".into(),
        llm: "llama".into(),
        backend: "faiss".into(),
        ..Default::default()
    };
    both(
        lakehouse_flight_ext::actions::PROFILE_CREATE,
        enc(&profile, Encoding::Protobuf),
        enc(&profile, Encoding::Json),
    );
    let activate = ProfileActivateRequest {
        name: "support".into(),
        detach: true,
    };
    both(
        lakehouse_flight_ext::actions::PROFILE_ACTIVATE,
        enc(&activate, Encoding::Protobuf),
        enc(&activate, Encoding::Json),
    );
    let options = SetSessionOptionsRequest {
        session_options: BTreeMap::from([
            (
                "schema".into(),
                SessionOptionValue {
                    option_value: Some(OptionValue::StringValue("public".into())),
                },
            ),
            (
                "profile".into(),
                SessionOptionValue {
                    option_value: Some(OptionValue::StringValue("support".into())),
                },
            ),
        ]),
    };
    both(
        lakehouse_flight_ext::session_actions::SET_SESSION_OPTIONS,
        options.encode_to_vec(),
        Vec::new(),
    );
    let cancel = CancelFlightInfoRequest {
        info: Some(FlightInfo {
            endpoint: vec![FlightEndpoint {
                ticket: Some(Ticket {
                    ticket: statement_ticket(&sample_handle()?).into(),
                }),
                ..Default::default()
            }],
            flight_descriptor: Some(FlightDescriptor::new_cmd(b"SELECT 1".to_vec())),
            ..Default::default()
        }),
    };
    both(
        lakehouse_flight_ext::session_actions::CANCEL_FLIGHT_INFO,
        cancel.encode_to_vec(),
        Vec::new(),
    );
    for (name, proto, json) in bodies {
        let s = selector(name)?;
        write(
            dir,
            &format!("{name}.pb"),
            &[&[s], proto.as_slice()].concat(),
        )?;
        if !json.is_empty() {
            write(
                dir,
                &format!("{name}.json"),
                &[&[s], json.as_slice()].concat(),
            )?;
        }
    }
    // Every other action with an empty body and an empty JSON object.
    for (index, name) in names.iter().enumerate() {
        let s = u8::try_from(index)?;
        write(dir, &format!("{name}.empty"), &[s])?;
        write(
            dir,
            &format!("{name}.empty.json"),
            &[&[s], b"{}".as_slice()].concat(),
        )?;
    }
    Ok(())
}

fn enc<M: Message + serde::Serialize>(message: &M, encoding: Encoding) -> Vec<u8> {
    encode_body(message, encoding)
}

fn search_request() -> VectorSearchRequest {
    VectorSearchRequest {
        index: "docs_idx".into(),
        query: "how do rivers form".into(),
        vector: vec![0.25, -1.5, 3.0e-7],
        k: 10,
        ef: 64,
        filter: "lang = 'en' AND year > 2000".into(),
        mode: "hybrid".into(),
        nprobe: 8,
    }
}

/// Parameter rows as ADBC (plain columns) and flightsql-dbapi (dense unions) send them.
fn parameter_batches() -> Result<Vec<RecordBatch>> {
    let plain = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("0", DataType::Int64, true),
            Field::new("1", DataType::Utf8, true),
            Field::new("2", DataType::Float64, true),
            Field::new(
                "3",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![Some(1), None, Some(-7)])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("a"), Some("ü"), None])),
            Arc::new(Float64Array::from(vec![0.5, f64::NAN, -0.0])),
            Arc::new(
                vec!["x", "y", "x"]
                    .into_iter()
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
        ],
    )?;
    let fields = UnionFields::try_new(
        vec![0, 1],
        vec![
            Field::new("int64", DataType::Int64, true),
            Field::new("string", DataType::Utf8, true),
        ],
    )?;
    let union = UnionArray::try_new(
        fields,
        vec![0_i8, 1].into(),
        Some(vec![0_i32, 0].into()),
        vec![
            Arc::new(Int64Array::from(vec![42])) as ArrayRef,
            Arc::new(StringArray::from(vec!["b"])),
        ],
    )?;
    let union = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "param_0",
            union.data_type().clone(),
            false,
        )])),
        vec![Arc::new(union)],
    )?;
    Ok(vec![plain, union])
}

fn sample_handle() -> Result<Vec<u8>> {
    let batches = parameter_batches()?;
    let handle = StatementHandle {
        version: HANDLE_VERSION,
        sql: "SELECT * FROM t WHERE id = $1 AND name = $2".into(),
        default_catalog: "lakehouse".into(),
        default_schema: "public".into(),
        parameters: encode_parameters(&batches[..1])?,
        affected_rows: None,
        default_profile: String::new(),
    };
    Ok(encode_handle(&handle)?)
}

fn statement_ticket(handle: &[u8]) -> Vec<u8> {
    TicketStatementQuery {
        statement_handle: handle.to_vec().into(),
    }
    .as_any()
    .encode_to_vec()
}

fn command_seeds(dir: &Path, handle: &[u8]) -> Result<()> {
    let query = CommandStatementQuery {
        query: "SELECT * FROM lakehouse.public.t".into(),
        transaction_id: None,
    };
    write(dir, "statement_query", &query.as_any().encode_to_vec())?;
    write(dir, "statement_ticket", &statement_ticket(handle))?;
    let prepared = CommandPreparedStatementQuery {
        prepared_statement_handle: handle.to_vec().into(),
    };
    write(dir, "prepared_query", &prepared.as_any().encode_to_vec())?;
    let create = ActionCreatePreparedStatementRequest {
        query: "SELECT $1".into(),
        transaction_id: None,
    };
    write(dir, "create_prepared", &create.as_any().encode_to_vec())?;
    let close = ActionClosePreparedStatementRequest {
        prepared_statement_handle: handle.to_vec().into(),
    };
    write(dir, "close_prepared", &close.as_any().encode_to_vec())?;
    let tables = CommandGetTables {
        catalog: Some("lakehouse".into()),
        db_schema_filter_pattern: Some("pub%".into()),
        table_name_filter_pattern: None,
        table_types: vec!["TABLE".into()],
        include_schema: true,
    };
    write(dir, "get_tables", &tables.as_any().encode_to_vec())?;
    let ingest = CommandStatementIngest {
        table: "orders".into(),
        ..Default::default()
    };
    write(dir, "statement_ingest", &ingest.as_any().encode_to_vec())?;
    let search = VectorSearchCommand {
        search: Some(search_request()),
        columns: vec!["title".into(), "body".into()],
    };
    for (name, encoding) in [("pb", Encoding::Protobuf), ("json", Encoding::Json)] {
        let any = arrow_flight::sql::Any {
            type_url: VECTOR_SEARCH_TYPE_URL.into(),
            value: encode_body(&search, encoding).into(),
        };
        write(dir, &format!("vector_search.{name}"), &any.encode_to_vec())?;
    }
    let upload = IngestUploadCommand {
        file_name: "orders.csv".into(),
        request: Some(IngestFileRequest {
            table: "orders".into(),
            ..Default::default()
        }),
    };
    let any = arrow_flight::sql::Any {
        type_url: INGEST_UPLOAD_TYPE_URL.into(),
        value: upload.encode_to_vec().into(),
    };
    write(dir, "ingest_upload", &any.encode_to_vec())?;
    Ok(())
}

fn handle_seeds(dir: &Path, handle: &[u8]) -> Result<()> {
    write(dir, "handle", &[&[0_u8], handle].concat())?;
    for (index, batch) in parameter_batches()?.into_iter().enumerate() {
        let bytes = encode_parameters(&[batch])?;
        write(
            dir,
            &format!("parameters_{index}"),
            &[&[1_u8], bytes.as_slice()].concat(),
        )?;
    }
    Ok(())
}

fn flight_data_seeds(dir: &Path) -> Result<()> {
    for (index, batch) in parameter_batches()?.into_iter().enumerate() {
        let stream = FlightDataEncoderBuilder::new()
            .build(futures::stream::iter([Ok(batch.clone()), Ok(batch)]));
        let messages: Vec<_> = futures::executor::block_on(stream.try_collect())?;
        let mut bytes = Vec::new();
        for message in messages {
            message.encode_length_delimited(&mut bytes)?;
        }
        write(dir, &format!("stream_{index}"), &bytes)?;
    }
    Ok(())
}
