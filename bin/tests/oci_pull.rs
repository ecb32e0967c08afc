//! End to end: container images pulled through the `registry-mirror` binary from the real
//! distribution registry (Debian's `docker-registry`) on loopback, with the real `skopeo`
//! pushing upstream and pulling through the mirror. Nothing here reaches the internet.

#![allow(
    clippy::expect_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

#[allow(
    dead_code,
    unused_imports,
    reason = "shared with oci_push.rs, which uses the rest"
)]
mod oci_support;

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;

use oci_support::{
    noise, Front, FrontMode, Image, Index, Mirror, Registry, Skopeo, OCI_INDEX, OCI_MANIFEST,
};

/// Every manifest type a client may take, as skopeo and containerd send them.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The mirror's `[docker]` configuration with one upstream, `upstream.test`.
fn docker_config(upstream_url: &str, tag_ttl: &str, credentials: Option<(&str, &str)>) -> String {
    let credentials = credentials.map_or_else(String::new, |(user, password)| {
        format!("username = \"{user}\"\npassword = \"{password}\"\n")
    });
    format!(
        "[docker]\ntag_ttl = \"{tag_ttl}\"\n\
         [docker.upstreams.\"upstream.test\"]\nurl = \"{upstream_url}\"\n{credentials}"
    )
}

/// Pushes an image to `host/repo:tag` with skopeo, as an OCI image or converted by `extra`.
async fn push_image(skopeo: &Skopeo, image: &Image, destination: &str, extra: &[&str]) {
    let layout = tempfile::tempdir().expect("layout directory");
    image.write_layout(layout.path(), "push");
    skopeo.push(layout.path(), "push", destination, extra).await;
}

async fn push_index(skopeo: &Skopeo, index: &Index, destination: &str) {
    let layout = tempfile::tempdir().expect("layout directory");
    index.write_layout(layout.path(), "push");
    skopeo
        .push(layout.path(), "push", destination, &["--all"])
        .await;
}

