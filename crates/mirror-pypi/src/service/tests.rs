//! Drives the service with `oneshot` against in-process upstreams: an index and a separate
//! file host, as the public index has them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use http::StatusCode;
use http_body_util::BodyExt;
use mirror_core::{MemoryBlobStore, MemoryMetadataStore, UpstreamResponse};
use serde_json::{json, Value};
use sha2::Digest as _;
use tower::ServiceExt;

use super::*;

mod upload;

const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
     application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
const MIRROR: &str = "http://mirror.test:8080/pypi";

/// An upstream host serving documents from a map, answering `If-None-Match` with 304.
#[derive(Debug)]
struct Site {
    base: Url,
    documents: Mutex<HashMap<String, (&'static str, Bytes)>>,
    calls: Mutex<Vec<(String, HeaderMap)>>,
}

impl Site {
    fn new(base: &str) -> Arc<Self> {
        Arc::new(Site {
            base: Url::parse(base).unwrap(),
            documents: Mutex::default(),
            calls: Mutex::default(),
        })
    }

    /// Serves `body` at `path` (relative to the base, or absolute).
    fn put(&self, path: &str, content_type: &'static str, body: impl Into<Bytes>) {
        let url = self.base.join(path).unwrap().to_string();
        let mut documents = self.documents.lock().unwrap();
        documents.insert(url, (content_type, body.into()));
    }

    fn calls_to(&self, path: &str) -> usize {
        let url = self.base.join(path).unwrap().to_string();
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == url)
            .count()
    }

    fn total_calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

#[async_trait]
impl Upstream for Site {
    async fn send(&self, request: UpstreamRequest) -> mirror_core::Result<UpstreamResponse> {
        let url = self.base.join(&request.target).unwrap().to_string();
        self.calls
            .lock()
            .unwrap()
            .push((url.clone(), request.headers.clone()));
        let document = self.documents.lock().unwrap().get(&url).cloned();
        let mut headers = HeaderMap::new();
        let (status, body) = match document {
            None => (StatusCode::NOT_FOUND, Bytes::new()),
            Some((content_type, body)) => {
                let etag = format!("\"{}\"", mirror_core::digest::sha256_of(&body).hex());
                let unchanged = request
                    .headers
                    .get(header::IF_NONE_MATCH)
                    .is_some_and(|v| v == etag.as_str());
                headers.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                if unchanged {
                    (StatusCode::NOT_MODIFIED, Bytes::new())
                } else {
                    (StatusCode::OK, body)
                }
            }
        };
        Ok(UpstreamResponse {
            status,
            headers,
            body: futures_util::stream::iter([Ok(body)]).boxed(),
        })
    }

