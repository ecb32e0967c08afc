//! Requests to the mirror, and what a client may and may not see after a fault.

use std::time::{Duration, Instant};

use hyper::body::Bytes;
use reqwest::StatusCode;

use super::registry::Artifact;
use super::server::Server;

/// A client that talks to loopback directly, whatever proxy the machine configures.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build an HTTP client")
}

/// A response read to its end, or to the error that cut its body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) what: String,
    pub(crate) status: StatusCode,
    pub(crate) cache_status: String,
    pub(crate) body: Result<Bytes, String>,
    /// From sending the request to the end of the body.
    pub(crate) elapsed: Duration,
}

impl Answer {
    pub(crate) fn text(&self) -> String {
        match &self.body {
            Ok(body) => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            Err(error) => format!("<body cut: {error}>"),
        }
    }
}

/// GETs `path` on the mirror with extra `headers`; panics if no response arrives.
pub(crate) async fn get(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    attempt(client, server, path, headers)
        .await
        .unwrap_or_else(|error| panic!("GET {path}: no response at all: {error}"))
}

/// GETs `path` on the mirror; `Err` when the connection closed before a response head.
pub(crate) async fn attempt(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    send(
        client,
        server,
        reqwest::Method::GET,
        path,
        headers,
        Vec::new(),
    )
    .await
}

/// Sends a request with a body; `Err` when the connection closed before a response head.
pub(crate) async fn send(
    client: &reqwest::Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Answer, String> {
    let url = format!("{}{path}", server.url());
    let mut request = client.request(method.clone(), &url);
    if !body.is_empty() {
        request = request.body(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    let response = request.send().await.map_err(|error| format!("{error:?}"))?;
    let status = response.status();
    let cache_status = response
        .headers()
        .get("x-cache-status")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.bytes().await.map_err(|error| format!("{error:?}"));

    Ok(Answer {
        what: format!("{method} {path}"),
        status,
        cache_status,
        body,
        elapsed: started.elapsed(),
    })
}

/// Asserts that the client was not handed the artifact: an error status with an
/// explanation (always, for a small artifact the mirror verifies before answering), or a
/// response cut before its end (before its head even, when the failure came as the first
/// bytes were going out). Never a complete body of other bytes.
pub(crate) fn assert_refused(
    answer: &Result<Answer, String>,
    artifact: &Artifact,
    statuses: &[StatusCode],
) {
    let label = &artifact.label;
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            assert!(
                artifact.is_big(),
                "{label}: a small artifact must fail with a clean error status, \
                 not a connection closed without a response: {error}"
            );
            return;
        }
    };
    if answer.status.is_success() {
        assert!(
            artifact.is_big(),
            "{label}: a small artifact must fail with a clean error status, got {} {}",
            answer.status,
            answer.text()
        );
        if let Ok(body) = &answer.body {
            panic!(
                "{label}: {} arrived whole ({} bytes{}) although upstream failed",
                answer.status,
                body.len(),
                if *body == artifact.bytes {
                    ", the true bytes"
                } else {
                    ", wrong bytes"
                }
            );
        }
        return;
    }
    assert!(
        statuses.contains(&answer.status),
        "{label}: expected one of {statuses:?}, got {} {}",
        answer.status,
        answer.text()
    );
    let text = answer.text();
    assert!(
        text.len() > 2 && answer.body.is_ok(),
        "{label}: the error response must explain itself: {text:?}"
    );
}

/// Asserts a complete 200 of the artifact's true bytes, with the given cache status.
pub(crate) fn assert_served(answer: &Answer, artifact: &Artifact, cache_status: &str) {
    let label = &artifact.label;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{label}: {} {}",
        answer.what,
        answer.text()
    );
    let body = answer
        .body
        .as_ref()
        .unwrap_or_else(|error| panic!("{label}: 200, then the body failed: {error}"));
    assert!(
        *body == artifact.bytes,
        "{label}: {} bytes served, not the {} true bytes",
        body.len(),
        artifact.bytes.len()
    );
    assert_eq!(answer.cache_status, cache_status, "{label}: x-cache-status");
}
