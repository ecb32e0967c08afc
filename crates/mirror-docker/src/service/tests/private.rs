//! The private registry: uploads, manifests, listings, deletes and logins, driven with
//! `oneshot` against memory stores, with an upstream that must never be asked.

use base64::Engine as _;
use mirror_core::auth::AccessPolicy;
use mirror_core::digest::digests_of;
use mirror_core::Algorithm;

use super::*;

const APP: &str = "/v2/private/app";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

struct Private {
    mirror: DockerMirror,
    hub: Arc<FakeRegistry>,
    cache: Cache,
}

/// A registry whose `private/*` repositories alice may push to; bob may only pull.
async fn private_setup(config: DockerConfig) -> Private {
    let rule = json!({"ecosystem": "docker", "pattern": "private/*", "write": ["alice"]});
    private_setup_with(config, rule).await
}

async fn private_setup_with(config: DockerConfig, rule: Value) -> Private {
    let hub = FakeRegistry::new();
    let metadata = Arc::new(MemoryMetadataStore::new());
    let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), metadata.clone()).build();
    let policy: AccessPolicy = serde_json::from_value(json!({ "rules": [rule] })).unwrap();
    let auth = Auth::new(metadata, policy);
    auth.add_user("alice", Some("alice-pw"), false)
        .await
        .unwrap();
    auth.add_user("bob", Some("bob-pw"), false).await.unwrap();
    let upstreams = BTreeMap::from([(
        "docker.io".to_owned(),
        Arc::clone(&hub) as Arc<dyn Upstream>,
    )]);
    let mirror = DockerMirror::with_upstreams(cache.clone(), config, upstreams)
        .unwrap()
        .with_auth(auth);
    Private { mirror, hub, cache }
}

async fn setup_private() -> Private {
    private_setup(DockerConfig::default()).await
}

