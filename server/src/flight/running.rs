//! Queries being streamed by DoGet, so CancelFlightInfo can stop them.
//!
//! Tickets are self-contained (the SQL is inside), so the ticket bytes identify
//! the query; cancelling a ticket stops every stream running it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::watch;

type ByTicket = HashMap<Vec<u8>, Vec<(u64, watch::Sender<bool>)>>;
type Registry = Mutex<ByTicket>;

/// Registry of running queries by ticket.
#[derive(Debug, Default)]
pub struct RunningQueries {
    queries: Arc<Registry>,
    next_id: AtomicU64,
}

impl RunningQueries {
    /// Registers a query; it is unregistered when the returned guard drops.
    pub fn register(&self, ticket: &[u8]) -> (RunningGuard, watch::Receiver<bool>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        lock(&self.queries)
            .entry(ticket.to_vec())
            .or_default()
            .push((id, tx));
        (
            RunningGuard {
                queries: Arc::clone(&self.queries),
                ticket: ticket.to_vec(),
                id,
            },
            rx,
        )
    }

    /// Signals every query running `ticket`; false when none is running.
    pub fn cancel(&self, ticket: &[u8]) -> bool {
        let queries = lock(&self.queries);
        let Some(running) = queries.get(ticket) else {
            return false;
        };
        for (_, tx) in running {
            let _ = tx.send(true);
        }
        !running.is_empty()
    }

    /// Number of queries streaming now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.queries).values().map(Vec::len).sum()
    }
}

fn lock(registry: &Registry) -> std::sync::MutexGuard<'_, ByTicket> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes its query from the registry on drop (stream finished, failed or abandoned).
#[derive(Debug)]
pub struct RunningGuard {
    queries: Arc<Registry>,
    ticket: Vec<u8>,
    id: u64,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut queries = lock(&self.queries);
        if let Some(running) = queries.get_mut(&self.ticket) {
            running.retain(|(id, _)| *id != self.id);
            if running.is_empty() {
                queries.remove(&self.ticket);
            }
        }
    }
}

/// A stream that ends with `on_cancel` once the registry signals cancellation.
pub struct Cancellable<S, T> {
    inner: Pin<Box<S>>,
    cancelled: Pin<Box<dyn futures::Future<Output = ()> + Send>>,
    on_cancel: Option<T>,
    /// Dropped (the query unregistered) as soon as the stream ends or is cancelled,
    /// before the client sees the end: a second cancel then finds nothing running.
    guard: Option<RunningGuard>,
}

impl<S, T> Cancellable<S, T> {
    /// Wraps `inner`; `on_cancel` is yielded once, as the last item, if cancelled.
    pub fn new(inner: S, guard: RunningGuard, mut rx: watch::Receiver<bool>, on_cancel: T) -> Self {
        let cancelled = Box::pin(async move {
            // An error means the registry side is gone: never cancelled.
            if rx.wait_for(|c| *c).await.is_err() {
                futures::future::pending::<()>().await;
            }
        });
        Self {
            inner: Box::pin(inner),
            cancelled,
            on_cancel: Some(on_cancel),
            guard: Some(guard),
        }
    }
}

impl<S, T> Stream for Cancellable<S, T>
where
    S: Stream<Item = T>,
    T: Unpin,
{
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.on_cancel.is_none() {
            return Poll::Ready(None);
        }
        if self.cancelled.as_mut().poll(cx).is_ready() {
            self.guard = None;
            return Poll::Ready(self.on_cancel.take());
        }
        let next = self.inner.as_mut().poll_next(cx);
        if matches!(next, Poll::Ready(None)) {
            self.guard = None;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn cancel_ends_the_stream_with_the_cancel_item() {
        let registry = RunningQueries::default();
        let (guard, rx) = registry.register(b"t");
        assert_eq!(registry.len(), 1);
        let mut stream = Cancellable::new(futures::stream::pending::<i32>(), guard, rx, -1);
        assert!(registry.cancel(b"t"));
        assert_eq!(stream.next().await, Some(-1));
        assert_eq!(stream.next().await, None);
        drop(stream);
        assert_eq!(registry.len(), 0);
        assert!(!registry.cancel(b"t"));
    }
}
