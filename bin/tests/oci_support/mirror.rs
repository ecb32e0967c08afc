//! The `registry-mirror` binary, run as a child process the way a user runs it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{client, isolate_from_proxies, log_tail};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running mirror with a fresh data directory; killed when dropped, its log printed if
/// the test is failing.
#[derive(Debug)]
pub(crate) struct Mirror {
    /// `127.0.0.1:PORT`, as image references name it.
    pub(crate) host: String,
    child: Child,
    log: PathBuf,
    client: reqwest::Client,
    dir: TempDir,
}

impl Mirror {
    /// Starts the binary with `[docker]` configuration `docker_toml` (the section's body
    /// and its sub-tables) and waits until it listens.
    pub(crate) async fn start(docker_toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("create the mirror's directory");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, docker_toml).expect("write the mirror's config");
        let log = dir.path().join("mirror.log");
        let stderr = std::fs::File::create(&log).expect("create the mirror's log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_registry-mirror"));
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_MIRROR_") {
                command.env_remove(key);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            command.env(
                "RUST_LOG",
                "debug,hyper=info,hyper_util=info,reqwest=info,h2=info",
            );
        }
        isolate_from_proxies(&mut command);
        let mut child = command.spawn().expect("spawn the registry-mirror binary");
        let stdout = child.stdout.take().expect("the mirror's piped stdout");
        let mut mirror = Mirror {
            host: String::new(),
            child,
            log,
            client: client(),
            dir,
        };
        mirror.host = tokio::time::timeout(STARTUP_TIMEOUT, listening_address(stdout))
            .await
            .unwrap_or_else(|_| panic!("no `listening on` line within {STARTUP_TIMEOUT:?}"));
        mirror
    }

    /// Adds a user with `registry-mirror user add` on this mirror's data, as an operator
    /// does while the server runs.
    pub(crate) async fn add_user(&self, name: &str, password: &str) {
        self.cli(&["user", "add", name, "--password", password])
            .await;
    }

    /// Creates an API token for `user` with `registry-mirror token create`; returns it.
    pub(crate) async fn create_token(&self, user: &str, options: &[&str]) -> String {
        let stdout = self
            .cli(&[&["token", "create", "--user", user], options].concat())
            .await;
        let token = stdout.trim().to_owned();
        assert!(token.starts_with("rmt_"), "a token on stdout: {stdout}");
        token
    }

    /// Runs `registry-mirror <args>` on this mirror's data directory and configuration;
    /// returns its standard output, failing the test when it fails.
    async fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_registry-mirror"));
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env_remove("REGISTRY_MIRROR_PASSWORD")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(STARTUP_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("registry-mirror {args:?} took over {STARTUP_TIMEOUT:?}"))
            .expect("run registry-mirror");
        assert!(
            output.status.success(),
            "registry-mirror {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A request builder for `method` `path` (from `/v2/...`) on the mirror.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url()))
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// GETs `path` (from `/v2/...`) on the mirror.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.url()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("a response from the mirror")
    }
}

/// Reads stdout (an admin-token banner may come first) until `listening on http://ADDR`, then
/// keeps draining it so that a later line cannot fail the mirror with a broken pipe.
async fn listening_address(stdout: tokio::process::ChildStdout) -> String {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(address) = line.trim().strip_prefix("listening on http://") {
            let address = address.trim_end_matches('/').to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return address;
        }
    }
    panic!("registry-mirror closed its stdout without printing `listening on http://...`");
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "---- registry-mirror log ----\n{}\n----",
                log_tail(&self.log)
            );
        }
    }
}
