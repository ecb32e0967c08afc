//! Drives the service with `oneshot` against an in-process upstream registry.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use mirror_core::{MemoryBlobStore, MemoryMetadataStore, UpstreamResponse};
use serde_json::{json, Value};
use sha2::Digest as _;
use tower::ServiceExt;

use super::*;

/// An upstream that serves documents from a map and answers `If-None-Match`.
#[derive(Debug, Default)]
struct Registry {
    files: Mutex<HashMap<String, Bytes>>,
    calls: Mutex<Vec<String>>,
}

impl Registry {
    fn put(&self, path: &str, body: impl Into<Bytes>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.into());
    }

    fn calls_to(&self, path: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.as_str() == path)
            .count()
    }
}

#[async_trait]
impl Upstream for Registry {
    async fn send(&self, request: UpstreamRequest) -> mirror_core::Result<UpstreamResponse> {
        let path = request
            .target
            .trim_start_matches("http://up.test/")
            .to_owned();
        self.calls.lock().unwrap().push(path.clone());
        let body = self.files.lock().unwrap().get(&path).cloned();
        let (status, body) = match body {
            None => (StatusCode::NOT_FOUND, Bytes::new()),
            Some(body) => {
                let etag = format!("\"{}\"", mirror_core::digest::sha256_of(&body).hex());
                if request
                    .headers
                    .get(header::IF_NONE_MATCH)
                    .is_some_and(|v| v == etag.as_str())
                {
                    (StatusCode::NOT_MODIFIED, Bytes::new())
                } else {
                    (StatusCode::OK, body)
                }
            }
        };
        let etag = format!("\"{}\"", mirror_core::digest::sha256_of(&body).hex());
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
        let stream = futures_util::stream::iter([Ok(body)]).boxed();
        Ok(UpstreamResponse {
            status,
            headers,
            body: stream,
        })
    }

    fn name(&self) -> &str {
        "test registry"
    }
}

fn tarball(content: &[u8]) -> (Bytes, String) {
    let sha512 = sha2::Sha512::digest(content);
    let integrity = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha512)
    );
    (Bytes::copy_from_slice(content), integrity)
}

fn packument(name: &str, versions: &[(&str, &str)]) -> Bytes {
    let bare = name.rsplit('/').next().unwrap();
    let mut docs = serde_json::Map::new();
    for (version, integrity) in versions {
        let url = format!("http://up.test/{name}/-/{bare}-{version}.tgz");
        let doc = json!({"name": name, "version": version, "readme": "r",
                         "dist": {"tarball": url, "integrity": integrity}});
        docs.insert((*version).to_owned(), doc);
    }
    let latest = versions.last().map(|v| v.0).unwrap_or("0.0.0");
    let doc = json!({"name": name, "dist-tags": {"latest": latest}, "versions": docs,
                     "time": {"modified": "2026-01-01T00:00:00Z"}});
    Bytes::from(doc.to_string())
}

fn mirror(registry: &Arc<Registry>) -> NpmMirror {
    let cache = Cache::builder(
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    )
    .build();
    let config = NpmConfig {
        upstream: "http://up.test/".into(),
        ..NpmConfig::default()
    };
    NpmMirror::with_upstream(cache, config, Arc::clone(registry) as Arc<dyn Upstream>).unwrap()
}

async fn send(npm: &NpmMirror, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = npm.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (parts.status, parts.headers, bytes)
}

fn get(path: &str) -> http::request::Builder {
    Request::get(path).header(header::HOST, "mirror.test:8080")
}

fn setup() -> (Arc<Registry>, NpmMirror, Bytes) {
    let registry = Arc::new(Registry::default());
    let (bytes, integrity) = tarball(b"tarball one");
    registry.put(
        "@acme%2fwidget",
        packument("@acme/widget", &[("1.0.0", &integrity)]),
    );
    registry.put("@acme/widget/-/widget-1.0.0.tgz", bytes.clone());
    let npm = mirror(&registry);
    (registry, npm, bytes)
}

#[tokio::test]
async fn packument_points_tarballs_at_the_mirror_for_both_scoped_forms() {
    let (registry, npm, _) = setup();
    for path in ["/@acme%2fwidget", "/@acme/widget"] {
        let (status, headers, body) = send(&npm, get(path).body(body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_LENGTH],
            body.len().to_string().as_str()
        );
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            doc["versions"]["1.0.0"]["dist"]["tarball"],
            "http://mirror.test:8080/npm/@acme/widget/-/widget-1.0.0.tgz"
        );
        assert_eq!(doc["versions"]["1.0.0"]["readme"], "r");
    }
    assert_eq!(
        registry.calls_to("@acme%2fwidget"),
        1,
        "the second form is a cache hit"
    );
}

#[tokio::test]
async fn abbreviated_form_on_request() {
    let (_, npm, _) = setup();
    let request = get("/@acme%2fwidget")
        .header(
            header::ACCEPT,
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        )
        .body(body::empty())
        .unwrap();
    let (status, headers, body) = send(&npm, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], ABBREVIATED);
    assert_eq!(headers[header::VARY], "Accept");
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(doc["versions"]["1.0.0"].get("readme").is_none());
    assert_eq!(doc["modified"], "2026-01-01T00:00:00Z");
}

