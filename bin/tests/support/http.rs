//! Plain HTTP requests from the tests themselves, with the response kept whole for asserts.

use std::time::Duration;

use hyper::body::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The `Accept` header npm sends for packuments: the abbreviated form, else the full one.
pub(crate) const INSTALL_ACCEPT: &str =
    "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

/// The values the `x-cache-status` header may take.
const CACHE_STATUSES: [&str; 4] = ["HIT", "MISS", "REVALIDATED", "STALE"];

/// A client that talks to loopback directly, whatever proxy the machine configures.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build an HTTP client")
}

/// A response read to its end, or to the error that ended its body.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Result<Bytes, reqwest::Error>,
}

/// GETs `url` with extra `headers`; panics only if no response arrives at all.
pub(crate) async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Fetched {
    send(client, Method::GET, url, headers, None).await
}

/// Sends a request with extra `headers` and an optional body; panics only if no response
/// arrives at all.
pub(crate) async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Fetched {
    let mut request = client.request(method.clone(), url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("{method} {url}: no response: {error:?}"));

    Fetched {
        method,
        url: url.to_owned(),
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await,
    }
}

impl Fetched {
    /// A header's value, or "" when it is absent or not text.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn cache_status(&self) -> &str {
        self.header("x-cache-status")
    }

    pub(crate) fn assert_reports_cache_status(&self) {
        assert!(
            CACHE_STATUSES.contains(&self.cache_status()),
            "{} {}: x-cache-status is {:?}, expected one of {CACHE_STATUSES:?}; response: {}",
            self.method,
            self.url,
            self.headers.get("x-cache-status"),
            self.describe_body(),
        );
    }

    /// Whether the status was 2xx and the whole body arrived.
    pub(crate) fn is_complete_success(&self) -> bool {
        self.status.is_success() && self.body.is_ok()
    }

    /// The body of a 200 response; panics with the details otherwise.
    pub(crate) fn ok_body(&self) -> &Bytes {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{} {}: {}",
            self.method,
            self.url,
            self.describe_body()
        );
        match &self.body {
            Ok(body) => body,
            Err(error) => panic!(
                "{} {}: 200, then the body failed: {error:?}",
                self.method, self.url
            ),
        }
    }

    /// The body of a 200 response parsed as JSON; panics with the details otherwise.
    pub(crate) fn ok_json(&self) -> Value {
        self.ok_body();
        self.json()
    }

    /// The body parsed as JSON, whatever the status.
    pub(crate) fn json(&self) -> Value {
        let body = self.body.as_ref().unwrap_or_else(|error| {
            panic!(
                "{} {}: {}, then the body failed: {error:?}",
                self.method, self.url, self.status
            )
        });
        serde_json::from_slice(body).unwrap_or_else(|error| {
            panic!(
                "{} {}: body is not JSON ({error}): {}",
                self.method,
                self.url,
                self.describe_body()
            )
        })
    }

    /// The status and the start of the body, for assertion messages.
    pub(crate) fn describe_body(&self) -> String {
        match &self.body {
            Ok(body) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
                format!("{} with {} body bytes: {text}", self.status, body.len())
            }
            Err(error) => format!("{} with a failed body: {error:?}", self.status),
        }
    }
}
