//! End to end: the private container registry of the `registry-mirror` binary, pushed to
//! and pulled from with the real `skopeo` (which logs in through the registry's own token
//! endpoint), and chunked uploads driven over HTTP the way the distribution API describes
//! them. The upstream, where one is needed, is Debian's real `docker-registry` on loopback.

#![allow(
    clippy::expect_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

#[allow(
    dead_code,
    unused_imports,
    reason = "shared with oci_pull.rs, which uses the rest"
)]
mod oci_support;

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest as _, Sha256, Sha512};

use oci_support::{noise, Image, Index, Mirror, Registry, Run, Skopeo};

const PASSWORD: &str = "alice-secret-pw";

/// A mirror with the default configuration (`private/*` is private) and a user `alice`.
async fn private_mirror(config: &str) -> Mirror {
    let mirror = Mirror::start(config).await;
    mirror.add_user("alice", PASSWORD).await;
    mirror
}

fn creds() -> String {
    format!("alice:{PASSWORD}")
}

/// Pushes an image (or, with `--all`, an index) from an OCI layout; true when it worked.
async fn push_layout(skopeo: &Skopeo, layout: &Path, destination: &str, extra: &[&str]) -> bool {
    push_run(skopeo, layout, destination, extra)
        .await
        .succeeded()
}

async fn push_run(skopeo: &Skopeo, layout: &Path, destination: &str, extra: &[&str]) -> Run {
    let source = format!("oci:{}:push", layout.display());
    let destination = format!("docker://{destination}");
    let mut args = vec!["copy", "--dest-tls-verify=false", "--retry-times=0"];
    args.extend_from_slice(extra);
    args.extend([source.as_str(), destination.as_str()]);
    skopeo.run(&args).await
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|err| panic!("read {name} from the copy: {err}"))
}

async fn json(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("a response body");
    serde_json::from_slice(&bytes).expect("a JSON body")
}

