//! Codec for [`StatementHandle`], the self-contained prepared-statement handle,
//! and for the parameter rows it carries (an Arrow IPC stream).

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::ArrowError;
use prost::Message;

use crate::v1::StatementHandle;

/// Current handle format version.
pub const HANDLE_VERSION: u32 = 1;

/// Largest handle accepted, bound parameters included. Handles travel in every
/// GetFlightInfo/DoGet call, so they must stay well below gRPC message limits.
pub const MAX_HANDLE_BYTES: usize = 4 * 1024 * 1024;

/// Why a handle could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The bytes are not a `lakehouse.v1.StatementHandle` (e.g. a handle from another server).
    #[error("not a Lakehouse statement handle: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The handle was written by an incompatible server version.
    #[error(
        "statement handle version {found} is not supported (expected {HANDLE_VERSION}); prepare the statement again"
    )]
    Version {
        /// Version found in the handle.
        found: u32,
    },
    /// The handle (with its bound parameters) exceeds [`MAX_HANDLE_BYTES`].
    #[error(
        "statement handle of {size} bytes exceeds the {MAX_HANDLE_BYTES}-byte limit; bind fewer parameter rows"
    )]
    TooLarge {
        /// Encoded size in bytes.
        size: usize,
    },
}

/// Encodes a handle, refusing ones larger than [`MAX_HANDLE_BYTES`].
pub fn encode_handle(handle: &StatementHandle) -> Result<Vec<u8>, HandleError> {
    let size = handle.encoded_len();
    if size > MAX_HANDLE_BYTES {
        return Err(HandleError::TooLarge { size });
    }
    Ok(handle.encode_to_vec())
}

/// Decodes a handle produced by [`encode_handle`].
pub fn decode_handle(bytes: &[u8]) -> Result<StatementHandle, HandleError> {
    if bytes.len() > MAX_HANDLE_BYTES {
        return Err(HandleError::TooLarge { size: bytes.len() });
    }
    let handle = StatementHandle::decode(bytes)?;
    if handle.version != HANDLE_VERSION {
        return Err(HandleError::Version {
            found: handle.version,
        });
    }
    Ok(handle)
}

/// Encodes parameter rows as an Arrow IPC stream; no batches is no bytes.
pub fn encode_parameters(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut writer = StreamWriter::try_new(Vec::new(), &first.schema())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.into_inner()
}

/// Decodes the parameter rows of a handle (written by [`encode_parameters`]; the
/// bytes come back from the client, so they are checked like any input).
///
/// The reader allocates what a message's length fields announce before reading
/// it, so a few bytes announcing 2 GiB made it allocate 2 GiB (found by `fuzz/`):
/// the framing is checked against the bytes first.
///
/// arrow-ipc panics on some malformed streams (a schema without fields, a dictionary
/// index of an odd width, buffers past the end of the body: found by `fuzz/`, kept in
/// `tests/fuzz/`); such a panic is caught here and reported as an error like any
/// other malformed input.
pub fn decode_parameters(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    check_framing(bytes)?;
    let decode = || StreamReader::try_new(bytes, None)?.collect();
    std::panic::catch_unwind(decode).unwrap_or_else(|_| {
        Err(ArrowError::IpcError(
            "the parameter rows are not a valid Arrow IPC stream".into(),
        ))
    })
}

/// Checks that every message of the IPC stream `bytes` (optional continuation
/// marker, metadata length, metadata, body) lies within `bytes`.
fn check_framing(mut bytes: &[u8]) -> Result<(), ArrowError> {
    let short = |what: &str| {
        ArrowError::IpcError(format!(
            "the parameter rows are not a valid Arrow IPC stream: {what} reaches past the end"
        ))
    };
    let word = |bytes: &mut &[u8]| -> Option<i32> {
        let (head, rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        Some(i32::from_le_bytes(*head))
    };
    while !bytes.is_empty() {
        let mut length = word(&mut bytes).ok_or_else(|| short("a message length"))?;
        if length == -1 {
            length = word(&mut bytes).ok_or_else(|| short("a message length"))?;
        }
        if length == 0 {
            return Ok(());
        }
        let length = usize::try_from(length)
            .ok()
            .filter(|&l| l <= bytes.len())
            .ok_or_else(|| short("a message header"))?;
        let (metadata, rest) = bytes.split_at(length);
        let message = arrow_ipc::root_as_message(metadata).map_err(|e| {
            ArrowError::IpcError(format!(
                "the parameter rows are not a valid Arrow IPC stream: {e}"
            ))
        })?;
        let body = usize::try_from(message.bodyLength())
            .ok()
            .filter(|&b| b <= rest.len())
            .ok_or_else(|| short("a message body"))?;
        bytes = &rest[body..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_handle() {
        let handle = StatementHandle {
            version: HANDLE_VERSION,
            sql: "SELECT $1".into(),
            default_catalog: "lakehouse".into(),
            default_schema: "public".into(),
            parameters: vec![1, 2, 3],
            affected_rows: Some(7),
            default_profile: "docs".into(),
        };
        let bytes = encode_handle(&handle).unwrap();
        assert_eq!(decode_handle(&bytes).unwrap(), handle);
    }

    #[test]
    fn rejects_foreign_bytes_and_versions() {
        assert!(matches!(
            decode_handle(b"\xff\xff\xff"),
            Err(HandleError::Malformed(_))
        ));
        let old = StatementHandle {
            version: 0,
            ..Default::default()
        };
        let bytes = old.encode_to_vec();
        assert!(matches!(
            decode_handle(&bytes),
            Err(HandleError::Version { found: 0 })
        ));
    }

    #[test]
    fn refuses_oversized_handles() {
        let big = StatementHandle {
            version: HANDLE_VERSION,
            parameters: vec![0; MAX_HANDLE_BYTES + 1],
            ..Default::default()
        };
        assert!(matches!(
            encode_handle(&big),
            Err(HandleError::TooLarge { .. })
        ));
    }
}
