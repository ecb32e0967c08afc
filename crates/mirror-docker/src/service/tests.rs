//! Drives the service with `oneshot` against in-process upstream registries: a scripted
//! [`Upstream`] for routing, caching and time (on tokio's paused clock), and a real HTTP
//! server on port 0 for the token flow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use mirror_core::digest::sha256_of;
use mirror_core::{
    Digest, MemoryBlobStore, MemoryMetadataStore, UpstreamRequest, UpstreamResponse,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::config::UpstreamConfig;
use crate::media::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

mod private;
mod token;

/// What the scripted registry does instead of answering.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Status(StatusCode),
    Down,
}

/// An upstream registry in memory. It records every request as `METHOD target`.
#[derive(Debug, Default)]
struct FakeRegistry {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (repository, tag or digest) → (media type, body).
    manifests: HashMap<(String, String), (String, Bytes)>,
    blobs: HashMap<String, Bytes>,
    referrers: HashMap<String, Bytes>,
    calls: Vec<String>,
    failure: Option<Failure>,
    hide_digest_on_head: bool,
}

impl FakeRegistry {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Stores a manifest under its digest, and under `tag` if given.
    fn manifest(&self, repo: &str, tag: Option<&str>, media_type: &str, body: &[u8]) -> Digest {
        let digest = sha256_of(body);
        let entry = (media_type.to_owned(), Bytes::copy_from_slice(body));
        let mut state = self.state();
        state
            .manifests
            .insert((repo.into(), digest.to_string()), entry.clone());
        if let Some(tag) = tag {
            state.manifests.insert((repo.into(), tag.into()), entry);
        }
        digest
    }

    fn blob(&self, body: &[u8]) -> Digest {
        let digest = sha256_of(body);
        self.state()
            .blobs
            .insert(digest.to_string(), Bytes::copy_from_slice(body));
        digest
    }

    fn serve_wrong_bytes(&self, digest: &Digest, body: &'static [u8]) {
        self.state()
            .blobs
            .insert(digest.to_string(), Bytes::from_static(body));
    }

    fn fail(&self, failure: Option<Failure>) {
        self.state().failure = failure;
    }

    fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state().calls)
    }

    fn answer(&self, request: &UpstreamRequest) -> (StatusCode, HeaderMap, Bytes) {
        let mut state = self.state();
        state
            .calls
            .push(format!("{} {}", request.method, request.target));
        match state.failure {
            Some(Failure::Status(status)) => return (status, HeaderMap::new(), Bytes::new()),
            Some(Failure::Down) => unreachable!("handled in send"),
            None => {}
        }
        let (path, query) = request
            .target
            .split_once('?')
            .unwrap_or((&request.target, ""));
        let segments: Vec<&str> = path.trim_start_matches("v2/").split('/').collect();
        let mut headers = HeaderMap::new();
        let found = match segments.as_slice() {
            [repo @ .., "manifests", reference] => state
                .manifests
                .get(&(repo.join("/"), (*reference).to_owned()))
                .map(|(media_type, body)| {
                    set(&mut headers, header::CONTENT_TYPE, media_type);
                    if !(state.hide_digest_on_head && request.method == Method::HEAD) {
                        set(
                            &mut headers,
                            "docker-content-digest",
                            &sha256_of(body).to_string(),
                        );
                    }
                    body.clone()
                }),
            [_, .., "blobs", digest] => state.blobs.get(*digest).cloned(),
            [repo @ .., "tags", "list"] => tag_page(&state, &repo.join("/"), query, &mut headers),
            [repo @ .., "referrers", digest] => state
                .referrers
                .get(&format!("{}@{digest}", repo.join("/")))
                .cloned(),
            _ => None,
        };
        match found {
            Some(body) => {
                set(
                    &mut headers,
                    header::CONTENT_LENGTH,
                    &body.len().to_string(),
                );
                let body = if request.method == Method::HEAD {
                    Bytes::new()
                } else {
                    body
                };
                (StatusCode::OK, headers, body)
            }
            None => (StatusCode::NOT_FOUND, HeaderMap::new(), Bytes::new()),
        }
    }
}

