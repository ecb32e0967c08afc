//! The npm service's errors and their responses in npm's own format.

use http::{header, Response, StatusCode};
use mirror_core::{body, Body, ErrorKind};

/// What can go wrong answering an npm client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpmError {
    /// The path does not name a valid package, version or tarball.
    #[error("invalid package name or path")]
    InvalidPath,
    /// The package, version or tarball does not exist.
    #[error("not found")]
    NotFound,
    /// The method is not supported on this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Upstream sent a document that is not a packument.
    #[error("upstream sent a malformed packument: {0}")]
    MalformedPackument(String),
    /// A credential is needed, or the one given is wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is valid but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request would overwrite something immutable.
    #[error("{0}")]
    Conflict(String),
    /// The request body is malformed or inconsistent.
    #[error("{0}")]
    BadRequest(String),
    /// The request body exceeds the configured limit.
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(u64),
    /// Upstream could not be asked whether a name exists there, so publishing it is refused.
    #[error("cannot check whether the name exists upstream")]
    UpstreamCheck(#[source] mirror_core::Error),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Storage, upstream or cache failure.
    #[error(transparent)]
    Core(#[from] mirror_core::Error),
}

impl NpmError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            NpmError::InvalidPath => StatusCode::BAD_REQUEST,
            NpmError::NotFound => StatusCode::NOT_FOUND,
            NpmError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            NpmError::MalformedPackument(_) => StatusCode::BAD_GATEWAY,
            NpmError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            NpmError::Forbidden(_) => StatusCode::FORBIDDEN,
            NpmError::Conflict(_) => StatusCode::CONFLICT,
            NpmError::BadRequest(_) => StatusCode::BAD_REQUEST,
            NpmError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            NpmError::UpstreamCheck(_) => StatusCode::BAD_GATEWAY,
            NpmError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            NpmError::Core(err) => match err.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::BadUpstream => StatusCode::BAD_GATEWAY,
                ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
                ErrorKind::TooLarge => StatusCode::BAD_GATEWAY,
                ErrorKind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorKind::Invalid => StatusCode::BAD_REQUEST,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The response npm expects: a JSON object with an `error` field.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "npm request failed");
        }
        let message = match &self {
            NpmError::NotFound => "Not found".to_owned(),
            NpmError::Core(err) if err.is_not_found() => "Not found".to_owned(),
            other => other.to_string(),
        };
        let doc = serde_json::json!({ "error": message });
        let mut response = Response::new(body::full(doc.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            let challenge = http::HeaderValue::from_static("Basic realm=\"registry-mirror\"");
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
