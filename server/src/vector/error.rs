//! What can go wrong in the vector subsystem, in its own words; `flight/status.rs`
//! maps each kind to the status a client gets.

use super::embed::EmbedError;
use super::index::IndexError;

/// What went wrong in the vector subsystem.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VectorError {
    /// The request is wrong: a bad name, parameter, filter or vector.
    #[error("{0}")]
    Invalid(String),
    /// No such index, table or column.
    #[error("{0}")]
    NotFound(String),
    /// An index of that name exists.
    #[error("{0}")]
    Exists(String),
    /// Something the request needs is not set up: the model is not installed, an
    /// embedder is not configured.
    #[error("{0}")]
    Unavailable(String),
    /// A worker process died during the call or cannot be reached now; retrying may
    /// succeed.
    #[error("{0}")]
    WorkerDown(String),
    /// The index belongs to a profile other than the one the session is bound to.
    #[error("{0}")]
    Forbidden(String),
    /// The job was cancelled.
    #[error("the job was cancelled; nothing was recorded")]
    Cancelled,
    /// A failure of ours or of storage: nothing the request could change.
    #[error("{0}")]
    Internal(String),
}

impl From<EmbedError> for VectorError {
    fn from(error: EmbedError) -> Self {
        match error {
            EmbedError::Unavailable { .. } => Self::Unavailable(error.to_string()),
            EmbedError::Failed { .. } => Self::Internal(error.to_string()),
        }
    }
}

impl From<IndexError> for VectorError {
    fn from(error: super::index::IndexError) -> Self {
        match error {
            IndexError::Invalid(message) => Self::Invalid(message),
            IndexError::Unavailable(message) => Self::WorkerDown(message),
            IndexError::Failed(message) => Self::Internal(message),
        }
    }
}

pub(super) fn internal(error: impl std::fmt::Display) -> VectorError {
    VectorError::Internal(error.to_string())
}
