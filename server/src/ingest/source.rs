//! Input files: resolving a path or glob in a bucket, and reading a file as a
//! blocking byte stream (local files directly, object stores chunk by chunk).

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use encoding_rs::{CoderResult, Encoding};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio::runtime::Handle;

use super::IngestError;
use crate::storage::Bucket;

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputFile {
    /// Path inside the bucket.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Characters that make a path a glob.
const GLOB_CHARS: [char; 4] = ['*', '?', '[', '{'];

/// Checks a caller's path: relative to the bucket, no `..`, not Lakehouse's own folders.
pub(crate) fn check_path(path: &str) -> Result<String, IngestError> {
    let trimmed = path.trim().trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(IngestError::invalid(
            "path",
            "is empty: name a file or a glob",
        ));
    }
    if trimmed.split('/').any(|part| part == "..") {
        return Err(IngestError::invalid(
            "path",
            format!("{path:?} leaves the bucket ('..' is not allowed)"),
        ));
    }
    if trimmed.starts_with("_lakehouse/") || trimmed.starts_with("tables/") {
        return Err(IngestError::PermissionDenied(format!(
            "{path:?} is inside Lakehouse's own storage (_lakehouse/, tables/); query tables with SQL instead"
        )));
    }
    Ok(trimmed.to_string())
}

/// The files `pattern` names in `bucket`, sorted by path. Without glob characters
/// it names one file; `*` and `?` stay within a folder, `**` crosses folders.
pub(crate) async fn resolve(bucket: &Bucket, pattern: &str) -> Result<Vec<InputFile>, IngestError> {
    let Some(first_glob) = pattern.find(GLOB_CHARS) else {
        return match bucket.size(pattern).await? {
            Some(size) => Ok(vec![InputFile {
                path: pattern.to_string(),
                size,
            }]),
            None => Err(IngestError::NotFound(format!(
                "no file {pattern:?} in bucket {:?}",
                bucket.name()
            ))),
        };
    };
    let glob = glob::Pattern::new(pattern).map_err(|e| {
        IngestError::invalid("path", format!("{pattern:?} is not a valid glob: {e}"))
    })?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let folder = pattern[..first_glob]
        .rfind('/')
        .map_or("", |i| &pattern[..=i]);
    let files: Vec<InputFile> = bucket
        .list_sizes(folder)
        .await?
        .into_iter()
        .filter(|(path, _)| glob.matches_with(path, options))
        .map(|(path, size)| InputFile { path, size })
        .collect();
    if files.is_empty() {
        return Err(IngestError::NotFound(format!(
            "no file in bucket {:?} matches {pattern:?}",
            bucket.name()
        )));
    }
    Ok(files)
}

/// Opens `file` for blocking reads (call from a blocking thread). Bytes read are
/// added to `counter`.
pub(crate) fn open(
    bucket: &Arc<Bucket>,
    file: &InputFile,
    runtime: &Handle,
    counter: Arc<AtomicU64>,
) -> Result<Box<dyn Read + Send>, IngestError> {
    let inner: Box<dyn Read + Send> = match bucket.local_file(&file.path) {
        Some(local) => Box::new(std::fs::File::open(&local).map_err(|e| IngestError::Read {
            file: file.path.clone(),
            message: e.to_string(),
        })?),
        None => Box::new(ObjectReader::open(bucket, &file.path, runtime)?),
    };
    Ok(Box::new(Counting { inner, counter }))
}

/// Reads a whole object (PDFs need random access).
pub(crate) fn read_all(
    bucket: &Arc<Bucket>,
    file: &InputFile,
    runtime: &Handle,
    counter: &AtomicU64,
) -> Result<Vec<u8>, IngestError> {
    let bytes = runtime
        .block_on(bucket.get_opt(&file.path))?
        .ok_or_else(|| IngestError::NotFound(format!("file {:?} disappeared", file.path)))?;
    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(bytes.to_vec())
}