    fn name(&self) -> &str {
        "test site"
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

const SDIST: &[u8] = b"sdist bytes";
const WHEEL: &[u8] = b"wheel bytes";
const METADATA: &[u8] = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";

/// The demo project's page in HTML: an sdist on the index host by a relative link, a wheel
/// on the file host with metadata, and a file on a host the mirror must not dial.
fn html_page() -> String {
    format!(
        r#"<!DOCTYPE html><html><body><h1>Links for demo</h1>
        <a href="../../packages/demo-1.0.tar.gz#sha256={sdist}" data-requires-python="&gt;=3.8">demo-1.0.tar.gz</a><br/>
        <a href="http://files.test/f/demo-1.0-py3-none-any.whl#sha256={wheel}" data-yanked="broken"
           data-dist-info-metadata="sha256={metadata}">demo-1.0-py3-none-any.whl</a><br/>
        <a href="http://evil.test/demo-0.9.tar.gz#sha256={sdist}">demo-0.9.tar.gz</a>
        </body></html>"#,
        sdist = sha256(SDIST),
        wheel = sha256(WHEEL),
        metadata = sha256(METADATA)
    )
}

fn json_page() -> String {
    json!({
        "meta": {"api-version": "1.1"},
        "name": "demo",
        "versions": ["1.0"],
        "files": [
            {"filename": "demo-1.0.tar.gz", "url": "../../packages/demo-1.0.tar.gz",
             "hashes": {"sha256": sha256(SDIST)}, "requires-python": ">=3.8",
             "size": SDIST.len(), "upload-time": "2024-01-01T00:00:00Z"},
            {"filename": "demo-1.0-py3-none-any.whl",
             "url": "http://files.test/f/demo-1.0-py3-none-any.whl",
             "hashes": {"sha256": sha256(WHEEL)}, "yanked": "broken", "size": WHEEL.len(),
             "core-metadata": {"sha256": sha256(METADATA)}},
            {"filename": "demo-0.9.tar.gz", "url": "http://evil.test/demo-0.9.tar.gz",
             "hashes": {"sha256": sha256(SDIST)}, "size": 1}
        ]
    })
    .to_string()
}

struct Setup {
    index: Arc<Site>,
    files: Arc<Site>,
    pypi: PypiMirror,
}

fn setup_with(page: String, content_type: &'static str) -> Setup {
    let index = Site::new("http://index.test/simple/");
    let files = Site::new("http://files.test/");
    index.put("demo/", content_type, page);
    index.put(
        "/packages/demo-1.0.tar.gz",
        "application/octet-stream",
        SDIST,
    );
    files.put(
        "f/demo-1.0-py3-none-any.whl",
        "application/octet-stream",
        WHEEL,
    );
    files.put(
        "f/demo-1.0-py3-none-any.whl.metadata",
        "text/plain",
        METADATA,
    );
    let pypi = mirror(&index, &files, PypiConfig::default());
    Setup { index, files, pypi }
}

fn setup() -> Setup {
    setup_with(html_page(), "text/html")
}

fn mirror(index: &Arc<Site>, files: &Arc<Site>, config: PypiConfig) -> PypiMirror {
    let cache = Cache::builder(
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    )
    .build();
    let config = PypiConfig {
        upstream: "http://index.test/simple/".into(),
        files_upstream: "http://files.test/".into(),
        ..config
    };
    let (index, files) = (Arc::clone(index), Arc::clone(files));
    PypiMirror::with_upstreams(cache, config, index, files).unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: impl header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.text()))
    }
}

async fn send(pypi: &PypiMirror, request: Request<()>) -> Answer {
    send_body(pypi, request.map(|()| mirror_core::body::empty())).await
}

async fn send_body(pypi: &PypiMirror, request: Request<Body>) -> Answer {
    let response = pypi.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let answer = Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    };
    assert_eq!(
        answer.header(header::VARY),
        "Accept",
        "every response varies"
    );
    assert!(
        ["HIT", "MISS", "REVALIDATED", "STALE"].contains(&answer.header(CACHE_STATUS_HEADER)),
        "every response reports its cache status"
    );
    answer
}

async fn get(pypi: &PypiMirror, path: &str, accept: Option<&str>) -> Answer {
    let mut request = Request::get(path).header(header::HOST, "mirror.test:8080");
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    send(pypi, request.body(()).unwrap()).await
}

#[tokio::test]
async fn negotiates_json_and_html_from_one_upstream_fetch() {
    let Setup { index, pypi, .. } = setup();

    let json = get(&pypi, "/simple/demo/", Some(PIP_ACCEPT)).await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.text());
    assert_eq!(json.header(header::CONTENT_TYPE), JSON_V1_TYPE);
    assert_eq!(json.header(CACHE_STATUS_HEADER), "MISS");
    assert_eq!(
        json.header(header::CONTENT_LENGTH),
        json.body.len().to_string()
    );
    assert_eq!(json.json()["name"], "demo");

    for (accept, content_type) in [
        (Some("text/html"), "text/html; charset=utf-8"),
        (None, "text/html; charset=utf-8"),
        (Some("*/*"), "text/html; charset=utf-8"),
        (
            Some("application/vnd.pypi.simple.v1+html"),
            "application/vnd.pypi.simple.v1+html",
        ),
        (
            Some("text/html;q=0.5, application/vnd.pypi.simple.latest+json"),
            JSON_V1_TYPE,
        ),
    ] {
        let answer = get(&pypi, "/simple/demo/", accept).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.header(header::CONTENT_TYPE),
            content_type,
            "{accept:?}"
        );
        assert_eq!(answer.header(CACHE_STATUS_HEADER), "HIT");
    }

    let refused = get(&pypi, "/simple/demo/", Some("text/plain")).await;
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(refused.header(CACHE_STATUS_HEADER), "MISS");
    assert_eq!(index.calls_to("demo/"), 1);
    let calls = index.calls.lock().unwrap();
    let accept = calls[0].1[header::ACCEPT].to_str().unwrap();
    assert!(
        accept.starts_with(JSON_V1_TYPE),
        "upstream asked for {accept}"
    );
}

