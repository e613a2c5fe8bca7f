//! Record batches decoded from a client's `FlightData` stream (DoPut: bulk ingest,
//! uploads, prepared-statement parameters).

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use arrow_array::RecordBatch;
use arrow_flight::FlightData;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_schema::SchemaRef;
use futures::{Stream, StreamExt};

/// The batches of a `FlightData` stream, like arrow-flight's
/// [`FlightRecordBatchStream`], except that a panic of the Arrow IPC decoder on
/// malformed input (arrow-ipc 59 panics on buffers that reach past the message body,
/// among others: found by `fuzz/`) ends the stream with an error instead of
/// unwinding through the server.
pub struct DecodedBatches {
    inner: FlightRecordBatchStream,
    failed: bool,
}

impl DecodedBatches {
    /// Decodes `messages`.
    pub fn new(
        messages: impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static,
    ) -> Self {
        Self {
            inner: FlightRecordBatchStream::new_from_flight_data(messages),
            failed: false,
        }
    }

    /// The schema, once its message has been read.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.inner.schema()
    }
}

impl Stream for DecodedBatches {
    type Item = Result<RecordBatch, FlightError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match std::panic::catch_unwind(AssertUnwindSafe(|| this.inner.poll_next_unpin(cx))) {
            Ok(poll) => poll,
            Err(_) => {
                this.failed = true;
                Poll::Ready(Some(Err(FlightError::DecodeError(
                    "the Arrow data is malformed (the IPC decoder rejected it)".into(),
                ))))
            }
        }
    }
}