#[tokio::test]
async fn etag_answers_304() {
    let (_, npm, _) = setup();
    let (_, headers, _) = send(&npm, get("/@acme/widget").body(body::empty()).unwrap()).await;
    let etag = headers[header::ETAG].clone();
    let request = get("/@acme/widget")
        .header(header::IF_NONE_MATCH, etag)
        .body(body::empty())
        .unwrap();
    let (status, headers, body) = send(&npm, request).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers[CACHE_STATUS_HEADER], "HIT");
    assert!(body.is_empty());

    let other_host = Request::get("/@acme/widget")
        .header(header::HOST, "elsewhere:1")
        .header(header::IF_NONE_MATCH, headers[header::ETAG].clone())
        .body(body::empty())
        .unwrap();
    let (status, _, _) = send(&npm, other_host).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "documents rewritten for another host differ"
    );
}

#[tokio::test]
async fn tarball_is_fetched_once_and_served_with_ranges() {
    let (registry, npm, bytes) = setup();
    let path = "/@acme/widget/-/widget-1.0.0.tgz";
    let (status, headers, body) = send(&npm, get(path).body(body::empty()).unwrap()).await;
    assert_eq!((status, body.clone()), (StatusCode::OK, bytes.clone()));
    assert_eq!(headers[CACHE_STATUS_HEADER], "MISS");

    let ranged = get(path)
        .header(header::RANGE, "bytes=0-6")
        .body(body::empty())
        .unwrap();
    let (status, headers, body) = send(&npm, ranged).await;
    assert_eq!(
        (status, body),
        (StatusCode::PARTIAL_CONTENT, bytes.slice(0..7))
    );
    assert_eq!(headers[CACHE_STATUS_HEADER], "HIT");
    assert_eq!(
        headers[header::CONTENT_RANGE],
        format!("bytes 0-6/{}", bytes.len()).as_str()
    );
    assert_eq!(registry.calls_to("@acme/widget/-/widget-1.0.0.tgz"), 1);
}

#[tokio::test]
async fn tarball_not_matching_integrity_is_refused_and_not_cached() {
    let (registry, npm, good) = setup();
    registry.put(
        "@acme/widget/-/widget-1.0.0.tgz",
        Bytes::from_static(b"tampered bytes"),
    );
    let path = "/@acme/widget/-/widget-1.0.0.tgz";
    let response = npm
        .clone()
        .oneshot(get(path).body(body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await;
    assert!(
        status == StatusCode::BAD_GATEWAY || body.is_err(),
        "a wrong body must fail the request (a 502, or an aborted stream), got {status}"
    );

    registry.put("@acme/widget/-/widget-1.0.0.tgz", good.clone());
    let (status, headers, body) = send(&npm, get(path).body(body::empty()).unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, good));
    assert_eq!(headers[CACHE_STATUS_HEADER], "MISS");
}

#[tokio::test]
async fn new_release_is_found_without_waiting_for_the_ttl() {
    let (registry, npm, _) = setup();
    send(&npm, get("/@acme/widget").body(body::empty()).unwrap()).await;

    let (one, one_integrity) = tarball(b"tarball one");
    let (two, two_integrity) = tarball(b"tarball two");
    let versions = [
        ("1.0.0", one_integrity.as_str()),
        ("2.0.0", two_integrity.as_str()),
    ];
    registry.put("@acme%2fwidget", packument("@acme/widget", &versions));
    registry.put("@acme/widget/-/widget-1.0.0.tgz", one);
    registry.put("@acme/widget/-/widget-2.0.0.tgz", two.clone());

    let (status, _, body) = send(
        &npm,
        get("/@acme/widget/-/widget-2.0.0.tgz")
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, two));
    let (status, _, body) = send(
        &npm,
        get("/@acme/widget/2.0.0").body(body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["version"],
        "2.0.0"
    );

    let no_cache = get("/@acme/widget")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body::empty())
        .unwrap();
    let (_, headers, _) = send(&npm, no_cache).await;
    assert_eq!(headers[CACHE_STATUS_HEADER], "REVALIDATED");
}

#[tokio::test]
async fn errors_use_npm_json_bodies() {
    let (_, npm, _) = setup();
    let cases = [
        (get("/no-such-package"), StatusCode::NOT_FOUND),
        (
            get("/@acme/widget/-/widget-9.9.9.tgz"),
            StatusCode::NOT_FOUND,
        ),
        (get("/@acme/widget/9.9.9"), StatusCode::NOT_FOUND),
        (get("/..%2f..%2fetc%2fpasswd"), StatusCode::BAD_REQUEST),
        (get("/a/-/..%2f..%2fx.tgz"), StatusCode::BAD_REQUEST),
        (
            Request::delete("/@acme/widget"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (request, expected) in cases {
        let (status, headers, body) = send(&npm, request.body(body::empty()).unwrap()).await;
        assert_eq!(status, expected);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert!(doc["error"].is_string(), "{doc}");
    }
}

#[tokio::test]
async fn malformed_upstream_packument_is_a_502() {
    let registry = Arc::new(Registry::default());
    registry.put("broken", Bytes::from_static(b"<html>not json</html>"));
    let (status, _, body) = send(
        &mirror(&registry),
        get("/broken").body(body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8_lossy(&body).contains("malformed packument"));
}
