//! Why a job did not succeed, in the jobs' own words. The job record names the
//! failure's class with the code names clients know (flight-ext's `names`); the
//! flight layer turns a call's status into a [`JobError`] (`flight/status.rs`).

use lakehouse_flight_ext::names;
use lakehouse_flight_ext::v1::{Job, JobState};

/// Why a job did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum JobError {
    /// A user cancelled the job; its work stopped and committed nothing.
    #[error("the job was cancelled; nothing was committed")]
    Cancelled,
    /// The server stopped before the job finished; nothing was committed.
    #[error("the server shut down before the job finished; nothing was committed, run it again")]
    ShutDown,
    /// The work panicked.
    #[error("the job crashed: {0}")]
    Crashed(String),
    /// The work failed. `code` is the failure's class as the job record shows it
    /// (`INVALID_ARGUMENT`, `NOT_FOUND`, …), decided where the failure was understood.
    #[error("{message}")]
    Failed {
        /// One of flight-ext's code names.
        code: &'static str,
        /// What went wrong, for the user.
        message: String,
    },
}

impl JobError {
    /// The code name the job record shows.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Cancelled => names::CANCELLED,
            Self::ShutDown => names::UNAVAILABLE,
            Self::Crashed(_) => names::INTERNAL,
            Self::Failed { code, .. } => code,
        }
    }
}

/// Writes `error` into `job`'s end state.
pub(super) fn record(job: &mut Job, error: &JobError) {
    job.state = match error {
        JobError::Cancelled => JobState::Cancelled,
        _ => JobState::Failed,
    } as i32;
    job.error = error.to_string();
    job.error_code = error.code().into();
}