async fn tags(mirror: &Mirror, repo: &str) -> reqwest::Response {
    mirror
        .request(Method::GET, &format!("/v2/{repo}/tags/list"))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .expect("a response from the mirror")
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_pushes_with_credentials_only_and_pulls_back_byte_identical() {
    let mirror = private_mirror("").await;
    let skopeo = Skopeo::new();
    let app = Image::new("amd64", &[("hello", b"hello from a private image\n")]);
    let layout = tempfile::tempdir().expect("layout directory");
    app.write_layout(layout.path(), "push");
    let destination = format!("{}/private/app:1.0", mirror.host);

    assert!(
        !push_layout(&skopeo, layout.path(), &destination, &[]).await,
        "an anonymous push is refused"
    );
    assert_eq!(
        tags(&mirror, "private/app").await.status(),
        StatusCode::NOT_FOUND
    );
    let wrong = ["--dest-creds", "alice:not-the-password"];
    assert!(!push_layout(&skopeo, layout.path(), &destination, &wrong).await);
    assert_eq!(
        tags(&mirror, "private/app").await.status(),
        StatusCode::NOT_FOUND
    );

    let creds = creds();
    let with_creds = ["--dest-creds", creds.as_str()];
    assert!(push_layout(&skopeo, layout.path(), &destination, &with_creds).await);
    let listed = json(tags(&mirror, "private/app").await).await;
    assert_eq!(listed["tags"], serde_json::json!(["1.0"]));

    let copy = tempfile::tempdir().expect("copy directory");
    skopeo
        .copy_to_dir(&destination, copy.path(), &[])
        .await
        .assert_success();
    assert_eq!(read(copy.path(), "manifest.json"), app.manifest.bytes);
    assert_eq!(read(copy.path(), app.layer.hex()), app.layer.bytes);
    assert_eq!(read(copy.path(), app.config.hex()), app.config.bytes);
    assert_eq!(skopeo.inspect_raw(&destination).await, app.manifest.bytes);

    let proxied = format!("{}/library/app:1.0", mirror.host);
    assert!(
        !push_layout(&skopeo, layout.path(), &proxied, &with_creds).await,
        "a name that is not private cannot be pushed to"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_login_and_api_tokens() {
    let mirror = private_mirror("").await;
    let skopeo = Skopeo::new();
    let app = Image::new("amd64", &[("hello", b"pushed after a login\n")]);
    let layout = tempfile::tempdir().expect("layout directory");
    app.write_layout(layout.path(), "push");

    let refused = skopeo
        .run(&[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "wrong",
            &mirror.host,
        ])
        .await;
    refused.assert_failure();
    skopeo
        .run(&[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            PASSWORD,
            &mirror.host,
        ])
        .await
        .assert_success();
    let after_login = format!("{}/private/login:1", mirror.host);
    assert!(push_layout(&skopeo, layout.path(), &after_login, &[]).await);
    assert_eq!(skopeo.inspect_raw(&after_login).await, app.manifest.bytes);

    let token = mirror.create_token("alice", &[]).await;
    let read_only = mirror.create_token("alice", &["--read-only"]).await;
    let fresh = Skopeo::new();
    let with_token = format!("{}/private/token:1", mirror.host);
    let reader = format!("alice:{read_only}");
    assert!(
        !push_layout(
            &fresh,
            layout.path(),
            &with_token,
            &["--dest-creds", &reader]
        )
        .await,
        "a read-only token cannot push"
    );
    let writer = format!("alice:{token}");
    assert!(
        push_layout(
            &fresh,
            layout.path(),
            &with_token,
            &["--dest-creds", &writer]
        )
        .await
    );
    assert_eq!(fresh.inspect_raw(&with_token).await, app.manifest.bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_platform_index_push_and_delete() {
    let mirror = private_mirror("").await;
    let skopeo = Skopeo::new();
    let multi = Index::new(vec![
        Image::new("amd64", &[("arch", b"amd64\n")]),
        Image::new("arm64", &[("arch", b"arm64\n")]),
    ]);
    let layout = tempfile::tempdir().expect("layout directory");
    multi.write_layout(layout.path(), "push");
    let destination = format!("{}/private/team/multi:latest", mirror.host);
    let creds = creds();
    let args = ["--all", "--dest-creds", creds.as_str()];
    assert!(push_layout(&skopeo, layout.path(), &destination, &args).await);

    assert_eq!(skopeo.inspect_raw(&destination).await, multi.index.bytes);
    let arm = &multi.images[1];
    let arm_copy = tempfile::tempdir().expect("copy directory");
    skopeo
        .copy_to_dir(&destination, arm_copy.path(), &["--override-arch", "arm64"])
        .await
        .assert_success();
    assert_eq!(read(arm_copy.path(), arm.layer.hex()), arm.layer.bytes);
    assert_eq!(read(arm_copy.path(), "manifest.json"), arm.manifest.bytes);

    let reference = format!("docker://{destination}");
    let anonymous = skopeo
        .run(&["delete", "--tls-verify=false", &reference])
        .await;
    anonymous.assert_failure();
    skopeo
        .run(&[
            "delete",
            "--tls-verify=false",
            "--creds",
            &creds,
            &reference,
        ])
        .await
        .assert_success();
    let gone = skopeo
        .run(&["inspect", "--raw", "--tls-verify=false", &reference])
        .await;
    gone.assert_failure();
}

#[tokio::test(flavor = "multi_thread")]
async fn private_names_never_go_upstream() {
    let upstream = Registry::start_open().await;
    let skopeo = Skopeo::new();
    let upstream_image = Image::new("amd64", &[("where", b"upstream\n")]);
    let layout = tempfile::tempdir().expect("layout directory");
    upstream_image.write_layout(layout.path(), "push");
    let on_upstream = format!("{}/private/app:1.0", upstream.host);
    assert!(push_layout(&skopeo, layout.path(), &on_upstream, &[]).await);
    let config = format!(
        "[docker]\ndefault_upstream = \"upstream.test\"\n\
         [docker.upstreams.\"upstream.test\"]\nurl = \"{}\"\n",
        upstream.url()
    );
    let mirror = private_mirror(&config).await;

    let private = format!("docker://{}/private/app:1.0", mirror.host);
    let run = skopeo
        .run(&["inspect", "--raw", "--tls-verify=false", &private])
        .await;
    run.assert_failure();
    let proxied = format!("{}/upstream.test/private/app:1.0", mirror.host);
    let creds = creds();
    let refused = push_run(
        &skopeo,
        layout.path(),
        &proxied,
        &["--dest-creds", creds.as_str()],
    )
    .await;
    assert!(!refused.succeeded(), "a proxied name cannot be pushed to");
    assert!(
        refused.stderr().contains("docker.private_repositories"),
        "the refusal names the setting: {}",
        refused.stderr()
    );
    assert_eq!(
        skopeo.inspect_raw(&proxied).await,
        upstream_image.manifest.bytes,
        "the same name under the upstream's prefix is pulled through, anonymously"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_uploads_resume_and_refuse_bad_input() {
    let mirror = private_mirror("").await;
    let blob = noise(7, 3 << 20);
    let (first, second) = blob.split_at(1 << 20);
    let digest = format!("sha512:{}", hex::encode(Sha512::digest(&blob)));
    let alice = |method: Method, path: &str| {
        mirror
            .request(method, path)
            .basic_auth("alice", Some(PASSWORD))
    };

    let started = alice(Method::POST, "/v2/private/big/blobs/uploads/")
        .send()
        .await
        .expect("start an upload");
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"]
        .to_str()
        .expect("a text Location")
        .to_owned();
    let patch = |range: String, bytes: Vec<u8>| {
        alice(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(bytes)
            .send()
    };
    let reply = patch(format!("0-{}", first.len() - 1), first.to_vec())
        .await
        .expect("first chunk");
    assert_eq!(reply.status(), StatusCode::ACCEPTED);
    assert_eq!(
        reply.headers()["range"],
        format!("0-{}", first.len() - 1).as_str()
    );

    let out_of_order = patch("5-9".to_owned(), b"abcde".to_vec())
        .await
        .expect("a chunk out of order");
    assert_eq!(out_of_order.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let status = alice(Method::GET, &location).send().await.expect("status");
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status.headers()["range"],
        format!("0-{}", first.len() - 1).as_str()
    );

    let end = blob.len() - 1;
    let reply = patch(format!("{}-{end}", first.len()), second.to_vec())
        .await
        .expect("second chunk");
    assert_eq!(reply.headers()["range"], format!("0-{end}").as_str());
    let done = alice(Method::PUT, &format!("{location}?digest={digest}"))
        .send()
        .await
        .expect("finish the upload");
    assert_eq!(done.status(), StatusCode::CREATED);
    assert_eq!(done.headers()["docker-content-digest"], digest.as_str());

    let pulled = mirror
        .get(&format!("/v2/private/big/blobs/{digest}"), &[])
        .await;
    assert_eq!(pulled.status(), StatusCode::OK);
    assert!(
        pulled.bytes().await.expect("blob body") == blob,
        "byte for byte"
    );

    let wrong = format!("sha256:{}", hex::encode(Sha256::digest(b"other")));
    let refused = alice(
        Method::POST,
        &format!("/v2/private/big/blobs/uploads/?digest={wrong}"),
    )
    .body(b"payload".to_vec())
    .send()
    .await
    .expect("a monolithic upload");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let error = json(refused).await;
    assert_eq!(error["errors"][0]["code"], "DIGEST_INVALID");
    let traversal = alice(Method::GET, "/v2/private/%2e%2e/blobs/uploads/x")
        .send()
        .await
        .expect("a response");
    assert!(traversal.status().is_client_error());
}
