//! Queries being streamed by DoGet, so CancelFlightInfo (or a shutdown past its
//! grace period) can stop them.
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

type ByTicket = HashMap<Vec<u8>, Vec<(u64, watch::Sender<Stop>)>>;
type Registry = Mutex<ByTicket>;

/// Whether, and why, a running query must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Keep streaming.
    No,
    /// A client cancelled it (CancelFlightInfo).
    Cancelled,
    /// The server is shutting down and the query outlived the grace period.
    ShuttingDown,
}

/// Registry of running queries by ticket.
#[derive(Debug, Default)]
pub(crate) struct RunningQueries {
    queries: Arc<Registry>,
    next_id: AtomicU64,
}

impl RunningQueries {
    /// Registers a query; it is unregistered when the returned guard drops.
    pub(crate) fn register(&self, ticket: &[u8]) -> (RunningGuard, watch::Receiver<Stop>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(Stop::No);
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
    pub(crate) fn cancel(&self, ticket: &[u8]) -> bool {
        let queries = lock(&self.queries);
        let Some(running) = queries.get(ticket) else {
            return false;
        };
        for (_, tx) in running {
            let _ = tx.send(Stop::Cancelled);
        }
        !running.is_empty()
    }

    /// Stops every running query because the server is going away; returns how many.
    pub(crate) fn stop_all(&self) -> usize {
        let queries = lock(&self.queries);
        let mut stopped = 0;
        for (_, tx) in queries.values().flatten() {
            let _ = tx.send(Stop::ShuttingDown);
            stopped += 1;
        }
        stopped
    }

    /// Number of queries streaming now.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.queries).values().map(Vec::len).sum()
    }
}

fn lock(registry: &Registry) -> std::sync::MutexGuard<'_, ByTicket> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes its query from the registry on drop (stream finished, failed or abandoned).
#[derive(Debug)]
pub(crate) struct RunningGuard {
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

/// What a stopped stream yields last, by the reason it was stopped.
type OnStop<T> = Box<dyn FnOnce(Stop) -> T + Send>;

/// A stream that ends with `on_stop(reason)` once the registry stops it.
pub(super) struct Cancellable<S, T> {
    inner: Pin<Box<S>>,
    stopped: Pin<Box<dyn futures::Future<Output = Stop> + Send>>,
    on_stop: Option<OnStop<T>>,
    /// Dropped (the query unregistered) as soon as the stream ends or is cancelled,
    /// before the client sees the end: a second cancel then finds nothing running.
    guard: Option<RunningGuard>,
}

impl<S, T> Cancellable<S, T> {
    /// Wraps `inner`; when stopped, `on_stop(reason)` is yielded once, as the last item.
    pub(super) fn new(
        inner: S,
        guard: RunningGuard,
        mut rx: watch::Receiver<Stop>,
        on_stop: impl FnOnce(Stop) -> T + Send + 'static,
    ) -> Self {
        let stopped = Box::pin(async move {
            let stop = rx.wait_for(|stop| *stop != Stop::No).await.map(|s| *s);
            match stop {
                Ok(stop) => stop,
                // The registry side is gone: never stopped.
                Err(_) => futures::future::pending().await,
            }
        });
        Self {
            inner: Box::pin(inner),
            stopped,
            on_stop: Some(Box::new(on_stop)),
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
        if self.on_stop.is_none() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(stop) = self.stopped.as_mut().poll(cx) {
            self.guard = None;
            return Poll::Ready(self.on_stop.take().map(|on_stop| on_stop(stop)));
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
        let mut stream = Cancellable::new(futures::stream::pending::<i32>(), guard, rx, code);
        assert!(registry.cancel(b"t"));
        assert_eq!(stream.next().await, Some(-1));
        assert_eq!(stream.next().await, None);
        drop(stream);
        assert_eq!(registry.len(), 0);
        assert!(!registry.cancel(b"t"));
    }

    fn code(stop: Stop) -> i32 {
        match stop {
            Stop::No => 0,
            Stop::Cancelled => -1,
            Stop::ShuttingDown => -2,
        }
    }

    #[tokio::test]
    async fn shutdown_stops_every_query_with_its_own_reason() {
        let registry = RunningQueries::default();
        let (a, rx_a) = registry.register(b"a");
        let (b, rx_b) = registry.register(b"b");
        let mut first = Cancellable::new(futures::stream::pending::<i32>(), a, rx_a, code);
        let mut second = Cancellable::new(futures::stream::pending::<i32>(), b, rx_b, code);
        assert_eq!(registry.stop_all(), 2);
        assert_eq!(first.next().await, Some(-2));
        assert_eq!(second.next().await, Some(-2));
        assert_eq!(registry.len(), 0);
    }
}
