//! Jobs: long work that outlives the call that started it.
//!
//! Owns: the registry of jobs (in memory, newest [`KEEP`] kept) and their records
//! under `_lakehouse/jobs/` in the primary bucket. May call: `storage` and the leaves `config`, `rows`.
//! Invariants:
//! - a job runs on its own task: a client that stops listening does not stop it;
//! - a job's record is written when it starts and when it ends, so after a restart
//!   a job that was running shows as FAILED ("server stopped"), never as running;
//! - progress goes out through a `watch` channel: listeners see the latest state
//!   and a slow listener never slows the job;
//! - cancelling sets a token the work checks between batches; work that stops on
//!   it ends CANCELLED and must have committed nothing;
//! - at shutdown, running jobs get the grace period to finish; the rest are
//!   stopped the same way and end FAILED (UNAVAILABLE, "run it again"), their
//!   records written before the server exits.

mod error;
pub(crate) mod system;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use lakehouse_flight_ext::v1::{Job, JobProgress, JobState, job};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use lakehouse_flight_ext::names::{self, is_terminal};

pub(crate) use error::JobError;

use crate::storage::{Bucket, StorageError};

/// Jobs kept in memory and on disk.
pub(crate) const KEEP: usize = 1000;
/// Folder of job records in the primary bucket.
const FOLDER: &str = "_lakehouse/jobs/";
/// Folder of uploads being ingested, in the primary bucket (emptied at startup).
pub(crate) const STAGING: &str = "_lakehouse/staging/";
/// Least time between two progress snapshots sent to a listener.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// One job: its latest snapshot and its cancel switch.
#[derive(Debug)]
pub(crate) struct JobHandle {
    snapshot: watch::Sender<Job>,
    cancel: CancellationToken,
}

impl JobHandle {
    /// The job as it is now.
    pub(crate) fn snapshot(&self) -> Job {
        self.snapshot.borrow().clone()
    }

    /// Snapshots from now until the job ends: the current one at once, then at
    /// most one per [`PROGRESS_INTERVAL`], and always the final one.
    pub(crate) fn follow(&self) -> impl Stream<Item = Job> + Send + 'static {
        let rx = self.snapshot.subscribe();
        futures::stream::unfold((rx, true, false), |(mut rx, first, done)| async move {
            if done {
                return None;
            }
            if !first {
                // The sender lives in the registry; an error means it is gone, and
                // the value held is the last one.
                let _ = rx.changed().await;
                if !is_terminal(rx.borrow().state) {
                    // Progress is sampled, but the end is sent as soon as it comes: a
                    // short job's caller does not wait out the interval.
                    let end = rx.wait_for(|job| is_terminal(job.state));
                    let _ = tokio::time::timeout(PROGRESS_INTERVAL, end).await;
                }
            }
            let job = rx.borrow_and_update().clone();
            let done = is_terminal(job.state);
            Some((job, (rx, false, done)))
        })
    }

    /// Asks the job to stop; it ends CANCELLED at its next check.
    pub(crate) fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// What running work sees of its job.
#[derive(Debug, Clone)]
pub(crate) struct JobContext {
    handle: Arc<JobHandle>,
}

impl JobContext {
    /// Updates the job's progress (listeners are woken).
    pub(crate) fn progress(&self, update: impl FnOnce(&mut JobProgress)) {
        self.handle.snapshot.send_modify(|job| {
            let progress = job.progress.get_or_insert_with(JobProgress::default);
            update(progress);
            if let Some(total) = progress.bytes_total.filter(|t| *t > 0) {
                progress.percent = Some((progress.bytes as f64 * 100.0 / total as f64).min(100.0));
            }
        });
    }

    /// Sets the phase.
    pub(crate) fn phase(&self, phase: &str) {
        self.progress(|p| p.phase = phase.to_string());
    }

    /// The token cancelling the job.
    pub(crate) fn cancelled(&self) -> &CancellationToken {
        &self.handle.cancel
    }
}

/// Every job of this server.
#[derive(Debug)]
pub(crate) struct Jobs {
    bucket: Arc<Bucket>,
    jobs: Mutex<VecDeque<Arc<JobHandle>>>,
    /// Permits of jobs allowed to work at once.
    running: Arc<Semaphore>,
    /// Job tasks not yet done (their final record written).
    active: watch::Sender<usize>,
    /// Set when the server stops the jobs left at shutdown.
    stopping: AtomicBool,
}