/// Tags of a repository, two per page with a `Link` to the next, as registries paginate.
fn tag_page(state: &State, repo: &str, query: &str, headers: &mut HeaderMap) -> Option<Bytes> {
    let mut tags: Vec<&str> = state
        .manifests
        .keys()
        .filter(|(r, reference)| r == repo && !reference.contains(':'))
        .map(|(_, tag)| tag.as_str())
        .collect();
    if tags.is_empty() {
        return None;
    }
    tags.sort_unstable();
    let last = query.strip_prefix("last=").unwrap_or("");
    let rest: Vec<&str> = tags.into_iter().filter(|t| *t > last).collect();
    let page: Vec<&str> = rest.iter().take(2).copied().collect();
    if rest.len() > 2 {
        let link = format!("</v2/{repo}/tags/list?last={}>; rel=\"next\"", page[1]);
        set(headers, header::LINK, &link);
    }
    Some(Bytes::from(json!({"name": repo, "tags": page}).to_string()))
}

#[async_trait]
impl Upstream for FakeRegistry {
    async fn send(&self, request: UpstreamRequest) -> mirror_core::Result<UpstreamResponse> {
        let failure = self.state().failure;
        if let Some(Failure::Down) = failure {
            self.state()
                .calls
                .push(format!("{} {}", request.method, request.target));
            return Err(mirror_core::Error::upstream("cannot connect", "refused"));
        }
        let (status, headers, body) = self.answer(&request);
        Ok(UpstreamResponse {
            status,
            headers,
            body: futures_util::stream::iter([Ok(body)]).boxed(),
        })
    }

    fn name(&self) -> &str {
        "fake registry"
    }
}

struct Setup {
    hub: Arc<FakeRegistry>,
    other: Arc<FakeRegistry>,
    mirror: DockerMirror,
    cache: Cache,
}

const TTL: Duration = Duration::from_secs(300);

fn setup() -> Setup {
    let (hub, other) = (FakeRegistry::new(), FakeRegistry::new());
    let cache = Cache::builder(
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    )
    .build();
    let mut config = DockerConfig {
        tag_ttl: TTL,
        ..DockerConfig::default()
    };
    config.upstreams.insert(
        "upstream.test".into(),
        UpstreamConfig::new("http://127.0.0.1:9"),
    );
    let upstreams = BTreeMap::from([
        (
            "docker.io".to_owned(),
            Arc::clone(&hub) as Arc<dyn Upstream>,
        ),
        (
            "upstream.test".to_owned(),
            Arc::clone(&other) as Arc<dyn Upstream>,
        ),
    ]);
    let mirror = DockerMirror::with_upstreams(cache.clone(), config, upstreams).unwrap();
    Setup {
        hub,
        other,
        mirror,
        cache,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    /// The body, or `Err` when it was aborted mid-way.
    body: Result<Bytes, String>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn bytes(&self) -> Bytes {
        self.body.clone().unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes()).unwrap()
    }

    fn error_code(&self) -> String {
        let doc = self.json();
        let error = &doc["errors"][0];
        assert!(error["message"].is_string(), "{doc}");
        assert!(error.get("detail").is_some(), "{doc}");
        error["code"].as_str().unwrap().to_owned()
    }
}

