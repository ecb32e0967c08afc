//! End to end: the real npm client installs through the `registry-mirror` binary, whose npm
//! upstream is a fixture registry on loopback. Nothing here reaches the internet.
//!
//! The first tests check the fixture against npm alone: if npm could not install from the
//! fixture directly, a failure through the mirror would prove nothing about the mirror.

#![allow(
    clippy::expect_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use tokio::task::JoinSet;

use support::http::{self, Fetched, INSTALL_ACCEPT};
use support::{
    index_js, published, tarball_path, FixtureRegistry, Mirror, Npm, BIG_PACKAGE, CORRUPT_PACKAGE,
};

/// The project's direct dependencies.
const APP_DEPENDENCIES: [(&str, &str); 2] =
    [("fixture-app-dep-a", "^1.0.0"), ("@fixture/c", "^1.0.0")];

/// What npm must install for [`APP_DEPENDENCIES`]: both depend on `fixture-b@^1.0.0`,
/// whose latest is 1.1.0.
const APP_TREE: [(&str, &str); 3] = [
    ("fixture-app-dep-a", "1.0.0"),
    ("@fixture/c", "1.0.0"),
    ("fixture-b", "1.1.0"),
];

#[tokio::test(flavor = "multi_thread")]
async fn fixture_registry_is_installable_by_npm_directly() {
    let upstream = FixtureRegistry::start().await;
    let npm = Npm::new(&upstream.registry_url());
    npm.write_dependencies(&APP_DEPENDENCIES);

    npm.install(&[]).await.assert_success();
    assert_installed_from(&npm, &upstream.registry_url());

    let tampered = npm.install(&[CORRUPT_PACKAGE]).await;
    tampered.assert_failure();
    assert!(tampered.mentions("EINTEGRITY"), "{tampered}");

    upstream.set_tarball_corruption(false);
    let repaired = npm.install(&[CORRUPT_PACKAGE, BIG_PACKAGE]).await;
    repaired.assert_success();
}

