//! Admission control: how many queries and writes run at once, and for how long.
//!
//! A call over the limit is refused at once with RESOURCE_EXHAUSTED (the client
//! may retry later) rather than queued behind work it cannot see; a query past
//! its deadline ends with DEADLINE_EXCEEDED and its plan is dropped, which stops it.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow_flight::error::FlightError;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// Limits shared by every call of one server.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    timeout: Option<Duration>,
}

impl Limits {
    /// At most `max_concurrent` statements at once, each for at most `timeout`.
    pub(crate) fn new(max_concurrent: usize, timeout: Option<Duration>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            timeout,
        }
    }

    /// The statement timeout in milliseconds, 0 when there is none (GetSqlInfo's unit).
    pub(crate) fn timeout_ms(&self) -> i32 {
        self.timeout
            .map_or(0, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX))
    }

    /// Statements running now.
    pub(crate) fn running(&self) -> usize {
        self.max_concurrent
            .saturating_sub(self.slots.available_permits())
    }

    /// A slot for one statement, held until the permit drops.
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "server busy: {} statements are running (max_concurrent_queries); retry shortly",
                self.max_concurrent
            ))
        })
    }

    /// Runs `work` within the statement timeout.
    pub(crate) async fn timed<T>(
        &self,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        match self.timeout {
            None => work.await,
            Some(timeout) => tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| deadline_exceeded(timeout))?,
        }
    }

    /// `batches`, holding `permit` until they end and cut off at the statement timeout.
    pub(crate) fn bounded(
        &self,
        batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
        permit: OwnedSemaphorePermit,
    ) -> impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static {
        let timeout = self.timeout;
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let state = Some((Box::pin(batches), permit));
        futures::stream::unfold(state, move |state| async move {
            let (mut batches, permit) = state?;
            let next = match (deadline, timeout) {
                (Some(deadline), Some(timeout)) => {
                    // `timeout_at` only looks at the clock when the inner future is
                    // pending; a stream that is always ready would never be cut off.
                    if tokio::time::Instant::now() >= deadline {
                        let status = deadline_exceeded(timeout);
                        return Some((Err(FlightError::Tonic(Box::new(status))), None));
                    }
                    match tokio::time::timeout_at(deadline, batches.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            let status = deadline_exceeded(timeout);
                            return Some((Err(FlightError::Tonic(Box::new(status))), None));
                        }
                    }
                }
                _ => batches.next().await,
            };
            next.map(|item| (item, Some((batches, permit))))
        })
    }
}

fn deadline_exceeded(timeout: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "statement ran longer than query_timeout_secs ({}s) and was stopped",
        timeout.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[tokio::test]
    async fn refuses_beyond_the_limit_and_frees_slots_on_drop() {
        let limits = Limits::new(1, None);
        let permit = limits.admit().unwrap();
        assert_eq!(limits.admit().unwrap_err().code(), Code::ResourceExhausted);
        drop(permit);
        assert!(limits.admit().is_ok());
    }

    #[tokio::test]
    async fn streams_past_the_deadline_end_with_deadline_exceeded() {
        let limits = Limits::new(1, Some(Duration::from_millis(20)));
        let permit = limits.admit().unwrap();
        let endless = futures::stream::pending::<Result<RecordBatch, FlightError>>();
        let mut bounded = Box::pin(limits.bounded(endless, permit));
        match bounded.next().await {
            Some(Err(FlightError::Tonic(status))) => {
                assert_eq!(status.code(), Code::DeadlineExceeded);
            }
            other => panic!("{other:?}"),
        }
        assert!(bounded.next().await.is_none());
        // The slot is free again once the stream has ended.
        assert!(limits.admit().is_ok());
    }

    #[tokio::test]
    async fn streams_that_are_always_ready_are_cut_off_too() {
        let limits = Limits::new(1, Some(Duration::from_millis(20)));
        let permit = limits.admit().unwrap();
        let schema = Arc::new(arrow::datatypes::Schema::empty());
        let endless = futures::stream::repeat_with(move || {
            std::thread::sleep(Duration::from_millis(1));
            Ok(RecordBatch::new_empty(Arc::clone(&schema)))
        });
        let mut bounded = Box::pin(limits.bounded(endless, permit));
        let mut last = None;
        while let Some(item) = bounded.next().await {
            last = Some(item);
        }
        match last {
            Some(Err(FlightError::Tonic(status))) => {
                assert_eq!(status.code(), Code::DeadlineExceeded);
            }
            other => panic!("{other:?}"),
        }
    }
}
