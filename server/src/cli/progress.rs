//! Following a job: a live progress bar fed by the job's snapshot stream, and
//! Ctrl-C, which asks whether to cancel the job or leave it running.

use std::io::IsTerminal;
use std::time::Duration;

use futures::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lakehouse_flight_ext::actions::JOB_CANCEL;
use lakehouse_flight_ext::v1::{Job, JobCancelRequest, JobState};
use prost::Message;

use super::client::{CliError, Client};

/// Ctrl-C presses, listened for from creation on: a press between two polls is kept,
/// not lost (a fresh `ctrl_c()` future per loop turn would miss it).
pub(super) struct Interrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupts {
    /// Starts listening.
    pub(super) fn new() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| CliError::local(format!("cannot listen for Ctrl-C: {e}")))?;
            Ok(Self { signal })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next press.
    pub(super) async fn next(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// How a followed job ended, from the CLI's side.
pub(super) enum Followed {
    /// The job ended; its last snapshot.
    Ended(Box<Job>),
    /// The user left it running.
    Detached(String),
}

/// A bar on standard error (hidden when that is not a terminal or `quiet`).
fn bar(quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn show(bar: &ProgressBar, job: &Job) {
    let Some(progress) = &job.progress else {
        return;
    };
    match progress.bytes_total.filter(|&total| total > 0) {
        Some(total) => {
            if bar.length() != Some(total) {
                bar.set_length(total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg:12} [{bar:30}] {bytes}/{total_bytes} ({eta}) {prefix}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
            }
            bar.set_position(progress.bytes.min(total));
        }
        None => {
            if bar.length().is_some() || bar.position() == 0 {
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg:12} {elapsed} {prefix}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
            }
        }
    }
    let mut detail = Vec::new();
    if progress.rows > 0 {
        detail.push(format!("{} rows", progress.rows));
    }
    if progress.files_total > 1 {
        detail.push(format!(
            "{}/{} files",
            progress.files_done, progress.files_total
        ));
    }
    if progress.rejected_rows > 0 {
        detail.push(format!("{} rejected", progress.rejected_rows));
    }
    bar.set_message(progress.phase.clone());
    bar.set_prefix(detail.join(", "));
}

/// What the user chose on Ctrl-C.
enum Choice {
    Cancel,
    Detach,
}

/// Asks on the terminal (blocking); without one (a script), the job is left running.
fn ask(job_id: &str) -> Choice {
    if !std::io::stdin().is_terminal() {
        return Choice::Detach;
    }
    eprint!("\nInterrupted. Cancel job {job_id}? [y = cancel / N = leave it running] ");
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(_) if matches!(line.trim(), "y" | "Y" | "yes") => Choice::Cancel,
        _ => Choice::Detach,
    }
}

/// Follows the snapshots of one job (the stream of the action that started it, or
/// of `lakehouse.job.status` with follow) until it ends or the user detaches.
pub(super) async fn follow(
    client: &mut Client,
    snapshots: impl Stream<Item = Result<bytes::Bytes, CliError>> + Unpin,
    quiet: bool,
) -> Result<Followed, CliError> {
    let mut snapshots = snapshots;
    let mut interrupts = Interrupts::new()?;
    let bar = bar(quiet);
    let mut last: Option<Job> = None;
    let mut cancelling = false;
    loop {
        let next = tokio::select! {
            next = snapshots.next() => next,
            () = interrupts.next(), if !cancelling => {
                let Some(id) = last.as_ref().map(|j| j.id.clone()) else {
                    bar.finish_and_clear();
                    return Err(CliError::local("interrupted before the job started"));
                };
                let choice = tokio::task::block_in_place(|| bar.suspend(|| ask(&id)));
                match choice {
                    Choice::Cancel => {
                        cancelling = true;
                        bar.set_message("cancelling");
                        let request = JobCancelRequest { job_id: id.clone() };
                        let _: Job = client.action(JOB_CANCEL, &request).await?;
                        continue;
                    }
                    Choice::Detach => {
                        bar.finish_and_clear();
                        return Ok(Followed::Detached(id));
                    }
                }
            }
        };
        match next {
            Some(Ok(body)) => {
                let job = Job::decode(body).map_err(|e| {
                    CliError::local(format!("the server sent an unreadable job snapshot: {e}"))
                })?;
                show(&bar, &job);
                let done = lakehouse_flight_ext::names::is_terminal(job.state);
                last = Some(job);
                if done {
                    bar.finish_and_clear();
                    break;
                }
            }
            // The action that started a failed job ends its stream with the job's
            // status, after the FAILED snapshot: the snapshot says it all.
            Some(Err(error)) => {
                bar.finish_and_clear();
                return match last {
                    Some(job) if lakehouse_flight_ext::names::is_terminal(job.state) => {
                        Ok(Followed::Ended(Box::new(job)))
                    }
                    _ => Err(error),
                };
            }
            None => {
                bar.finish_and_clear();
                break;
            }
        }
    }
    last.map(|job| Followed::Ended(Box::new(job)))
        .ok_or_else(|| CliError::local("the server sent no job snapshot"))
}

/// The error of a job that did not succeed.
pub(super) fn failure(job: &Job) -> Option<CliError> {
    let state = JobState::try_from(job.state).unwrap_or(JobState::Unspecified);
    match state {
        JobState::Succeeded => None,
        JobState::Cancelled => Some(CliError {
            code: Some(tonic::Code::Cancelled),
            message: format!("job {} was cancelled; it committed nothing", job.id),
            hint: None,
        }),
        _ => {
            let code = code_of(&job.error_code);
            let status = tonic::Status::new(code, format!("job {}: {}", job.id, job.error));
            Some(status.into())
        }
    }
}

/// The code named `INVALID_ARGUMENT` etc.
fn code_of(name: &str) -> tonic::Code {
    (0..=16)
        .map(tonic::Code::from)
        .find(|code| super::client::code_name(*code) == name)
        .unwrap_or(tonic::Code::Unknown)
}
