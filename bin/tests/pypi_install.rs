//! End to end: real pip and uv install through the `registry-mirror` binary, whose PyPI
//! upstream is a fixture index on loopback speaking HTML or JSON. Nothing here reaches the
//! internet.
//!
//! The first test checks the fixture against pip alone: if pip could not install from the
//! fixture directly, a failure through the mirror would prove nothing about the mirror.

#![allow(
    clippy::expect_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

mod pypi_support;

use pypi_support::dists::{self, APP, APP_TREE, CORRUPT, NEVER_DOWNLOADED};
use pypi_support::http;
use pypi_support::{FixtureIndex, Mode, PypiMirror, Venv};

/// The `Accept` header pip sends for index pages.
const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
     application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

/// Imports every installed package and prints the versions their code says.
const IMPORT_ALL: &str = "import fixture_app, fixture_dep, fixture_sdist_only; \
     print(fixture_app.VERSION, fixture_dep.VERSION, fixture_sdist_only.VERSION)";

/// The files an install of [`APP`] downloads: two wheels with their PEP 658 metadata, and
/// the sdist it builds.
const NEEDED_FILES: [&str; 5] = [
    "fixture_app-1.0.0-py3-none-any.whl",
    "fixture_app-1.0.0-py3-none-any.whl.metadata",
    "fixture_dep-1.1.0-py3-none-any.whl",
    "fixture_dep-1.1.0-py3-none-any.whl.metadata",
    "fixture_sdist_only-2.0.0.tar.gz",
];