struct Counting {
    inner: Box<dyn Read + Send>,
    counter: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An object read chunk by chunk: a task on the runtime fetches, a bounded channel
/// hands the chunks to the blocking reader.
struct ObjectReader {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl ObjectReader {
    fn open(bucket: &Bucket, path: &str, runtime: &Handle) -> Result<Self, IngestError> {
        let store = bucket.store();
        let location = bucket.path(path);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        runtime.spawn(async move {
            let mut stream = match store.get(&location).await {
                Ok(result) => result.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e))).await;
                    return;
                }
            };
            while let Some(chunk) = stream.next().await {
                let failed = chunk.is_err();
                if tx.send(chunk.map_err(std::io::Error::other)).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Self {
            chunks: rx,
            current: bytes::Bytes::new(),
        })
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// `input` as UTF-8: decoded from `label`'s encoding (WHATWG labels: "latin1",
/// "windows-1252", "utf-16le", "shift_jis"...), with a byte-order mark removed.
/// UTF-8 input passes through (a BOM is dropped).
pub(crate) fn utf8_reader(
    input: Box<dyn Read + Send>,
    label: &str,
) -> Result<Box<dyn BufRead + Send>, IngestError> {
    let label = if label.trim().is_empty() {
        "utf-8"
    } else {
        label.trim()
    };
    let encoding = Encoding::for_label(label.as_bytes()).ok_or_else(|| {
        IngestError::invalid(
            "csv.encoding",
            format!("{label:?} is not a known encoding label (e.g. utf-8, latin1, windows-1252, utf-16le)"),
        )
    })?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    if encoding == encoding_rs::UTF_8 {
        if reader
            .fill_buf()
            .map(|b| b.starts_with(b"\xEF\xBB\xBF"))
            .unwrap_or(false)
        {
            reader.consume(3);
        }
        return Ok(Box::new(reader));
    }
    Ok(Box::new(BufReader::with_capacity(
        1 << 20,
        Transcoder {
            input: reader,
            decoder: encoding.new_decoder_with_bom_removal(),
            done: false,
        },
    )))
}

struct Transcoder {
    input: BufReader<Box<dyn Read + Send>>,
    decoder: encoding_rs::Decoder,
    done: bool,
}

impl Read for Transcoder {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Room for the longest UTF-8 sequence, so every call makes progress.
        if self.done || buf.len() < 4 {
            return Ok(0);
        }
        loop {
            let src = self.input.fill_buf()?;
            let last = src.is_empty();
            let (result, read, written, _) = self.decoder.decode_to_utf8(src, buf, last);
            self.input.consume(read);
            if last && result == CoderResult::InputEmpty {
                self.done = true;
            }
            if written > 0 || self.done {
                return Ok(written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_bucket() {
        assert_eq!(check_path("/landing/a.csv").unwrap(), "landing/a.csv");
        assert!(matches!(
            check_path("../etc/passwd"),
            Err(IngestError::Invalid { .. })
        ));
        assert!(matches!(
            check_path("a/../../b"),
            Err(IngestError::Invalid { .. })
        ));
        assert!(matches!(
            check_path("_lakehouse/catalog.json"),
            Err(IngestError::PermissionDenied(_))
        ));
        assert!(check_path("  ").is_err());
    }

    #[test]
    fn transcodes_latin1() {
        let input: Box<dyn Read + Send> =
            Box::new(std::io::Cursor::new(b"caf\xe9,na\xefve\n".to_vec()));
        let mut text = String::new();
        utf8_reader(input, "latin1")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "café,naïve\n");
        let input: Box<dyn Read + Send> =
            Box::new(std::io::Cursor::new(b"\xEF\xBB\xBFa,b".to_vec()));
        let mut text = String::new();
        utf8_reader(input, "")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "a,b");
        assert!(utf8_reader(Box::new(std::io::empty()), "klingon").is_err());
    }
}