async fn call(mirror: &DockerMirror, request: http::request::Builder) -> Reply {
    let response = mirror
        .clone()
        .oneshot(request.body(body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    assert_eq!(parts.headers[API_VERSION_HEADER], "registry/2.0");
    assert!(parts.headers.contains_key(CACHE_STATUS_HEADER));
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get(mirror: &DockerMirror, path: &str) -> Reply {
    call(mirror, Request::get(path)).await
}

async fn head(mirror: &DockerMirror, path: &str) -> Reply {
    call(mirror, Request::head(path)).await
}

/// An OCI image manifest naming one layer.
fn image_manifest(layer: &Digest, size: usize) -> Vec<u8> {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": layer.to_string(), "size": size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer.to_string(), "size": size}],
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn base_endpoint_says_registry_v2() {
    let Setup { mirror, .. } = setup();
    for path in ["/v2/", "/v2"] {
        let reply = get(&mirror, path).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json(), json!({}));
        assert_eq!(reply.header("content-type"), "application/json");
    }
}

#[tokio::test]
async fn upstream_is_chosen_by_ns_prefix_or_default() {
    let Setup {
        hub, other, mirror, ..
    } = setup();
    let body = image_manifest(&sha256_of(b"l"), 1);
    hub.manifest("library/nginx", Some("latest"), OCI_MANIFEST, &body);
    let digest = other.manifest("team/app", Some("v1"), OCI_MANIFEST, &body);

    let reply = get(&mirror, "/v2/nginx/manifests/latest").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        hub.take_calls(),
        [
            "HEAD v2/library/nginx/manifests/latest".to_owned(),
            format!("GET v2/library/nginx/manifests/{digest}"),
        ]
    );

    let reply = get(&mirror, "/v2/upstream.test/team/app/manifests/v1").await;
    assert_eq!(
        (reply.status, reply.bytes()),
        (StatusCode::OK, Bytes::from(body.clone()))
    );
    assert_eq!(other.take_calls()[0], "HEAD v2/team/app/manifests/v1");

    other.manifest("team/app", Some("v2"), OCI_MANIFEST, &body);
    let reply = get(&mirror, "/v2/team/app/manifests/v2?ns=upstream.test").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(other.take_calls(), ["HEAD v2/team/app/manifests/v2"]);

    let reply = get(&mirror, "/v2/library/nginx/manifests/latest?ns=docker.io").await;
    assert_eq!(
        reply.header(CACHE_STATUS_HEADER),
        "HIT",
        "same upstream, same tag"
    );

    for path in [
        "/v2/quay.io/org/app/manifests/v1",
        "/v2/team/app/manifests/v1?ns=quay.io",
    ] {
        let reply = get(&mirror, path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), "NAME_UNKNOWN");
    }
    assert!(
        hub.calls().is_empty() && other.calls().is_empty(),
        "never dialled"
    );
}

#[tokio::test]
async fn errors_are_oci_error_documents() {
    let Setup { hub, mirror, .. } = setup();
    let sha1 = "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709";
    let unknown = sha256_of(b"nothing");
    let cases = [
        (
            Request::get("/v2/UPPER/manifests/latest"),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Request::get("/v2/a/../b/manifests/x"),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Request::get("/v2/a/blobs/sha256:abc"),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Request::get(format!("/v2/a/blobs/{sha1}")),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Request::get("/v2/a/manifests/nope"),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            Request::get(format!("/v2/a/manifests/{unknown}")),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            Request::get(format!("/v2/a/blobs/{unknown}")),
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        ),
        (
            Request::get("/v2/a/tags/list"),
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
        ),
        (
            Request::get("/v2/a/tags/list?n=x"),
            StatusCode::BAD_REQUEST,
            "PAGINATION_NUMBER_INVALID",
        ),
        (
            Request::put("/v2/a/manifests/v1"),
            StatusCode::FORBIDDEN,
            "DENIED",
        ),
        (
            Request::post("/v2/a/blobs/uploads/"),
            StatusCode::FORBIDDEN,
            "DENIED",
        ),
        (
            Request::delete("/v2/a/manifests/v1"),
            StatusCode::FORBIDDEN,
            "DENIED",
        ),
        (
            Request::post("/v2/_catalog"),
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            Request::get("/v2/a/nothing/here"),
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
        ),
    ];
    for (request, status, code) in cases {
        let uri = request.uri_ref().map(ToString::to_string);
        let reply = call(&mirror, request).await;
        assert_eq!(reply.status, status, "{uri:?}");
        assert_eq!(reply.header("content-type"), "application/json");
        assert_eq!(reply.error_code(), code);
        assert_eq!(reply.header(CACHE_STATUS_HEADER), "MISS");
    }
    assert!(
        hub.calls()
            .iter()
            .all(|c| !c.contains("..") && !c.contains("sha1")),
        "invalid input never reaches upstream: {:?}",
        hub.calls()
    );
}

#[tokio::test]
async fn manifests_carry_type_digest_and_length() {
    let Setup { hub, mirror, .. } = setup();
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[]}"#;
    let digest = hub.manifest("library/app", Some("1.0"), DOCKER_MANIFEST, body);

    let reply = head(&mirror, "/v2/app/manifests/1.0").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), DOCKER_MANIFEST);
    assert_eq!(reply.header("docker-content-digest"), digest.to_string());
    assert_eq!(reply.header("content-length"), body.len().to_string());
    assert!(reply.bytes().is_empty());
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "MISS");

    let by_digest = format!("/v2/app/manifests/{digest}");
    let reply = get(&mirror, &by_digest).await;
    assert_eq!(reply.bytes(), Bytes::from_static(body));
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "HIT");
    assert_eq!(reply.header("docker-content-digest"), digest.to_string());
    let upstream_gets = hub.calls().iter().filter(|c| c.starts_with("GET")).count();
    assert_eq!(upstream_gets, 1, "{:?}", hub.calls());

    let accept_oci_only =
        Request::get("/v2/app/manifests/1.0").header(header::ACCEPT, OCI_MANIFEST);
    let reply = call(&mirror, accept_oci_only).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn index_is_kept_whole_and_platforms_fetched_on_demand() {
    let Setup { hub, mirror, .. } = setup();
    let layer = hub.blob(b"layer");
    let amd64 = hub.manifest(
        "library/multi",
        None,
        OCI_MANIFEST,
        &image_manifest(&layer, 5),
    );
    let arm64_body = [image_manifest(&layer, 5), b" ".to_vec()].concat();
    let arm64 = hub.manifest("library/multi", None, OCI_MANIFEST, &arm64_body);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd64.to_string(), "size": 1,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": arm64.to_string(), "size": 1,
         "platform": {"architecture": "arm64", "os": "linux"}},
    ]})
    .to_string();
    hub.manifest("library/multi", Some("latest"), OCI_INDEX, index.as_bytes());

    let reply = get(&mirror, "/v2/multi/manifests/latest").await;
    assert_eq!(reply.bytes(), Bytes::from(index));
    assert_eq!(reply.header("content-type"), OCI_INDEX);
    assert_eq!(
        hub.take_calls().len(),
        2,
        "HEAD of the tag, GET of the index"
    );

    let reply = get(&mirror, &format!("/v2/multi/manifests/{arm64}")).await;
    assert_eq!(reply.bytes(), Bytes::from(arm64_body));
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "MISS");
    assert_eq!(
        hub.take_calls(),
        [format!("GET v2/library/multi/manifests/{arm64}")]
    );
}

