//! Action bodies: every `lakehouse.*` action accepts its request message as
//! protobuf or as its proto3 JSON mapping, and answers in the encoding it was sent.
//!
//! The two never collide: a JSON body starts with `{` (after optional white
//! space), which as a protobuf key would be field 15 with the long-dead "start
//! group" wire type, used by no Lakehouse message.

use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Protocol Buffers binary.
    Protobuf,
    /// The proto3 JSON mapping (field names in lowerCamelCase or as declared).
    Json,
}

impl Encoding {
    /// The encoding `body` is in.
    pub fn of(body: &[u8]) -> Self {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::Json,
            _ => Self::Protobuf,
        }
    }
}

/// Why a body could not be decoded; the message names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Malformed protobuf.
    #[error("{0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Malformed JSON, or a JSON value of the wrong type.
    #[error("field {path}: {message}")]
    Json {
        /// Where, e.g. `csv.hasHeader` (`.` for the whole body).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Decodes a request body in either encoding; an empty body is the default message.
pub fn decode_body<M>(body: &[u8]) -> Result<(M, Encoding), BodyError>
where
    M: Message + Default + DeserializeOwned,
{
    match Encoding::of(body) {
        Encoding::Protobuf => Ok((M::decode(body)?, Encoding::Protobuf)),
        Encoding::Json => {
            let mut json = serde_json::Deserializer::from_slice(body);
            let message = serde_path_to_error::deserialize(&mut json).map_err(|e| {
                let path = e.path().to_string();
                BodyError::Json {
                    path,
                    message: e.into_inner().to_string(),
                }
            })?;
            json.end().map_err(|e| BodyError::Json {
                path: ".".into(),
                message: e.to_string(),
            })?;
            Ok((message, Encoding::Json))
        }
    }
}

/// Encodes a reply in `encoding`.
pub fn encode_body<M: Message + Serialize>(message: &M, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        // Generated pbjson serializers do not fail; an empty object is the fallback.
        Encoding::Json => serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{CsvOptions, IngestFileRequest, IngestMode};

    #[test]
    fn both_encodings_decode_to_the_same_message() {
        let request = IngestFileRequest {
            path: "landing/*.csv".into(),
            table: "sales".into(),
            mode: IngestMode::Append as i32,
            csv: Some(CsvOptions {
                delimiter: ";".into(),
                has_header: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let proto = encode_body(&request, Encoding::Protobuf);
        let json = encode_body(&request, Encoding::Json);
        assert_eq!(Encoding::of(&json), Encoding::Json);
        let (from_proto, e1) = decode_body::<IngestFileRequest>(&proto).unwrap();
        let (from_json, e2) = decode_body::<IngestFileRequest>(&json).unwrap();
        assert_eq!((e1, e2), (Encoding::Protobuf, Encoding::Json));
        assert_eq!(from_proto, request);
        assert_eq!(from_json, request);
        // Declared (snake_case) names and enum names are accepted too.
        let (hand, _) = decode_body::<IngestFileRequest>(
            br#" {"path": "a.csv", "table": "t", "mode": "INGEST_MODE_REPLACE", "csv": {"has_header": true}}"#,
        )
        .unwrap();
        assert_eq!(hand.mode, IngestMode::Replace as i32);
        assert_eq!(hand.csv.unwrap().has_header, Some(true));
    }

    #[test]
    fn json_errors_name_the_field() {
        let error =
            decode_body::<IngestFileRequest>(br#"{"table": "t", "csv": {"hasHeader": "yes"}}"#)
                .unwrap_err()
                .to_string();
        assert!(error.contains("csv.hasHeader"), "{error}");
        let error = decode_body::<IngestFileRequest>(br#"{"mode": "SIDEWAYS"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("mode"), "{error}");
        let error = decode_body::<IngestFileRequest>(br#"{"table": "t"} trailing"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("trailing"), "{error}");
    }

    #[test]
    fn protobuf_errors_name_the_message() {
        // Field 4 (mode) as a length-delimited value: wrong wire type.
        let error = decode_body::<IngestFileRequest>(&[0x22, 0x01, 0x00])
            .unwrap_err()
            .to_string();
        assert!(error.contains("IngestFileRequest"), "{error}");
    }
}
