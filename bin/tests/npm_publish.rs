//! End to end: private packages published to the `registry-mirror` binary with the real npm
//! client — login, publish, dist-tags, deprecate, unpublish — and installed together with
//! public packages mirrored from a fixture registry on loopback, through one registry URL.
//! Then the refusals that keep a private registry safe: no credential or the wrong one, a
//! republished version, a name that exists upstream, malformed or oversized bodies.
//!
//! Users and tokens are made with the binary's own CLI while the server runs, as an
//! operator would. Nothing here reaches the internet.

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

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::Method;
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest as _, Sha512};

use support::http::{self, Fetched, INSTALL_ACCEPT};
use support::{index_js, published, tarball_path, FixtureRegistry, Mirror, Npm};

/// The private package the tests publish.
const HELLO: &str = "@acme/hello";

/// Only alice may publish under `@acme/`; reads and other names follow the defaults.
const ACME_RULES: &str = r#"
[[auth.rules]]
ecosystem = "npm"
pattern = "@acme/*"
write = ["alice"]
"#;

/// The fixture upstream publishes `fixture-b`; this rule lets it be published here anyway.
const FIXTURE_B_OVER_UPSTREAM: &str = r#"
[[auth.rules]]
ecosystem = "npm"
pattern = "fixture-b"
publish_over_upstream = true
"#;

#[tokio::test(flavor = "multi_thread")]
async fn users_made_with_the_cli_log_in_with_npm_at_once() {
    let (_upstream, mirror) = start("").await;
    let bob = Npm::new(&mirror.npm_registry());

    bob.login("bob", "first-password")
        .await
        .assert_failure_mentioning("E401");
    mirror.add_user("bob", "first-password").await;
    bob.login("bob", "first-password").await.assert_success();

    let saved = format!("{}:_authToken=rmt_", bob.credentials_key());
    let npmrc = bob.userconfig();
    assert!(npmrc.contains(&saved), "no {saved}... in npmrc:\n{npmrc}");
    assert_eq!(whoami(&bob).await, "bob");

    // Scripts pass the password on standard input, where `ps` cannot show it.
    mirror
        .cli(&["user", "add", "carol"], Some("carol-password\n"))
        .await
        .assert_success();
    let carol = Npm::new(&mirror.npm_registry());
    carol
        .login("carol", "carol-password")
        .await
        .assert_success();
    assert_eq!(whoami(&carol).await, "carol");
}

