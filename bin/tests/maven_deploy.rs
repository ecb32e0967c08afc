//! End to end: the real mvn deploys small projects to the `registry-mirror` binary's hosted
//! `releases` and `snapshots` repositories with credentials from settings.xml, and other
//! builds resolve them through the `public` group. Then the refusals: no credential, a
//! release deployed again with other content. mvn's own plugins come from Debian's
//! packages through a fixture repository on loopback; nothing here reaches the internet.

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

use maven_support::{mirror_config, FixtureRepository, Mvn, Project};
use support::Mirror;

const GROUP: &str = "com.example.deployed";
const GROUP_PATH: &str = "com/example/deployed";

async fn start() -> (FixtureRepository, Mirror) {
    let upstream = FixtureRepository::start().await;
    let mirror =
        Mirror::start_with_config("http://127.0.0.1:9/", &mirror_config(upstream.url())).await;
    (upstream, mirror)
}

/// Resolves `artifact:version` of [`GROUP`] in a fresh local repository and returns the
/// jar mvn stored.
async fn resolve(mvn: &mut Mvn, artifact: &str, version: &str) -> Vec<u8> {
    mvn.fresh_local_repository();
    mvn.dependency_get(&format!("{GROUP}:{artifact}:{version}"))
        .await
        .assert_success();
    let path = format!("{GROUP_PATH}/{artifact}/{version}/{artifact}-{version}.jar");
    std::fs::read(mvn.local_file(&path)).expect("the resolved jar")
}

#[tokio::test(flavor = "multi_thread")]
async fn mvn_deploys_a_release_that_another_build_resolves_and_cannot_replace() {
    let (_upstream, mirror) = start().await;
    mirror.add_user("deployer", "deployer-password").await;
    let mvn = Mvn::new(mirror.url(), Some(("deployer", "deployer-password")));
    let project = Project::new(mirror.url(), (GROUP, "hello", "1.0"), None);

    mvn.run(project.dir(), &["deploy"]).await.assert_success();
    let built = std::fs::read(project.built_jar("hello", "1.0")).expect("the built jar");
    let path = format!("/maven/releases/{GROUP_PATH}/hello/1.0/hello-1.0.jar");
    let stored = mirror.get(&path, &[]).await;
    assert_eq!(stored.ok_body().as_ref(), built.as_slice());

    let consumer = Project::new(
        mirror.url(),
        (GROUP, "consumer", "1.0"),
        Some("com.example.deployed:hello:1.0"),
    );
    let mut reader = Mvn::new(mirror.url(), None);
    reader.fresh_local_repository();
    reader
        .run(consumer.dir(), &["package"])
        .await
        .assert_success();
    assert_eq!(resolve(&mut reader, "hello", "1.0").await, built);

    std::fs::write(
        project.dir().join("src/main/java/example/Extra.java"),
        "package example;\npublic class Extra {}\n",
    )
    .expect("change the project");
    let again = mvn.run(project.dir(), &["deploy"]).await;
    again.assert_failure();
    assert!(again.mentions("409"), "{again}");
    let still = mirror.get(&path, &[]).await;
    assert_eq!(
        still.ok_body().as_ref(),
        built.as_slice(),
        "the release did not change"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mvn_deploy_without_credentials_is_refused() {
    let (_upstream, mirror) = start().await;
    let mvn = Mvn::new(mirror.url(), None);
    let project = Project::new(mirror.url(), (GROUP, "anonymous", "1.0"), None);

    let refused = mvn.run(project.dir(), &["deploy"]).await;
    refused.assert_failure();
    assert!(refused.mentions("401"), "{refused}");
    let path = format!("/maven/releases/{GROUP_PATH}/anonymous/1.0/anonymous-1.0.jar");
    assert_eq!(
        mirror.get(&path, &[]).await.status,
        404,
        "nothing was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_deploy_again_and_resolve_to_the_latest_build() {
    let (_upstream, mirror) = start().await;
    mirror.add_user("deployer", "deployer-password").await;
    let token = mirror.create_token("deployer", &[]).await;
    let mvn = Mvn::new(mirror.url(), Some(("deployer", &token)));
    let project = Project::new(mirror.url(), (GROUP, "snappy", "1.1-SNAPSHOT"), None);

    mvn.run(project.dir(), &["deploy"]).await.assert_success();
    std::fs::write(
        project.dir().join("src/main/java/example/Second.java"),
        "package example;\npublic class Second {}\n",
    )
    .expect("change the project");
    mvn.run(project.dir(), &["deploy"]).await.assert_success();
    let second = std::fs::read(project.built_jar("snappy", "1.1-SNAPSHOT")).expect("the jar");

    let listing = format!("/maven/public/{GROUP_PATH}/snappy/1.1-SNAPSHOT/maven-metadata.xml");
    let listing = mirror.get(&listing, &[]).await;
    let text = String::from_utf8_lossy(listing.ok_body()).into_owned();
    assert!(text.contains("<buildNumber>2</buildNumber>"), "{text}");

    let mut reader = Mvn::new(mirror.url(), None);
    assert_eq!(resolve(&mut reader, "snappy", "1.1-SNAPSHOT").await, second);
}
