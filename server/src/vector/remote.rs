//! What the indexes served by worker processes (Faiss, Lance) share: waiting for an
//! async worker call from the synchronous [`VectorIndex`](super::index::VectorIndex)
//! methods, and reading a worker's failure as an index error.

use tracing::Instrument;

use super::index::IndexError;
use crate::workers::WorkerError;

/// A worker call's failure as an index error: the engine's refusals stay
/// INVALID_ARGUMENT, a worker that is down or cannot start is UNAVAILABLE.
pub(super) fn index_error(engine: &str, error: WorkerError) -> IndexError {
    match error {
        WorkerError::Status(status) => match status.code() {
            tonic::Code::InvalidArgument => {
                IndexError::Invalid(format!("{engine}: {}", status.message()))
            }
            tonic::Code::FailedPrecondition | tonic::Code::Unavailable => {
                IndexError::Unavailable(status.message().to_string())
            }
            _ => IndexError::Failed(format!("{engine} worker: {}", status.message())),
        },
        other => IndexError::Unavailable(other.to_string()),
    }
}

/// The keys a search filter allows, as the workers take them: a bitmap of `bits`
/// keys (bit i of byte i/8, least significant first; empty with no filter), and how
/// many pass.
pub(super) struct Allowed {
    pub bitmap: Vec<u8>,
    pub bits: u64,
    pub passing: usize,
}

/// [`Allowed`] for keys `0..count` under `filter`.
pub(super) fn allowed_keys(count: usize, filter: Option<&(dyn Fn(u64) -> bool + Sync)>) -> Allowed {
    let Some(keep) = filter else {
        return Allowed {
            bitmap: Vec::new(),
            bits: 0,
            passing: count,
        };
    };
    let mut bitmap = vec![0u8; count.div_ceil(8)];
    let mut passing = 0;
    for key in 0..count {
        if keep(key as u64) {
            bitmap[key / 8] |= 1 << (key % 8);
            passing += 1;
        }
    }
    Allowed {
        bitmap,
        bits: count as u64,
        passing,
    }
}

/// Runs `work` on the runtime and waits for it from this (blocking) thread. The
/// `VectorIndex` trait is synchronous and its callers run it on blocking threads; the
/// span goes along so the worker call carries the request id.
pub(super) fn wait<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, IndexError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    runtime.spawn(
        async move {
            let _ = sender.send(work.await);
        }
        .instrument(tracing::Span::current()),
    );
    receiver.recv().map_err(|_| {
        IndexError::Failed("the worker call was dropped (the server is stopping)".into())
    })
}