const JSON_V1_TYPE: &str = "application/vnd.pypi.simple.v1+json";

async fn assert_attributes_carried(setup: Setup) {
    let Setup { pypi, .. } = setup;
    let html = get(&pypi, "/simple/demo/", Some("text/html")).await.text();
    let sdist = format!(
        "<a href=\"{MIRROR}/files/demo/demo-1.0.tar.gz#sha256={}\" \
         data-requires-python=\"&gt;=3.8\">demo-1.0.tar.gz</a>",
        sha256(SDIST)
    );
    assert!(html.contains(&sdist), "{html}");
    let wheel = format!(
        "<a href=\"{MIRROR}/files/demo/demo-1.0-py3-none-any.whl#sha256={}\" \
         data-yanked=\"broken\" data-dist-info-metadata=\"sha256={m}\" \
         data-core-metadata=\"sha256={m}\">",
        sha256(WHEEL),
        m = sha256(METADATA)
    );
    assert!(html.contains(&wheel), "{html}");
    assert!(
        !html.contains("evil.test") && !html.contains("demo-0.9"),
        "{html}"
    );

    let doc = get(&pypi, "/simple/demo/", Some(PIP_ACCEPT)).await.json();
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{doc}");
    assert_eq!(
        files[0]["url"],
        format!("{MIRROR}/files/demo/demo-1.0.tar.gz")
    );
    assert_eq!(files[0]["hashes"]["sha256"], sha256(SDIST));
    assert_eq!(files[0]["requires-python"], ">=3.8");
    assert!(files[0].get("yanked").is_none());
    assert_eq!(files[1]["yanked"], "broken");
    assert_eq!(files[1]["core-metadata"]["sha256"], sha256(METADATA));
    assert_eq!(files[1]["dist-info-metadata"]["sha256"], sha256(METADATA));
}

#[tokio::test]
async fn attributes_are_carried_through_from_an_html_upstream() {
    assert_attributes_carried(setup()).await;
}

#[tokio::test]
async fn attributes_are_carried_through_from_a_json_upstream() {
    let setup = setup_with(json_page(), JSON_V1_TYPE);
    let doc = get(&setup.pypi, "/simple/demo/", Some(PIP_ACCEPT))
        .await
        .json();
    assert_eq!(doc["meta"]["api-version"], "1.1");
    assert_eq!(doc["versions"], json!(["1.0"]));
    assert_eq!(doc["files"][0]["size"], SDIST.len());
    assert_eq!(doc["files"][0]["upload-time"], "2024-01-01T00:00:00Z");
    assert_attributes_carried(setup).await;
}

