//! Plain HTTP requests from the tests themselves, with the response kept whole for asserts.

use std::time::Duration;

use hyper::body::Bytes;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// A response read to its end, or to the error that ended its body.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) url: String,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Result<Bytes, reqwest::Error>,
}

/// GETs `url` with extra `headers`, not following redirects; panics only if no response
/// arrives at all.
pub(crate) async fn get(url: &str, headers: &[(&str, &str)]) -> Fetched {
    send(reqwest::Method::GET, url, headers, None).await
}

/// POSTs `body` to `url` with extra `headers`, like [`get`] otherwise.
#[allow(
    dead_code,
    reason = "for the upload tests; pypi_install.rs posts nothing"
)]
pub(crate) async fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Fetched {
    send(reqwest::Method::POST, url, headers, Some(body)).await
}

async fn send(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Fetched {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build an HTTP client");
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

    /// The body of a 200 response; panics with the details otherwise.
    pub(crate) fn ok_body(&self) -> &Bytes {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "GET {}: {}",
            self.url,
            self.describe()
        );
        match &self.body {
            Ok(body) => body,
            Err(error) => panic!("GET {}: 200, then the body failed: {error:?}", self.url),
        }
    }

    /// The body of a 200 response as text.
    pub(crate) fn ok_text(&self) -> String {
        String::from_utf8_lossy(self.ok_body()).into_owned()
    }

    /// The body of a 200 response parsed as JSON.
    pub(crate) fn ok_json(&self) -> serde_json::Value {
        serde_json::from_slice(self.ok_body()).unwrap_or_else(|error| {
            panic!("GET {}: not JSON ({error}): {}", self.url, self.describe())
        })
    }

    /// Whether the status was 2xx and the whole body arrived.
    pub(crate) fn is_complete_success(&self) -> bool {
        self.status.is_success() && self.body.is_ok()
    }

    /// The status and the start of the body, for assertion messages.
    pub(crate) fn describe(&self) -> String {
        match &self.body {
            Ok(body) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
                format!("{} with {} body bytes: {text}", self.status, body.len())
            }
            Err(error) => format!("{} with a failed body: {error:?}", self.status),
        }
    }
}
