//! Drives the service with `oneshot` over in-memory stores and an in-process upstream
//! repository.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use futures_util::StreamExt as _;
use http::{header, StatusCode};
use http_body_util::BodyExt as _;
use mirror_core::auth::{AccessPolicy, TokenAccess};
use mirror_core::{MemoryBlobStore, MemoryMetadataStore, UpstreamRequest, UpstreamResponse};
use sha1::Digest as _;
use tower::ServiceExt as _;

use super::*;

const JAR: &str = "org/acme/lib/1.0/lib-1.0.jar";
const JAR_BYTES: &[u8] = b"PK\x03\x04 a jar";

/// An upstream repository serving files from a map and counting requests.
#[derive(Debug, Default)]
struct Site {
    files: Mutex<HashMap<String, Bytes>>,
    calls: Mutex<Vec<String>>,
    down: std::sync::atomic::AtomicBool,
}

impl Site {
    fn put(&self, path: &str, body: impl Into<Bytes>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.into());
    }

    /// Serves a file and its `.sha1`.
    fn put_with_sha1(&self, path: &str, body: &[u8]) {
        self.put(path, body.to_vec());
        self.put(&format!("{path}.sha1"), sha1_hex(body));
    }

    fn calls_to(&self, path: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == path)
            .count()
    }
}

#[async_trait]
impl Upstream for Site {
    async fn send(&self, request: UpstreamRequest) -> mirror_core::Result<UpstreamResponse> {
        self.calls.lock().unwrap().push(request.target.clone());
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(mirror_core::Error::upstream("down", "connection refused"));
        }
        let file = self.files.lock().unwrap().get(&request.target).cloned();
        let mut headers = HeaderMap::new();
        let (status, body) = match file {
            Some(body) => {
                headers.insert(header::CONTENT_LENGTH, body.len().into());
                (StatusCode::OK, body)
            }
            None => (StatusCode::NOT_FOUND, Bytes::new()),
        };
        Ok(UpstreamResponse {
            status,
            headers,
            body: futures_util::stream::iter([Ok(body)]).boxed(),
        })
    }

    fn name(&self) -> &str {
        "test repository"
    }
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(bytes))
}

struct Fixture {
    service: MavenMirror,
    site: Arc<Site>,
    auth: Auth,
}

async fn fixture() -> Fixture {
    let metadata = Arc::new(MemoryMetadataStore::new());
    let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), metadata.clone()).build();
    let auth = Auth::new(metadata, AccessPolicy::default());
    auth.add_user("alice", Some("secret"), false).await.unwrap();
    let site = Arc::new(Site::default());
    let upstream: Arc<dyn Upstream> = site.clone();
    let upstreams = BTreeMap::from([("central".to_owned(), upstream)]);
    let service = MavenMirror::with_upstreams(cache, MavenConfig::default(), upstreams)
        .unwrap()
        .with_auth(auth.clone());
    Fixture {
        service,
        site,
        auth,
    }
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

impl Fixture {
    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let request = request
            .body(http_body_util::Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = self.service.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, bytes)
    }

    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, Bytes) {
        self.send(Method::GET, path, None, b"").await
    }

    async fn put(&self, path: &str, body: &[u8]) -> StatusCode {
        let auth = basic("alice", "secret");
        self.send(Method::PUT, path, Some(&auth), body).await.0
    }
}

#[tokio::test]
async fn proxied_artifacts_are_verified_cached_and_served_with_checksums() {
    let f = fixture().await;
    f.site.put_with_sha1(JAR, JAR_BYTES);

    let (status, headers, body) = f.get(&format!("/central/{JAR}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, JAR_BYTES);
    assert_eq!(headers[CACHE_STATUS_HEADER], "MISS");
    assert_eq!(headers[header::CONTENT_TYPE], "application/java-archive");

    let (status, headers, body) = f.get(&format!("/public/{JAR}")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, JAR_BYTES));
    assert_eq!(headers[CACHE_STATUS_HEADER], "HIT");
    assert_eq!(f.site.calls_to(JAR), 1, "an artifact is fetched once");

    let (status, _, sha1) = f.get(&format!("/public/{JAR}.sha1")).await;
    assert_eq!(
        (status, sha1),
        (StatusCode::OK, Bytes::from(sha1_hex(JAR_BYTES)))
    );
}

#[tokio::test]
async fn an_artifact_not_matching_its_sha1_is_refused_and_not_cached() {
    let f = fixture().await;
    f.site.put(JAR, b"tampered".to_vec());
    f.site.put(&format!("{JAR}.sha1"), sha1_hex(JAR_BYTES));

    let (status, _, body) = f.get(&format!("/central/{JAR}")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body:?}");
    assert!(
        String::from_utf8_lossy(&body).contains("digest mismatch"),
        "{body:?}"
    );

    f.site.put(JAR, JAR_BYTES.to_vec());
    let (status, _, body) = f.get(&format!("/central/{JAR}")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, JAR_BYTES));
}

