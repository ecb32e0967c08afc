//! The `registry-mirror` binary, run as a child process the way a user runs it.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;

use super::http::{self, Fetched};
use super::isolate_from_proxies;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of the end of the mirror's log a failing test prints.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// A running mirror with a fresh data directory; killed when dropped. If the test is
/// failing by then, the end of the mirror's stderr is printed with the test's output.
#[derive(Debug)]
pub(crate) struct Mirror {
    url: String,
    child: Child,
    stderr_log: PathBuf,
    client: reqwest::Client,
    _dir: TempDir,
}

impl Mirror {
    /// Starts the binary with `upstream` as its npm upstream and waits until it listens.
    pub(crate) async fn start(upstream: &str) -> Self {
        let dir = tempfile::tempdir().expect("create the mirror's temporary directory");
        let stderr_log = dir.path().join("mirror.stderr.log");
        let mut child = command(dir.path(), upstream, &stderr_log)
            .spawn()
            .expect("spawn the registry-mirror binary");
        let listening = watch_stdout(child.stdout.take().expect("the mirror's piped stdout"));
        // Built before the wait, so that a mirror failing to start is killed and its log
        // printed like any other.
        let mut mirror = Self {
            url: String::new(),
            child,
            stderr_log,
            client: http::client(),
            _dir: dir,
        };

        mirror.url = mirror.wait_until_listening(listening).await;
        mirror
    }

    async fn wait_until_listening(&mut self, listening: oneshot::Receiver<String>) -> String {
        match tokio::time::timeout(STARTUP_TIMEOUT, listening).await {
            Ok(Ok(url)) => url.trim_end_matches('/').to_owned(),
            Ok(Err(_)) => panic!(
                "registry-mirror closed its stdout without printing `listening on http://...` \
                 (exit status: {:?})",
                self.child.try_wait()
            ),
            Err(_) => {
                panic!("registry-mirror printed no `listening on` line in {STARTUP_TIMEOUT:?}")
            }
        }
    }

    /// The registry URL npm clients use: `http://127.0.0.1:PORT/npm/`.
    pub(crate) fn npm_registry(&self) -> String {
        format!("{}/npm/", self.url)
    }

    /// GETs `path` (starting with a slash) on the mirror.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Fetched {
        http::get(&self.client, &format!("{}{path}", self.url), headers).await
    }

    /// GETs `path` under the npm mount (no leading slash); see [`Mirror::npm_get_url`].
    pub(crate) async fn npm_get(&self, path: &str, headers: &[(&str, &str)]) -> Fetched {
        self.npm_get_url(&format!("{}{path}", self.npm_registry()), headers)
            .await
    }

    /// GETs a URL of the npm mount and checks that the response says how the cache answered
    /// it, as every response of the npm mount must.
    pub(crate) async fn npm_get_url(&self, url: &str, headers: &[(&str, &str)]) -> Fetched {
        let fetched = http::get(&self.client, url, headers).await;
        fetched.assert_reports_cache_status();
        fetched
    }

    fn print_log_tail(&self) {
        let mut tail = String::new();
        if let Ok(mut log) = File::open(&self.stderr_log) {
            let length = log.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = log.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)));
            let _ = log.read_to_string(&mut tail);
        }
        eprintln!("---- registry-mirror stderr (last {LOG_TAIL_BYTES} bytes) ----\n{tail}\n----");
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.print_log_tail();
        }
    }
}

/// Writes the config and makes an empty data directory in `dir`, and the command running
/// the mirror on them.
fn command(dir: &Path, upstream: &str, stderr_log: &Path) -> Command {
    let data_dir = dir.join("data");
    std::fs::create_dir(&data_dir).expect("create the mirror's data directory");
    let config = dir.join("config.toml");
    std::fs::write(&config, config_toml(upstream)).expect("write the mirror's config");
    let stderr = File::create(stderr_log).expect("create the mirror's stderr log");

    let mut command = Command::new(env!("CARGO_BIN_EXE_registry-mirror"));
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    isolate_environment(&mut command);
    command
}

/// Settings the machine's environment might hold must not override the test's flags.
fn isolate_environment(command: &mut Command) {
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
    isolate_from_proxies(command);
}

fn config_toml(upstream: &str) -> String {
    format!("[npm]\nupstream = \"{upstream}\"\nmetadata_ttl = \"5m\"\n")
}

/// Reads the child's stdout on a thread, reporting the URL of the `listening on` line, and
/// keeps draining it so that a later line cannot fail the mirror with a broken pipe.
fn watch_stdout(stdout: ChildStdout) -> oneshot::Receiver<String> {
    let (report, listening) = oneshot::channel();
    std::thread::spawn(move || {
        let mut report = Some(report);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                if let Some(report) = report.take() {
                    let _ = report.send(url.to_owned());
                }
            }
        }
    });
    listening
}