#[tokio::test]
async fn blobs_are_fetched_once_and_served_with_ranges() {
    let Setup { hub, mirror, .. } = setup();
    let digest = hub.blob(b"0123456789");
    let path = format!("/v2/library/app/blobs/{digest}");

    let reply = head(&mirror, &path).await;
    assert_eq!(
        (reply.status, reply.header("content-length")),
        (StatusCode::OK, "10")
    );
    assert_eq!(
        hub.take_calls(),
        [format!("HEAD v2/library/app/blobs/{digest}")]
    );

    let reply = get(&mirror, &path).await;
    assert_eq!(reply.bytes(), Bytes::from_static(b"0123456789"));
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "MISS");
    assert_eq!(reply.header("docker-content-digest"), digest.to_string());

    let reply = call(
        &mirror,
        Request::get(&path).header(header::RANGE, "bytes=2-4"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.bytes(), Bytes::from_static(b"234"));
    assert_eq!(reply.header("content-range"), "bytes 2-4/10");
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "HIT");

    let reply = call(
        &mirror,
        Request::get(&path).header(header::RANGE, "bytes=20-"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(reply.error_code(), "RANGE_INVALID");
    assert_eq!(hub.take_calls().len(), 1, "one upstream GET in all");
}

#[tokio::test]
async fn a_body_not_matching_its_digest_is_refused_and_not_cached() {
    let Setup { hub, mirror, .. } = setup();
    let digest = hub.blob(b"the real layer");
    hub.serve_wrong_bytes(&digest, b"tampered layer");
    let path = format!("/v2/library/app/blobs/{digest}");

    let reply = get(&mirror, &path).await;
    assert!(
        reply.status == StatusCode::BAD_GATEWAY || reply.body.is_err(),
        "a wrong body must fail (a 502 or an aborted stream), got {} {:?}",
        reply.status,
        reply.body
    );

    hub.blob(b"the real layer");
    let reply = get(&mirror, &path).await;
    assert_eq!(reply.bytes(), Bytes::from_static(b"the real layer"));
    assert_eq!(
        reply.header(CACHE_STATUS_HEADER),
        "MISS",
        "nothing was cached"
    );

    let body = image_manifest(&digest, 1);
    let manifest = hub.manifest("library/app", None, OCI_MANIFEST, &body);
    hub.state().manifests.insert(
        ("library/app".into(), manifest.to_string()),
        (
            OCI_MANIFEST.into(),
            Bytes::from_static(b"{\"schemaVersion\":2}"),
        ),
    );
    let reply = get(&mirror, &format!("/v2/app/manifests/{manifest}")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "UNKNOWN");
}

#[tokio::test(start_paused = true)]
async fn tags_are_revalidated_with_head_after_the_ttl() {
    let Setup { hub, mirror, .. } = setup();
    let one = hub.manifest(
        "library/app",
        Some("stable"),
        OCI_MANIFEST,
        &image_manifest(&sha256_of(b"1"), 1),
    );
    let path = "/v2/app/manifests/stable";
    assert_eq!(get(&mirror, path).await.header(CACHE_STATUS_HEADER), "MISS");
    hub.take_calls();

    tokio::time::advance(TTL / 2).await;
    let reply = get(&mirror, path).await;
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "HIT");
    assert!(hub.take_calls().is_empty());

    tokio::time::advance(TTL).await;
    let reply = get(&mirror, path).await;
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "REVALIDATED");
    assert_eq!(reply.header("docker-content-digest"), one.to_string());
    assert_eq!(
        hub.take_calls(),
        ["HEAD v2/library/app/manifests/stable"],
        "no GET"
    );

    let two_body = image_manifest(&sha256_of(b"2"), 2);
    let two = hub.manifest("library/app", Some("stable"), OCI_MANIFEST, &two_body);
    assert_eq!(
        get(&mirror, path).await.header("docker-content-digest"),
        one.to_string()
    );
    tokio::time::advance(TTL + Duration::from_secs(1)).await;
    let reply = get(&mirror, path).await;
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "MISS");
    assert_eq!(reply.header("docker-content-digest"), two.to_string());
    assert_eq!(reply.bytes(), Bytes::from(two_body));
    assert_eq!(
        hub.take_calls(),
        [
            "HEAD v2/library/app/manifests/stable".to_owned(),
            format!("GET v2/library/app/manifests/{two}"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn stale_tags_are_served_when_upstream_fails_or_rate_limits() {
    let Setup { hub, mirror, .. } = setup();
    let body = image_manifest(&sha256_of(b"1"), 1);
    let digest = hub.manifest("library/app", Some("v1"), OCI_MANIFEST, &body);
    let path = "/v2/app/manifests/v1";
    get(&mirror, path).await;

    hub.fail(Some(Failure::Status(StatusCode::TOO_MANY_REQUESTS)));
    let reply = get(&mirror, "/v2/app/manifests/never-cached").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.error_code(), "TOOMANYREQUESTS");

    tokio::time::advance(TTL * 2).await;
    hub.take_calls();
    let reply = get(&mirror, path).await;
    assert_eq!(
        (reply.status, reply.header(CACHE_STATUS_HEADER)),
        (StatusCode::OK, "STALE")
    );
    assert_eq!(reply.header("docker-content-digest"), digest.to_string());
    assert_eq!(reply.bytes(), Bytes::from(body.clone()));
    assert_eq!(hub.take_calls().len(), 1);

    tokio::time::advance(Duration::from_secs(10)).await;
    let reply = get(&mirror, path).await;
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "STALE");
    assert!(
        hub.take_calls().is_empty(),
        "no upstream call within the grace period"
    );

    hub.fail(Some(Failure::Down));
    tokio::time::advance(Duration::from_secs(60)).await;
    let reply = get(&mirror, path).await;
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "STALE");
    assert_eq!(hub.take_calls().len(), 1);

    hub.fail(Some(Failure::Status(StatusCode::SERVICE_UNAVAILABLE)));
    let blob = format!("/v2/app/blobs/{}", sha256_of(b"never fetched"));
    assert_eq!(get(&mirror, &blob).await.status, StatusCode::BAD_GATEWAY);

    hub.fail(None);
    tokio::time::advance(Duration::from_secs(60)).await;
    let reply = get(&mirror, path).await;
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "REVALIDATED");
}

