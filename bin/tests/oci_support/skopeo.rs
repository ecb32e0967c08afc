//! The real `skopeo`, with its own home and no machine-wide credentials.

use std::fmt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Command;

use super::isolate_from_proxies;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs skopeo with a private home, auth file and registries configuration.
#[derive(Debug)]
pub(crate) struct Skopeo {
    home: TempDir,
}

/// A finished skopeo run.
pub(crate) struct Run {
    args: Vec<String>,
    output: Output,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skopeo {}: {}\nstdout: {}\nstderr: {}",
            self.args.join(" "),
            self.output.status,
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
}

impl Run {
    pub(crate) fn assert_success(&self) -> &[u8] {
        assert!(self.output.status.success(), "{self}");
        &self.output.stdout
    }

    /// True when skopeo exited successfully; its output goes to the test's log either way.
    pub(crate) fn succeeded(&self) -> bool {
        eprintln!("{self}");
        self.output.status.success()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub(crate) fn assert_failure(&self) {
        assert!(!self.output.status.success(), "expected a failure: {self}");
    }
}

impl Skopeo {
    pub(crate) fn new() -> Self {
        let home = tempfile::tempdir().expect("create skopeo's home");
        std::fs::write(home.path().join("registries.conf"), "")
            .expect("write an empty registries.conf");
        Skopeo { home }
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        let mut command = Command::new("skopeo");
        command
            .arg("--insecure-policy")
            .args(args)
            .env("HOME", self.home.path())
            .env("REGISTRY_AUTH_FILE", self.home.path().join("auth.json"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.home.path().join("registries.conf"),
            )
            .kill_on_drop(true);
        isolate_from_proxies(command.as_std_mut());
        let output = tokio::time::timeout(TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("skopeo {args:?} took over {TIMEOUT:?}"))
            .expect("run skopeo (apt-get install skopeo)");
        Run {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            output,
        }
    }

    /// Pushes an OCI layout's `tag` to `destination` (`host/repo:tag`) over plain HTTP.
    pub(crate) async fn push(&self, layout: &Path, tag: &str, destination: &str, extra: &[&str]) {
        let source = format!("oci:{}:{tag}", layout.display());
        let destination = format!("docker://{destination}");
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        args.extend_from_slice(extra);
        args.extend([source.as_str(), destination.as_str()]);
        self.run(&args).await.assert_success();
    }

    /// `skopeo inspect` of `reference` (`host/repo:tag` or `host/repo@digest`).
    pub(crate) async fn inspect(&self, reference: &str) -> Value {
        let reference = format!("docker://{reference}");
        let run = self
            .run(&["inspect", "--tls-verify=false", &reference])
            .await;
        serde_json::from_slice(run.assert_success()).expect("skopeo inspect prints JSON")
    }

    /// The manifest (or index) of `reference` exactly as the registry serves it.
    pub(crate) async fn inspect_raw(&self, reference: &str) -> Vec<u8> {
        let reference = format!("docker://{reference}");
        let run = self
            .run(&["inspect", "--raw", "--tls-verify=false", &reference])
            .await;
        run.assert_success().to_vec()
    }

    /// Copies `reference` into a `dir:` layout (blobs as files named by their hex digest).
    pub(crate) async fn copy_to_dir(&self, reference: &str, dir: &Path, extra: &[&str]) -> Run {
        let source = format!("docker://{reference}");
        let destination = format!("dir:{}", dir.display());
        let mut args = vec!["copy", "--src-tls-verify=false"];
        args.extend_from_slice(extra);
        args.extend([source.as_str(), destination.as_str()]);
        self.run(&args).await
    }
}
