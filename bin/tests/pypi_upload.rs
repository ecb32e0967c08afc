//! End to end: real twine uploads private packages to the `registry-mirror` binary and real
//! pip installs them back, while the same mirror proxies a fixture index on loopback that
//! stands in for the public one. Users and tokens are made with the binary's own CLI
//! against the running server's data directory. Nothing here reaches the internet.

#![allow(
    clippy::expect_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

#[allow(
    dead_code,
    reason = "pypi_support also serves pypi_install.rs, which uses what this file does not"
)]
mod pypi_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use pypi_support::dists::{self, Dist};
use pypi_support::http;
use pypi_support::python::twine_upload;
use pypi_support::{FixtureIndex, Mode, PypiMirror, Venv};
use tempfile::TempDir;

/// The `Accept` header pip sends for index pages.
const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
     application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
const PASSWORD: &str = "correct horse battery";
/// The private project; it needs `fixture-dep`, which only the upstream index has.
const PRIVATE: &str = "fixture-private";

#[tokio::test(flavor = "multi_thread")]
async fn twine_uploads_a_private_package_that_pip_installs() {
    let index = FixtureIndex::start(Mode::Json).await;
    let mirror = PypiMirror::start(&index.simple_url(), &index.files_url()).await;
    mirror
        .cli(&["user", "add", "alice", "--password", PASSWORD])
        .await;
    let wheel = dists::wheel(PRIVATE, "1.0.0", Some(">=3.7"), &["fixture-dep>=1.0"]);
    let sdist = dists::sdist(PRIVATE, "1.0.0");
    let (_dir, files) = on_disk(&[&wheel, &sdist]);

    twine_upload(&upload_url(&mirror), ("alice", PASSWORD), &files)
        .await
        .assert_success();
    assert_private_page(&mirror, &[&wheel, &sdist]).await;

    // The wheel, with its public dependency through the same mirror.
    let venv = Venv::with_pip().await;
    venv.pip_install(&mirror.index_url(), &[PRIVATE])
        .await
        .assert_success();
    assert_eq!(
        venv.installed(),
        versions(&[(PRIVATE, "1.0.0"), ("fixture-dep", "1.1.0")])
    );
    assert_imports(&venv, "fixture_private", "1.0.0").await;

    // The sdist, built by pip from what was uploaded.
    let from_source = Venv::with_pip().await;
    let built = from_source
        .pip_install(&mirror.index_url(), &["--no-binary", PRIVATE, PRIVATE])
        .await;
    built.assert_success();
    assert!(built.mentions(&sdist.filename), "{built}");
    assert_imports(&from_source, "fixture_private", "1.0.0").await;
    assert_eq!(
        index.requests("/simple/fixture-private/"),
        1,
        "one upstream check"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn re_uploads_bad_credentials_and_upstream_names_are_refused() {
    let index = FixtureIndex::start(Mode::Json).await;
    let mirror = PypiMirror::start(&index.simple_url(), &index.files_url()).await;
    mirror
        .cli(&["user", "add", "alice", "--password", PASSWORD])
        .await;
    let read_only = mirror
        .cli(&["token", "create", "--user", "alice", "--read-only"])
        .await;
    let first = dists::wheel(PRIVATE, "1.0.0", None, &[]);
    let (_first_dir, first_files) = on_disk(&[&first]);
    twine_upload(&upload_url(&mirror), ("alice", PASSWORD), &first_files)
        .await
        .assert_success();

    // The same file name with other bytes: refused, and the stored file is the first one.
    let changed = dists::wheel(PRIVATE, "1.0.0", None, &["fixture-dep"]);
    assert_eq!(changed.filename, first.filename);
    assert_ne!(changed.bytes, first.bytes);
    let (_changed_dir, changed_files) = on_disk(&[&changed]);
    let again = twine_upload(&upload_url(&mirror), ("alice", PASSWORD), &changed_files).await;
    again.assert_failure();
    assert!(again.mentions("File already exists"), "{again}");
    let url = format!("{}/pypi/files/{PRIVATE}/{}", mirror.url(), first.filename);
    assert!(*http::get(&url, &[]).await.ok_body() == first.bytes);

    let wrong = twine_upload(&upload_url(&mirror), ("alice", "wrong"), &changed_files).await;
    wrong.assert_failure();
    assert!(wrong.mentions("401"), "{wrong}");
    let token = ("__token__", read_only.as_str());
    let read_only = twine_upload(&upload_url(&mirror), token, &changed_files).await;
    read_only.assert_failure();
    assert!(read_only.mentions("403"), "{read_only}");
    assert_anonymous_upload_refused(&mirror, &changed).await;

    // A name the upstream index has must not be taken over by an upload.
    let app = dists::wheel("fixture-app", "9.9.9", None, &[]);
    let (_app_dir, app_files) = on_disk(&[&app]);
    let taken = twine_upload(&upload_url(&mirror), ("alice", PASSWORD), &app_files).await;
    taken.assert_failure();
    assert!(taken.mentions("exists on the upstream index"), "{taken}");
    let page = http::get(
        &format!("{}fixture-app/", mirror.index_url()),
        &[("accept", PIP_ACCEPT)],
    )
    .await
    .ok_json();
    assert_eq!(
        filenames(&page),
        ["fixture_app-1.0.0-py3-none-any.whl"],
        "still the upstream's page"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_project_allowed_to_shadow_an_upstream_one_serves_only_its_own_files() {
    let index = FixtureIndex::start(Mode::Json).await;
    let rule = "[[auth.rules]]\necosystem = \"pypi\"\npattern = \"fixture-sdist-only\"\n\
                publish_over_upstream = true\n";
    let mirror = PypiMirror::start_with_config(&index.simple_url(), &index.files_url(), rule).await;
    mirror
        .cli(&["user", "add", "alice", "--password", PASSWORD])
        .await;
    let token = mirror.cli(&["token", "create", "--user", "alice"]).await;
    let private = dists::wheel("fixture-sdist-only", "9.0.0", None, &[]);
    let (_dir, files) = on_disk(&[&private]);

    twine_upload(&upload_url(&mirror), ("__token__", &token), &files)
        .await
        .assert_success();

    let page = http::get(
        &format!("{}fixture-sdist-only/", mirror.index_url()),
        &[("accept", PIP_ACCEPT)],
    )
    .await;
    assert_eq!(page.header("x-cache-status"), "HIT");
    assert_eq!(filenames(&page.ok_json()), [private.filename.as_str()]);
    let upstream_file = format!(
        "{}/pypi/files/fixture-sdist-only/fixture_sdist_only-2.0.0.tar.gz",
        mirror.url()
    );
    assert_eq!(http::get(&upstream_file, &[]).await.status, 404);

    let venv = Venv::with_pip().await;
    venv.pip_install(&mirror.index_url(), &["fixture-sdist-only"])
        .await
        .assert_success();
    assert_eq!(
        venv.installed(),
        versions(&[("fixture-sdist-only", "9.0.0")])
    );
    assert_imports(&venv, "fixture_sdist_only", "9.0.0").await;
    let pinned = Venv::with_pip().await;
    pinned
        .pip_install(&mirror.index_url(), &["fixture-sdist-only==2.0.0"])
        .await
        .assert_failure();
    assert_eq!(index.downloads("fixture_sdist_only-2.0.0.tar.gz"), 0);
}

/// The project's JSON page lists exactly `dists`, linked on the mirror, with their sha256,
/// and a wheel's core-metadata hash.
async fn assert_private_page(mirror: &PypiMirror, dists: &[&Dist]) {
    let url = format!("{}{PRIVATE}/", mirror.index_url());
    let page = http::get(&url, &[("accept", PIP_ACCEPT)]).await;
    assert_eq!(page.header("x-cache-status"), "HIT");
    let doc = page.ok_json();
    let listed = doc["files"].as_array().expect("files");
    assert_eq!(listed.len(), dists.len(), "{doc}");
    for (file, dist) in listed.iter().zip(dists) {
        assert_eq!(file["filename"], dist.filename.as_str());
        let link = format!("{}/pypi/files/{PRIVATE}/{}", mirror.url(), dist.filename);
        assert_eq!(file["url"], link);
        assert_eq!(file["hashes"]["sha256"], dist.sha256());
        let metadata = file["core-metadata"]["sha256"].as_str();
        assert_eq!(metadata, dist.metadata_sha256().as_deref());
    }
}

/// A plain POST of a well-formed upload without any credential gets a 401 and a challenge.
async fn assert_anonymous_upload_refused(mirror: &PypiMirror, dist: &Dist) {
    let boundary = "anonymous-upload";
    let mut body = Vec::new();
    for (name, value) in [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("name", PRIVATE),
        ("version", dist.version),
        ("filetype", "bdist_wheel"),
        ("sha256_digest", &dist.sha256()),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; \
             filename=\"{}\"\r\n\r\n",
            dist.filename
        )
        .as_bytes(),
    );
    body.extend_from_slice(&dist.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let refused = http::post(
        &upload_url(mirror),
        &[("content-type", &content_type)],
        body,
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.describe());
    assert_eq!(
        refused.header("www-authenticate"),
        "Basic realm=\"registry-mirror\""
    );
}

/// `http://127.0.0.1:PORT/pypi/`, the URL twine is given.
fn upload_url(mirror: &PypiMirror) -> String {
    format!("{}/pypi/", mirror.url())
}

/// Writes each distribution to a fresh directory under its file name.
fn on_disk(dists: &[&Dist]) -> (TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("create a directory for the distributions");
    let files = dists
        .iter()
        .map(|dist| {
            let path = dir.path().join(&dist.filename);
            std::fs::write(&path, &dist.bytes).expect("write a distribution");
            path
        })
        .collect();
    (dir, files)
}

fn filenames(page: &serde_json::Value) -> Vec<&str> {
    page["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|file| file["filename"].as_str())
        .collect()
}

fn versions(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, version)| ((*name).to_owned(), (*version).to_owned()))
        .collect()
}

/// The installed module imports and says which version it is.
async fn assert_imports(venv: &Venv, module: &str, version: &str) {
    let imported = venv
        .python(&format!("import {module}; print({module}.VERSION)"))
        .await;
    imported.assert_success();
    assert!(imported.mentions(version), "{imported}");
}
