//! What the fuzz targets check, one function per target.
//!
//! Each takes bytes as a client could send them and runs them through the same
//! decoders the server uses, in the same order. Beyond "no panic, no runaway
//! allocation", each checks a property the server relies on:
//!
//! - a decoded message encodes back to bytes that decode to the same message, in
//!   protobuf and (where the message has a JSON form) in JSON, and a protobuf
//!   encoding is never taken for JSON;
//! - a decoded Flight SQL command re-encodes to the same command;
//! - Arrow data decoded from a handle or a DoPut stream passes full validation, so
//!   nothing downstream reads out of bounds.

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_flight::sql::{Any, Command};
use arrow_flight::{CancelFlightInfoRequest, FlightData};
use futures::TryStreamExt;
use lakehouse_flight_ext::actions::{
    BUCKET_ADD, BUCKET_LIST, BUCKET_MOVE_INDEX, BUCKET_REMOVE, INGEST_FILE, INGEST_MYSQL,
    INGEST_POSTGRES, JOB_CANCEL, JOB_LIST, JOB_STATUS, PII_MARK, PROFILE_ACTIVATE, PROFILE_CREATE,
    PROFILE_DROP, PROFILE_LIST, TABLE_VACUUM, VECTOR_EVAL, VECTOR_EVAL_SET_CREATE,
    VECTOR_INDEX_CREATE, VECTOR_SEARCH,
};
use lakehouse_flight_ext::session_actions::{
    CANCEL_FLIGHT_INFO, CLOSE_SESSION, GET_SESSION_OPTIONS, SET_SESSION_OPTIONS,
};
use lakehouse_flight_ext::v1::{
    BucketAddRequest, BucketListRequest, BucketMoveIndexRequest, BucketRemoveRequest,
    CloseSessionRequest, GetSessionOptionsRequest, IngestDatabaseRequest, IngestFileRequest,
    IngestUploadCommand, JobCancelRequest, JobListRequest, JobStatusRequest, PiiMarkRequest,
    ProfileActivateRequest, ProfileCreateRequest, ProfileDropRequest, ProfileListRequest,
    SetSessionOptionsRequest, TableVacuumRequest, VectorEvalRequest, VectorEvalSetCreateRequest,
    VectorIndexCreateRequest, VectorSearchCommand, VectorSearchRequest,
};
use lakehouse_flight_ext::{
    DecodedBatches, Encoding, INGEST_UPLOAD_TYPE_URL, VECTOR_SEARCH_TYPE_URL, decode_body,
    decode_handle, decode_parameters, encode_body, encode_handle,
};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The server catches the Arrow IPC decoder's panics on malformed input and answers
/// with an error (`decode_parameters`, `DecodedBatches`). libFuzzer's panic hook
/// aborts before any unwinding, so such caught panics would count as crashes: this
/// hook lets panics raised inside the arrow crates unwind to those catchers, quietly.
/// Any other panic, and any arrow panic nobody catches, still aborts the run.
fn let_arrow_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_arrow = info
                .location()
                .is_some_and(|l| l.file().contains("/arrow-"));
            if !in_arrow {
                abort(info);
            }
        }));
    });
}

/// Every action name the server dispatches on, `lakehouse.*` then session actions.
pub fn action_names() -> Vec<&'static str> {
    lakehouse_flight_ext::actions::ALL
        .into_iter()
        .chain(lakehouse_flight_ext::session_actions::ALL)
        .collect()
}

/// Target `action_bodies`: the first byte picks an action, the rest is its body.
pub fn action_bodies(data: &[u8]) {
    let_arrow_panics_unwind();
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let names = action_names();
    action_body(names[usize::from(selector) % names.len()], body);
}

