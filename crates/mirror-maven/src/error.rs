//! The Maven service's errors and their plain-text responses, which mvn prints.

use http::{header, HeaderValue, Response, StatusCode};
use mirror_core::{body, Body, BoxError, ErrorKind};

/// What can go wrong answering mvn or gradle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MavenError {
    /// The path is not a safe Maven repository path.
    #[error("invalid path: {0}")]
    InvalidPath(&'static str),
    /// No repository of that name is configured.
    #[error("no repository named {0:?}")]
    UnknownRepository(String),
    /// The file does not exist.
    #[error("not found")]
    NotFound,
    /// The method is not supported on this repository; the value is the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// A credential is needed, or the one given is wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is valid but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// A deploy would change a release that is already there.
    #[error(
        "{0} is a release that was already deployed with other content; releases are immutable"
    )]
    ReleaseExists(String),
    /// A deploy of a version the repository does not take (a snapshot to releases, ...).
    #[error("{0}")]
    VersionPolicy(String),
    /// An uploaded checksum does not match the file it describes.
    #[error("checksum mismatch for {path}: uploaded {uploaded}, stored file has {actual}")]
    ChecksumMismatch {
        /// The checksum file's path.
        path: String,
        /// What the client sent.
        uploaded: String,
        /// What the stored file hashes to.
        actual: String,
    },
    /// A deployed file is not what its name says (an unreadable checksum or metadata).
    #[error("invalid upload: {0}")]
    InvalidUpload(String),
    /// The request body ended early or failed.
    #[error("the upload was cut off")]
    UploadBody(#[source] BoxError),
    /// The request body exceeds the configured limit.
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(u64),
    /// A `maven-metadata.xml` from a member repository cannot be read.
    #[error("repository {repository} has a malformed maven-metadata.xml: {reason}")]
    MalformedMetadata {
        /// The repository that served it.
        repository: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A hosted file kept changing under a write.
    #[error("{0} is being changed by someone else; retry")]
    Contended(String),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Storage, upstream or cache failure.
    #[error(transparent)]
    Core(#[from] mirror_core::Error),
}

impl MavenError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            MavenError::InvalidPath(_) => StatusCode::BAD_REQUEST,
            MavenError::UnknownRepository(_) | MavenError::NotFound => StatusCode::NOT_FOUND,
            MavenError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            MavenError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            MavenError::Forbidden(_) => StatusCode::FORBIDDEN,
            MavenError::ReleaseExists(_) | MavenError::Contended(_) => StatusCode::CONFLICT,
            MavenError::VersionPolicy(_)
            | MavenError::ChecksumMismatch { .. }
            | MavenError::InvalidUpload(_)
            | MavenError::UploadBody(_) => StatusCode::BAD_REQUEST,
            MavenError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            MavenError::MalformedMetadata { .. } => StatusCode::BAD_GATEWAY,
            MavenError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            MavenError::Core(err) => core_status(err),
        }
    }

    /// The response mvn expects: the status and a line of plain text it shows the user.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "maven request failed");
        }
        let message = match &self {
            MavenError::Core(err) if err.is_not_found() => "not found".to_owned(),
            other => other.to_string(),
        };
        let reason = status.canonical_reason().unwrap_or("Error");
        let text = format!("{} {reason}\n\n{message}\n", status.as_u16());
        let mut response = Response::new(body::full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let MavenError::MethodNotAllowed(allow) = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = HeaderValue::from_static("Basic realm=\"registry-mirror\"");
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

fn core_status(err: &mirror_core::Error) -> StatusCode {
    match err.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::BadUpstream => StatusCode::BAD_GATEWAY,
        ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::TooLarge => StatusCode::BAD_GATEWAY,
        ErrorKind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
