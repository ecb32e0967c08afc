//! `registry-mirror npm|pypi|maven|docker help`: the client configuration they print.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

use std::process::Command;

fn help(ecosystem: &str, config: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_registry-mirror"))
        .args([ecosystem, "help", "--config"])
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn docker_help_names_every_configured_registry() {
    let config = r#"
        [docker.upstreams."ghcr.io"]
        url = "https://ghcr.io"
        [docker.upstreams."quay.io"]
        url = "https://quay.io"
    "#;
    let text = help("docker", config, &["--listen", "10.0.0.5:5000"]);
    assert!(
        text.contains("\"registry-mirrors\": [\"http://10.0.0.5:5000\"]"),
        "{text}"
    );
    assert!(
        text.contains("\"insecure-registries\": [\"10.0.0.5:5000\"]"),
        "{text}"
    );
    for (registry, server) in [
        ("docker.io", "https://registry-1.docker.io"),
        ("ghcr.io", "https://ghcr.io"),
        ("quay.io", "https://quay.io"),
    ] {
        let file = format!(
            "# /etc/containerd/certs.d/{registry}/hosts.toml\nserver = \"{server}\"\n\n\
             [host.\"http://10.0.0.5:5000\"]\n  capabilities = [\"pull\", \"resolve\"]"
        );
        assert!(text.contains(&file), "{registry}: {text}");
    }
    assert!(
        text.contains("docker push 10.0.0.5:5000/private/app:1"),
        "{text}"
    );
}

#[test]
fn docker_help_does_not_offer_registry_mirrors_for_another_default() {
    let config = r#"
        [docker]
        default_upstream = "registry.example"
        [docker.upstreams."registry.example"]
        url = "https://registry.example"
    "#;
    let text = help(
        "docker",
        config,
        &["--public-url", "https://mirror.example"],
    );
    assert!(!text.contains("\"registry-mirrors\""), "{text}");
    assert!(text.contains("docker.default_upstream"), "{text}");
    assert!(
        text.contains("certs.d/registry.example/hosts.toml"),
        "{text}"
    );
    assert!(text.contains("[host.\"https://mirror.example\"]"), "{text}");
    assert!(text.contains("(registry.example, the default)"), "{text}");
}

#[test]
fn npm_and_pypi_help_follow_the_listen_address() {
    let npm = help("npm", "", &["--listen", "127.0.0.1:4873"]);
    assert!(npm.contains("registry=http://127.0.0.1:4873/npm/"), "{npm}");
    let pypi = help("pypi", "", &["--listen", "192.168.1.9:8080"]);
    assert!(
        pypi.contains("index-url = http://192.168.1.9:8080/pypi/simple/"),
        "{pypi}"
    );
    assert!(pypi.contains("trusted-host = 192.168.1.9:8080"), "{pypi}");
}

#[test]
fn maven_help_prints_a_mirror_and_deploy_servers() {
    let text = help("maven", "", &["--public-url", "https://mirror.example"]);
    assert!(
        text.contains("<url>https://mirror.example/maven/public/</url>"),
        "{text}"
    );
    assert!(text.contains("<mirrorOf>*</mirrorOf>"), "{text}");
    assert!(
        text.contains("<url>https://mirror.example/maven/releases/</url>"),
        "{text}"
    );
    assert!(
        text.contains("<url>https://mirror.example/maven/snapshots/</url>"),
        "{text}"
    );
    assert!(text.contains("<id>registry-mirror-releases</id>"), "{text}");
}