impl Jobs {
    /// Loads the job records of `bucket` (the primary); jobs that were running
    /// when the server stopped are marked FAILED. At most `max_running` jobs work
    /// at once; later ones wait in phase "queued".
    pub(crate) async fn open(
        bucket: Arc<Bucket>,
        max_running: usize,
    ) -> Result<Self, StorageError> {
        // Uploads staged by jobs that died with the server are orphans now.
        match bucket.delete_folder(STAGING).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(objects = n, "removed uploads left by interrupted jobs"),
            Err(error) => tracing::warn!(%error, "cannot clear {STAGING}"),
        }
        let mut names = bucket.list(FOLDER).await?;
        // Names start with the creation time, so sorted = oldest first.
        names.sort();
        let stale = names.len().saturating_sub(KEEP);
        for name in &names[..stale] {
            let path = format!("{FOLDER}{name}");
            if let Err(error) = bucket.delete(&path).await {
                tracing::warn!(%path, %error, "cannot delete an old job record");
            }
        }
        // Read the records concurrently (an object store answers each in a round trip).
        let paths: Vec<String> = names[stale..]
            .iter()
            .map(|name| format!("{FOLDER}{name}"))
            .collect();
        let reads = paths.into_iter().map(|path| {
            let bucket = Arc::clone(&bucket);
            async move { bucket.get_opt(&path).await.map(|bytes| (path, bytes)) }
        });
        let records: Vec<(String, Option<bytes::Bytes>)> = futures::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await?;
        let mut jobs = VecDeque::new();
        for (path, bytes) in records {
            let Some(bytes) = bytes else {
                continue;
            };
            let mut job: Job = match serde_json::from_slice(&bytes) {
                Ok(job) => job,
                Err(error) => {
                    tracing::warn!(%path, %error, "skipping an unreadable job record");
                    continue;
                }
            };
            if !is_terminal(job.state) {
                job.state = JobState::Failed as i32;
                job.error =
                    "the server stopped while the job ran; nothing it had not committed was kept"
                        .into();
                job.error_code = names::ABORTED.into();
                job.finished_at = now();
                if let Err(error) = bucket.put(&path, record(&job).into()).await {
                    tracing::warn!(%path, %error, "cannot mark an interrupted job as failed");
                }
            }
            let (snapshot, _) = watch::channel(job);
            jobs.push_front(Arc::new(JobHandle {
                snapshot,
                cancel: CancellationToken::new(),
            }));
        }
        Ok(Self {
            bucket,
            jobs: Mutex::new(jobs),
            running: Arc::new(Semaphore::new(max_running.max(1))),
            active: watch::Sender::new(0),
            stopping: AtomicBool::new(false),
        })
    }

    /// Starts `work` as a job of `kind`; returns its handle at once.
    ///
    /// `work` returns the job's result, or why it failed. When the job was
    /// cancelled, a failure is recorded as CANCELLED.
    pub(crate) fn spawn<F, Fut, E>(
        self: &Arc<Self>,
        kind: &str,
        description: String,
        user: String,
        work: F,
    ) -> Arc<JobHandle>
    where
        F: FnOnce(JobContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<job::Result, E>> + Send + 'static,
        E: Into<JobError> + Send + 'static,
    {
        let id = uuid::Uuid::new_v4().to_string();
        let job = Job {
            id,
            kind: kind.to_string(),
            state: JobState::Running as i32,
            description,
            user,
            created_at: now(),
            progress: Some(JobProgress {
                phase: "starting".into(),
                ..JobProgress::default()
            }),
            ..Job::default()
        };
        let (snapshot, _) = watch::channel(job);
        let handle = Arc::new(JobHandle {
            snapshot,
            cancel: CancellationToken::new(),
        });
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.push_front(Arc::clone(&handle));
            jobs.truncate(KEEP);
        }
        let jobs = Arc::clone(self);
        let context = JobContext {
            handle: Arc::clone(&handle),
        };
        // The job's span is a child of the call that started it: its log lines carry
        // the call's request id, and exported traces show the job inside the call.
        let span = {
            let job = handle.snapshot();
            tracing::info_span!("job", job_id = %job.id, kind = %job.kind)
        };
        self.active.send_modify(|n| *n += 1);
        // At most `max_running` jobs work at once; the others wait, cancellable. The
        // free slot is taken here, in the caller's order, not in whatever order the
        // spawned tasks happen to run: a job started first never queues behind a later one.
        let ready = Arc::clone(&self.running).try_acquire_owned().ok();
        if ready.is_none() {
            context.phase("queued");
        }
        tokio::spawn(async move {
            jobs.persist(&context.handle.snapshot()).await;
            let permit = match ready {
                Some(permit) => Some(permit),
                None => tokio::select! {
                    permit = Arc::clone(&jobs.running).acquire_owned() => permit.ok(),
                    () = context.cancelled().cancelled() => None,
                },
            };
            let outcome = match permit {
                Some(_) => {
                    context.phase("starting");
                    // The work runs on a task of its own, so a panic in it fails the
                    // job instead of leaving it running forever.
                    let work = work(context.clone());
                    tokio::spawn(async move { work.await.map_err(Into::into) }.in_current_span())
                        .await
                }
                None => Ok(Err(JobError::Cancelled)),
            };
            let cancelled = context.cancelled().is_cancelled();
            let shut_down = cancelled && jobs.stopping.load(Ordering::Relaxed);
            context.handle.snapshot.send_modify(|job| {
                job.finished_at = now();
                match outcome {
                    Ok(Ok(result)) => {
                        job.state = JobState::Succeeded as i32;
                        job.result = Some(result);
                        if let Some(p) = job.progress.as_mut() {
                            p.phase = "done".into();
                            if p.bytes_total.is_some() {
                                p.percent = Some(100.0);
                            }
                        }
                    }
                    Ok(Err(_)) if shut_down => error::record(job, &JobError::ShutDown),
                    Ok(Err(_)) if cancelled => error::record(job, &JobError::Cancelled),
                    Ok(Err(error)) => error::record(job, &error),
                    Err(panic) => error::record(job, &JobError::Crashed(panic.to_string())),
                }
            });
            let job = context.handle.snapshot();
            tracing::info!(job = %job.id, kind = %job.kind, state = ?JobState::try_from(job.state).ok(),
                error = %job.error, "job ended");
            jobs.persist(&job).await;
            jobs.active.send_modify(|n| *n -= 1);
        }.instrument(span));
        handle
    }

    /// Shutdown: lets running jobs finish until `deadline`, then stops the rest
    /// (they end FAILED with [`JobError::ShutDown`]) and waits up to `wait` for their
    /// records. Returns how many jobs were stopped.
    pub(crate) async fn stop(&self, deadline: tokio::time::Instant, wait: Duration) -> usize {
        let mut active = self.active.subscribe();
        let running = *active.borrow();
        if running > 0 {
            tracing::info!(jobs = running, "waiting for running jobs to finish");
        }
        if tokio::time::timeout_at(deadline, active.wait_for(|n| *n == 0))
            .await
            .is_ok()
        {
            return 0;
        }
        self.stopping.store(true, Ordering::Relaxed);
        let stopped: Vec<Arc<JobHandle>> = {
            let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.iter()
                .filter(|j| !is_terminal(j.snapshot.borrow().state))
                .cloned()
                .collect()
        };
        tracing::warn!(
            jobs = stopped.len(),
            "stopping the jobs still running at shutdown; they commit nothing"
        );
        for job in &stopped {
            job.cancel();
        }
        if tokio::time::timeout(wait, active.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!("jobs did not stop within {wait:?}; the next start marks them failed");
        }
        stopped.len()
    }

    /// The job `id`.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<JobHandle>> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().find(|j| j.snapshot.borrow().id == id).cloned()
    }

    /// Snapshots of every job, newest first.
    pub(crate) fn list(&self) -> Vec<Job> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().map(|j| j.snapshot()).collect()
    }

    async fn persist(&self, job: &Job) {
        let path = record_path(job);
        if let Err(error) = self.bucket.put(&path, record(job).into()).await {
            tracing::warn!(job = %job.id, %error, "cannot write the job record");
        }
    }
}

