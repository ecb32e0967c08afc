//! The PyPI service's errors and their responses in the plain text pip shows.

use http::{header, HeaderValue, Response, StatusCode};
use mirror_core::{body, Body, ErrorKind};

/// What can go wrong answering a pip, uv or poetry client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PypiError {
    /// The path names no endpoint of the simple API.
    #[error("not found")]
    UnknownPath,
    /// The project name is not a valid Python distribution name.
    #[error("invalid project name")]
    InvalidProjectName,
    /// The file name is not a plain distribution file name.
    #[error("invalid file name")]
    InvalidFileName,
    /// The project or file does not exist.
    #[error("not found")]
    NotFound,
    /// The method is not supported on this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The client accepts none of the formats the simple API has.
    #[error(
        "not acceptable: ask for application/vnd.pypi.simple.v1+json, \
         application/vnd.pypi.simple.v1+html or text/html"
    )]
    NotAcceptable,
    /// A credential is needed, or the one given is wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is valid but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// An upload is malformed, or its form and file disagree.
    #[error("{0}")]
    InvalidUpload(String),
    /// An upload names a file that is already there; written as PyPI writes it, which is
    /// what `twine upload --skip-existing` looks for.
    #[error("File already exists: {0}")]
    FileExists(String),
    /// The request body exceeds the configured limit.
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(u64),
    /// Upstream could not be asked whether a name exists there, so uploading it is refused.
    #[error("cannot check whether the project exists on the upstream index")]
    UpstreamCheck(#[source] mirror_core::Error),
    /// A hosted project kept changing under a write.
    #[error("{0} is being changed by someone else; retry")]
    Contended(String),
    /// Upstream sent something that is not a simple-API page.
    #[error("upstream sent a malformed index page: {0}")]
    MalformedPage(String),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Storage, upstream or cache failure.
    #[error(transparent)]
    Core(#[from] mirror_core::Error),
}

impl PypiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            PypiError::UnknownPath | PypiError::NotFound => StatusCode::NOT_FOUND,
            PypiError::InvalidProjectName | PypiError::InvalidFileName => StatusCode::BAD_REQUEST,
            PypiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PypiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            PypiError::Forbidden(_) => StatusCode::FORBIDDEN,
            PypiError::InvalidUpload(_) | PypiError::FileExists(_) => StatusCode::BAD_REQUEST,
            PypiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PypiError::UpstreamCheck(_) => StatusCode::BAD_GATEWAY,
            PypiError::Contended(_) => StatusCode::CONFLICT,
            PypiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            PypiError::MalformedPage(_) => StatusCode::BAD_GATEWAY,
            PypiError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PypiError::Core(err) => match err.kind() {
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

    /// The response pip expects: the status and a line of plain text it can show the user.
    ///
    /// A client error also carries its message as the HTTP/1 reason phrase, as PyPI does:
    /// twine shows the reason phrase, not the body, unless run with `--verbose`.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "pypi request failed");
        }
        let message = match &self {
            PypiError::Core(err) if err.is_not_found() => "not found".to_owned(),
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
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = HeaderValue::from_static("Basic realm=\"registry-mirror\"");
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if status.is_client_error() && !message.eq_ignore_ascii_case(reason) {
            if let Some(phrase) = reason_phrase(&message) {
                response.extensions_mut().insert(phrase);
            }
        }
        response
    }
}

/// Longest reason phrase sent; the body has the whole message.
const MAX_REASON_LEN: usize = 200;

/// A message as a reason phrase: one line of printable ASCII.
fn reason_phrase(message: &str) -> Option<hyper::ext::ReasonPhrase> {
    let mut phrase: String = message
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .collect();
    if phrase.len() > MAX_REASON_LEN {
        phrase.truncate(MAX_REASON_LEN);
        phrase.push_str("...");
    }
    hyper::ext::ReasonPhrase::try_from(phrase.trim().to_owned()).ok()
}