#[tokio::test(flavor = "multi_thread")]
async fn fixture_index_is_installable_by_pip_directly() {
    let index = FixtureIndex::start(Mode::Html).await;
    let venv = Venv::with_pip().await;

    venv.pip_install(&index.simple_url(), &[APP])
        .await
        .assert_success();
    assert_app_installed(&venv).await;

    let tampered = venv.pip_install(&index.simple_url(), &[CORRUPT]).await;
    tampered.assert_failure();
    assert!(tampered.mentions("DO NOT MATCH THE HASHES"), "{tampered}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pip_and_uv_install_through_the_mirror_from_an_html_index() {
    install_through_the_mirror(Mode::Html).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pip_and_uv_install_through_the_mirror_from_a_json_index() {
    install_through_the_mirror(Mode::Json).await;
}

/// pip, then uv, install from a mirror of `mode`'s index; then both again, each into a
/// fresh environment, with the index stopped.
async fn install_through_the_mirror(mode: Mode) {
    let mut index = FixtureIndex::start(mode).await;
    let mirror = PypiMirror::start(&index.simple_url(), &index.files_url()).await;

    let pip = Venv::with_pip().await;
    pip.pip_install(&mirror.index_url(), &[APP])
        .await
        .assert_success();
    assert_app_installed(&pip).await;
    assert_fetched_once_each(&index);

    let uv = Venv::bare().await;
    uv.uv_install(&mirror.index_url(), &[APP])
        .await
        .assert_success();
    assert_app_installed(&uv).await;
    assert_fetched_once_each(&index);
    assert_only_the_mirror_asked(&index);

    // With upstream gone and no client cache, only the mirror's cache can answer.
    index.stop().await;
    let pip = Venv::with_pip().await;
    pip.pip_install(&mirror.index_url(), &[APP])
        .await
        .assert_success();
    assert_app_installed(&pip).await;
    let uv = Venv::bare().await;
    uv.uv_install(&mirror.index_url(), &[APP])
        .await
        .assert_success();
    assert_app_installed(&uv).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wheel_not_matching_its_sha256_is_refused_and_not_cached() {
    let index = FixtureIndex::start(Mode::Json).await;
    let mirror = PypiMirror::start(&index.simple_url(), &index.files_url()).await;
    let venv = Venv::with_pip().await;
    let wheel = dists::dist("fixture_corrupt-1.0.0-py3-none-any.whl");

    venv.pip_install(&mirror.index_url(), &[CORRUPT])
        .await
        .assert_failure();
    let url = format!(
        "{}/pypi/files/fixture-corrupt/{}",
        mirror.url(),
        wheel.filename
    );
    let tampered = http::get(&url, &[]).await;
    assert!(
        !tampered.is_complete_success(),
        "served a tampered wheel whole: {}",
        tampered.describe()
    );

    // Had the mirror kept the tampered bytes, it would not ask upstream again.
    let downloads_before = index.downloads(&wheel.filename);
    index.set_corruption(false);
    let repaired = http::get(&url, &[]).await;
    assert!(
        *repaired.ok_body() == wheel.bytes,
        "{}",
        repaired.describe()
    );
    assert_eq!(repaired.header("x-cache-status"), "MISS");
    assert_eq!(index.downloads(&wheel.filename), downloads_before + 1);
    venv.pip_install(&mirror.index_url(), &[CORRUPT])
        .await
        .assert_success();
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_pages_negotiate_redirect_and_link_the_mirror() {
    let index = FixtureIndex::start(Mode::Json).await;
    let mirror = PypiMirror::start(&index.simple_url(), &index.files_url()).await;
    let simple = mirror.index_url();
    let files = format!("{}/pypi/files/fixture-dep/", mirror.url());

    let moved = http::get(&format!("{simple}Fixture_Dep"), &[]).await;
    assert_eq!(moved.status, 301, "{}", moved.describe());
    assert_eq!(moved.header("location"), format!("{simple}fixture-dep/"));
    assert_eq!(moved.header("vary"), "Accept");

    let json = http::get(&format!("{simple}fixture-dep/"), &[("accept", PIP_ACCEPT)]).await;
    assert_eq!(
        json.header("content-type"),
        "application/vnd.pypi.simple.v1+json"
    );
    assert_eq!(json.header("vary"), "Accept");
    assert_eq!(json.header("x-cache-status"), "MISS");
    assert_pep_691_page(&json.ok_json(), &files);

    let html = http::get(&format!("{simple}fixture-dep/"), &[("accept", "text/html")]).await;
    assert_eq!(html.header("x-cache-status"), "HIT");
    assert_pep_503_page(&html.ok_text(), &files);

    let root = http::get(&simple, &[("accept", PIP_ACCEPT)])
        .await
        .ok_json();
    let names: Vec<&str> = root["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["fixture-app", "fixture-dep", "fixture-sdist-only", CORRUPT]
    );

    let wheel = dists::dist("fixture_dep-1.1.0-py3-none-any.whl");
    let metadata = http::get(&format!("{files}{}.metadata", wheel.filename), &[]).await;
    assert_eq!(Some(metadata.ok_body()), wheel.metadata.as_ref());
    assert_eq!(index.requests("/simple/fixture-dep/"), 1);
}

/// The JSON page lists every file of `fixture-dep` at the mirror with what PEP 691, 592,
/// 658 / 714 and 700 say about it.
fn assert_pep_691_page(page: &serde_json::Value, files_base: &str) {
    let api_version = page["meta"]["api-version"].as_str().unwrap_or_default();
    assert!(api_version.starts_with("1."), "{page}");
    assert_eq!(page["name"], "fixture-dep");
    let listed = page["files"].as_array().expect("files");
    let expected: Vec<_> = dists::catalogue()
        .iter()
        .filter(|d| d.project == "fixture-dep")
        .collect();
    assert_eq!(listed.len(), expected.len(), "{page}");
    for (file, dist) in listed.iter().zip(expected) {
        assert_eq!(file["filename"], dist.filename.as_str());
        assert_eq!(file["url"], format!("{files_base}{}", dist.filename));
        assert_eq!(file["hashes"]["sha256"], dist.sha256());
        assert_eq!(file["requires-python"].as_str(), dist.requires_python);
        assert_eq!(file["yanked"].as_str(), dist.yanked);
        let metadata = file["core-metadata"]["sha256"].as_str();
        assert_eq!(metadata, dist.metadata_sha256().as_deref());
        assert_eq!(file["size"], dist.bytes.len());
    }
}

fn assert_pep_503_page(page: &str, files_base: &str) {
    for dist in dists::catalogue()
        .iter()
        .filter(|d| d.project == "fixture-dep")
    {
        let href = format!(
            "href=\"{files_base}{}#sha256={}\"",
            dist.filename,
            dist.sha256()
        );
        assert!(page.contains(&href), "{href} in {page}");
    }
    assert!(page.contains("data-requires-python=\"&gt;=4\""), "{page}");
    assert!(page.contains("data-yanked=\"broken release\""), "{page}");
    assert!(page.contains("data-core-metadata=\"sha256="), "{page}");
}

/// [`APP_TREE`] is installed, and its code imports and says which version it is.
async fn assert_app_installed(venv: &Venv) {
    let installed = venv.installed();
    let expected = APP_TREE
        .iter()
        .map(|(name, version)| ((*name).to_owned(), (*version).to_owned()))
        .collect();
    assert_eq!(installed, expected, "installed distributions");

    let imported = venv.python(IMPORT_ALL).await;
    imported.assert_success();
    assert!(imported.mentions("1.0.0 1.1.0 2.0.0"), "{imported}");
}

/// Each file the install needed reached upstream exactly once (later installs were served
/// from the mirror's cache), and the files a correct client skips never did.
fn assert_fetched_once_each(index: &FixtureIndex) {
    for file in NEEDED_FILES {
        assert_eq!(index.downloads(file), 1, "upstream downloads of {file}");
    }
    for file in NEVER_DOWNLOADED {
        assert_eq!(index.downloads(file), 0, "upstream downloads of {file}");
    }
    for project in ["fixture-app", "fixture-dep", "fixture-sdist-only"] {
        let page = format!("/simple/{project}/");
        assert_eq!(index.requests(&page), 1, "upstream requests for {page}");
    }
}

/// No client reached the fixture itself: every request came from the mirror.
fn assert_only_the_mirror_asked(index: &FixtureIndex) {
    let agents = index.user_agents();
    assert!(
        agents.iter().all(|a| a.starts_with("registry-mirror/")),
        "user agents that reached upstream: {agents:?}"
    );
}