#[tokio::test(flavor = "multi_thread")]
async fn password_changes_and_removals_take_effect_without_a_restart() {
    let (_upstream, mirror) = start("").await;
    mirror.add_user("bob", "first-password").await;
    let bob = Npm::new(&mirror.npm_registry());
    bob.login("bob", "first-password").await.assert_success();

    mirror
        .cli(&["user", "passwd", "bob", "--password", "second"], None)
        .await
        .assert_success();
    let elsewhere = Npm::new(&mirror.npm_registry());
    elsewhere
        .login("bob", "first-password")
        .await
        .assert_failure_mentioning("E401");
    elsewhere.login("bob", "second").await.assert_success();
    assert_eq!(user_names(&mirror).await, ["admin", "bob"]);

    mirror
        .cli(&["user", "remove", "bob"], None)
        .await
        .assert_success();
    for npm in [&bob, &elsewhere] {
        let refused = npm.run(&["whoami"]).await;
        refused.assert_failure_mentioning("E401");
    }
    assert_eq!(user_names(&mirror).await, ["admin"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn published_package_installs_with_a_public_one_through_one_url() {
    let (_upstream, mirror) = start(ACME_RULES).await;
    mirror.add_user("alice", "alice-password").await;
    let alice = Npm::new(&mirror.npm_registry());
    alice
        .login("alice", "alice-password")
        .await
        .assert_success();
    let package = alice.write_package(HELLO, "1.0.0", &index_js(HELLO, "1.0.0"));
    let publish = alice.publish(&package, &[]).await;
    publish.assert_success();
    assert!(publish.mentions("+ @acme/hello@1.0.0"), "{publish}");

    let project = Npm::new(&mirror.npm_registry());
    project.write_dependencies(&[(HELLO, "^1.0.0"), ("fixture-b", "^1.0.0")]);
    project.install(&[]).await.assert_success();

    let hello = packument(&mirror, HELLO).await.ok_json();
    let hello_integrity = hello["versions"]["1.0.0"]["dist"]["integrity"].clone();
    let public_integrity = Value::from(published("fixture-b", "1.1.0").integrity());
    assert_lockfile(
        &project,
        &mirror.npm_registry(),
        &[
            (HELLO, "1.0.0", &hello_integrity),
            ("fixture-b", "1.1.0", &public_integrity),
        ],
    );
    for file in ["index.js", "package.json"] {
        assert_same_file(&package.join(file), &installed(&project, HELLO, file));
    }
    let public_index = std::fs::read_to_string(installed(&project, "fixture-b", "index.js"));
    assert_eq!(
        public_index.expect("read fixture-b"),
        index_js("fixture-b", "1.1.0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn packument_of_a_published_package_describes_what_npm_packed() {
    let (_upstream, mirror) = start(ACME_RULES).await;
    let alice = signed_in(&mirror, "alice").await;
    let package = alice.write_package(HELLO, "1.0.0", &index_js(HELLO, "1.0.0"));
    let packed = Packed::of(&alice, &package).await;

    let before = SystemTime::now();
    alice.publish(&package, &[]).await.assert_success();
    let after = SystemTime::now();

    let doc = packument(&mirror, HELLO).await.ok_json();
    assert_eq!(doc["name"], HELLO);
    assert_eq!(doc["dist-tags"], json!({ "latest": "1.0.0" }));
    assert_eq!(versions(&doc), ["1.0.0"]);
    assert_eq!(doc["versions"]["1.0.0"]["version"], "1.0.0");
    assert_publication_times(&doc["time"], before, after);
    let tarball_url = format!("{}@acme/hello/-/hello-1.0.0.tgz", mirror.npm_registry());
    assert_dist(&doc["versions"]["1.0.0"]["dist"], &tarball_url, &packed);

    let tarball = mirror.npm_get_url(&tarball_url, &[]).await;
    let tarball = tarball.ok_body();
    assert!(
        *tarball == packed.bytes,
        "served tarball differs from npm's"
    );
    assert_eq!(sha512_integrity(tarball), packed.integrity);
    assert_eq!(sha1_hex(tarball), packed.shasum);

    let abbreviated = mirror
        .npm_get(&escaped(HELLO), &[("accept", INSTALL_ACCEPT)])
        .await;
    let content_type = abbreviated.header("content-type");
    assert!(
        content_type.starts_with("application/vnd.npm.install-v1+json"),
        "{content_type}"
    );
    let abbreviated = abbreviated.ok_json();
    assert_eq!(abbreviated["dist-tags"], json!({ "latest": "1.0.0" }));
    assert_dist(
        &abbreviated["versions"]["1.0.0"]["dist"],
        &tarball_url,
        &packed,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prerelease_tags_and_dist_tag_commands() {
    let (_upstream, mirror) = start(ACME_RULES).await;
    let alice = signed_in(&mirror, "alice").await;
    publish_hello(&alice, "1.0.0", &[]).await;
    publish_hello(&alice, "1.1.0-beta.1", &["--tag", "beta"]).await;

    let tags = view(&alice, HELLO, "dist-tags").await;
    assert_eq!(tags, json!({ "latest": "1.0.0", "beta": "1.1.0-beta.1" }));
    let project = Npm::new(&mirror.npm_registry());
    project.install(&[HELLO]).await.assert_success();
    let locked = &project.lockfile()["packages"]["node_modules/@acme/hello"];
    assert_eq!(locked["version"], "1.0.0", "`npm install` took the beta");

    let add = ["dist-tag", "add", "@acme/hello@1.1.0-beta.1", "next"];
    alice.run(&add).await.assert_success();
    let expected = ["beta: 1.1.0-beta.1", "latest: 1.0.0", "next: 1.1.0-beta.1"];
    assert_eq!(dist_tag_ls(&alice).await, expected);
    let over_http = mirror
        .get("/npm/-/package/@acme%2fhello/dist-tags", &[])
        .await;
    assert_eq!(
        over_http.ok_json(),
        json!({ "latest": "1.0.0", "beta": "1.1.0-beta.1", "next": "1.1.0-beta.1" })
    );

    let rm = ["dist-tag", "rm", HELLO, "next"];
    alice.run(&rm).await.assert_success();
    assert_eq!(
        dist_tag_ls(&alice).await,
        ["beta: 1.1.0-beta.1", "latest: 1.0.0"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deprecate_and_unpublish_a_version_then_the_package() {
    let (_upstream, mirror) = start(ACME_RULES).await;
    let alice = signed_in(&mirror, "alice").await;
    publish_hello(&alice, "1.0.0", &[]).await;
    publish_hello(&alice, "1.1.0-beta.1", &["--tag", "beta"]).await;

    let deprecate = ["deprecate", "@acme/hello@1.0.0", "use 2.x instead"];
    alice.run(&deprecate).await.assert_success();
    let message = view(&alice, "@acme/hello@1.0.0", "deprecated").await;
    assert_eq!(message, "use 2.x instead");
    let doc = packument(&mirror, HELLO).await.ok_json();
    assert_eq!(doc["versions"]["1.1.0-beta.1"].get("deprecated"), None);

    let unpublish = ["unpublish", "@acme/hello@1.1.0-beta.1"];
    alice.run(&unpublish).await.assert_success();
    let doc = packument(&mirror, HELLO).await.ok_json();
    assert_eq!(versions(&doc), ["1.0.0"]);
    assert_eq!(doc["dist-tags"], json!({ "latest": "1.0.0" }));
    assert_eq!(doc["versions"]["1.0.0"]["deprecated"], "use 2.x instead");
    let beta_tarball = mirror
        .npm_get("@acme/hello/-/hello-1.1.0-beta.1.tgz", &[])
        .await;
    assert_eq!(beta_tarball.status, 404, "{}", beta_tarball.describe_body());

    let unpublish_all = ["unpublish", HELLO, "--force"];
    alice.run(&unpublish_all).await.assert_success();
    let gone = packument(&mirror, HELLO).await;
    assert_eq!(gone.status, 404, "{}", gone.describe_body());
    let tarball = mirror.npm_get("@acme/hello/-/hello-1.0.0.tgz", &[]).await;
    assert_eq!(tarball.status, 404, "{}", tarball.describe_body());
    let view = alice.run(&["view", HELLO]).await;
    view.assert_failure_mentioning("E404");
}

#[tokio::test(flavor = "multi_thread")]
async fn publishing_without_a_valid_credential_is_refused_with_401() {
    let (_upstream, mirror) = start(ACME_RULES).await;
    let anonymous = Npm::new(&mirror.npm_registry());
    let package = anonymous.write_package(HELLO, "1.0.0", &index_js(HELLO, "1.0.0"));

    // npm does not even send a publish without a credential...
    let refused = anonymous.publish(&package, &[]).await;
    refused.assert_failure_mentioning("ENEEDAUTH");
    // ...so the server's answer to one is checked with the request npm would send.
    let body = publish_body(HELLO, "1.0.0", &package_tarball(HELLO, "1.0.0"));
    let refused = put(&mirror, &escaped(HELLO), to_vec(&body), None).await;
    assert_eq!(refused.status, 401, "{}", refused.describe_body());
    assert_ne!(
        refused.header("www-authenticate"),
        "",
        "401 without a challenge"
    );
    assert!(
        refused.json()["error"].is_string(),
        "{}",
        refused.describe_body()
    );

    // A token the server no longer accepts is refused by the server, through npm.
    mirror.add_user("alice", "alice-password").await;
    let revoked = Npm::new(&mirror.npm_registry());
    revoked.use_token(&mirror.create_token("alice", &[]).await);
    let id = only_token_id(&mirror, "alice").await;
    let revoke = mirror.cli(&["token", "revoke", &id], None).await;
    revoke.assert_success();
    let refused = revoked.publish(&package, &[]).await;
    refused.assert_failure_mentioning("E401");

    assert_not_found(&mirror, HELLO).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_token_reads_but_cannot_publish() {
    let (_upstream, mirror) = start(ACME_RULES).await;
    mirror.add_user("alice", "alice-password").await;
    let options = ["--read-only", "--expires-in", "30d", "--label", "ci"];
    let token = mirror.create_token("alice", &options).await;
    let listed = mirror
        .cli(&["token", "list", "--user", "alice"], None)
        .await;
    assert!(listed.success_stdout().contains("read-only"), "{listed}");

    let reader = Npm::new(&mirror.npm_registry());
    reader.use_token(&token);
    assert_eq!(whoami(&reader).await, "alice");
    let package = reader.write_package(HELLO, "1.0.0", &index_js(HELLO, "1.0.0"));
    let refused = reader.publish(&package, &[]).await;
    refused.assert_failure_mentioning("E403");

    assert_not_found(&mirror, HELLO).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_outside_the_write_list_cannot_publish_there() {
    let (_upstream, mirror) = start(ACME_RULES).await;
    let alice = signed_in(&mirror, "alice").await;
    publish_hello(&alice, "1.0.0", &[]).await;
    let bob = signed_in(&mirror, "bob").await;

    let update = bob.write_package(HELLO, "1.0.1", &index_js(HELLO, "1.0.1"));
    bob.publish(&update, &[])
        .await
        .assert_failure_mentioning("E403");
    let other = bob.write_package("@acme/bobs", "1.0.0", "module.exports = 1;\n");
    bob.publish(&other, &[])
        .await
        .assert_failure_mentioning("E403");
    let tag = ["dist-tag", "add", "@acme/hello@1.0.0", "bobs"];
    bob.run(&tag).await.assert_failure_mentioning("E403");

    let doc = packument(&mirror, HELLO).await.ok_json();
    assert_eq!(versions(&doc), ["1.0.0"]);
    assert_eq!(doc["dist-tags"], json!({ "latest": "1.0.0" }));
    assert_not_found(&mirror, "@acme/bobs").await;
    // The rule covers `@acme/*` only; bob reads it and publishes elsewhere.
    assert_eq!(view(&bob, HELLO, "version").await, "1.0.0");
    let own = bob.write_package("bobs-tools", "1.0.0", "module.exports = 2;\n");
    bob.publish(&own, &[]).await.assert_success();
}

#[tokio::test(flavor = "multi_thread")]
async fn republishing_a_version_is_refused_and_keeps_the_original() {
    let (_upstream, mirror) = start(ACME_RULES).await;
    let alice = signed_in(&mirror, "alice").await;
    publish_hello(&alice, "1.0.0", &[]).await;
    let tarball_url = format!("{}@acme/hello/-/hello-1.0.0.tgz", mirror.npm_registry());
    let original = mirror.npm_get_url(&tarball_url, &[]).await;
    let original_doc = packument(&mirror, HELLO).await.ok_json();

    let changed = alice.write_package(HELLO, "1.0.0", "module.exports = \"changed\";\n");
    // npm looks before it publishes and refuses on its own; with `--force` it does not
    // look, so the server has to refuse.
    let refused = alice.publish(&changed, &[]).await;
    refused.assert_failure_mentioning("cannot publish over the previously published");
    let forced = alice.publish(&changed, &["--force"]).await;
    forced.assert_failure_mentioning("E409");

    let served = mirror.npm_get_url(&tarball_url, &[]).await;
    assert!(
        served.ok_body() == original.ok_body(),
        "the 1.0.0 tarball changed"
    );
    let doc = packument(&mirror, HELLO).await.ok_json();
    assert_eq!(versions(&doc), ["1.0.0"]);
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"],
        original_doc["versions"]["1.0.0"]["dist"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn publishing_a_name_that_exists_upstream_is_refused() {
    let (_upstream, mirror) = start("").await;
    let public = packument(&mirror, "fixture-b").await.ok_json();
    assert_eq!(versions(&public), ["1.0.0", "1.1.0"]);

    let alice = signed_in(&mirror, "alice").await;
    let package = alice.write_package("fixture-b", "2.0.0", &index_js("fixture-b", "2.0.0"));
    alice
        .publish(&package, &[])
        .await
        .assert_failure_mentioning("E403");
    // Being an admin does not change that: only a rule does.
    let admin = Npm::new(&mirror.npm_registry());
    admin.use_token(mirror.admin_token());
    admin
        .publish(&package, &[])
        .await
        .assert_failure_mentioning("E403");

    let after = packument(&mirror, "fixture-b").await.ok_json();
    assert_eq!(after, public, "the refused publish changed the packument");
    let project = Npm::new(&mirror.npm_registry());
    project.install(&["fixture-b@1.1.0"]).await.assert_success();
    let index = std::fs::read_to_string(installed(&project, "fixture-b", "index.js"));
    assert_eq!(
        index.expect("read fixture-b"),
        index_js("fixture-b", "1.1.0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn private_name_allowed_over_upstream_hides_every_upstream_version() {
    let (upstream, mirror) = start(FIXTURE_B_OVER_UPSTREAM).await;
    let public = packument(&mirror, "fixture-b").await.ok_json();
    assert_eq!(versions(&public), ["1.0.0", "1.1.0"]);

    let alice = signed_in(&mirror, "alice").await;
    let package = alice.write_package("fixture-b", "2.0.0", &index_js("fixture-b", "2.0.0"));
    alice.publish(&package, &[]).await.assert_success();

    let private = packument(&mirror, "fixture-b").await.ok_json();
    assert_eq!(versions(&private), ["2.0.0"]);
    assert_eq!(private["dist-tags"], json!({ "latest": "2.0.0" }));
    let abbreviated = mirror
        .npm_get("fixture-b", &[("accept", INSTALL_ACCEPT)])
        .await;
    assert_eq!(versions(&abbreviated.ok_json()), ["2.0.0"]);
    let old_manifest = mirror.npm_get("fixture-b/1.1.0", &[]).await;
    assert_eq!(old_manifest.status, 404, "{}", old_manifest.describe_body());
    let upstream_tarball = tarball_path("fixture-b", "1.1.0");
    let old_tarball = mirror.npm_get(&upstream_tarball[1..], &[]).await;
    assert_eq!(old_tarball.status, 404, "{}", old_tarball.describe_body());
    assert_eq!(upstream.requests(&upstream_tarball), 0);

    let project = Npm::new(&mirror.npm_registry());
    let pinned = project.install(&["fixture-b@1.1.0"]).await;
    pinned.assert_failure_mentioning("ETARGET");
    // A public package depending on `fixture-b@^1` cannot reach the upstream one either.
    let dependent = project.install(&["fixture-app-dep-a"]).await;
    dependent.assert_failure_mentioning("ETARGET");
    project.install(&["fixture-b"]).await.assert_success();
    let index = std::fs::read_to_string(installed(&project, "fixture-b", "index.js"));
    assert_eq!(
        index.expect("read fixture-b"),
        index_js("fixture-b", "2.0.0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_publish_bodies_are_refused_and_store_nothing() {
    let (_upstream, mirror) = start("").await;
    let token = mirror.admin_token().to_owned();
    let name = "@acme/checked";
    let good = publish_body(name, "1.0.0", &package_tarball(name, "1.0.0"));

    for (defect, body) in defective_bodies(&good) {
        let refused = put(&mirror, &escaped(name), body, Some(&token)).await;
        assert_eq!(refused.status, 400, "{defect}: {}", refused.describe_body());
        assert!(refused.json()["error"].is_string(), "{defect}");
        assert_not_found(&mirror, name).await;
    }

    // The same body without a defect is accepted: each refusal was for its defect.
    let accepted = put(&mirror, &escaped(name), to_vec(&good), Some(&token)).await;
    assert_eq!(accepted.status, 201, "{}", accepted.describe_body());
    let before = packument(&mirror, name).await;
    let mut next = publish_body(name, "1.0.1", &package_tarball(name, "1.0.1"));
    next["versions"]["1.0.1"]["dist"]["integrity"] = sha512_integrity(b"other bytes").into();
    let refused = put(&mirror, &escaped(name), to_vec(&next), Some(&token)).await;
    assert_eq!(refused.status, 400, "{}", refused.describe_body());
    let after = packument(&mirror, name).await;
    assert!(
        after.ok_body() == before.ok_body(),
        "a refused publish changed {name}"
    );
    let tarball = mirror
        .npm_get("@acme/checked/-/checked-1.0.1.tgz", &[])
        .await;
    assert_eq!(tarball.status, 404, "{}", tarball.describe_body());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_package_names_in_the_url_are_refused() {
    let (_upstream, mirror) = start("").await;
    let token = mirror.admin_token().to_owned();
    let body = publish_body("ok-name", "1.0.0", &package_tarball("ok-name", "1.0.0"));
    let too_long = "a".repeat(215);

    for path in [
        "Bad%20Name",
        ".hidden",
        "_underscore",
        "@acme%2f..%2f..%2fetc",
        "..%2f..%2fsecret",
        "@acme%2f",
        too_long.as_str(),
    ] {
        let refused = put(&mirror, path, to_vec(&body), Some(&token)).await;
        assert_eq!(
            refused.status,
            400,
            "PUT /npm/{path}: {}",
            refused.describe_body()
        );
        assert!(refused.json()["error"].is_string(), "PUT /npm/{path}");
    }
    assert_not_found(&mirror, "ok-name").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_publish_body_is_refused_with_413() {
    let (_upstream, mirror) = start("[npm]\nmax_publish_bytes = 1000\n").await;
    let token = mirror.admin_token().to_owned();

    let small = publish_body(
        "@acme/small",
        "1.0.0",
        &package_tarball("@acme/small", "1.0.0"),
    );
    let small = to_vec(&small);
    assert!(small.len() < 1000, "{} bytes is no small body", small.len());
    let accepted = put(&mirror, "@acme%2fsmall", small, Some(&token)).await;
    assert_eq!(accepted.status, 201, "{}", accepted.describe_body());

    let mut big = publish_body("@acme/big", "1.0.0", &package_tarball("@acme/big", "1.0.0"));
    big["readme"] = "x".repeat(2000).into();
    let refused = put(&mirror, "@acme%2fbig", to_vec(&big), Some(&token)).await;
    assert_eq!(refused.status, 413, "{}", refused.describe_body());
    assert!(
        refused.json()["error"].is_string(),
        "{}",
        refused.describe_body()
    );
    assert_not_found(&mirror, "@acme/big").await;

    let admin = Npm::new(&mirror.npm_registry());
    admin.use_token(&token);
    let package = admin.write_package("@acme/big", "1.0.0", &index_js("@acme/big", "1.0.0"));
    std::fs::write(package.join("README.md"), "# big\n".repeat(500)).expect("write README");
    admin
        .publish(&package, &[])
        .await
        .assert_failure_mentioning("E413");
    assert_not_found(&mirror, "@acme/big").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_admin_token_works_with_npm() {
    let (_upstream, mirror) = start("").await;
    let admin = Npm::new(&mirror.npm_registry());
    admin.use_token(mirror.admin_token());

    assert_eq!(whoami(&admin).await, "admin");
    let users = mirror.cli(&["user", "list"], None).await;
    let admin_line = users
        .success_stdout()
        .lines()
        .find(|l| l.starts_with("admin\t"));
    assert!(
        admin_line.is_some_and(|line| line.split('\t').nth(1) == Some("admin")),
        "admin is not listed as an admin: {users}"
    );
}

/// A fixture upstream and a mirror of it with `config` merged into its configuration.
async fn start(config: &str) -> (FixtureRegistry, Mirror) {
    let upstream = FixtureRegistry::start().await;
    let mirror = Mirror::start_with_config(&upstream.registry_url(), config).await;
    (upstream, mirror)
}

/// An npm configuration signed in as a new user, with a token from the CLI.
async fn signed_in(mirror: &Mirror, user: &str) -> Npm {
    mirror.add_user(user, &format!("{user}-password")).await;
    let npm = Npm::new(&mirror.npm_registry());
    npm.use_token(&mirror.create_token(user, &[]).await);
    npm
}

async fn publish_hello(npm: &Npm, version: &str, args: &[&str]) {
    let package = npm.write_package(HELLO, version, &index_js(HELLO, version));
    npm.publish(&package, args).await.assert_success();
}

async fn whoami(npm: &Npm) -> String {
    npm.run(&["whoami"]).await.success_stdout().to_owned()
}

/// `npm view <spec> <field> --json`, parsed.
async fn view(npm: &Npm, spec: &str, field: &str) -> Value {
    let run = npm.run(&["view", spec, field, "--json"]).await;
    serde_json::from_str(run.success_stdout())
        .unwrap_or_else(|error| panic!("no JSON ({error}) from {run}"))
}

/// The lines of `npm dist-tag ls @acme/hello`, sorted.
async fn dist_tag_ls(npm: &Npm) -> Vec<String> {
    let run = npm.run(&["dist-tag", "ls", HELLO]).await;
    let mut lines: Vec<String> = run.success_stdout().lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// The names `registry-mirror user list` prints, sorted.
async fn user_names(mirror: &Mirror) -> Vec<String> {
    let run = mirror.cli(&["user", "list"], None).await;
    let names = run
        .success_stdout()
        .lines()
        .filter_map(|line| line.split('\t').next());
    let mut names: Vec<String> = names.map(str::to_owned).collect();
    names.sort();
    names
}

/// The id of `user`'s only token, as `token list` shows it.
async fn only_token_id(mirror: &Mirror, user: &str) -> String {
    let run = mirror.cli(&["token", "list", "--user", user], None).await;
    let lines: Vec<&str> = run.success_stdout().lines().collect();
    let [line] = lines[..] else {
        panic!("expected one token: {run}")
    };
    line.split('\t').next().unwrap_or_default().to_owned()
}

/// The full packument the mirror serves for `name`, asked for the way npm asks.
async fn packument(mirror: &Mirror, name: &str) -> Fetched {
    mirror
        .npm_get(&escaped(name), &[("accept", "application/json")])
        .await
}

async fn assert_not_found(mirror: &Mirror, name: &str) {
    let fetched = packument(mirror, name).await;
    assert_eq!(fetched.status, 404, "{name}: {}", fetched.describe_body());
}

/// `@scope/name` as npm puts it in a path: `@scope%2fname`.
fn escaped(name: &str) -> String {
    name.replacen('/', "%2f", 1)
}

fn versions(packument: &Value) -> Vec<&str> {
    let versions = packument["versions"].as_object();
    let versions = versions.unwrap_or_else(|| panic!("no versions in {packument}"));
    versions.keys().map(String::as_str).collect()
}

/// PUTs `body` at `path` under the npm mount, with `token` as the bearer credential.
async fn put(mirror: &Mirror, path: &str, body: Vec<u8>, token: Option<&str>) -> Fetched {
    let url = format!("{}{path}", mirror.npm_registry());
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer.as_str()));
    }
    http::send(&http::client(), Method::PUT, &url, &headers, Some(body)).await
}

fn to_vec(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).expect("serialise a publish body")
}

/// What `npm pack` made of a package directory: the tarball npm publishes and the digests
/// npm computed for it.
struct Packed {
    bytes: Vec<u8>,
    integrity: String,
    shasum: String,
}

impl Packed {
    async fn of(npm: &Npm, package: &Path) -> Self {
        let destination = package.parent().expect("a package's parent").join("packed");
        std::fs::create_dir_all(&destination).expect("create the pack destination");
        let (package, destination_arg) = (utf8(package), utf8(&destination));
        let args = [
            "pack",
            package,
            "--json",
            "--pack-destination",
            destination_arg,
        ];
        let run = npm.run(&args).await;
        let report: Value = serde_json::from_str(run.success_stdout())
            .unwrap_or_else(|error| panic!("no JSON ({error}) from {run}"));
        let report = &report[0];
        let file = destination.join(report["filename"].as_str().unwrap_or_default());

        Self {
            bytes: std::fs::read(&file).expect("read the packed tarball"),
            integrity: report["integrity"].as_str().unwrap_or_default().to_owned(),
            shasum: report["shasum"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn assert_dist(dist: &Value, tarball_url: &str, packed: &Packed) {
    assert_eq!(dist["tarball"], tarball_url, "{dist}");
    assert_eq!(dist["integrity"], packed.integrity.as_str(), "{dist}");
    assert_eq!(dist["shasum"], packed.shasum.as_str(), "{dist}");
}

/// `time` holds `created`, `modified` and the version, all during the publish.
fn assert_publication_times(time: &Value, before: SystemTime, after: SystemTime) {
    // The server's clock stamps in milliseconds; allow for the truncation.
    let earliest = before - Duration::from_secs(1);
    let parse = |key: &str| {
        let stamp = time[key].as_str().unwrap_or_default();
        let parsed = humantime::parse_rfc3339(stamp);
        parsed.unwrap_or_else(|error| panic!("time.{key} = {stamp:?}: {error} in {time}"))
    };
    for key in ["created", "modified", "1.0.0"] {
        let stamp = parse(key);
        assert!(
            earliest <= stamp && stamp <= after,
            "time.{key} is outside the publish: {time}"
        );
    }
    assert!(parse("created") <= parse("modified"), "{time}");
}

/// The lockfile holds exactly `expected`, each resolved to its tarball on `registry`.
fn assert_lockfile(npm: &Npm, registry: &str, expected: &[(&str, &str, &Value)]) {
    let lockfile = npm.lockfile();
    let packages = lockfile["packages"].as_object().expect("lockfile packages");
    let locked: BTreeSet<&str> = packages.keys().map(String::as_str).collect();
    let wanted: Vec<String> = expected
        .iter()
        .map(|(name, ..)| format!("node_modules/{name}"))
        .collect();
    let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).chain([""]).collect();
    assert_eq!(locked, wanted, "packages in package-lock.json");

    for (name, version, integrity) in expected {
        let entry = &packages[&format!("node_modules/{name}")];
        let resolved = format!(
            "{}{}",
            registry.trim_end_matches('/'),
            tarball_path(name, version)
        );
        assert_eq!(entry["version"], *version, "{name}: {entry}");
        assert_eq!(entry["resolved"], resolved, "{name}: {entry}");
        assert_eq!(entry["integrity"], **integrity, "{name}: {entry}");
    }
}

fn installed(npm: &Npm, name: &str, file: &str) -> std::path::PathBuf {
    npm.project().join("node_modules").join(name).join(file)
}

fn assert_same_file(expected: &Path, actual: &Path) {
    let read = |path: &Path| {
        std::fs::read(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
    };
    assert!(
        read(expected) == read(actual),
        "{} differs from {}",
        actual.display(),
        expected.display()
    );
}

/// A publish body as npm sends it: the manifest under `versions`, the tarball base64'd in
/// `_attachments`, its digests in `dist`.
fn publish_body(name: &str, version: &str, tarball: &[u8]) -> Value {
    let bare = name.rsplit('/').next().unwrap_or(name);
    let data = base64::engine::general_purpose::STANDARD.encode(tarball);
    json!({
        "_id": name,
        "name": name,
        "description": "checked over HTTP",
        "dist-tags": { "latest": version },
        "versions": {
            version: {
                "_id": format!("{name}@{version}"),
                "name": name,
                "version": version,
                "main": "index.js",
                "dist": {
                    "integrity": sha512_integrity(tarball),
                    "shasum": sha1_hex(tarball),
                    "tarball": format!("http://127.0.0.1/npm/{name}/-/{bare}-{version}.tgz"),
                },
            },
        },
        "access": null,
        "_attachments": {
            format!("{name}-{version}.tgz"): {
                "content_type": "application/octet-stream",
                "data": data,
                "length": tarball.len(),
            },
        },
    })
}

/// Variants of a good publish body, each with one defect the server must notice.
fn defective_bodies(good: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let name = good["name"].as_str().unwrap_or_default();
    let file = format!("{name}-1.0.0.tgz");
    let file = file.as_str();
    let length = good["_attachments"][file]["length"]
        .as_u64()
        .unwrap_or_default();
    let changed = |change: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        change(&mut body);
        to_vec(&body)
    };

    vec![
        (
            "attachment not matching dist.integrity",
            changed(&|body| {
                body["versions"]["1.0.0"]["dist"]["integrity"] = sha512_integrity(b"other").into();
            }),
        ),
        (
            "attachment not matching dist.shasum",
            changed(&|body| {
                body["versions"]["1.0.0"]["dist"]["shasum"] = sha1_hex(b"other").into()
            }),
        ),
        (
            "length not matching the attachment",
            changed(&|body| body["_attachments"][file]["length"] = (length + 1).into()),
        ),
        (
            "attachment data not base64",
            changed(&|body| body["_attachments"][file]["data"] = "not base64!".into()),
        ),
        (
            "document named after another package",
            changed(&|body| body["name"] = "@acme/other".into()),
        ),
        (
            "manifest of another version",
            changed(&|body| body["versions"]["1.0.0"]["version"] = "9.9.9".into()),
        ),
        (
            "malformed JSON",
            br#"{"name": "@acme/checked", "versions": {"#.to_vec(),
        ),
    ]
}

/// A real package tarball: `package/package.json` and `package/index.js`.
fn package_tarball(name: &str, version: &str) -> Vec<u8> {
    let manifest = json!({ "name": name, "version": version, "main": "index.js" });
    let files = [
        ("package/package.json", manifest.to_string().into_bytes()),
        ("package/index.js", index_js(name, version).into_bytes()),
    ];
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (path, contents) in &files {
        let mut header = tar::Header::new_ustar();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, contents.as_slice())
            .expect("append to an in-memory tar");
    }
    let gzip = tar.into_inner().expect("finish an in-memory tar");
    gzip.finish().expect("finish an in-memory gzip")
}

fn sha512_integrity(bytes: &[u8]) -> String {
    let digest = Sha512::digest(bytes);
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}