#[tokio::test]
async fn an_artifact_without_upstream_sha1_is_stored_as_it_came() {
    let f = fixture().await;
    f.site.put(JAR, JAR_BYTES.to_vec());
    let (status, _, body) = f.get(&format!("/central/{JAR}")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, JAR_BYTES));
    let (status, _, _) = f.get(&format!("/central/{JAR}.sha1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = f.get("/central/org/acme/missing/1.0/missing-1.0.jar").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unsafe_paths_and_unknown_repositories_are_refused() {
    let f = fixture().await;
    for path in [
        "/central/org/../x.jar",
        "/central/org/%2e%2e/x.jar",
        "/central/a%2fb/x.jar",
    ] {
        let (status, _, body) = f.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            String::from_utf8_lossy(&body).contains("invalid path"),
            "{body:?}"
        );
    }
    let (status, _, body) = f.get("/nowhere/x/y/1/y-1.jar").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("nowhere"));
    assert_eq!(f.site.calls.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn deploys_need_a_credential_that_may_write() {
    let f = fixture().await;
    let path = format!("/releases/{JAR}");
    let (status, headers, _) = f.send(Method::PUT, &path, None, JAR_BYTES).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));

    let wrong = basic("alice", "wrong");
    let (status, _, _) = f.send(Method::PUT, &path, Some(&wrong), JAR_BYTES).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (_, token) = f
        .auth
        .create_token("alice", TokenAccess::ReadOnly, None, None)
        .await
        .unwrap();
    let read_only = basic("alice", &token);
    let (status, _, _) = f
        .send(Method::PUT, &path, Some(&read_only), JAR_BYTES)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _, _) = f
        .send(
            Method::PUT,
            &format!("/central/{JAR}"),
            Some(&basic("alice", "secret")),
            JAR_BYTES,
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        f.get(&path).await.0,
        StatusCode::NOT_FOUND,
        "nothing was stored"
    );
}

#[tokio::test]
async fn releases_are_immutable_and_checksums_are_checked() {
    let f = fixture().await;
    let path = format!("/releases/{JAR}");
    assert_eq!(f.put(&path, JAR_BYTES).await, StatusCode::CREATED);
    assert_eq!(
        f.put(&format!("{path}.sha1"), sha1_hex(JAR_BYTES).as_bytes())
            .await,
        StatusCode::CREATED
    );
    assert_eq!(
        f.put(&format!("{path}.md5"), b"0123").await,
        StatusCode::BAD_REQUEST
    );
    let wrong = sha1_hex(b"other");
    assert_eq!(
        f.put(&format!("{path}.sha1"), wrong.as_bytes()).await,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        f.put(&path, JAR_BYTES).await,
        StatusCode::CREATED,
        "same bytes again"
    );
    assert_eq!(f.put(&path, b"other bytes").await, StatusCode::CONFLICT);

    let (status, _, body) = f.get(&path).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, JAR_BYTES));
    let (_, _, sha1) = f.get(&format!("{path}.sha1")).await;
    assert_eq!(sha1, sha1_hex(JAR_BYTES));
    let (status, _, body) = f.get(&format!("/public/{JAR}")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, JAR_BYTES),
        "hosted first in the group"
    );
    assert_eq!(f.site.calls_to(JAR), 0);
}

#[tokio::test]
async fn version_policies_keep_snapshots_and_releases_apart() {
    let f = fixture().await;
    let snapshot = "org/acme/lib/1.1-SNAPSHOT/lib-1.1-20250101.000000-1.jar";
    assert_eq!(
        f.put(&format!("/releases/{snapshot}"), b"s").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        f.put(&format!("/snapshots/{JAR}"), b"r").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        f.put(&format!("/snapshots/{snapshot}"), b"one").await,
        StatusCode::CREATED
    );
    assert_eq!(
        f.put(&format!("/snapshots/{snapshot}"), b"two").await,
        StatusCode::CREATED
    );
    let (_, _, body) = f.get(&format!("/public/{snapshot}")).await;
    assert_eq!(body, "two");
}

