//! End to end: the real mvn resolves artifacts through the `registry-mirror` binary's
//! `public` group, whose `central` proxy reads a fixture repository on loopback (which also
//! serves Debian's packaged Maven plugins, so that mvn can run its own plugins). Nothing
//! here reaches the internet.

#![allow(
    clippy::expect_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

#[allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of the shared support"
)]
mod support;

#[allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of the Maven support"
)]
mod maven_support;

use maven_support::artifacts::{jar, Coordinates, CORRUPT, GREETING};
use maven_support::{mirror_config, FixtureRepository, Mvn};
use support::Mirror;

/// Serves `coordinates` (jar, pom, their `.sha1` files and the listing) from `upstream`.
fn publish(upstream: &FixtureRepository, coordinates: &Coordinates) -> Vec<u8> {
    let jar = jar(coordinates);
    upstream.put_with_sha1(&coordinates.file("jar"), &jar);
    upstream.put_with_sha1(&coordinates.file("pom"), coordinates.pom().as_bytes());
    upstream.put_with_sha1(&coordinates.listing(), coordinates.metadata().as_bytes());
    jar
}

async fn start() -> (FixtureRepository, Mirror) {
    let upstream = FixtureRepository::start().await;
    let mirror =
        Mirror::start_with_config("http://127.0.0.1:9/", &mirror_config(upstream.url())).await;
    (upstream, mirror)
}

#[tokio::test(flavor = "multi_thread")]
async fn mvn_resolves_through_the_mirror_and_then_from_its_cache_alone() {
    let (mut upstream, mirror) = start().await;
    let expected = publish(&upstream, &GREETING);
    let mut mvn = Mvn::new(mirror.url(), None);

    mvn.dependency_get(&GREETING.gav()).await.assert_success();
    let resolved = std::fs::read(mvn.local_file(&GREETING.file("jar"))).expect("the resolved jar");
    assert_eq!(resolved, expected, "mvn got the upstream jar");
    assert_eq!(upstream.requests(&GREETING.file("jar")), 1);

    let head = mirror
        .get(&format!("/maven/public/{}", GREETING.file("jar")), &[])
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.cache_status(), "HIT");

    upstream.stop().await;
    mvn.fresh_local_repository();
    let offline = mvn.dependency_get(&GREETING.gav()).await;
    offline.assert_success();
    let resolved = std::fs::read(mvn.local_file(&GREETING.file("jar"))).expect("the jar again");
    assert_eq!(
        resolved, expected,
        "served from the mirror's cache with upstream gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jar_not_matching_its_upstream_sha1_is_refused_and_not_cached() {
    let (upstream, mirror) = start().await;
    let good = publish(&upstream, &CORRUPT);
    let mut tampered = good.clone();
    tampered.extend_from_slice(b"tampered");
    upstream.put(&CORRUPT.file("jar"), tampered);
    let mvn = Mvn::new(mirror.url(), None);

    let refused = mvn.dependency_get(&CORRUPT.gav()).await;
    refused.assert_failure();
    assert!(refused.mentions("502"), "{refused}");
    assert!(
        !mvn.local_file(&CORRUPT.file("jar")).exists(),
        "mvn stored no jar"
    );

    let path = format!("/maven/central/{}", CORRUPT.file("jar"));
    let direct = mirror.get(&path, &[]).await;
    assert_eq!(direct.status, 502, "{}", direct.describe_body());
    let fetched_before = upstream.requests(&CORRUPT.file("jar"));
    assert!(
        fetched_before >= 2,
        "each request asked upstream again: nothing was cached"
    );

    upstream.put(&CORRUPT.file("jar"), good.clone());
    let repaired = mirror.get(&path, &[]).await;
    assert_eq!(repaired.status, 200);
    assert_eq!(repaired.ok_body().as_ref(), good.as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn unsafe_paths_get_a_plain_text_400_and_reach_no_upstream() {
    let (upstream, mirror) = start().await;
    for raw in [
        "/maven/central/org/../../etc/passwd",
        "/maven/central/org/%2e%2e/x.jar",
    ] {
        let answer = raw_get(mirror.url(), raw).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw}: {answer}");
        assert!(answer.contains("invalid path"), "{raw}: {answer}");
    }
    for path in [
        "/maven/public/org/x%2f..%2fy/1/y-1.jar",
        "/maven/public/org/x%5cy/1/y-1.jar",
        "/maven/public/org/x%0d%0ay/1/y-1.jar",
    ] {
        let refused = mirror.get(path, &[]).await;
        assert_eq!(refused.status, 400, "{path}: {}", refused.describe_body());
        assert!(
            refused.header("content-type").starts_with("text/plain"),
            "{path}"
        );
        assert!(refused.describe_body().contains("invalid path"), "{path}");
    }
    let long = format!("/maven/public/{}x.jar", "a/".repeat(600));
    assert_eq!(mirror.get(&long, &[]).await.status, 400);
    assert_eq!(
        mirror.get("/maven/nowhere/a/b/1/b-1.jar", &[]).await.status,
        404
    );
    assert_eq!(upstream.requests("etc/passwd"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_sends_the_configured_credentials_upstream() {
    let upstream = FixtureRepository::start().await;
    let expected = publish(&upstream, &GREETING);
    upstream.require_basic_auth("reader", "upstream-secret");
    let config = format!(
        "{}username = \"reader\"\npassword = \"upstream-secret\"\n\
         [maven.repositories.anonymous]\nkind = \"proxy\"\nurl = \"{}\"\n",
        mirror_config(upstream.url()),
        upstream.url()
    );
    let mirror = Mirror::start_with_config("http://127.0.0.1:9/", &config).await;

    let jar = mirror
        .get(&format!("/maven/central/{}", GREETING.file("jar")), &[])
        .await;
    assert_eq!(jar.ok_body().as_ref(), expected.as_slice());
    let refused = mirror
        .get(&format!("/maven/anonymous/{}", GREETING.file("jar")), &[])
        .await;
    assert_eq!(refused.status, 502, "{}", refused.describe_body());
}

/// GETs `path` exactly as written (an HTTP client would resolve `..` itself) and returns
/// the whole answer as text.
async fn raw_get(base: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the mirror");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .expect("read the answer");
    String::from_utf8_lossy(&answer).into_owned()
}
