//! Buckets: named `object_store` locations that hold tables and catalog state.
//!
//! Owns: the bucket registry and its persisted form (`<data-dir>/buckets.json`).
//! May call: `object_store` only. Invariants:
//! - `primary` and `rescue` always exist and cannot be removed;
//! - no two buckets overlap (neither URL is a prefix of the other);
//! - local buckets added at run time lie under the configured local roots;
//! - the registry file is replaced atomically (write to a temporary file, then rename),
//!   so a crash leaves the previous or the new registry, never a torn one.

mod bucket;
mod registry;

pub(crate) use bucket::{Bucket, BucketKind};
pub(crate) use registry::{BucketRegistry, PRIMARY};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A bucket URL could not be parsed or uses an unsupported scheme.
    #[error("invalid bucket URL {url:?}: {message}")]
    InvalidUrl {
        /// The URL as given (credentials redacted).
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// No bucket of that name is registered.
    #[error("bucket {0:?} does not exist")]
    UnknownBucket(String),
    /// A bucket of that name, or over the same objects, is registered already.
    #[error("{0}")]
    BucketExists(String),
    /// The server does not allow it: removing `primary`/`rescue`, or a local bucket
    /// outside the allowed roots.
    #[error("{0}")]
    Refused(String),
    /// Local I/O on the data directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The object store refused an operation.
    #[error("object store error in bucket {bucket:?}: {source}")]
    ObjectStore {
        /// The bucket name.
        bucket: String,
        /// The error from `object_store`.
        source: object_store::Error,
    },
    /// The persisted registry is unreadable.
    #[error("bucket registry {path} is corrupt: {message}")]
    CorruptRegistry {
        /// Path of `buckets.json`.
        path: String,
        /// Parser message.
        message: String,
    },
}

/// Result alias of the storage layer.
pub(crate) type Result<T, E = StorageError> = std::result::Result<T, E>;
