//! The one error type of mirror-core.

use std::io;

use crate::digest::Digest;

/// A boxed error, the error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in storage, upstream access or the cache engine.
///
/// Each ecosystem crate turns these into responses in its client's own error format; the
/// predicates ([`Error::is_not_found`], [`Error::is_upstream_timeout`], ...) are what that
/// mapping should look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key or blob does not exist, upstream included.
    #[error("not found")]
    NotFound,
    /// Upstream could not be reached, or answered with a server error.
    #[error("upstream request failed: {message}")]
    Upstream {
        /// What happened, for logs and error bodies.
        message: String,
        /// The underlying cause, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Upstream did not answer within the configured time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// Upstream answered with a status the engine does not cache.
    #[error("upstream answered {status}")]
    UpstreamStatus {
        /// The status upstream sent.
        status: http::StatusCode,
    },
    /// A body's digest did not match the one the ecosystem declared.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the ecosystem's metadata declared.
        expected: Digest,
        /// The digest of the bytes that arrived.
        actual: Digest,
    },
    /// A body's length did not match the declared length.
    #[error("length mismatch: expected {expected} bytes, got {actual}")]
    LengthMismatch {
        /// Declared length.
        expected: u64,
        /// Bytes that arrived.
        actual: u64,
    },
    /// A body was larger than the configured limit.
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A requested byte range lies outside the blob.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the blob.
        size: u64,
    },
    /// Input that can never be valid (a malformed digest, key or path).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A compare-and-swap lost against a concurrent writer.
    #[error("concurrent modification of {key}")]
    Conflict {
        /// The metadata key.
        key: String,
    },
    /// Local storage failed.
    #[error("storage failure")]
    Storage(#[source] BoxError),
    /// Local storage has no room left (the disk or a quota is full).
    #[error("no space left on the mirror's storage")]
    StorageFull(#[source] io::Error),
    /// Local I/O failed.
    #[error("i/o failure")]
    Io(#[source] io::Error),
}

impl From<io::Error> for Error {
    /// A full disk gets a variant of its own: it is the operator's to fix, and clients
    /// should be told so rather than see an anonymous internal error.
    fn from(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Error::StorageFull(err),
            _ => Error::Io(err),
        }
    }
}

impl Error {
    /// Builds [`Error::Upstream`] from a message and a cause.
    pub fn upstream(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Upstream {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds [`Error::Storage`] from any error.
    pub fn storage(source: impl Into<BoxError>) -> Self {
        Error::Storage(source.into())
    }

    /// Which class of failure this is, for mapping to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound => ErrorKind::NotFound,
            Error::Upstream { .. } | Error::UpstreamStatus { .. } => ErrorKind::BadUpstream,
            Error::DigestMismatch { .. } | Error::LengthMismatch { .. } => ErrorKind::BadUpstream,
            Error::UpstreamTimeout => ErrorKind::UpstreamTimeout,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::RangeNotSatisfiable { .. } => ErrorKind::RangeNotSatisfiable,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::StorageFull(_) => ErrorKind::InsufficientStorage,
            Error::Storage(_) | Error::Io(_) => ErrorKind::Internal,
        }
    }

    /// True when the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound)
    }

    /// True when upstream took too long.
    pub fn is_upstream_timeout(&self) -> bool {
        matches!(self, Error::UpstreamTimeout)
    }

    /// True when the failure lies upstream (unreachable, 5xx, 429, bad body).
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            Error::Upstream { .. }
                | Error::UpstreamTimeout
                | Error::UpstreamStatus { .. }
                | Error::DigestMismatch { .. }
                | Error::LengthMismatch { .. }
        )
    }
}

/// The classes of [`Error`], one per distinct response a service gives.
///
/// Deliberately exhaustive: a service maps each kind to a status with a `match` that has
/// no wildcard, so a new kind is a compile error in every service until handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404.
    NotFound,
    /// Upstream failed or sent a bad body: 502.
    BadUpstream,
    /// Upstream too slow: 504.
    UpstreamTimeout,
    /// A body over a limit: 413 for uploads, 502 for upstream bodies.
    TooLarge,
    /// 416.
    RangeNotSatisfiable,
    /// Bad input: 400.
    Invalid,
    /// Lost a race with another writer: 409.
    Conflict,
    /// Local storage is full: 507.
    InsufficientStorage,
    /// Local storage failure: 500.
    Internal,
}

/// The result type of mirror-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_io_failures() {
        let full = Error::from(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        assert!(matches!(full, Error::StorageFull(_)));
        assert_eq!(full.kind(), ErrorKind::InsufficientStorage);
        assert!(!full.is_upstream());

        let other = Error::from(io::Error::new(io::ErrorKind::PermissionDenied, "denied"));
        assert_eq!(other.kind(), ErrorKind::Internal);
    }
}
