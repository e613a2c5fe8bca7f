//! Parquet and Arrow IPC files: already typed, read batch by batch.
//!
//! Parquet is read through the bucket's object store with `ParquetObjectReader`,
//! which parquet 59 deprecates in favour of a hand-written `AsyncFileReader`; it
//! still works and is what DataFusion 55 itself uses, so it stays until both move.
#![allow(deprecated)]

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStream};
use futures::StreamExt;
use tokio::runtime::Handle;

use super::IngestError;
use super::reader::{BatchReader, Rejects, Typing, conform};
use super::source::InputFile;
use crate::storage::Bucket;

/// Batches of one Parquet file, read through the bucket's object store.
pub(super) struct ParquetReader {
    stream: ParquetRecordBatchStream<ParquetObjectReader>,
    runtime: Handle,
    file: String,
    schema: SchemaRef,
    counter: Arc<AtomicU64>,
    /// Compressed bytes per row, to count progress in input bytes.
    bytes_per_row: f64,
}

impl ParquetReader {
    /// Opens the file and reads its footer.
    pub(super) fn open(
        bucket: &Bucket,
        file: &InputFile,
        typing: &Typing,
        runtime: &Handle,
        counter: Arc<AtomicU64>,
        batch_size: usize,
    ) -> Result<Self, IngestError> {
        let read_error = |e: datafusion::parquet::errors::ParquetError| IngestError::Read {
            file: file.path.clone(),
            message: format!("not a readable Parquet file: {e}"),
        };
        let reader = ParquetObjectReader::new(bucket.store(), bucket.path(&file.path))
            .with_file_size(file.size);
        let builder = runtime
            .block_on(ParquetRecordBatchStreamBuilder::new(reader))
            .map_err(read_error)?;
        let rows = builder.metadata().file_metadata().num_rows().max(1) as f64;
        let schema = typing.target(builder.schema(), &file.path)?;
        let stream = builder
            .with_batch_size(batch_size)
            .build()
            .map_err(read_error)?;
        Ok(Self {
            stream,
            runtime: runtime.clone(),
            file: file.path.clone(),
            schema,
            counter,
            bytes_per_row: file.size as f64 / rows,
        })
    }
}

impl BatchReader for ParquetReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn next_batch(&mut self, _rejects: &mut Rejects) -> Result<Option<RecordBatch>, IngestError> {
        match self.runtime.block_on(self.stream.next()) {
            None => Ok(None),
            Some(Err(e)) => Err(IngestError::Read {
                file: self.file.clone(),
                message: e.to_string(),
            }),
            Some(Ok(batch)) => {
                let bytes = (batch.num_rows() as f64 * self.bytes_per_row) as u64;
                self.counter.fetch_add(bytes, Ordering::Relaxed);
                conform(&batch, &self.schema, &self.file).map(Some)
            }
        }
    }
}

/// Batches of one Arrow IPC file, in the stream or the file format.
pub(super) struct IpcReader {
    reader: StreamReader<Box<dyn Read + Send>>,
    file: String,
    schema: SchemaRef,
}

/// Magic bytes opening (and padding) the IPC file format.
const FILE_MAGIC: &[u8; 8] = b"ARROW1\0\0";

impl IpcReader {
    /// Opens the file. The file format is the stream format between its magic and
    /// its footer, so both are read as a stream, front to back.
    pub(super) fn open(
        mut input: Box<dyn Read + Send>,
        file: &str,
        typing: &Typing,
    ) -> Result<Self, IngestError> {
        let read_error = |message: String| IngestError::Read {
            file: file.into(),
            message,
        };
        let mut head = [0u8; 8];
        let n = read_full(&mut input, &mut head).map_err(|e| read_error(e.to_string()))?;
        let input: Box<dyn Read + Send> = if n == 8 && &head == FILE_MAGIC {
            input
        } else {
            Box::new(std::io::Cursor::new(head[..n].to_vec()).chain(input))
        };
        let reader = StreamReader::try_new(input, None)
            .map_err(|e| read_error(format!("not a readable Arrow IPC file: {e}")))?;
        let schema = typing.target(&reader.schema(), file)?;
        Ok(Self {
            reader,
            file: file.to_string(),
            schema,
        })
    }
}

fn read_full(input: &mut Box<dyn Read + Send>, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

impl BatchReader for IpcReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn next_batch(&mut self, _rejects: &mut Rejects) -> Result<Option<RecordBatch>, IngestError> {
        match self.reader.next() {
            None => Ok(None),
            Some(Err(e)) => Err(IngestError::Read {
                file: self.file.clone(),
                message: e.to_string(),
            }),
            Some(Ok(batch)) => conform(&batch, &self.schema, &self.file).map(Some),
        }
    }
}