#[tokio::test(start_paused = true)]
async fn tag_answers_are_counted_once_in_the_metrics() {
    let Setup {
        hub, mirror, cache, ..
    } = setup();
    hub.manifest(
        "library/app",
        Some("v1"),
        OCI_MANIFEST,
        &image_manifest(&sha256_of(b"1"), 1),
    );
    let path = "/v2/app/manifests/v1";
    let mut expected = cache.metrics().snapshot();
    let mut check = |status: &str, reply: Reply| {
        assert_eq!(reply.header(CACHE_STATUS_HEADER), status);
        match status {
            "MISS" => expected.misses += 1,
            "HIT" => expected.hits += 1,
            "REVALIDATED" => expected.revalidated += 1,
            _ => expected.stale += 1,
        }
        let now = cache.metrics().snapshot();
        let counted = (now.hits, now.misses, now.revalidated, now.stale);
        let want = (
            expected.hits,
            expected.misses,
            expected.revalidated,
            expected.stale,
        );
        assert_eq!(counted, want, "after a {status}");
    };

    check("MISS", get(&mirror, path).await);
    check("HIT", get(&mirror, path).await);
    tokio::time::advance(TTL * 2).await;
    check("REVALIDATED", get(&mirror, path).await);
    hub.fail(Some(Failure::Down));
    tokio::time::advance(TTL * 2).await;
    check("STALE", get(&mirror, path).await);
    check("STALE", get(&mirror, path).await);
    hub.fail(None);
    check("MISS", get(&mirror, "/v2/app/tags/list").await);
    check("HIT", get(&mirror, "/v2/app/tags/list").await);
}