#[tokio::test(flavor = "multi_thread")]
async fn fixture_registry_revalidates_counts_and_stops() {
    let mut upstream = FixtureRegistry::start().await;
    let client = http::client();
    let escaped = upstream.url_of("/@fixture%2fc");

    let first = http::get(&client, &escaped, &[]).await;
    assert_eq!(first.json()["name"], "@fixture/c", "GET {escaped}");
    let etag = first.header("etag");
    let again = http::get(&client, &escaped, &[("if-none-match", etag)]).await;
    assert_eq!(again.status, 304, "GET {escaped} with If-None-Match {etag}");
    let unescaped = http::get(&client, &upstream.url_of("/@fixture/c"), &[]).await;
    assert_eq!(*unescaped.ok_body(), first.body.expect("packument body"));
    assert_eq!(upstream.requests("/@fixture/c"), 3);

    upstream.stop().await;
    let refused = client.get(&escaped).send().await;
    assert!(refused.is_err(), "a stopped fixture answered: {refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_install_resolves_everything_from_the_mirror() {
    let mut upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;
    let mut npm = Npm::new(&mirror.npm_registry());
    npm.write_dependencies(&APP_DEPENDENCIES);

    npm.install(&[]).await.assert_success();
    assert_installed_from(&npm, &mirror.npm_registry());
    assert_packument_is_cached(&mirror, "fixture-b").await;

    // With upstream gone and npm's own cache empty, only the mirror's cache can answer.
    upstream.stop().await;
    npm.start_over_with_empty_cache();
    npm.install(&[]).await.assert_success();
    assert_installed_from(&npm, &mirror.npm_registry());
    assert_packument_is_cached(&mirror, "fixture-b").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_for_one_uncached_tarball_make_one_upstream_request() {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;
    let tarball_url = tarball_url_on_mirror(&mirror, BIG_PACKAGE, "1.0.0").await;

    let responses = get_concurrently(&tarball_url, 20).await;

    let expected = &published(BIG_PACKAGE, "1.0.0").tarball;
    for response in &responses {
        response.assert_reports_cache_status();
        let body = response.ok_body();
        assert!(
            body == expected,
            "{} bytes, not the published {}",
            body.len(),
            expected.len()
        );
    }
    let tarball_requests = upstream.requests(&tarball_path(BIG_PACKAGE, "1.0.0"));
    assert_eq!(
        tarball_requests, 1,
        "upstream requests for 20 concurrent clients"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tarball_not_matching_integrity_fails_the_client_and_is_not_cached() {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;
    let npm = Npm::new(&mirror.npm_registry());

    npm.install(&[CORRUPT_PACKAGE]).await.assert_failure();
    let tarball_url = tarball_url_on_mirror(&mirror, CORRUPT_PACKAGE, "1.0.0").await;
    let tampered = mirror.npm_get_url(&tarball_url, &[]).await;
    let served = tampered.describe_body();
    assert!(
        !tampered.is_complete_success(),
        "served a tampered tarball whole: {served}"
    );

    // Had the mirror kept the tampered bytes, it would not ask upstream again.
    let upstream_path = tarball_path(CORRUPT_PACKAGE, "1.0.0");
    let requests_before = upstream.requests(&upstream_path);
    upstream.set_tarball_corruption(false);
    let repaired = mirror.npm_get_url(&tarball_url, &[]).await;
    assert!(*repaired.ok_body() == published(CORRUPT_PACKAGE, "1.0.0").tarball);
    assert_eq!(upstream.requests(&upstream_path), requests_before + 1);
    npm.install(&[CORRUPT_PACKAGE]).await.assert_success();
}

#[tokio::test(flavor = "multi_thread")]
async fn scoped_packages_answer_under_both_name_encodings() {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;

    for path in ["@fixture%2fc", "@fixture/c"] {
        let packument = mirror.npm_get(path, &[]).await.ok_json();
        assert_eq!(packument["name"], "@fixture/c", "GET /npm/{path}");

        let tarball_url = tarball_url(&packument, "1.0.0");
        assert_under(tarball_url, &mirror.npm_registry(), "@fixture/c tarball");
        let tarball = mirror.npm_get_url(tarball_url, &[]).await;
        assert!(
            *tarball.ok_body() == published("@fixture/c", "1.0.0").tarball,
            "{tarball_url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn abbreviated_packument_keeps_its_media_type() {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;

    let fetched = mirror
        .npm_get("fixture-b", &[("accept", INSTALL_ACCEPT)])
        .await;

    let packument = fetched.ok_json();
    let content_type = fetched.header("content-type");
    assert!(
        content_type.starts_with("application/vnd.npm.install-v1+json"),
        "{content_type}"
    );
    assert_eq!(packument["dist-tags"]["latest"], "1.1.0");
    for version in ["1.0.0", "1.1.0"] {
        assert_under(
            tarball_url(&packument, version),
            &mirror.npm_registry(),
            version,
        );
        let integrity = &packument["versions"][version]["dist"]["integrity"];
        assert_eq!(
            *integrity,
            published("fixture-b", version).integrity(),
            "{version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_packument_is_rewritten_for_each_host() {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;

    for (host, cache_status) in [
        ("mirror-a.test:1111", "MISS"),
        ("mirror-b.test:2222", "HIT"),
    ] {
        let fetched = mirror.npm_get("fixture-b", &[("host", host)]).await;
        let packument = fetched.ok_json();
        assert_eq!(
            fetched.cache_status(),
            cache_status,
            "request with Host {host}"
        );
        let registry = format!("http://{host}/npm/");
        assert_under(tarball_url(&packument, "1.1.0"), &registry, "tarball");
    }
    assert_eq!(
        upstream.requests("/fixture-b"),
        1,
        "upstream packument requests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_package_is_a_json_404() {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;

    let fetched = mirror.npm_get("fixture-does-not-exist", &[]).await;

    assert_eq!(fetched.status, 404, "{}", fetched.describe_body());
    let error = &fetched.json()["error"];
    assert!(error.is_string(), "{}", fetched.describe_body());
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_answers_200() {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;

    let fetched = mirror.get("/healthz", &[]).await;

    assert_eq!(fetched.status, 200, "{}", fetched.describe_body());
}

/// The lockfile holds exactly [`APP_TREE`], each resolved to a tarball under `registry` with
/// the integrity upstream published, and `node_modules` holds each package's files.
fn assert_installed_from(npm: &Npm, registry: &str) {
    let lockfile = npm.lockfile();
    let packages = lockfile["packages"]
        .as_object()
        .expect("lockfile `packages`");
    let locked: BTreeSet<&str> = packages.keys().map(String::as_str).collect();
    let expected: BTreeSet<String> = APP_TREE
        .map(|(name, _)| format!("node_modules/{name}"))
        .into();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).chain([""]).collect();
    assert_eq!(locked, expected, "packages in package-lock.json");

    for (name, version) in APP_TREE {
        let entry = &packages[&format!("node_modules/{name}")];
        assert_locked(entry, name, version, registry);
        assert_unpacked(npm, name, version);
    }
}

fn assert_locked(entry: &Value, name: &str, version: &str, registry: &str) {
    assert_eq!(entry["version"], version, "locked version of {name}");

    let resolved = entry["resolved"].as_str().unwrap_or_default();
    assert_under(resolved, registry, &format!("resolved URL of {name}"));
    let tarball = tarball_path(name, version);
    let file = tarball.rsplit('/').next().unwrap_or_default();
    assert!(
        resolved.ends_with(&format!("/-/{file}")),
        "{name} resolved to {resolved}"
    );
    let integrity = published(name, version).integrity();
    assert_eq!(entry["integrity"], integrity, "integrity of {name}");
}

fn assert_unpacked(npm: &Npm, name: &str, version: &str) {
    let index = npm
        .project()
        .join("node_modules")
        .join(name)
        .join("index.js");
    let contents = std::fs::read_to_string(&index)
        .unwrap_or_else(|error| panic!("read {}: {error}", index.display()));
    assert_eq!(contents, index_js(name, version), "{}", index.display());
}

fn assert_under(url: &str, base: &str, what: &str) {
    assert!(
        url.starts_with(base),
        "{what} is at {url:?}, not under {base}"
    );
}

/// A packument already requested (by npm) is answered from the cache.
async fn assert_packument_is_cached(mirror: &Mirror, name: &str) {
    let fetched = mirror.npm_get(name, &[("accept", INSTALL_ACCEPT)]).await;

    fetched.ok_body();
    assert_eq!(
        fetched.cache_status(),
        "HIT",
        "repeated request for the {name} packument"
    );
}

/// The tarball URL of `name@version` in the packument the mirror serves, checked to be on
/// the mirror.
async fn tarball_url_on_mirror(mirror: &Mirror, name: &str, version: &str) -> String {
    let packument = mirror.npm_get(name, &[]).await.ok_json();

    let url = tarball_url(&packument, version);
    assert_under(
        url,
        &mirror.npm_registry(),
        &format!("{name}@{version} tarball"),
    );
    url.to_owned()
}

fn tarball_url<'a>(packument: &'a Value, version: &str) -> &'a str {
    let url = &packument["versions"][version]["dist"]["tarball"];
    url.as_str().unwrap_or_default()
}

async fn get_concurrently(url: &str, count: usize) -> Vec<Fetched> {
    let client = http::client();
    let mut requests = JoinSet::new();
    for _ in 0..count {
        let client = client.clone();
        let url = url.to_owned();
        requests.spawn(async move { http::get(&client, &url, &[]).await });
    }
    requests.join_all().await
}