fn listing(versions: &[&str], updated: &str) -> String {
    let versions: String = versions
        .iter()
        .map(|v| format!("<version>{v}</version>"))
        .collect();
    let latest = versions.rsplit("<version>").next().unwrap_or_default();
    format!(
        "<?xml version=\"1.0\"?><metadata><groupId>org.acme</groupId><artifactId>lib</artifactId>\
         <versioning><latest>{latest}</latest><versions>{versions}</versions>\
         <lastUpdated>{updated}</lastUpdated></versioning></metadata>"
    )
    .replace("</version></latest>", "</latest>")
}

#[tokio::test]
async fn a_group_merges_the_listings_of_its_members() {
    let f = fixture().await;
    let path = "org/acme/lib/maven-metadata.xml";
    f.site.put(path, listing(&["1.0", "1.1"], "20240101000000"));
    let hosted = listing(&["2.0"], "20250101000000");
    assert_eq!(
        f.put(&format!("/releases/{path}"), hosted.as_bytes()).await,
        StatusCode::CREATED
    );

    let (status, _, body) = f.get(&format!("/public/{path}")).await;
    assert_eq!(status, StatusCode::OK);
    let merged = crate::metadata::parse(&body).unwrap();
    assert_eq!(merged.versions, ["1.0", "1.1", "2.0"]);
    assert_eq!(merged.latest.as_deref(), Some("2.0"));
    assert_eq!(merged.last_updated.as_deref(), Some("20250101000000"));
    let (_, _, sha1) = f.get(&format!("/public/{path}.sha1")).await;
    assert_eq!(
        sha1,
        sha1_hex(&body),
        "the checksum is the served listing's"
    );

    // A new deploy is merged at once, although the merge and the hosted record were kept.
    let (_, _, again) = f.get(&format!("/public/{path}")).await;
    assert_eq!(again, body, "the same members merge to the same bytes");
    let redeployed = listing(&["2.0", "2.1"], "20250202000000");
    assert_eq!(
        f.put(&format!("/releases/{path}"), redeployed.as_bytes())
            .await,
        StatusCode::CREATED
    );
    let (_, _, body) = f.get(&format!("/public/{path}")).await;
    let merged = crate::metadata::parse(&body).unwrap();
    assert_eq!(merged.versions, ["1.0", "1.1", "2.0", "2.1"]);
    let (_, _, sha1) = f.get(&format!("/public/{path}.sha1")).await;
    assert_eq!(sha1, sha1_hex(&body));

    let bad = format!("/releases/{path}");
    assert_eq!(
        f.put(&bad, b"<metadata><oops></metadata>").await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_hostile_upstream_listing_is_a_clear_error() {
    let f = fixture().await;
    let path = "org/evil/lib/maven-metadata.xml";
    let bomb =
        "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;\">]>\
                <metadata><groupId>&b;</groupId></metadata>";
    f.site.put(path, bomb);
    let (status, _, body) = f.get(&format!("/public/{path}")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("central has a malformed maven-metadata.xml"),
        "{text}"
    );
    assert!(text.contains("DOCTYPE"), "{text}");
}

#[tokio::test]
async fn a_cut_off_deploy_stores_nothing() {
    let f = fixture().await;
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"first half"))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "cut",
        )),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    let request = Request::put(format!("/releases/{JAR}"))
        .header(header::AUTHORIZATION, basic("alice", "secret"))
        .body(body)
        .unwrap();
    let response = f.service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        f.get(&format!("/releases/{JAR}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.put(&format!("/releases/{JAR}"), JAR_BYTES).await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn head_and_ranges_describe_the_same_file() {
    let f = fixture().await;
    f.site.put_with_sha1(JAR, JAR_BYTES);
    let path = format!("/central/{JAR}");
    let (status, headers, body) = f.send(Method::HEAD, &path, None, b"").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(headers[header::CONTENT_LENGTH], JAR_BYTES.len().to_string());

    let request = Request::get(&path)
        .header(header::RANGE, "bytes=0-3")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = f.service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], &JAR_BYTES[..4]);
}

