//! The `registry-mirror` binary, run as a child process with a `[pypi]` section pointing at
//! the fixture index.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;

use super::isolate_from_proxies;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_BYTES: u64 = 64 * 1024;
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// A running mirror with a fresh data directory; killed when dropped. If the test is
/// failing by then, the end of the mirror's stderr is printed with the test's output.
#[derive(Debug)]
pub(crate) struct PypiMirror {
    url: String,
    child: Child,
    stderr_log: PathBuf,
    dir: TempDir,
}

impl PypiMirror {
    /// Starts the binary mirroring `simple_url`, with files allowed from `files_url` too,
    /// and waits until it listens.
    pub(crate) async fn start(simple_url: &str, files_url: &str) -> Self {
        Self::start_with_config(simple_url, files_url, "").await
    }

    /// Like [`start`](Self::start), with `extra` appended to the configuration file (such
    /// as `[[auth.rules]]` tables).
    pub(crate) async fn start_with_config(simple_url: &str, files_url: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("create the mirror's temporary directory");
        let stderr_log = dir.path().join("mirror.stderr.log");
        let config = format!(
            "[pypi]\nupstream = \"{simple_url}\"\nfiles_upstream = \"{files_url}\"\n{extra}"
        );
        let mut child = command(dir.path(), &config, &stderr_log)
            .spawn()
            .expect("spawn the registry-mirror binary");
        let listening = watch_stdout(child.stdout.take().expect("the mirror's piped stdout"));
        let mut mirror = Self {
            url: String::new(),
            child,
            stderr_log,
            dir,
        };
        mirror.url = match tokio::time::timeout(STARTUP_TIMEOUT, listening).await {
            Ok(Ok(url)) => url.trim_end_matches('/').to_owned(),
            Ok(Err(_)) => panic!("registry-mirror exited without printing `listening on`"),
            Err(_) => {
                panic!("registry-mirror printed no `listening on` line in {STARTUP_TIMEOUT:?}")
            }
        };
        mirror
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The index URL pip and uv are given: `http://127.0.0.1:PORT/pypi/simple/`.
    pub(crate) fn index_url(&self) -> String {
        format!("{}/pypi/simple/", self.url)
    }

    /// Runs `registry-mirror ARGS --data-dir <this mirror's>` beside the running server,
    /// as an administrator would, and returns what it printed; panics if it fails.
    #[allow(
        dead_code,
        reason = "for the upload tests; pypi_install.rs needs no users"
    )]
    pub(crate) async fn cli(&self, args: &[&str]) -> String {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_registry-mirror"));
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_MIRROR_") {
                command.env_remove(key);
            }
        }
        let line = format!("registry-mirror {}", args.join(" "));
        let output = tokio::time::timeout(CLI_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("`{line}` did not finish in {CLI_TIMEOUT:?}"))
            .unwrap_or_else(|error| panic!("run `{line}`: {error}"));
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            output.status.success(),
            "`{line}` failed ({}): {stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
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

impl Drop for PypiMirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.print_log_tail();
        }
    }
}

fn command(dir: &Path, config_toml: &str, stderr_log: &Path) -> Command {
    let data_dir = dir.join("data");
    std::fs::create_dir(&data_dir).expect("create the mirror's data directory");
    let config = dir.join("config.toml");
    std::fs::write(&config, config_toml).expect("write the mirror's config");
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
    command
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
