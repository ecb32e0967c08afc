//! The mirror's errors and their responses in the distribution API's `errors` format.

use http::{header, HeaderValue, Response, StatusCode};
use mirror_core::{body, Body, Digest, ErrorKind};
use serde_json::{json, Value};

/// What can go wrong answering a container client.
///
/// Each variant becomes a status and one of the distribution specification's error codes;
/// [`DockerError::into_response`] writes them as `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerError {
    /// The repository name breaks the specification's grammar.
    #[error("{0}")]
    NameInvalid(String),
    /// The repository, or the registry the request selects, is not known here.
    #[error("{0}")]
    NameUnknown(String),
    /// The manifest does not exist under that tag or digest.
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    /// The reference is neither a valid tag nor a digest, so no manifest can have it.
    #[error("invalid tag {0:?}")]
    TagInvalid(String),
    /// The blob does not exist.
    #[error("blob unknown to registry")]
    BlobUnknown(Digest),
    /// The digest is malformed or uses an algorithm this mirror cannot verify.
    #[error("{0}")]
    DigestInvalid(String),
    /// The upload id names no upload in progress in this repository.
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    /// The upload cannot go on as asked: a chunk out of order, a broken body.
    #[error("{0}")]
    BlobUploadInvalid(String),
    /// A chunk does not start where the upload stands; `uploaded` bytes are stored so far.
    #[error("chunk does not start at offset {uploaded}, where the upload stands")]
    ChunkOutOfOrder {
        /// Bytes received so far.
        uploaded: u64,
    },
    /// A manifest names a blob or manifest this repository does not hold.
    #[error("manifest references a blob or manifest unknown to this repository")]
    ManifestBlobUnknown(Digest),
    /// A pushed manifest is not valid.
    #[error("{0}")]
    ManifestInvalid(String),
    /// A pushed manifest is larger than the configured limit.
    #[error("manifest is larger than the limit of {limit} bytes")]
    ManifestTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A declared length does not match the content.
    #[error("{0}")]
    SizeInvalid(String),
    /// The `n` of a paginated listing is not a number.
    #[error("invalid number of results requested: {0:?}")]
    PaginationInvalid(String),
    /// The path names no endpoint this mirror serves.
    #[error("{0}")]
    NotServed(&'static str),
    /// The method is not supported on this path, or not enabled by the configuration.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A credential is needed, or the one given is wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// Access is refused: the credential may not do this, the repository is not private
    /// here, or upstream would not serve the repository to this mirror.
    #[error("{0}")]
    Denied(String),
    /// Upstream is rate-limiting this mirror and nothing cached can answer instead.
    #[error("upstream registry is rate-limiting this mirror; retry later")]
    TooManyRequests,
    /// Too many uploads are in progress on this registry.
    #[error("too many uploads in progress; finish or cancel some, or retry later")]
    TooManyUploads,
    /// Upstream sent something that is not what the protocol promises.
    #[error("upstream sent a malformed {0}")]
    MalformedUpstream(&'static str),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Storage, upstream or cache failure.
    #[error(transparent)]
    Core(mirror_core::Error),
}

impl From<mirror_core::Error> for DockerError {
    /// Upstream answers that mean something to a container client get their own variant:
    /// 429 stays a 429 and a refusal a `DENIED`, rather than both becoming a 502.
    fn from(err: mirror_core::Error) -> Self {
        if let mirror_core::Error::UpstreamStatus { status } = &err {
            match *status {
                StatusCode::TOO_MANY_REQUESTS => return DockerError::TooManyRequests,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return DockerError::upstream_denied();
                }
                _ => {}
            }
        }
        DockerError::Core(err)
    }
}

impl DockerError {
    /// Upstream refused the mirror access, which Docker Hub also answers for repositories
    /// that do not exist.
    pub(crate) fn upstream_denied() -> Self {
        DockerError::Denied(
            "upstream registry denied access: the repository does not exist or needs \
             credentials this mirror is not configured with"
                .to_owned(),
        )
    }

    /// Turns "not found" from the core into the code that fits what was asked for.
    pub(crate) fn or_unknown(self, unknown: impl FnOnce() -> DockerError) -> Self {
        match self {
            DockerError::Core(err) if err.is_not_found() => unknown(),
            other => other,
        }
    }

    /// True when a stale cached copy may answer instead: upstream is down, slow, failing
    /// or rate-limiting.
    pub(crate) fn allows_stale(&self) -> bool {
        match self {
            DockerError::TooManyRequests => true,
            DockerError::Core(err) => err.is_upstream(),
            _ => false,
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The distribution specification's error code, such as `MANIFEST_UNKNOWN`.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            DockerError::NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            DockerError::NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            DockerError::ManifestUnknown(_) | DockerError::TagInvalid(_) => {
                (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
            }
            DockerError::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            DockerError::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            DockerError::BlobUploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            DockerError::BlobUploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            DockerError::ChunkOutOfOrder { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
            }
            DockerError::ManifestBlobUnknown(_) => {
                (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
            }
            DockerError::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            DockerError::ManifestTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID")
            }
            DockerError::SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
            DockerError::PaginationInvalid(_) => {
                (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID")
            }
            DockerError::NotServed(_) => (StatusCode::NOT_FOUND, "UNSUPPORTED"),
            DockerError::Unsupported(_) => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            DockerError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            DockerError::Denied(_) => (StatusCode::FORBIDDEN, "DENIED"),
            DockerError::TooManyRequests | DockerError::TooManyUploads => {
                (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS")
            }
            DockerError::MalformedUpstream(_) => (StatusCode::BAD_GATEWAY, "UNKNOWN"),
            DockerError::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
            DockerError::Core(err) => core_status_and_code(err),
        }
    }

    fn detail(&self) -> Value {
        match self {
            DockerError::BlobUnknown(digest) | DockerError::ManifestBlobUnknown(digest) => {
                json!({ "digest": digest.to_string() })
            }
            // Upstream failures say which upstream and why; local ones may name local paths.
            DockerError::Core(err) if err.is_upstream() => json!(error_chain(err)),
            _ => Value::Null,
        }
    }

    /// The response a container client expects: the status, and the `errors` JSON body.
    pub fn into_response(self) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let chunk_offset = match &self {
            DockerError::ChunkOutOfOrder { uploaded } => Some(*uploaded),
            _ => None,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, detail = %self.detail(), "container request failed");
        }
        let doc = json!({ "errors": [{
            "code": code,
            "message": self.to_string(),
            "detail": self.detail(),
        }]});
        let mut response = Response::new(body::full(doc.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(uploaded) = chunk_offset {
            let range = format!("0-{}", uploaded.saturating_sub(1));
            if let Ok(value) = HeaderValue::from_str(&range) {
                headers.insert(header::RANGE, value);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = HeaderValue::from_static("Basic realm=\"registry-mirror\"");
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// Every core failure class gets a status and a code, with no wildcard: a new class is a
/// compile error here until someone decides what a container client should see.
fn core_status_and_code(err: &mirror_core::Error) -> (StatusCode, &'static str) {
    match err.kind() {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        ErrorKind::BadUpstream => (StatusCode::BAD_GATEWAY, "UNKNOWN"),
        ErrorKind::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "UNKNOWN"),
        ErrorKind::TooLarge => (StatusCode::BAD_GATEWAY, "UNKNOWN"),
        ErrorKind::RangeNotSatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID"),
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "UNKNOWN"),
        ErrorKind::InsufficientStorage => (StatusCode::INSUFFICIENT_STORAGE, "UNKNOWN"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