/// Decodes `body` as the server does for action `name`.
pub fn action_body(name: &str, body: &[u8]) {
    match name {
        INGEST_FILE => extension_body::<IngestFileRequest>(body),
        INGEST_POSTGRES | INGEST_MYSQL => extension_body::<IngestDatabaseRequest>(body),
        VECTOR_INDEX_CREATE => extension_body::<VectorIndexCreateRequest>(body),
        VECTOR_SEARCH => extension_body::<VectorSearchRequest>(body),
        VECTOR_EVAL_SET_CREATE => extension_body::<VectorEvalSetCreateRequest>(body),
        VECTOR_EVAL => extension_body::<VectorEvalRequest>(body),
        JOB_STATUS => extension_body::<JobStatusRequest>(body),
        JOB_CANCEL => extension_body::<JobCancelRequest>(body),
        JOB_LIST => extension_body::<JobListRequest>(body),
        PII_MARK => extension_body::<PiiMarkRequest>(body),
        BUCKET_ADD => extension_body::<BucketAddRequest>(body),
        BUCKET_REMOVE => extension_body::<BucketRemoveRequest>(body),
        BUCKET_LIST => extension_body::<BucketListRequest>(body),
        BUCKET_MOVE_INDEX => extension_body::<BucketMoveIndexRequest>(body),
        TABLE_VACUUM => extension_body::<TableVacuumRequest>(body),
        PROFILE_CREATE => extension_body::<ProfileCreateRequest>(body),
        PROFILE_LIST => extension_body::<ProfileListRequest>(body),
        PROFILE_ACTIVATE => extension_body::<ProfileActivateRequest>(body),
        PROFILE_DROP => extension_body::<ProfileDropRequest>(body),
        SET_SESSION_OPTIONS => {
            protobuf_body::<SetSessionOptionsRequest>(body);
        }
        GET_SESSION_OPTIONS => {
            protobuf_body::<GetSessionOptionsRequest>(body);
        }
        CLOSE_SESSION => {
            protobuf_body::<CloseSessionRequest>(body);
        }
        CANCEL_FLIGHT_INFO => {
            if let Some(request) = protobuf_body::<CancelFlightInfoRequest>(body) {
                // The server looks its tickets up; each one is a command too.
                for endpoint in request.info.into_iter().flat_map(|info| info.endpoint) {
                    if let Some(ticket) = endpoint.ticket {
                        commands(&ticket.ticket);
                    }
                }
            }
        }
        other => panic!("action {other} has no decoder in the fuzz harness"),
    }
}

/// A `lakehouse.*` body: protobuf or JSON, as `decode_body` tells them apart.
fn extension_body<M>(body: &[u8])
where
    M: Message + Default + Serialize + DeserializeOwned,
{
    let Ok((message, _)) = decode_body::<M>(body) else {
        return;
    };
    let proto = message.encode_to_vec();
    assert_eq!(
        Encoding::of(&proto),
        Encoding::Protobuf,
        "a protobuf encoding was taken for JSON"
    );
    let (again, encoding) = decode_body::<M>(&proto).expect("own protobuf encoding decodes");
    assert_eq!(encoding, Encoding::Protobuf);
    assert_eq!(
        again.encode_to_vec(),
        proto,
        "protobuf round trip changed the message"
    );
    // Messages holding enum values the schema does not name have no JSON form;
    // the server refuses those values when it reads the field.
    if serde_json::to_vec(&message).is_ok() {
        let json = encode_body(&message, Encoding::Json);
        let (again, encoding) = decode_body::<M>(&json).unwrap_or_else(|e| {
            panic!(
                "own JSON encoding does not decode: {e}: {}",
                String::from_utf8_lossy(&json)
            )
        });
        assert_eq!(encoding, Encoding::Json);
        // Compared as JSON: a NaN's payload and sign have no JSON form.
        assert_eq!(
            encode_body(&again, Encoding::Json),
            json,
            "JSON round trip changed the message"
        );
    }
}

/// A body the server reads with prost alone (Flight session actions).
fn protobuf_body<M: Message + Default>(body: &[u8]) -> Option<M> {
    let message = M::decode(body).ok()?;
    let proto = message.encode_to_vec();
    let again = M::decode(proto.as_slice()).expect("own protobuf encoding decodes");
    assert_eq!(
        again.encode_to_vec(),
        proto,
        "protobuf round trip changed the message"
    );
    Some(message)
}

