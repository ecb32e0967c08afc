//! The real distribution registry (Debian's `docker-registry`) on a loopback port, with its
//! storage in a temporary directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::{client, free_port, isolate_from_proxies, log_tail};

const BINARY: &str = "/usr/bin/docker-registry";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running registry; killed when dropped, its log printed if the test is failing.
#[derive(Debug)]
pub(crate) struct Registry {
    /// `127.0.0.1:PORT`, as image references name it.
    pub(crate) host: String,
    child: Option<Child>,
    dir: TempDir,
}

impl Registry {
    /// A registry anyone may pull from and push to.
    pub(crate) async fn start_open() -> Self {
        Self::start(None).await
    }

    /// A registry that wants `user` / `password` (basic auth from an htpasswd file) for
    /// everything.
    pub(crate) async fn start_with_htpasswd(user: &str, password: &str) -> Self {
        Self::start(Some((user, password))).await
    }

    async fn start(credentials: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("create the registry's directory");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let auth = match credentials {
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, htpasswd_line(user, password).await)
                    .expect("write the htpasswd file");
                format!(
                    "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {host}\n{auth}",
            dir.path().join("storage").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry's config");
        let log = |name: &str| {
            let file = std::fs::File::create(dir.path().join(name)).expect("create a log file");
            Stdio::from(file)
        };
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log("access.log"))
            .stderr(log("registry.log"))
            .kill_on_drop(true);
        isolate_from_proxies(command.as_std_mut());
        let child = command.spawn().unwrap_or_else(|err| {
            panic!("start {BINARY} (apt-get install docker-registry): {err}")
        });
        let registry = Registry {
            host,
            child: Some(child),
            dir,
        };
        registry.wait_until_up().await;
        registry
    }

    async fn wait_until_up(&self) {
        let client = client();
        let started = Instant::now();
        let url = format!("{}/v2/", self.url());
        while started.elapsed() < STARTUP_TIMEOUT {
            if client.get(&url).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("docker-registry did not answer on {url} within {STARTUP_TIMEOUT:?}");
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Where the registry keeps a blob's bytes.
    pub(crate) fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stops the registry: from now on its port refuses connections.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            for name in ["registry.log", "access.log"] {
                let tail = log_tail(&self.dir.path().join(name));
                eprintln!("---- docker-registry {name} ----\n{tail}\n----");
            }
        }
    }
}

/// One htpasswd line with a bcrypt hash, as the registry requires, from `htpasswd -Bbn`.
async fn htpasswd_line(user: &str, password: &str) -> Vec<u8> {
    let output = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .await
        .expect("run htpasswd (apt-get install apache2-utils)");
    assert!(output.status.success(), "htpasswd failed: {output:?}");
    output.stdout
}