#[tokio::test]
async fn listings_are_served_stale_when_upstream_fails_and_misses_are_remembered() {
    let metadata = Arc::new(MemoryMetadataStore::new());
    let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), metadata).build();
    let site = Arc::new(Site::default());
    let upstreams = BTreeMap::from([("central".to_owned(), site.clone() as Arc<dyn Upstream>)]);
    let config = MavenConfig {
        metadata_ttl: std::time::Duration::ZERO,
        ..MavenConfig::default()
    };
    let f = Fixture {
        service: MavenMirror::with_upstreams(cache, config, upstreams).unwrap(),
        auth: Auth::new(
            Arc::new(MemoryMetadataStore::new()),
            AccessPolicy::default(),
        ),
        site,
    };
    let path = "org/acme/lib/maven-metadata.xml";
    f.site.put(path, listing(&["1.0"], "20240101000000"));
    assert_eq!(f.get(&format!("/central/{path}")).await.0, StatusCode::OK);

    f.site.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, headers, body) = f.get(&format!("/public/{path}")).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(headers[CACHE_STATUS_HEADER], "STALE");
    let (status, _, _) = f.get("/central/org/acme/other/maven-metadata.xml").await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "nothing cached to fall back on"
    );

    f.site
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let missing = "org/acme/none/1.0/none-1.0.pom";
    assert_eq!(
        f.get(&format!("/central/{missing}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.get(&format!("/central/{missing}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(f.site.calls_to(missing), 1, "the 404 was remembered");
}

#[tokio::test]
async fn access_rules_apply_to_members_read_through_a_group() {
    let metadata = Arc::new(MemoryMetadataStore::new());
    let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), metadata.clone()).build();
    let policy: AccessPolicy = serde_json::from_value(serde_json::json!({
        "rules": [{"ecosystem": "maven", "pattern": "releases/com/secret/*",
                   "read": ["@authenticated"], "write": ["alice"]}]
    }))
    .unwrap();
    let auth = Auth::new(metadata, policy);
    auth.add_user("alice", Some("secret"), false).await.unwrap();
    auth.add_user("bob", Some("bobs"), false).await.unwrap();
    let site = Arc::new(Site::default());
    let upstreams = BTreeMap::from([("central".to_owned(), site.clone() as Arc<dyn Upstream>)]);
    let service = MavenMirror::with_upstreams(cache, MavenConfig::default(), upstreams)
        .unwrap()
        .with_auth(auth.clone());
    let f = Fixture {
        service,
        site,
        auth,
    };
    let jar = "com/secret/lib/1.0/lib-1.0.jar";
    let bob = basic("bob", "bobs");
    let (status, _, _) = f
        .send(Method::PUT, &format!("/releases/{jar}"), Some(&bob), b"x")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only alice may deploy there");
    assert_eq!(
        f.put(&format!("/releases/{jar}"), b"secret jar").await,
        StatusCode::CREATED
    );

    let (status, headers, _) = f.get(&format!("/public/{jar}")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "anonymous readers are asked to sign in"
    );
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    let (status, _, body) = f
        .send(Method::GET, &format!("/public/{jar}"), Some(&bob), b"")
        .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"secret jar"[..]));
}

#[tokio::test]
async fn an_oversized_upstream_listing_is_refused_before_it_is_read() {
    let metadata = Arc::new(MemoryMetadataStore::new());
    let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), metadata).build();
    let site = Arc::new(Site::default());
    let upstreams = BTreeMap::from([("central".to_owned(), site.clone() as Arc<dyn Upstream>)]);
    let config = MavenConfig {
        max_metadata_bytes: 1000,
        ..MavenConfig::default()
    };
    let f = Fixture {
        service: MavenMirror::with_upstreams(cache, config, upstreams).unwrap(),
        auth: Auth::new(
            Arc::new(MemoryMetadataStore::new()),
            AccessPolicy::default(),
        ),
        site,
    };
    let path = "org/big/lib/maven-metadata.xml";
    let versions: Vec<String> = (0..500).map(|i| format!("1.{i}")).collect();
    let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
    f.site.put(path, listing(&versions, "20240101000000"));
    for repository in ["central", "public"] {
        let (status, _, body) = f.get(&format!("/{repository}/{path}")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{repository}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("exceeds the limit of 1000 bytes"),
            "{repository}: {text}"
        );
    }
}

#[tokio::test]
async fn listings_are_fresh_for_the_ttl_whatever_mvn_asks() {
    let f = fixture().await;
    let path = "org/acme/lib/maven-metadata.xml";
    f.site.put(path, listing(&["1.0"], "20240101000000"));
    for _ in 0..3 {
        // mvn sends both with every request.
        let request = Request::get(format!("/central/{path}"))
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::PRAGMA, "no-cache")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = f.service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        f.site.calls_to(path),
        1,
        "one upstream request within metadata_ttl"
    );
}