fn basic(user: &str, password: &str) -> String {
    let credentials = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

fn alice() -> String {
    basic("alice", "alice-pw")
}

/// Sends a request with a body and, when given, an `Authorization` header.
async fn send(
    mirror: &DockerMirror,
    request: http::request::Builder,
    auth: Option<&str>,
    body: impl Into<Bytes>,
) -> Reply {
    let request = match auth {
        Some(auth) => request.header(header::AUTHORIZATION, auth),
        None => request,
    };
    let response = mirror
        .clone()
        .oneshot(request.body(body::full(body.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
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

/// Pushes a blob in one request as alice; returns its digest.
async fn push_blob(mirror: &DockerMirror, repo: &str, content: &[u8]) -> Digest {
    let digest = sha256_of(content);
    let uri = format!("{repo}/blobs/uploads/?digest={digest}");
    let reply = send(mirror, Request::post(uri), Some(&alice()), content.to_vec()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    digest
}

/// Pushes an image manifest with one layer as alice; returns the manifest and its reply.
async fn push_image(mirror: &DockerMirror, repo: &str, tag: &str) -> (Vec<u8>, Reply) {
    let layer = push_blob(mirror, repo, b"layer bytes").await;
    let config = push_blob(mirror, repo, b"{}").await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": LAYER, "digest": layer.to_string(), "size": 11}],
    })
    .to_string()
    .into_bytes();
    let request =
        Request::put(format!("{repo}/manifests/{tag}")).header(header::CONTENT_TYPE, OCI_MANIFEST);
    let reply = send(mirror, request, Some(&alice()), manifest.clone()).await;
    (manifest, reply)
}

#[tokio::test]
async fn monolithic_push_then_pull_back_from_local_storage_only() {
    let Private { mirror, hub, .. } = setup_private().await;
    let (manifest, reply) = push_image(&mirror, APP, "1.0").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let digest = sha256_of(&manifest);
    assert_eq!(reply.header("docker-content-digest"), digest.to_string());
    assert_eq!(
        reply.header("location"),
        format!("{APP}/manifests/{digest}")
    );

    for reference in ["1.0".to_owned(), digest.to_string()] {
        let reply = send(
            &mirror,
            Request::get(format!("{APP}/manifests/{reference}")),
            None,
            "",
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.bytes(), manifest);
        assert_eq!(reply.header("content-type"), OCI_MANIFEST);
        assert_eq!(reply.header("docker-content-digest"), digest.to_string());
    }
    let layer = sha256_of(b"layer bytes");
    let reply = send(
        &mirror,
        Request::get(format!("{APP}/blobs/{layer}")),
        None,
        "",
    )
    .await;
    assert_eq!(reply.bytes(), &b"layer bytes"[..]);
    let reply = send(
        &mirror,
        Request::head(format!("{APP}/blobs/{layer}")),
        None,
        "",
    )
    .await;
    assert_eq!(reply.header("content-length"), "11");
    assert_eq!(reply.header("docker-content-digest"), layer.to_string());

    let tags = send(&mirror, Request::get(format!("{APP}/tags/list")), None, "").await;
    assert_eq!(tags.json(), json!({"name": "private/app", "tags": ["1.0"]}));
    let catalog = send(&mirror, Request::get("/v2/_catalog"), None, "").await;
    assert_eq!(catalog.json(), json!({"repositories": ["private/app"]}));
    let missing = send(
        &mirror,
        Request::get(format!("{APP}/manifests/2.0")),
        None,
        "",
    )
    .await;
    assert_eq!(missing.error_code(), "MANIFEST_UNKNOWN");
    assert!(
        hub.calls().is_empty(),
        "private pulls never go upstream: {:?}",
        hub.calls()
    );
}

#[tokio::test]
async fn a_request_for_another_registry_is_pulled_through_whatever_its_name() {
    let Private { mirror, hub, .. } = setup_private().await;
    push_image(&mirror, APP, "1.0").await;
    // containerd asking for docker.io/private/app: that is Docker Hub's, not ours.
    let reply = send(
        &mirror,
        Request::get(format!("{APP}/manifests/1.0?ns=docker.io")),
        None,
        "",
    )
    .await;
    assert_ne!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(
        hub.calls().iter().any(|call| call.contains("private/app")),
        "asked upstream: {:?}",
        hub.calls()
    );
}

#[tokio::test]
async fn blob_ranges_and_bad_ranges() {
    let Private { mirror, .. } = setup_private().await;
    let digest = push_blob(&mirror, APP, b"0123456789").await;
    let uri = format!("{APP}/blobs/{digest}");

    let part = send(
        &mirror,
        Request::get(&uri).header("range", "bytes=2-4"),
        None,
        "",
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes(), &b"234"[..]);
    assert_eq!(part.header("content-range"), "bytes 2-4/10");
    let beyond = send(
        &mirror,
        Request::get(&uri).header("range", "bytes=20-30"),
        None,
        "",
    )
    .await;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn chunked_upload_resumes_checks_order_and_takes_sha512() {
    let Private { mirror, .. } = setup_private().await;
    let started = send(
        &mirror,
        Request::post(format!("{APP}/blobs/uploads/")),
        Some(&alice()),
        "",
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    assert_eq!(started.header("range"), "0-0");
    let location = started.header("location").to_owned();
    assert!(location.starts_with(&format!("{APP}/blobs/uploads/")));
    assert_eq!(
        location.rsplit('/').next(),
        Some(started.header("docker-upload-uuid"))
    );

    let patch = |range: &'static str, bytes: &'static [u8]| {
        Request::patch(location.clone())
            .header(header::CONTENT_RANGE, range)
            .header(header::CONTENT_LENGTH, bytes.len())
    };
    let first = send(
        &mirror,
        patch("0-4", b"hello"),
        Some(&alice()),
        &b"hello"[..],
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(first.header("range"), "0-4");
    let status = send(&mirror, Request::get(&location), Some(&alice()), "").await;
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-4");

    let gap = send(
        &mirror,
        patch("10-14", b"world"),
        Some(&alice()),
        &b"world"[..],
    )
    .await;
    assert_eq!(gap.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(gap.header("range"), "0-4");
    let second = send(
        &mirror,
        patch("5-10", b" world"),
        Some(&alice()),
        &b" world"[..],
    )
    .await;
    assert_eq!(second.header("range"), "0-10");

    let sha512 = digests_of(b"hello world", [Algorithm::Sha512])
        .get(Algorithm::Sha512)
        .cloned()
        .unwrap();
    let put = Request::put(format!("{location}?digest={sha512}"));
    let done = send(&mirror, put, Some(&alice()), "").await;
    assert_eq!(done.status, StatusCode::CREATED, "{:?}", done.body);
    assert_eq!(done.header("docker-content-digest"), sha512.to_string());
    let blob = send(
        &mirror,
        Request::get(format!("{APP}/blobs/{sha512}")),
        None,
        "",
    )
    .await;
    assert_eq!(blob.bytes(), &b"hello world"[..]);
    let gone = send(&mirror, Request::get(&location), Some(&alice()), "").await;
    assert_eq!(gone.error_code(), "BLOB_UPLOAD_UNKNOWN");
    let elsewhere = send(
        &mirror,
        Request::get(format!("/v2/private/other/blobs/{sha512}")),
        None,
        "",
    )
    .await;
    assert_eq!(
        elsewhere.error_code(),
        "BLOB_UNKNOWN",
        "blobs are per repository"
    );
}

#[tokio::test]
async fn uploads_whose_digest_differs_store_nothing() {
    let Private { mirror, cache, .. } = setup_private().await;
    let wrong = sha256_of(b"something else");
    let uri = format!("{APP}/blobs/uploads/?digest={wrong}");
    let reply = send(&mirror, Request::post(uri), Some(&alice()), &b"payload"[..]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "DIGEST_INVALID");

    let started = send(
        &mirror,
        Request::post(format!("{APP}/blobs/uploads/")),
        Some(&alice()),
        "",
    )
    .await;
    let location = started.header("location").to_owned();
    let put = Request::put(format!("{location}?digest={wrong}"));
    let reply = send(&mirror, put, Some(&alice()), &b"payload"[..]).await;
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    let md5 = Request::put(format!(
        "{location}?digest=md5:d41d8cd98f00b204e9800998ecf8427e"
    ));
    assert_eq!(
        send(&mirror, md5, Some(&alice()), "").await.error_code(),
        "DIGEST_INVALID"
    );
    let status = send(&mirror, Request::get(&location), Some(&alice()), "").await;
    assert_eq!(
        status.error_code(),
        "BLOB_UPLOAD_UNKNOWN",
        "a failed upload is dropped"
    );

    let stored = cache.blobs().size(&sha256_of(b"payload")).await.unwrap();
    assert_eq!(stored, None, "nothing stored");
    let blob = send(
        &mirror,
        Request::head(format!("{APP}/blobs/{wrong}")),
        None,
        "",
    )
    .await;
    assert_eq!(blob.status, StatusCode::NOT_FOUND);
    let bad_algorithm = format!("{APP}/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e");
    let reply = send(&mirror, Request::post(bad_algorithm), Some(&alice()), "x").await;
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    assert_eq!(mirror.inner.uploads.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn abandoned_uploads_are_discarded() {
    let config = DockerConfig {
        upload_timeout: Duration::from_secs(60),
        ..DockerConfig::default()
    };
    let Private { mirror, .. } = private_setup(config).await;
    let started = send(
        &mirror,
        Request::post(format!("{APP}/blobs/uploads/")),
        Some(&alice()),
        "",
    )
    .await;
    let location = started.header("location").to_owned();

    tokio::time::advance(Duration::from_secs(61)).await;
    send(
        &mirror,
        Request::post(format!("{APP}/blobs/uploads/")),
        Some(&alice()),
        "",
    )
    .await;
    let status = send(&mirror, Request::get(&location), Some(&alice()), "").await;
    assert_eq!(status.error_code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(mirror.inner.uploads.count(), 1);
}

#[tokio::test]
async fn uploads_in_progress_are_capped() {
    let config = DockerConfig {
        max_uploads: 2,
        ..DockerConfig::default()
    };
    let Private { mirror, .. } = private_setup(config).await;
    let start = || Request::post(format!("{APP}/blobs/uploads/"));
    let first = send(&mirror, start(), Some(&alice()), "").await;
    send(&mirror, start(), Some(&alice()), "").await;
    let third = send(&mirror, start(), Some(&alice()), "").await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.error_code(), "TOOMANYREQUESTS");

    let cancel = Request::delete(first.header("location"));
    send(&mirror, cancel, Some(&alice()), "").await;
    let again = send(&mirror, start(), Some(&alice()), "").await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
}

#[tokio::test(start_paused = true)]
async fn idle_uploads_are_swept_without_new_activity() {
    let config = DockerConfig {
        upload_timeout: Duration::from_secs(60),
        ..DockerConfig::default()
    };
    let Private { mirror, .. } = private_setup(config).await;
    let start = Request::post(format!("{APP}/blobs/uploads/"));
    send(&mirror, start, Some(&alice()), "").await;
    assert_eq!(mirror.inner.uploads.count(), 1);

    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(mirror.inner.uploads.count(), 1, "not idle long enough");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(mirror.inner.uploads.count(), 0);
}

#[tokio::test]
async fn cancelled_and_foreign_uploads() {
    let Private { mirror, .. } = setup_private().await;
    let started = send(
        &mirror,
        Request::post(format!("{APP}/blobs/uploads/")),
        Some(&alice()),
        "",
    )
    .await;
    let location = started.header("location").to_owned();
    let id = started.header("docker-upload-uuid").to_owned();

    let anonymous = send(&mirror, Request::get(&location), None, "").await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "uploads are pushes"
    );
    let foreign = format!("/v2/private/other/blobs/uploads/{id}");
    let reply = send(&mirror, Request::get(foreign), Some(&alice()), "").await;
    assert_eq!(reply.error_code(), "BLOB_UPLOAD_UNKNOWN");
    let reply = send(&mirror, Request::delete(&location), Some(&alice()), "").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = send(&mirror, Request::patch(&location), Some(&alice()), "x").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn mounts_from_a_repository_holding_the_blob() {
    let Private { mirror, .. } = setup_private().await;
    let digest = push_blob(&mirror, APP, b"shared layer").await;

    let uri = format!("/v2/private/copy/blobs/uploads/?mount={digest}&from=private/app");
    let mounted = send(&mirror, Request::post(uri), Some(&alice()), "").await;
    assert_eq!(mounted.status, StatusCode::CREATED);
    assert_eq!(
        mounted.header("location"),
        format!("/v2/private/copy/blobs/{digest}")
    );
    let blob = send(
        &mirror,
        Request::get(format!("/v2/private/copy/blobs/{digest}")),
        None,
        "",
    )
    .await;
    assert_eq!(blob.bytes(), &b"shared layer"[..]);

    let uri = format!("/v2/private/copy/blobs/uploads/?mount={digest}&from=private/none");
    let fallback = send(&mirror, Request::post(uri), Some(&alice()), "").await;
    assert_eq!(
        fallback.status,
        StatusCode::ACCEPTED,
        "not mountable: a normal upload"
    );
}

#[tokio::test]
async fn manifests_are_checked_before_anything_is_stored() {
    let Private { mirror, .. } = setup_private().await;
    let missing = sha256_of(b"never pushed");
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG, "digest": missing.to_string(), "size": 12},
        "layers": [],
    })
    .to_string();
    let put = |reference: &str, content_type: &str| {
        Request::put(format!("{APP}/manifests/{reference}"))
            .header(header::CONTENT_TYPE, content_type)
    };
    let reply = send(
        &mirror,
        put("v1", OCI_MANIFEST),
        Some(&alice()),
        manifest.clone(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "MANIFEST_BLOB_UNKNOWN");

    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": missing.to_string(), "size": 10}]});
    let reply = send(
        &mirror,
        put("v1", OCI_INDEX),
        Some(&alice()),
        index.to_string(),
    )
    .await;
    assert_eq!(reply.error_code(), "MANIFEST_BLOB_UNKNOWN");

    let reply = send(
        &mirror,
        put("v1", OCI_MANIFEST),
        Some(&alice()),
        "{not json",
    )
    .await;
    assert_eq!(reply.error_code(), "MANIFEST_INVALID");
    let reply = send(
        &mirror,
        put("v1", OCI_INDEX),
        Some(&alice()),
        manifest.clone(),
    )
    .await;
    assert_eq!(
        reply.error_code(),
        "MANIFEST_INVALID",
        "Content-Type disagrees with mediaType"
    );

    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(4 << 20));
    let reply = send(&mirror, put("v1", OCI_MANIFEST), Some(&alice()), huge).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "MANIFEST_INVALID");

    let wrong = sha256_of(b"other");
    let reply = send(
        &mirror,
        put(&wrong.to_string(), OCI_MANIFEST),
        Some(&alice()),
        manifest.clone(),
    )
    .await;
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    let reply = send(
        &mirror,
        put("bad+tag", OCI_MANIFEST),
        Some(&alice()),
        manifest.clone(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(
        &mirror,
        Request::put("/v2/private/UPPER/manifests/v1"),
        Some(&alice()),
        manifest,
    )
    .await;
    assert_eq!(reply.error_code(), "NAME_INVALID");
    let reply = send(
        &mirror,
        Request::get("/v2/private/../etc/manifests/v1"),
        None,
        "",
    )
    .await;
    assert_eq!(reply.error_code(), "NAME_INVALID");

    let tags = send(&mirror, Request::get(format!("{APP}/tags/list")), None, "").await;
    assert_eq!(tags.error_code(), "NAME_UNKNOWN", "nothing was stored");
}

#[tokio::test]
async fn multi_platform_index_and_push_by_digest() {
    let Private { mirror, .. } = setup_private().await;
    let (manifest, _) = push_image(&mirror, APP, "amd64").await;
    let platform = sha256_of(&manifest);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": platform.to_string(), "size": manifest.len(),
         "platform": {"architecture": "amd64", "os": "linux"}}]})
    .to_string();
    let digest = sha256_of(index.as_bytes());
    let put =
        Request::put(format!("{APP}/manifests/{digest}")).header(header::CONTENT_TYPE, OCI_INDEX);
    let reply = send(&mirror, put, Some(&alice()), index.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    let got = send(
        &mirror,
        Request::get(format!("{APP}/manifests/{digest}")),
        None,
        "",
    )
    .await;
    assert_eq!(got.bytes(), index.as_bytes());
    assert_eq!(got.header("content-type"), OCI_INDEX);
}

#[tokio::test]
async fn referrers_list_manifests_with_a_subject() {
    let Private { mirror, .. } = setup_private().await;
    let (manifest, _) = push_image(&mirror, APP, "1.0").await;
    let subject = sha256_of(&manifest);
    let empty = push_blob(&mirror, APP, b"{}").await;
    let signature = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": EMPTY, "digest": empty.to_string(), "size": 2},
        "layers": [],
        "subject": {
            "mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": manifest.len()
        },
        "annotations": {"org.example": "yes"},
    })
    .to_string();
    let digest = sha256_of(signature.as_bytes());
    let put = Request::put(format!("{APP}/manifests/{digest}"))
        .header(header::CONTENT_TYPE, OCI_MANIFEST);
    let reply = send(&mirror, put, Some(&alice()), signature.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("oci-subject"), subject.to_string());

    let referrers = send(
        &mirror,
        Request::get(format!("{APP}/referrers/{subject}")),
        None,
        "",
    )
    .await;
    assert_eq!(referrers.header("content-type"), OCI_INDEX);
    assert_eq!(
        referrers.json()["manifests"],
        json!([{"mediaType": OCI_MANIFEST, "digest": digest.to_string(), "size": signature.len(),
                "artifactType": "application/vnd.example.signature",
                "annotations": {"org.example": "yes"}}])
    );
    let uri = format!("{APP}/referrers/{subject}?artifactType=application/other");
    let filtered = send(&mirror, Request::get(uri), None, "").await;
    assert_eq!(filtered.header("oci-filters-applied"), "artifactType");
    assert_eq!(filtered.json()["manifests"], json!([]));

    let deleted = send(
        &mirror,
        Request::delete(format!("{APP}/manifests/{digest}")),
        Some(&alice()),
        "",
    )
    .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let referrers = send(
        &mirror,
        Request::get(format!("{APP}/referrers/{subject}")),
        None,
        "",
    )
    .await;
    assert_eq!(referrers.json()["manifests"], json!([]));
}

#[tokio::test]
async fn tags_and_catalog_paginate() {
    let Private { mirror, .. } = setup_private().await;
    for tag in ["c", "a", "b"] {
        push_image(&mirror, APP, tag).await;
    }
    push_image(&mirror, "/v2/private/zoo", "1").await;

    let page = send(
        &mirror,
        Request::get(format!("{APP}/tags/list?n=2")),
        None,
        "",
    )
    .await;
    assert_eq!(page.json()["tags"], json!(["a", "b"]));
    assert_eq!(
        page.header("link"),
        "</v2/private/app/tags/list?n=2&last=b>; rel=\"next\""
    );
    let rest = send(
        &mirror,
        Request::get(format!("{APP}/tags/list?n=2&last=b")),
        None,
        "",
    )
    .await;
    assert_eq!(rest.json()["tags"], json!(["c"]));
    assert_eq!(rest.header("link"), "");

    let catalog = send(&mirror, Request::get("/v2/_catalog?n=1"), None, "").await;
    assert_eq!(catalog.json(), json!({"repositories": ["private/app"]}));
    assert_eq!(
        catalog.header("link"),
        "</v2/_catalog?n=1&last=private%2Fapp>; rel=\"next\""
    );
    let bad = send(&mirror, Request::get("/v2/_catalog?n=x"), None, "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deletes_unlink_tags_manifests_and_blobs() {
    let Private { mirror, .. } = setup_private().await;
    let (manifest, _) = push_image(&mirror, APP, "1.0").await;
    push_image(&mirror, APP, "latest").await;
    let digest = sha256_of(&manifest);

    let reply = send(
        &mirror,
        Request::delete(format!("{APP}/manifests/1.0")),
        None,
        "",
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "deletes need a credential"
    );
    let message = reply.json()["errors"][0]["message"].to_string();
    assert!(message.contains("to delete from"), "{message}");
    let reply = send(
        &mirror,
        Request::delete(format!("{APP}/manifests/1.0")),
        Some(&alice()),
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let tags = send(&mirror, Request::get(format!("{APP}/tags/list")), None, "").await;
    assert_eq!(tags.json()["tags"], json!(["latest"]));

    let reply = send(
        &mirror,
        Request::delete(format!("{APP}/manifests/{digest}")),
        Some(&alice()),
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let gone = send(
        &mirror,
        Request::get(format!("{APP}/manifests/{digest}")),
        None,
        "",
    )
    .await;
    assert_eq!(gone.error_code(), "MANIFEST_UNKNOWN");
    let tags = send(&mirror, Request::get(format!("{APP}/tags/list")), None, "").await;
    assert_eq!(
        tags.json()["tags"],
        json!([]),
        "tags naming it went with it"
    );

    let layer = sha256_of(b"layer bytes");
    let reply = send(
        &mirror,
        Request::delete(format!("{APP}/blobs/{layer}")),
        Some(&alice()),
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = send(
        &mirror,
        Request::get(format!("{APP}/blobs/{layer}")),
        None,
        "",
    )
    .await;
    assert_eq!(reply.error_code(), "BLOB_UNKNOWN");
    let reply = send(
        &mirror,
        Request::delete(format!("{APP}/blobs/{layer}")),
        Some(&alice()),
        "",
    )
    .await;
    assert_eq!(reply.error_code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn deletes_can_be_disabled() {
    let config = DockerConfig {
        allow_delete: false,
        ..DockerConfig::default()
    };
    let Private { mirror, .. } = private_setup(config).await;
    let (manifest, _) = push_image(&mirror, APP, "1.0").await;
    let digest = sha256_of(&manifest);
    for uri in [
        format!("{APP}/manifests/1.0"),
        format!("{APP}/manifests/{digest}"),
    ] {
        let reply = send(&mirror, Request::delete(uri), Some(&alice()), "").await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.error_code(), "UNSUPPORTED");
    }
    let reply = send(
        &mirror,
        Request::get(format!("{APP}/manifests/1.0")),
        None,
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn pushes_need_a_credential_with_write_access() {
    let Private { mirror, cache, .. } = setup_private().await;
    let uri = format!("{APP}/blobs/uploads/?digest={}", sha256_of(b"x"));
    let anonymous = send(
        &mirror,
        Request::post(&uri).header("host", "reg.test:5000"),
        None,
        "x",
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.error_code(), "UNAUTHORIZED");
    assert_eq!(
        anonymous.header("www-authenticate"),
        "Bearer realm=\"http://reg.test:5000/v2/_token\",service=\"reg.test:5000\",\
         scope=\"repository:private/app:pull,push\""
    );
    let wrong = send(
        &mirror,
        Request::post(&uri),
        Some(&basic("alice", "nope")),
        "x",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let bob = send(
        &mirror,
        Request::post(&uri),
        Some(&basic("bob", "bob-pw")),
        "x",
    )
    .await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.error_code(), "DENIED");
    assert_eq!(cache.blobs().size(&sha256_of(b"x")).await.unwrap(), None);

    let proxied = send(
        &mirror,
        Request::post("/v2/library/alpine/blobs/uploads/"),
        Some(&alice()),
        "",
    )
    .await;
    assert_eq!(proxied.error_code(), "DENIED");
    assert!(proxied.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("docker.private_repositories"));
}

/// Fetches a token the way docker and skopeo do after the challenge.
async fn token(mirror: &DockerMirror, auth: Option<&str>, scope: &str) -> String {
    let uri = format!("/v2/_token?service=reg.test&scope={scope}");
    let reply = send(mirror, Request::get(uri), auth, "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let doc = reply.json();
    assert_eq!(doc["token"], doc["access_token"]);
    assert!(doc["expires_in"].as_u64().unwrap() > 0);
    assert!(doc["issued_at"].as_str().unwrap().ends_with('Z'));
    format!("Bearer {}", doc["token"].as_str().unwrap())
}

#[tokio::test]
async fn a_mirror_without_private_repositories_needs_no_login() {
    let config = DockerConfig {
        private_repositories: Vec::new(),
        ..DockerConfig::default()
    };
    let Private { mirror, .. } = private_setup(config).await;
    let ping = send(&mirror, Request::get("/v2/"), None, "").await;
    assert_eq!(ping.status, StatusCode::OK);
    let push = send(
        &mirror,
        Request::post(format!("{APP}/blobs/uploads/")),
        Some(&alice()),
        "",
    )
    .await;
    assert_eq!(push.error_code(), "DENIED");
}

#[tokio::test]
async fn a_rule_keeps_private_images_from_anonymous_readers() {
    let rule = json!({"ecosystem": "docker", "pattern": "private/*",
                      "read": ["@authenticated"], "write": ["alice"]});
    let Private { mirror, .. } = private_setup_with(DockerConfig::default(), rule).await;
    push_image(&mirror, APP, "1.0").await;

    let anonymous = send(
        &mirror,
        Request::get(format!("{APP}/manifests/1.0")),
        None,
        "",
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous
        .header("www-authenticate")
        .contains("repository:private/app:pull"));
    let anonymous_token = token(&mirror, None, "repository:private/app:pull").await;
    let refused = send(
        &mirror,
        Request::get(format!("{APP}/manifests/1.0")),
        Some(&anonymous_token),
        "",
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let catalog = send(&mirror, Request::get("/v2/_catalog"), None, "").await;
    assert_eq!(catalog.json(), json!({"repositories": []}));

    let bob = basic("bob", "bob-pw");
    let allowed = send(
        &mirror,
        Request::get(format!("{APP}/manifests/1.0")),
        Some(&bob),
        "",
    )
    .await;
    assert_eq!(allowed.status, StatusCode::OK);
}

#[tokio::test]
async fn empty_basic_credentials_count_as_none() {
    // Go's registry clients send `Basic base64(":")` when they have no credentials.
    let Private { mirror, .. } = setup_private().await;
    let empty = "Basic Og==";
    let anonymous = token(&mirror, Some(empty), "repository:private/app:pull").await;
    let ping = send(&mirror, Request::get("/v2/"), Some(&anonymous), "").await;
    assert_eq!(ping.status, StatusCode::OK);
    let push = send(
        &mirror,
        Request::post(format!("{APP}/blobs/uploads/")),
        Some(empty),
        "",
    )
    .await;
    assert_eq!(push.status, StatusCode::UNAUTHORIZED, "still no push");
    // Only the empty pair is anonymous: an empty name with a password is a wrong login.
    let uri = "/v2/_token?service=reg.test&scope=repository:private/app:pull";
    let wrong = send(&mirror, Request::get(uri), Some(&basic("", "x")), "").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_flow_as_docker_login_does_it() {
    let Private { mirror, hub, .. } = setup_private().await;
    let ping = send(&mirror, Request::get("/v2/"), None, "").await;
    assert_eq!(ping.status, StatusCode::UNAUTHORIZED);
    assert!(ping.header("www-authenticate").starts_with("Bearer realm="));
    let refused = send(
        &mirror,
        Request::get("/v2/_token?scope=x"),
        Some(&basic("alice", "no")),
        "",
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let scope = "repository:private/app:pull,push";
    let alice_token = token(&mirror, Some(&alice()), scope).await;
    let ping = send(&mirror, Request::get("/v2/"), Some(&alice_token), "").await;
    assert_eq!(ping.status, StatusCode::OK);
    let digest = sha256_of(b"via token");
    let uri = format!("{APP}/blobs/uploads/?digest={digest}");
    let pushed = send(
        &mirror,
        Request::post(&uri),
        Some(&alice_token),
        "via token",
    )
    .await;
    assert_eq!(pushed.status, StatusCode::CREATED);
    let other_repo = format!("/v2/private/other/blobs/uploads/?digest={digest}");
    let unscoped = send(
        &mirror,
        Request::post(other_repo),
        Some(&alice_token),
        "via token",
    )
    .await;
    assert_eq!(
        unscoped.status,
        StatusCode::UNAUTHORIZED,
        "a token for another scope: ask again"
    );

    let anonymous = token(&mirror, None, scope).await;
    let pull = send(
        &mirror,
        Request::get(format!("{APP}/blobs/{digest}")),
        Some(&anonymous),
        "",
    )
    .await;
    assert_eq!(pull.status, StatusCode::OK);
    let push = send(&mirror, Request::post(&uri), Some(&anonymous), "via token").await;
    assert_eq!(push.status, StatusCode::UNAUTHORIZED);
    let bob = token(&mirror, Some(&basic("bob", "bob-pw")), scope).await;
    let push = send(&mirror, Request::post(&uri), Some(&bob), "via token").await;
    assert_eq!(push.status, StatusCode::FORBIDDEN);
    let renew = send(
        &mirror,
        Request::get("/v2/_token?scope=x"),
        Some(&alice_token),
        "",
    )
    .await;
    assert_eq!(
        renew.status,
        StatusCode::UNAUTHORIZED,
        "a token cannot renew itself"
    );
    let forged = send(&mirror, Request::get("/v2/"), Some("Bearer abc.def"), "").await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    let body = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "layers": []}).to_string();
    let body = body.as_bytes();
    hub.manifest("library/alpine", Some("3"), DOCKER_MANIFEST, body);
    let proxied = send(&mirror, Request::get("/v2/alpine/manifests/3"), None, "").await;
    assert_eq!(
        proxied.status,
        StatusCode::OK,
        "pull-through stays anonymous"
    );
}

#[tokio::test]
async fn mounts_without_from_and_with_a_token_scoped_to_the_target() {
    let Private { mirror, .. } = setup_private().await;
    let digest = push_blob(&mirror, APP, b"shared layer").await;

    let uri = format!("/v2/private/copy/blobs/uploads/?mount={digest}");
    let mounted = send(&mirror, Request::post(uri), Some(&alice()), "").await;
    assert_eq!(mounted.status, StatusCode::CREATED, "found in private/app");

    let scoped = token(
        &mirror,
        Some(&alice()),
        "repository:private/third:pull,push",
    )
    .await;
    let uri = format!("/v2/private/third/blobs/uploads/?mount={digest}&from=private/app");
    let mounted = send(&mirror, Request::post(uri), Some(&scoped), "").await;
    assert_eq!(
        mounted.status,
        StatusCode::CREATED,
        "alice may read private/app"
    );

    let unknown = sha256_of(b"nowhere");
    let uri = format!("/v2/private/copy/blobs/uploads/?mount={unknown}");
    let fallback = send(&mirror, Request::post(uri), Some(&alice()), "").await;
    assert_eq!(fallback.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_push_by_digest_may_set_tags() {
    let Private { mirror, .. } = setup_private().await;
    let (manifest, _) = push_image(&mirror, APP, "base").await;
    let digest = sha256_of(&manifest);
    let uri = format!("{APP}/manifests/{digest}?tag=1.2.3&tag=latest");
    let put = Request::put(uri).header(header::CONTENT_TYPE, OCI_MANIFEST);
    let reply = send(&mirror, put, Some(&alice()), manifest.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("oci-tag"), "1.2.3, latest");
    let tags = send(&mirror, Request::get(format!("{APP}/tags/list")), None, "").await;
    assert_eq!(tags.json()["tags"], json!(["1.2.3", "base", "latest"]));

    let uri = format!("{APP}/manifests/{digest}?tag=bad/tag");
    let put = Request::put(uri).header(header::CONTENT_TYPE, OCI_MANIFEST);
    let reply = send(&mirror, put, Some(&alice()), manifest).await;
    assert_eq!(reply.error_code(), "MANIFEST_UNKNOWN");
}