fn read(dir: &Path, hex: &str) -> Vec<u8> {
    std::fs::read(dir.join(hex)).unwrap_or_else(|err| panic!("read {hex} from the copy: {err}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_pulls_through_the_mirror_and_keeps_pulling_once_upstream_is_gone() {
    let mut upstream = Registry::start_open().await;
    let skopeo = Skopeo::new();
    let app = Image::new("amd64", &[("hello", b"hello from the single-arch image\n")]);
    push_image(
        &skopeo,
        &app,
        &format!("{}/team/app:1.0", upstream.host),
        &[],
    )
    .await;
    let docker = Image::new("amd64", &[("hello", b"a docker schema 2 image\n")]);
    let docker_dest = format!("{}/team/docker:v2s2", upstream.host);
    push_image(&skopeo, &docker, &docker_dest, &["--format", "v2s2"]).await;
    let multi = Index::new(vec![
        Image::new("amd64", &[("arch", b"amd64\n")]),
        Image::new("arm64", &[("arch", b"arm64\n")]),
    ]);
    push_index(
        &skopeo,
        &multi,
        &format!("{}/team/multi:latest", upstream.host),
    )
    .await;
    let mirror = Mirror::start(&docker_config(&upstream.url(), "5m", None)).await;
    let via = |reference: &str| format!("{}/upstream.test/{reference}", mirror.host);

    let inspected = skopeo.inspect(&via("team/app:1.0")).await;
    assert_eq!(inspected["Digest"], app.manifest.digest.as_str());
    assert_eq!(inspected["Layers"], serde_json::json!([app.layer.digest]));
    let by_digest = skopeo
        .inspect(&via(&format!("team/app@{}", app.manifest.digest)))
        .await;
    assert_eq!(by_digest["Digest"], app.manifest.digest.as_str());

    let copy = tempfile::tempdir().expect("copy directory");
    skopeo
        .copy_to_dir(&via("team/app:1.0"), copy.path(), &[])
        .await
        .assert_success();
    assert_eq!(
        read(copy.path(), app.layer.hex()),
        app.layer.bytes,
        "layer byte for byte"
    );
    assert_eq!(read(copy.path(), app.config.hex()), app.config.bytes);

    let docker_raw = skopeo.inspect_raw(&via("team/docker:v2s2")).await;
    let docker_manifest: Value = serde_json::from_slice(&docker_raw).expect("manifest JSON");
    assert_eq!(
        docker_manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let docker_copy = tempfile::tempdir().expect("copy directory");
    skopeo
        .copy_to_dir(&via("team/docker:v2s2"), docker_copy.path(), &[])
        .await
        .assert_success();
    assert_eq!(
        read(docker_copy.path(), docker.layer.hex()),
        docker.layer.bytes
    );

    assert_eq!(
        skopeo.inspect_raw(&via("team/multi:latest")).await,
        multi.index.bytes
    );
    let arm = &multi.images[1];
    let arm_copy = tempfile::tempdir().expect("copy directory");
    skopeo
        .copy_to_dir(
            &via("team/multi:latest"),
            arm_copy.path(),
            &["--override-arch", "arm64"],
        )
        .await
        .assert_success();
    assert_eq!(read(arm_copy.path(), arm.layer.hex()), arm.layer.bytes);

    let by_ns = mirror
        .get(
            "/v2/team/multi/manifests/latest?ns=upstream.test",
            &[("accept", ACCEPT_MANIFESTS)],
        )
        .await;
    assert_eq!(by_ns.status(), StatusCode::OK);
    assert_eq!(by_ns.headers()["content-type"], OCI_INDEX);
    assert_eq!(
        by_ns.headers()["docker-content-digest"],
        multi.index.digest.as_str()
    );
    assert_eq!(by_ns.headers()["x-cache-status"], "HIT");
    assert_eq!(by_ns.bytes().await.expect("index body"), multi.index.bytes);

    upstream.stop().await;
    let offline = tempfile::tempdir().expect("copy directory");
    skopeo
        .copy_to_dir(&via("team/app:1.0"), offline.path(), &[])
        .await
        .assert_success();
    assert_eq!(read(offline.path(), app.layer.hex()), app.layer.bytes);
    let by_digest = format!("team/app@{}", app.manifest.digest);
    assert_eq!(
        skopeo.inspect(&via(&by_digest)).await["Digest"],
        app.manifest.digest.as_str()
    );
    let never_pulled = skopeo
        .run(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}", via("team/app:2.0")),
        ])
        .await;
    never_pulled.assert_failure();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_tag_is_seen_after_the_ttl_and_revalidated_with_head() {
    let registry = Registry::start_open().await;
    let front = Front::start(&registry.url(), FrontMode::Open).await;
    let skopeo = Skopeo::new();
    let one = Image::new("amd64", &[("version", b"one\n")]);
    let two = Image::new("amd64", &[("version", b"two\n")]);
    push_image(
        &skopeo,
        &one,
        &format!("{}/team/app:stable", registry.host),
        &[],
    )
    .await;
    push_image(
        &skopeo,
        &two,
        &format!("{}/team/app:next", registry.host),
        &[],
    )
    .await;
    let ttl = Duration::from_secs(1);
    let mirror = Mirror::start(&docker_config(&front.url(), "1s", None)).await;
    let tag_path = "/v2/upstream.test/team/app/manifests/stable";
    let digest_of = |response: &reqwest::Response| {
        response.headers()["docker-content-digest"]
            .to_str()
            .expect("digest header")
            .to_owned()
    };

    let first = mirror.get(tag_path, &[("accept", ACCEPT_MANIFESTS)]).await;
    assert_eq!(digest_of(&first), one.manifest.digest);
    let moved = reqwest::Client::new()
        .put(format!("{}/v2/team/app/manifests/stable", registry.url()))
        .header("content-type", OCI_MANIFEST)
        .body(two.manifest.bytes.clone())
        .send()
        .await
        .expect("retag upstream");
    assert_eq!(moved.status(), StatusCode::CREATED);
    let cached = mirror.get(tag_path, &[("accept", ACCEPT_MANIFESTS)]).await;
    assert_eq!(cached.headers()["x-cache-status"], "HIT");
    assert_eq!(
        digest_of(&cached),
        one.manifest.digest,
        "still fresh: not asked upstream"
    );

    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let after = mirror.get(tag_path, &[("accept", ACCEPT_MANIFESTS)]).await;
    assert_eq!(digest_of(&after), two.manifest.digest);
    assert_eq!(after.headers()["x-cache-status"], "MISS");
    assert_eq!(
        after.bytes().await.expect("manifest body"),
        two.manifest.bytes
    );
    assert_eq!(
        front.count("GET", "/v2/team/app/manifests/stable"),
        0,
        "tags are only HEADed"
    );
    assert_eq!(front.count("HEAD", "/v2/team/app/manifests/stable"), 2);
    let new_digest = format!("/v2/team/app/manifests/{}", two.manifest.digest);
    assert_eq!(front.count("GET", &new_digest), 1);

    let via = format!("{}/upstream.test/team/app:stable", mirror.host);
    assert_eq!(
        skopeo.inspect(&via).await["Digest"],
        two.manifest.digest.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_of_one_uncached_blob_make_one_upstream_request() {
    let registry = Registry::start_open().await;
    let front = Front::start(&registry.url(), FrontMode::Open).await;
    let skopeo = Skopeo::new();
    let big = noise(20, 4 << 20);
    let image = Image::new("amd64", &[("big.bin", &big)]);
    push_image(
        &skopeo,
        &image,
        &format!("{}/team/big:1", registry.host),
        &[],
    )
    .await;
    let mirror = std::sync::Arc::new(Mirror::start(&docker_config(&front.url(), "5m", None)).await);
    let path = format!("/v2/team/big/blobs/{}?ns=upstream.test", image.layer.digest);

    let mut pulls = JoinSet::new();
    for _ in 0..20 {
        let (mirror, path) = (std::sync::Arc::clone(&mirror), path.clone());
        pulls.spawn(async move {
            let response = mirror.get(&path, &[]).await;
            (
                response.status(),
                response.bytes().await.map(|b| b.to_vec()),
            )
        });
    }
    while let Some(pull) = pulls.join_next().await {
        let (status, body) = pull.expect("a pull task");
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.as_ref().is_ok_and(|b| *b == image.layer.bytes),
            "whole, right body"
        );
    }
    let blob = format!("/v2/team/big/blobs/{}", image.layer.digest);
    assert_eq!(front.count("GET", &blob), 1, "{:#?}", front.forwarded());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_whose_bytes_do_not_match_its_digest_is_refused_and_not_cached() {
    let registry = Registry::start_open().await;
    let skopeo = Skopeo::new();
    let image = Image::new("amd64", &[("file", &noise(7, 64 << 10))]);
    push_image(
        &skopeo,
        &image,
        &format!("{}/team/app:1", registry.host),
        &[],
    )
    .await;
    let mirror = Mirror::start(&docker_config(&registry.url(), "5m", None)).await;
    let path = format!("/v2/upstream.test/team/app/blobs/{}", image.layer.digest);
    let stored = registry.blob_data(&image.layer.digest);
    let mut tampered = image.layer.bytes.clone();
    tampered[100] ^= 0xff;
    std::fs::write(&stored, &tampered).expect("tamper with the upstream blob");

    let refused = mirror.get(&path, &[]).await;
    let status = refused.status();
    let body = refused.bytes().await;
    assert!(
        status == StatusCode::BAD_GATEWAY || body.is_err(),
        "a wrong body must fail (a 502, or an aborted download), got {status}"
    );

    std::fs::write(&stored, &image.layer.bytes).expect("repair the upstream blob");
    let fetched = mirror.get(&path, &[]).await;
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(
        fetched.headers()["x-cache-status"],
        "MISS",
        "the wrong body was not cached"
    );
    assert_eq!(fetched.bytes().await.expect("blob body"), image.layer.bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_demanding_bearer_tokens_is_pulled_with_one_token_per_repository() {
    let registry = Registry::start_open().await;
    let mode = FrontMode::Bearer {
        realm_credentials: "puller:s3cret".into(),
    };
    let front = Front::start(&registry.url(), mode).await;
    let skopeo = Skopeo::new();
    let image = Image::new("amd64", &[("hello", b"behind tokens\n")]);
    push_image(
        &skopeo,
        &image,
        &format!("{}/team/private:1", registry.host),
        &[],
    )
    .await;
    let config = docker_config(&front.url(), "5m", Some(("puller", "s3cret")));
    let mirror = Mirror::start(&config).await;

    let copy = tempfile::tempdir().expect("copy directory");
    let reference = format!("{}/upstream.test/team/private:1", mirror.host);
    skopeo
        .copy_to_dir(&reference, copy.path(), &[])
        .await
        .assert_success();
    assert_eq!(read(copy.path(), image.layer.hex()), image.layer.bytes);

    assert_eq!(
        front.tokens_issued(),
        1,
        "one token for the repository, reused"
    );
    assert_eq!(
        front.challenged(),
        1,
        "later requests sent the token up front"
    );
    assert_eq!(front.scopes(), ["repository:team/private:pull"]);
    assert!(
        front.count(
            "GET",
            &format!("/v2/team/private/blobs/{}", image.layer.digest)
        ) == 1
    );

    let anonymous = Mirror::start(&docker_config(&front.url(), "5m", None)).await;
    let refused = anonymous
        .get(
            "/v2/upstream.test/team/private/manifests/1",
            &[("accept", ACCEPT_MANIFESTS)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = refused.bytes().await.expect("an error body");
    let body: Value = serde_json::from_slice(&body).expect("an OCI error document");
    assert_eq!(body["errors"][0]["code"], "DENIED");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_htpasswd_upstream_is_pulled_with_the_configured_credentials() {
    let registry = Registry::start_with_htpasswd("builder", "pa55word").await;
    let skopeo = Skopeo::new();
    let image = Image::new("amd64", &[("hello", b"behind basic auth\n")]);
    let destination = format!("{}/team/app:1", registry.host);
    let creds = ["--dest-creds", "builder:pa55word"];
    push_image(&skopeo, &image, &destination, &creds).await;

    let config = docker_config(&registry.url(), "5m", Some(("builder", "pa55word")));
    let mirror = Mirror::start(&config).await;
    let copy = tempfile::tempdir().expect("copy directory");
    let reference = format!("{}/upstream.test/team/app:1", mirror.host);
    skopeo
        .copy_to_dir(&reference, copy.path(), &[])
        .await
        .assert_success();
    assert_eq!(read(copy.path(), image.layer.hex()), image.layer.bytes);

    let anonymous = Mirror::start(&docker_config(&registry.url(), "5m", None)).await;
    let refused = anonymous
        .get(
            "/v2/upstream.test/team/app/manifests/1",
            &[("accept", ACCEPT_MANIFESTS)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let reference = format!("docker://{}/upstream.test/team/app:1", anonymous.host);
    skopeo
        .run(&["inspect", "--tls-verify=false", &reference])
        .await
        .assert_failure();
}
