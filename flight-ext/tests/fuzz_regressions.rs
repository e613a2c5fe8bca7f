//! Inputs `fuzz/` found that made the Arrow IPC decoder panic or allocate what a
//! length field announced; each must now be a plain error. Files in `tests/fuzz/`: parameter rows of statement handles
//! (`*.arrows`) and DoPut streams (`*.bin`, length-delimited `FlightData`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arrow_flight::FlightData;
use futures::TryStreamExt;
use lakehouse_flight_ext::{DecodedBatches, decode_parameters};
use prost::Message;

fn input(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fuzz/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn malformed_parameter_rows_are_errors() {
    for name in [
        "parameters-schema-without-fields.arrows",
        "parameters-dictionary-index-width.arrows",
        "parameters-buffer-past-the-body.arrows",
        // Announced a 721 MB message in 869 bytes: refused before allocating.
        "parameters-announces-gigabytes.arrows",
    ] {
        let error = decode_parameters(&input(name)).unwrap_err().to_string();
        assert!(
            error.contains("not a valid Arrow IPC stream"),
            "{name}: {error}"
        );
    }
}

#[test]
fn a_malformed_doput_stream_is_an_error() {
    let mut bytes: &[u8] = &input("flight-data-buffer-past-the-body.bin");
    let mut messages = Vec::new();
    while !bytes.is_empty() {
        match FlightData::decode_length_delimited(&mut bytes) {
            Ok(message) => messages.push(Ok(message)),
            Err(_) => break,
        }
    }
    let decoded = futures::executor::block_on(
        DecodedBatches::new(futures::stream::iter(messages)).try_collect::<Vec<_>>(),
    );
    let error = decoded.unwrap_err().to_string();
    assert!(error.contains("malformed"), "{error}");
}