#[tokio::test]
async fn a_registry_without_digest_on_head_is_read_by_tag() {
    let Setup { hub, mirror, .. } = setup();
    hub.state().hide_digest_on_head = true;
    let body = image_manifest(&sha256_of(b"1"), 1);
    let digest = hub.manifest("library/app", Some("v1"), OCI_MANIFEST, &body);

    let reply = get(&mirror, "/v2/app/manifests/v1").await;
    assert_eq!(reply.bytes(), Bytes::from(body));
    assert_eq!(reply.header("docker-content-digest"), digest.to_string());
    assert_eq!(
        hub.take_calls(),
        [
            "HEAD v2/library/app/manifests/v1",
            "GET v2/library/app/manifests/v1"
        ]
    );
    assert_eq!(
        get(&mirror, "/v2/app/manifests/v1")
            .await
            .header(CACHE_STATUS_HEADER),
        "HIT"
    );
}

#[tokio::test]
async fn tag_lists_follow_upstream_pages_and_paginate_here() {
    let Setup { other, mirror, .. } = setup();
    for tag in ["e", "a", "d", "b", "c"] {
        other.manifest("team/app", Some(tag), OCI_MANIFEST, tag.as_bytes());
    }
    let reply = get(&mirror, "/v2/upstream.test/team/app/tags/list").await;
    assert_eq!(
        reply.json(),
        json!({"name": "upstream.test/team/app", "tags": ["a", "b", "c", "d", "e"]})
    );
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "MISS");
    assert_eq!(other.take_calls().len(), 3, "three upstream pages");

    let reply = get(&mirror, "/v2/upstream.test/team/app/tags/list?n=2").await;
    assert_eq!(reply.json()["tags"], json!(["a", "b"]));
    assert_eq!(
        reply.header("link"),
        "</v2/upstream.test/team/app/tags/list?n=2&last=b>; rel=\"next\""
    );
    assert_eq!(reply.header(CACHE_STATUS_HEADER), "HIT");

    let reply = get(
        &mirror,
        "/v2/team/app/tags/list?n=2&last=d&ns=upstream.test",
    )
    .await;
    assert_eq!(reply.json(), json!({"name": "team/app", "tags": ["e"]}));
    assert_eq!(reply.header("link"), "");
    assert!(other.take_calls().is_empty());
}

#[tokio::test]
async fn referrers_are_proxied_or_an_empty_index() {
    let Setup { hub, mirror, .. } = setup();
    let subject = sha256_of(b"subject");
    let reply = get(&mirror, &format!("/v2/app/referrers/{subject}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), OCI_INDEX);
    assert_eq!(
        reply.json(),
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    );

    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256_of(b"a").to_string(), "size": 1, "artifactType": "application/sbom"},
        {"mediaType": OCI_MANIFEST, "digest": sha256_of(b"b").to_string(), "size": 1, "artifactType": "application/sig"},
    ]});
    hub.state().referrers.insert(
        format!("library/other@{subject}"),
        Bytes::from(index.to_string()),
    );
    let path = format!("/v2/other/referrers/{subject}?artifactType=application/sig");
    let reply = get(&mirror, &path).await;
    assert_eq!(reply.header("oci-filters-applied"), "artifactType");
    let manifests = reply.json()["manifests"].clone();
    assert_eq!(manifests.as_array().map(Vec::len), Some(1));
    assert_eq!(manifests[0]["artifactType"], "application/sig");
}
