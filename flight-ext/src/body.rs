//! Action bodies: every `lakehouse.*` action accepts its request message as
//! protobuf or as its proto3 JSON mapping, and answers in the encoding it was sent.
//!
//! A body that starts with `{` is JSON: as a protobuf key that byte would be
//! field 15 with the long-dead "start group" wire type, used by no Lakehouse
//! message. Anything else is read as protobuf first. JSON led by white space is
//! accepted too, when it does not read as protobuf: white space is no sure sign
//! (`\n{` is field 1 with 123 bytes, and the fuzzer built protobuf bodies that are
//! white space and a whole JSON document), so protobuf, what our own clients send,
//! wins every tie.

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
    /// The encoding `body` is read in first: JSON when it starts with `{`, else
    /// protobuf (a body led by white space that is not protobuf is then tried as
    /// JSON, see [`decode_body`]).
    pub fn of(body: &[u8]) -> Self {
        match body.first() {
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
        Encoding::Protobuf => match M::decode(body) {
            Ok(message) => Ok((message, Encoding::Protobuf)),
            // Not protobuf, white space then `{`: JSON led by white space (or broken
            // JSON, and then the error says what is wrong with it as JSON).
            Err(_) if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
                decode_json(body)
            }
            Err(e) => Err(e.into()),
        },
        Encoding::Json => decode_json(body),
    }
}

fn decode_json<M: DeserializeOwned>(body: &[u8]) -> Result<(M, Encoding), BodyError> {
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

/// Encodes a reply in `encoding`.
pub fn encode_body<M: Message + Serialize>(message: &M, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        // Generated pbjson serializers do not fail; an empty object is the fallback.
        Encoding::Json => {
            let mut out = Vec::new();
            let mut json = serde_json::Serializer::with_formatter(&mut out, ProtoJson);
            match message.serialize(&mut json) {
                Ok(()) => out,
                Err(_) => b"{}".to_vec(),
            }
        }
    }
}

/// serde_json writes a non-finite float as `null`, which no proto3 JSON reader (ours
/// included) takes for a float; proto3 JSON spells it `"NaN"`. pbjson writes no other
/// `null` (unset fields are left out), so every `null` is such a float. Infinities
/// come out as `"NaN"` too: the server sends none. Found by `fuzz/` (a NaN distance
/// of a hybrid hit did not survive its own JSON encoding).
struct ProtoJson;

impl serde_json::ser::Formatter for ProtoJson {
    fn write_null<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b"\"NaN\"")
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
    fn protobuf_that_looks_like_json_stays_protobuf() {
        // A 123-byte source_bucket is field 1 with length 123: `\n{` on the wire.
        let request = IngestFileRequest {
            source_bucket: "b".repeat(123),
            table: "t".into(),
            ..Default::default()
        };
        let proto = encode_body(&request, Encoding::Protobuf);
        assert_eq!(&proto[..2], b"\n{");
        assert_eq!(Encoding::of(&proto), Encoding::Protobuf);
        assert_eq!(decode_body::<IngestFileRequest>(&proto).unwrap().0, request);
        // JSON led by white space is still JSON, and says what is wrong with it.
        let (led, encoding) =
            decode_body::<IngestFileRequest>(b"\n {\"table\": \"t\"} \n").unwrap();
        assert_eq!((led.table.as_str(), encoding), ("t", Encoding::Json));
        // A protobuf body that is also white space and a whole JSON document (built by
        // the fuzzer) stays protobuf.
        let sneaky = IngestFileRequest {
            source_bucket: format!("\"a\":\"{}\"}}", "b".repeat(123 - 7)),
            ..Default::default()
        };
        let proto = encode_body(&sneaky, Encoding::Protobuf);
        assert!(serde_json::from_slice::<serde_json::Value>(&proto).is_ok());
        assert_eq!(
            decode_body::<IngestFileRequest>(&proto).unwrap(),
            (sneaky, Encoding::Protobuf)
        );
        let error = decode_body::<IngestFileRequest>(b"\n{\"table\": 1}")
            .unwrap_err()
            .to_string();
        assert!(error.contains("table"), "{error}");
        // Broken JSON led by white space is reported as JSON, not as protobuf.
        let error = decode_body::<IngestFileRequest>(b" {\"table\": ")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("field"), "{error}");
    }

    #[test]
    fn floats_survive_json_exactly() {
        use crate::v1::VectorSearchRequest;
        // Every finite f32 comes back bit for bit (tiny, huge, subnormal edges).
        let tricky = f32::from_bits(0x03ff_ffff);
        let request = VectorSearchRequest {
            index: "i".into(),
            vector: vec![
                tricky,
                0.1,
                -1.5,
                3.0e-7,
                1.0e20,
                f32::MIN_POSITIVE,
                f32::MAX,
                0.0,
            ],
            ..Default::default()
        };
        let json = encode_body(&request, Encoding::Json);
        let (back, _) = decode_body::<VectorSearchRequest>(&json).unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&back.vector),
            bits(&request.vector),
            "{}",
            String::from_utf8_lossy(&json)
        );
        // Plain values keep their short form.
        assert!(String::from_utf8_lossy(&json).contains("0.1,-1.5"));
    }

    #[test]
    fn non_finite_floats_survive_json() {
        use crate::v1::{VectorHit, VectorSearchResult};
        let result = VectorSearchResult {
            hits: vec![VectorHit {
                id: 7,
                distance: Some(f32::NAN),
                text: "a non-finite distance".into(),
                score: 0.5,
            }],
            seconds: 0.25,
        };
        let json = encode_body(&result, Encoding::Json);
        assert!(String::from_utf8_lossy(&json).contains("\"distance\":\"NaN\""));
        let (back, _) = decode_body::<VectorSearchResult>(&json).unwrap();
        assert!(back.hits[0].distance.is_some_and(f32::is_nan));
        assert_eq!(back.hits[0].score, 0.5);
    }

    #[test]
    fn json_replies_carry_default_fields() {
        use crate::v1::{VectorHit, VectorSearchResult};
        // No hits: the key is there all the same.
        let json = encode_body(&VectorSearchResult::default(), Encoding::Json);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["hits"], serde_json::json!([]));
        // A text hit has no vector distance: the optional field is left out.
        let hit = VectorHit {
            id: 0,
            distance: None,
            text: String::new(),
            score: 1.0,
        };
        let json = encode_body(&hit, Encoding::Json);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["id"], "0");
        assert!(value.get("distance").is_none(), "{value}");
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
