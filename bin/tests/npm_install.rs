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

    let corrupt = npm.install(&[CORRUPT_PACKAGE]).await;
    corrupt.assert_failure();
    assert!(
        corrupt.mentions("EINTEGRITY"),
        "npm should reject the tampered tarball: {corrupt}"
    );

    upstream.set_tarball_corruption(false);
    npm.install(&[CORRUPT_PACKAGE, BIG_PACKAGE])
        .await
        .assert_success();
}

#[tokio::test(flavor = "multi_thread")]
async fn fixture_registry_revalidates_counts_and_stops() {
    let mut upstream = FixtureRegistry::start().await;
    let client = http::client();
    let escaped = upstream.url_of("/@fixture%2fc");

    let first = http::get(&client, &escaped, &[]).await;
    let etag = first.header("etag").to_owned();
    assert_eq!(
        first.json()["name"],
        "@fixture/c",
        "{}",
        first.describe_body()
    );
    let again = http::get(&client, &escaped, &[("if-none-match", &etag)]).await;
    assert_eq!(
        again.status,
        304,
        "If-None-Match {etag}: {}",
        again.describe_body()
    );
    http::get(&client, &upstream.url_of("/@fixture/c"), &[])
        .await
        .ok_body();
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
            "GET {tarball_url}: {} bytes unlike the {} published",
            body.len(),
            expected.len()
        );
    }
    let upstream_requests = upstream.requests(&tarball_path(BIG_PACKAGE, "1.0.0"));
    assert_eq!(
        upstream_requests, 1,
        "upstream requests for the tarball, for 20 concurrent clients"
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
    assert!(
        !tampered.is_complete_success(),
        "the mirror served a whole tarball that fails its integrity: {}",
        tampered.describe_body()
    );

    // Had the mirror kept the tampered bytes, it would not ask upstream again.
    let upstream_path = tarball_path(CORRUPT_PACKAGE, "1.0.0");
    let requests_before = upstream.requests(&upstream_path);
    upstream.set_tarball_corruption(false);
    let repaired = mirror.npm_get_url(&tarball_url, &[]).await;
    assert!(
        *repaired.ok_body() == published(CORRUPT_PACKAGE, "1.0.0").tarball,
        "{}",
        repaired.describe_body()
    );
    assert_eq!(
        upstream.requests(&upstream_path),
        requests_before + 1,
        "upstream requests"
    );
    npm.install(&[CORRUPT_PACKAGE]).await.assert_success();
}

#[tokio::test(flavor = "multi_thread")]
async fn scoped_packages_answer_under_both_name_encodings() {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start(&upstream.registry_url()).await;

    for path in ["@fixture%2fc", "@fixture/c"] {
        let fetched = mirror.npm_get(path, &[]).await;
        fetched.ok_body();
        let packument = fetched.json();
        assert_eq!(packument["name"], "@fixture/c", "GET /npm/{path}");

        let tarball_url = dist_of(&packument, "1.0.0")["tarball"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            tarball_url.starts_with(&mirror.npm_registry()),
            "GET /npm/{path}: tarball at {tarball_url}"
        );
        let tarball = mirror.npm_get_url(&tarball_url, &[]).await;
        assert!(
            *tarball.ok_body() == published("@fixture/c", "1.0.0").tarball,
            "GET {tarball_url}"
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

    fetched.ok_body();
    let content_type = fetched.header("content-type");
    assert!(
        content_type.starts_with("application/vnd.npm.install-v1+json"),
        "content-type {content_type:?}"
    );
    let packument = fetched.json();
    assert_eq!(packument["dist-tags"]["latest"], "1.1.0");
    for version in ["1.0.0", "1.1.0"] {
        let dist = dist_of(&packument, version);
        let tarball_url = dist["tarball"].as_str().unwrap_or_default();
        assert!(
            tarball_url.starts_with(&mirror.npm_registry()),
            "{version} tarball at {tarball_url}"
        );
        assert_eq!(
            dist["integrity"],
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
        fetched.ok_body();
        assert_eq!(
            fetched.cache_status(),
            cache_status,
            "request with Host {host}"
        );

        let packument = fetched.json();
        let tarball_url = dist_of(&packument, "1.1.0")["tarball"]
            .as_str()
            .unwrap_or_default();
        let expected = format!("http://{host}/npm/");
        assert!(
            tarball_url.starts_with(&expected),
            "Host {host}: tarball at {tarball_url}"
        );
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
    assert!(
        fetched.json()["error"].is_string(),
        "{}",
        fetched.describe_body()
    );
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
        .expect("package-lock.json has `packages`");
    let locked: BTreeSet<String> = packages
        .keys()
        .filter(|key| !key.is_empty())
        .cloned()
        .collect();
    let expected: BTreeSet<String> = APP_TREE
        .iter()
        .map(|(name, _)| format!("node_modules/{name}"))
        .collect();
    assert_eq!(locked, expected, "packages in package-lock.json");

    for (name, version) in APP_TREE {
        assert_locked(
            &packages[&format!("node_modules/{name}")],
            name,
            version,
            registry,
        );
        assert_unpacked(npm, name, version);
    }
}

fn assert_locked(entry: &Value, name: &str, version: &str, registry: &str) {
    assert_eq!(entry["version"], version, "locked version of {name}");

    let resolved = entry["resolved"].as_str().unwrap_or_default();
    let tarball = tarball_path(name, version);
    let file = tarball.rsplit('/').next().unwrap_or_default();
    assert!(
        resolved.starts_with(registry) && resolved.ends_with(&format!("/-/{file}")),
        "{name} is locked to {resolved:?}, not to {file} under {registry}"
    );
    assert_eq!(
        entry["integrity"],
        published(name, version).integrity(),
        "integrity of {name}"
    );
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

/// A packument already requested (by npm) is answered from the cache.
async fn assert_packument_is_cached(mirror: &Mirror, name: &str) {
    let fetched = mirror.npm_get(name, &[("accept", INSTALL_ACCEPT)]).await;

    fetched.ok_body();
    assert_eq!(
        fetched.cache_status(),
        "HIT",
        "a repeated request for the {name} packument"
    );
}

/// The tarball URL the mirror's packument gives for `name@version`, checked to be on the mirror.
async fn tarball_url_on_mirror(mirror: &Mirror, name: &str, version: &str) -> String {
    let fetched = mirror.npm_get(name, &[]).await;
    fetched.ok_body();

    let tarball_url = dist_of(&fetched.json(), version)["tarball"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        tarball_url.starts_with(&mirror.npm_registry()),
        "{name}@{version} tarball at {tarball_url:?}"
    );
    tarball_url
}

fn dist_of<'a>(packument: &'a Value, version: &str) -> &'a Value {
    &packument["versions"][version]["dist"]
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