fn record_path(job: &Job) -> String {
    // RFC 3339 times in UTC sort as strings; ':' is awkward in object names.
    let stamp: String = job
        .created_at
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    format!("{FOLDER}{stamp}-{}.json", job.id)
}

fn record(job: &Job) -> Vec<u8> {
    serde_json::to_vec_pretty(job).unwrap_or_default()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::S3Settings;

    async fn jobs(dir: &std::path::Path) -> Arc<Jobs> {
        let bucket = Arc::new(Bucket::local("primary", dir, &S3Settings::default()).unwrap());
        Arc::new(Jobs::open(bucket, 1).await.unwrap())
    }

    #[tokio::test]
    async fn a_job_streams_progress_then_its_result_and_survives_its_listener() {
        let dir = tempdir("stream");
        let jobs = jobs(&dir).await;
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = jobs.spawn("test", "counting".into(), String::new(), |ctx| async move {
            ctx.progress(|p| {
                p.rows = 5;
                p.bytes_total = Some(10);
                p.bytes = 5;
            });
            let _ = go_rx.await;
            ctx.progress(|p| p.rows = 10);
            Ok::<_, JobError>(job::Result::Ingest(Default::default()))
        });
        // The first listener leaves early; the job carries on.
        let first = Box::pin(handle.follow()).next().await.unwrap();
        assert_eq!(first.state, JobState::Running as i32);
        go_tx.send(()).unwrap();
        let states: Vec<Job> = handle.follow().collect().await;
        let last = states.last().unwrap();
        assert_eq!(last.state, JobState::Succeeded as i32, "{last:?}");
        assert_eq!(last.progress.as_ref().unwrap().rows, 10);
        assert_eq!(last.progress.as_ref().unwrap().percent, Some(100.0));
        assert!(matches!(last.result, Some(job::Result::Ingest(_))));
    }

    #[tokio::test]
    async fn jobs_past_the_limit_queue_and_can_be_cancelled_there() {
        let dir = tempdir("queue");
        let jobs = jobs(&dir).await; // one job at a time
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let first = jobs.spawn("test", "first".into(), String::new(), |_| async move {
            let _ = go_rx.await;
            Ok::<_, JobError>(job::Result::Ingest(Default::default()))
        });
        let second = jobs.spawn("test", "second".into(), String::new(), |_| async move {
            Ok::<_, JobError>(job::Result::Ingest(Default::default()))
        });
        let third = jobs.spawn("test", "third".into(), String::new(), |_| async move {
            Ok::<_, JobError>(job::Result::Ingest(Default::default()))
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let phase = |h: &JobHandle| h.snapshot().progress.unwrap().phase;
        assert_eq!(phase(&second), "queued");
        third.cancel();
        let last = third.follow().collect::<Vec<_>>().await.pop().unwrap();
        assert_eq!(last.state, JobState::Cancelled as i32);
        go_tx.send(()).unwrap();
        for handle in [&first, &second] {
            let last = handle.follow().collect::<Vec<_>>().await.pop().unwrap();
            assert_eq!(last.state, JobState::Succeeded as i32);
        }
    }

    #[tokio::test]
    async fn cancel_and_restart_are_recorded() {
        let dir = tempdir("cancel");
        let jobs = jobs(&dir).await;
        let handle = jobs.spawn("test", "waits".into(), String::new(), |ctx| async move {
            ctx.cancelled().cancelled().await;
            Err(JobError::Cancelled)
        });
        handle.cancel();
        let last = handle.follow().collect::<Vec<_>>().await.pop().unwrap();
        assert_eq!(last.state, JobState::Cancelled as i32);
        // One that never ends: after a "restart" it reads as failed.
        let stuck = jobs.spawn("test", "stuck".into(), String::new(), |_| {
            futures::future::pending::<Result<job::Result, JobError>>()
        });
        let id = stuck.snapshot().id;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reopened = self::jobs(&dir).await;
        let job = reopened.get(&id).unwrap().snapshot();
        assert_eq!(job.state, JobState::Failed as i32);
        assert!(job.error.contains("server stopped"), "{}", job.error);
        assert_eq!(reopened.list().len(), 2);
    }

    #[tokio::test]
    async fn shutdown_waits_for_jobs_then_stops_the_rest_and_records_them() {
        let dir = tempdir("shutdown");
        let jobs = jobs(&dir).await;
        let soon = tokio::time::Instant::now() + Duration::from_secs(5);
        // Nothing running: returns at once.
        assert_eq!(jobs.stop(soon, Duration::from_secs(1)).await, 0);
        // A job that ends within the grace period finishes normally.
        let quick = jobs.spawn("test", "quick".into(), String::new(), |_| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, JobError>(job::Result::Ingest(Default::default()))
        });
        assert_eq!(jobs.stop(soon, Duration::from_secs(1)).await, 0);
        assert_eq!(quick.snapshot().state, JobState::Succeeded as i32);
        // One that only stops when cancelled is stopped at the deadline and recorded.
        let slow = jobs.spawn("test", "slow".into(), String::new(), |ctx| async move {
            ctx.cancelled().cancelled().await;
            Err(JobError::Cancelled)
        });
        let id = slow.snapshot().id;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        assert_eq!(jobs.stop(deadline, Duration::from_secs(5)).await, 1);
        let job = slow.snapshot();
        assert_eq!(job.state, JobState::Failed as i32);
        assert_eq!(job.error_code, "UNAVAILABLE");
        assert!(job.error.contains("shut down"), "{}", job.error);
        // Its record was written before `stop` returned.
        let reopened = self::jobs(&dir).await;
        assert_eq!(reopened.get(&id).unwrap().snapshot().error, job.error);
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lh-jobs-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