/// Target `commands`: a GetFlightInfo/DoPut descriptor command, a DoGet ticket or
/// a Flight SQL action body — all `Any`-wrapped, decoded as arrow-flight's
/// Flight SQL server does, then as Lakehouse's own handlers do.
pub fn commands(data: &[u8]) {
    let_arrow_panics_unwind();
    let Ok(any) = Any::decode(data) else {
        return;
    };
    let Ok(command) = Command::try_from(any) else {
        return;
    };
    let again = Any::decode(command.clone().into_any().encode_to_vec().as_slice())
        .expect("re-encoded Any decodes");
    let again = Command::try_from(again).expect("re-encoded command decodes");
    assert_eq!(again, command, "command round trip changed it");
    match command {
        Command::TicketStatementQuery(ticket) => handle(&ticket.statement_handle),
        Command::CommandPreparedStatementQuery(query) => handle(&query.prepared_statement_handle),
        Command::CommandPreparedStatementUpdate(update) => {
            handle(&update.prepared_statement_handle)
        }
        Command::ActionClosePreparedStatementRequest(close) => {
            handle(&close.prepared_statement_handle)
        }
        Command::Unknown(any) if any.type_url == VECTOR_SEARCH_TYPE_URL => {
            extension_body::<VectorSearchCommand>(&any.value)
        }
        Command::Unknown(any) if any.type_url == INGEST_UPLOAD_TYPE_URL => {
            extension_body::<IngestUploadCommand>(&any.value)
        }
        _ => {}
    }
}

/// Target `statement_handles`: the first byte chooses between a whole handle
/// (even) and the parameter rows inside one (odd).
pub fn statement_handles(data: &[u8]) {
    let_arrow_panics_unwind();
    match data.split_first() {
        Some((selector, rest)) if selector % 2 == 0 => handle(rest),
        Some((_, rest)) => parameters(rest),
        None => {}
    }
}

fn handle(bytes: &[u8]) {
    let Ok(handle) = decode_handle(bytes) else {
        return;
    };
    let encoded = encode_handle(&handle).expect("a decoded handle is small enough to encode");
    assert_eq!(
        decode_handle(&encoded).expect("own encoding decodes"),
        handle
    );
    parameters(&handle.parameters);
}

fn parameters(bytes: &[u8]) {
    if let Ok(batches) = decode_parameters(bytes) {
        batches.iter().for_each(check_batch);
    }
}

/// Target `flight_data`: a DoPut stream (uploads, bulk ingest, parameter rows) as
/// length-delimited `FlightData` messages, decoded into record batches.
pub fn flight_data(data: &[u8]) {
    let_arrow_panics_unwind();
    let mut rest = data;
    let mut messages = Vec::new();
    while !rest.is_empty() {
        match FlightData::decode_length_delimited(&mut rest) {
            Ok(message) => messages.push(message),
            Err(_) => break,
        }
    }
    let stream = futures::stream::iter(messages.into_iter().map(Ok));
    let decoded = futures::executor::block_on(DecodedBatches::new(stream).try_collect::<Vec<_>>());
    if let Ok(batches) = decoded {
        batches.iter().for_each(check_batch);
    }
}

/// Every column is valid Arrow and every value can be read.
fn check_batch(batch: &RecordBatch) {
    let options = FormatOptions::default();
    for column in batch.columns() {
        if let Err(e) = column.to_data().validate_full() {
            panic!("decoded a column that is not valid Arrow: {e}");
        }
        assert_eq!(column.len(), batch.num_rows());
        if let Ok(formatter) = ArrayFormatter::try_new(column.as_ref(), &options) {
            for row in 0..column.len() {
                let _ = formatter.value(row).try_to_string();
            }
        }
    }
}
