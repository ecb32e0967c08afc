//! How the mirror talks to a remote registry.
//!
//! The [`Upstream`] trait is one call: send a request, get the status, headers and a
//! streaming body back. [`HttpUpstream`] implements it with reqwest and adds what every
//! registry client needs (credentials, timeouts, retries with backoff, redirects, proxies).
//! A request names a path under the configured base URL, or an absolute URL on the same
//! origin; it can never make the mirror dial a host that configuration did not name.

mod http;

use std::fmt::Debug;

use ::http::{HeaderMap, Method, StatusCode};
use async_trait::async_trait;

use crate::error::Result;
use crate::storage::ByteStream;

pub use self::http::{Credentials, HttpUpstream, HttpUpstreamBuilder};

/// What to ask upstream for.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// GET or HEAD in practice.
    pub method: Method,
    /// A path (and query) relative to the upstream's base URL, or an absolute URL on the
    /// base URL's origin.
    pub target: String,
    /// Extra headers: `Accept`, conditional headers.
    pub headers: HeaderMap,
}

impl UpstreamRequest {
    /// A GET of `target`.
    pub fn get(target: impl Into<String>) -> Self {
        UpstreamRequest {
            method: Method::GET,
            target: target.into(),
            headers: HeaderMap::new(),
        }
    }

    /// A HEAD of `target`.
    pub fn head(target: impl Into<String>) -> Self {
        UpstreamRequest {
            method: Method::HEAD,
            ..Self::get(target)
        }
    }
}

/// What upstream answered; the body streams.
pub struct UpstreamResponse {
    /// The final status, after redirects.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, chunk by chunk; a failure mid-body is an error item.
    pub body: ByteStream,
}

impl Debug for UpstreamResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// A remote registry.
#[async_trait]
pub trait Upstream: Send + Sync + Debug + 'static {
    /// Sends one request. Transport failures and timeouts are errors; any HTTP status,
    /// including 4xx and 5xx, is a response for the caller to judge.
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse>;

    /// A short name for logs and metrics, such as the base URL.
    fn name(&self) -> &str;
}