#[tokio::test]
async fn urls_follow_the_public_url_or_the_request_host() {
    let Setup { index, files, pypi } = setup();
    let forwarded = Request::get("/simple/demo/")
        .header(header::HOST, "internal:1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "pypi.example")
        .header(header::ACCEPT, PIP_ACCEPT)
        .body(())
        .unwrap();
    let doc = send(&pypi, forwarded).await.json();
    let url = doc["files"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://pypi.example/pypi/files/demo/"),
        "{url}"
    );

    let config = PypiConfig {
        public_url: Some("https://m.example/py\"pi".into()),
        ..PypiConfig::default()
    };
    let pypi = mirror(&index, &files, config);
    let html = get(&pypi, "/simple/demo/", None).await;
    assert!(html
        .text()
        .contains("href=\"https://m.example/py&quot;pi/files/demo/"));
    assert_eq!(
        html.header(header::CONTENT_LENGTH),
        html.body.len().to_string()
    );
    let doc = get(&pypi, "/simple/demo/", Some(PIP_ACCEPT)).await.json();
    let url = doc["files"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://m.example/py\"pi/files/demo/"),
        "{url}"
    );
}

#[tokio::test]
async fn other_spellings_redirect_to_the_normalized_page() {
    let Setup { index, pypi, .. } = setup();
    for (path, location) in [
        ("/simple/Demo/", "/simple/demo/"),
        ("/simple/demo", "/simple/demo/"),
        ("/simple/D.E_M--O", "/simple/d-e-m-o/"),
        ("/simple", "/simple/"),
        ("/", "/simple/"),
        ("/files/Demo/demo-1.0.tar.gz", "/files/demo/demo-1.0.tar.gz"),
    ] {
        let answer = get(&pypi, path, None).await;
        assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(
            answer.header(header::LOCATION),
            format!("{MIRROR}{location}")
        );
    }
    assert_eq!(index.total_calls(), 0, "a redirect asks upstream nothing");
}

#[tokio::test]
async fn files_come_from_their_host_once_and_serve_ranges() {
    let Setup { index, files, pypi } = setup();
    let path = "/files/demo/demo-1.0-py3-none-any.whl";

    let first = get(&pypi, path, None).await;
    assert_eq!((first.status, &first.body[..]), (StatusCode::OK, WHEEL));
    assert_eq!(first.header(CACHE_STATUS_HEADER), "MISS");
    let ranged = Request::get(path)
        .header(header::RANGE, "bytes=0-4")
        .body(())
        .unwrap();
    let second = send(&pypi, ranged).await;
    assert_eq!(
        (second.status, &second.body[..]),
        (StatusCode::PARTIAL_CONTENT, &WHEEL[..5])
    );
    assert_eq!(second.header(CACHE_STATUS_HEADER), "HIT");
    assert_eq!(files.calls_to("f/demo-1.0-py3-none-any.whl"), 1);

    let sdist = get(&pypi, "/files/demo/demo-1.0.tar.gz", None).await;
    assert_eq!(&sdist.body[..], SDIST);
    assert_eq!(index.calls_to("/packages/demo-1.0.tar.gz"), 1);
    assert_eq!(index.calls_to("demo/"), 1, "the page was read once");

    let foreign = get(&pypi, "/files/demo/demo-0.9.tar.gz", None).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let dialled: Vec<String> = [&index, &files]
        .iter()
        .flat_map(|s| {
            s.calls
                .lock()
                .unwrap()
                .iter()
                .map(|c| c.0.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(dialled.iter().all(|u| !u.contains("evil")), "{dialled:?}");
}

#[tokio::test]
async fn metadata_files_are_served_and_verified() {
    let Setup { files, pypi, .. } = setup();
    let path = "/files/demo/demo-1.0-py3-none-any.whl.metadata";
    files.put(
        "f/demo-1.0-py3-none-any.whl.metadata",
        "text/plain",
        "Name: forged\n",
    );

    let forged = get(&pypi, path, None).await;
    assert!(forged.status != StatusCode::OK || forged.body != b"Name: forged\n"[..]);

    files.put(
        "f/demo-1.0-py3-none-any.whl.metadata",
        "text/plain",
        METADATA,
    );
    let good = get(&pypi, path, None).await;
    assert_eq!((good.status, &good.body[..]), (StatusCode::OK, METADATA));
    assert_eq!(
        good.header(CACHE_STATUS_HEADER),
        "MISS",
        "the forged one was not kept"
    );
    let no_metadata = get(&pypi, "/files/demo/demo-1.0.tar.gz.metadata", None).await;
    assert_eq!(no_metadata.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn file_not_matching_its_sha256_is_refused_and_not_cached() {
    let Setup { files, pypi, .. } = setup();
    let path = "/files/demo/demo-1.0-py3-none-any.whl";
    files.put(
        "f/demo-1.0-py3-none-any.whl",
        "application/octet-stream",
        "tampered!!!",
    );

    let response = pypi
        .clone()
        .oneshot(Request::get(path).body(mirror_core::body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await;
    assert!(
        status == StatusCode::BAD_GATEWAY || body.is_err(),
        "a wrong body must fail (a 502 or an aborted stream), got {status}"
    );

    files.put(
        "f/demo-1.0-py3-none-any.whl",
        "application/octet-stream",
        WHEEL,
    );
    let good = get(&pypi, path, None).await;
    assert_eq!((good.status, &good.body[..]), (StatusCode::OK, WHEEL));
    assert_eq!(good.header(CACHE_STATUS_HEADER), "MISS");
    assert_eq!(files.calls_to("f/demo-1.0-py3-none-any.whl"), 2);
}

#[tokio::test]
async fn a_file_missing_from_the_cached_page_revalidates_it_at_once() {
    let Setup { index, pypi, .. } = setup();
    get(&pypi, "/simple/demo/", None).await;

    let new = b"new release";
    let page = html_page().replace(
        "</body>",
        &format!(
            "<a href=\"../../packages/demo-2.0.tar.gz#sha256={}\">x</a></body>",
            sha256(new)
        ),
    );
    index.put("demo/", "text/html", page);
    index.put(
        "/packages/demo-2.0.tar.gz",
        "application/octet-stream",
        &new[..],
    );

    let answer = get(&pypi, "/files/demo/demo-2.0.tar.gz", None).await;
    assert_eq!(
        (answer.status, &answer.body[..]),
        (StatusCode::OK, &new[..])
    );
    assert_eq!(index.calls_to("demo/"), 2);
    let absent = get(&pypi, "/files/demo/demo-3.0.tar.gz", None).await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert_eq!(index.calls_to("demo/"), 3, "asked again, found nothing");
}

#[tokio::test]
async fn hostile_paths_are_plain_text_4xx_and_reach_nothing() {
    let Setup { index, files, pypi } = setup();
    for (path, status) in [
        ("/simple/..%2f..%2fetc%2fpasswd/", StatusCode::BAD_REQUEST),
        ("/simple/-x-/", StatusCode::BAD_REQUEST),
        ("/simple/%3Cscript%3E/", StatusCode::BAD_REQUEST),
        (
            "/files/demo/..%2f..%2fetc%2fpasswd",
            StatusCode::BAD_REQUEST,
        ),
        ("/files/demo/../../etc/passwd", StatusCode::BAD_REQUEST),
        ("/files/demo/.metadata", StatusCode::BAD_REQUEST),
        ("/files/demo/a%5cb.whl", StatusCode::BAD_REQUEST),
        ("/files/demo/", StatusCode::BAD_REQUEST),
        ("/nothing/here", StatusCode::NOT_FOUND),
    ] {
        let answer = get(&pypi, path, None).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
        assert_eq!(
            answer.header(header::CONTENT_TYPE),
            "text/plain; charset=utf-8"
        );
        assert_eq!(answer.header(CACHE_STATUS_HEADER), "MISS");
        assert!(
            answer.text().starts_with(status.as_str()),
            "{}",
            answer.text()
        );
    }
    let post = send(&pypi, Request::post("/").body(()).unwrap()).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header(header::ALLOW), "GET, HEAD");
    assert_eq!(index.total_calls() + files.total_calls(), 0);
}

#[tokio::test]
async fn unknown_project_is_a_404() {
    let Setup { pypi, .. } = setup();
    let answer = get(&pypi, "/simple/no-such-project/", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.text(), "404 Not Found\n\nnot found\n");
}

#[tokio::test]
async fn malformed_upstream_page_is_a_502_and_nothing_is_derived() {
    let Setup { index, pypi, .. } = setup();
    for (name, content_type, body) in [
        ("broken", JSON_V1_TYPE, "<html>not json</html>".to_owned()),
        (
            "future",
            JSON_V1_TYPE,
            json!({"meta": {"api-version": "2.0"}, "files": []}).to_string(),
        ),
        ("binary", "text/html", "\u{fffd}".to_owned()),
    ] {
        let body = if name == "binary" {
            Bytes::from_static(b"<a href=\"\xff\xfe\">")
        } else {
            Bytes::from(body)
        };
        index.put(&format!("{name}/"), content_type, body);
        let answer = get(&pypi, &format!("/simple/{name}/"), None).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{name}");
        assert!(
            answer.text().contains("malformed index page"),
            "{}",
            answer.text()
        );
        let record = pypi
            .inner
            .cache
            .metadata()
            .get(&format!("pypi/derived/{name}"))
            .await
            .unwrap();
        assert!(record.is_none(), "{name}: nothing derived is stored");
    }
    // A cached malformed page is asked for again on the next request, not kept for its TTL.
    get(&pypi, "/simple/broken/", None).await;
    assert_eq!(index.calls_to("broken/"), 2);
}

#[tokio::test]
async fn root_listing_in_both_formats() {
    let Setup { index, pypi, .. } = setup();
    let root =
        "<a href=\"/simple/demo/\">demo</a><a href=\"/simple/zope-interface/\">Zope.Interface</a>";
    index.put("", "text/html", root);

    let html = get(&pypi, "/simple/", None).await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html
        .text()
        .contains("<a href=\"zope-interface/\">Zope.Interface</a>"));
    let doc = get(&pypi, "/simple/", Some(PIP_ACCEPT)).await;
    assert_eq!(doc.header(CACHE_STATUS_HEADER), "HIT");
    assert!(doc.header(header::CACHE_CONTROL).ends_with("max-age=3600"));
    assert_eq!(doc.json()["projects"][1]["name"], "Zope.Interface");
    assert_eq!(index.calls_to(""), 1);
}

#[tokio::test]
async fn etag_and_head_answer_without_a_body() {
    let Setup { pypi, .. } = setup();
    let full = get(&pypi, "/simple/demo/", Some(PIP_ACCEPT)).await;
    let etag = full.header(header::ETAG).to_owned();
    let html = get(&pypi, "/simple/demo/", None).await;
    assert_ne!(
        html.header(header::ETAG),
        etag,
        "each format has its own tag"
    );

    let conditional = Request::get("/simple/demo/")
        .header(header::HOST, "mirror.test:8080")
        .header(header::ACCEPT, PIP_ACCEPT)
        .header(header::IF_NONE_MATCH, &etag)
        .body(())
        .unwrap();
    let unchanged = send(&pypi, conditional).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    assert!(unchanged.body.is_empty());

    let head = Request::head("/simple/demo/")
        .header(header::HOST, "mirror.test:8080")
        .header(header::ACCEPT, PIP_ACCEPT)
        .body(())
        .unwrap();
    let head = send(&pypi, head).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header(header::CONTENT_LENGTH),
        full.body.len().to_string()
    );
}

#[tokio::test(start_paused = true)]
async fn pages_are_revalidated_after_the_ttl() {
    let Setup { index, pypi, .. } = setup();
    assert_eq!(
        get(&pypi, "/simple/demo/", None)
            .await
            .header(CACHE_STATUS_HEADER),
        "MISS"
    );

    tokio::time::advance(Duration::from_secs(9 * 60)).await;
    assert_eq!(
        get(&pypi, "/simple/demo/", None)
            .await
            .header(CACHE_STATUS_HEADER),
        "HIT"
    );

    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    let answer = get(&pypi, "/simple/demo/", None).await;
    assert_eq!(answer.header(CACHE_STATUS_HEADER), "REVALIDATED");
    assert!(answer.text().contains("demo-1.0.tar.gz"));
    let conditional = index.calls.lock().unwrap()[1]
        .1
        .contains_key(header::IF_NONE_MATCH);
    assert!(conditional, "a conditional request");

    let no_cache = Request::get("/simple/demo/")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(())
        .unwrap();
    assert_eq!(
        send(&pypi, no_cache).await.header(CACHE_STATUS_HEADER),
        "REVALIDATED"
    );
}
