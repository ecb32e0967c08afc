//! The `registry-mirror` binary started as a child process the way an operator starts it:
//! `serve` on port 0 with a configuration file and a data directory, its stderr in a log
//! file whose end is printed when the test fails, killed when the test lets go of it.
//!
//! Each `tests/*.rs` file is a crate of its own, so this file is not a crate they depend on
//! but a module every support module that runs the server includes by path. Those modules
//! keep what differs between the ecosystems: the configuration they write, the requests
//! their tests send, how a CLI run is checked. The proxy isolation every other child
//! process of the tests gets (npm, pip, skopeo, the upstream registry) lives here too.

#![allow(
    dead_code,
    reason = "every test crate that runs the binary includes this file and uses part of it"
)]

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;

const BINARY: &str = env!("CARGO_BIN_EXE_registry-mirror");

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Hashing a password is deliberately slow, but a CLI command is still a matter of seconds.
pub(crate) const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The line `serve` prints before the admin token on its very first start.
pub(crate) const ADMIN_TOKEN_ANNOUNCEMENT: &str =
    "created user admin with this admin token (shown only once, keep it safe):";

/// How much of the end of the server's log a failing test prints.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// Debug logs of the server itself, without the per-frame chatter of the HTTP libraries.
const DEFAULT_LOG_FILTER: &str = "debug,hyper=info,hyper_util=info,reqwest=info,h2=info";

/// A server about to start: its directory (`config.toml`, `data/`, the stderr log) and,
/// optionally, a command to run the binary through.
#[derive(Debug)]
pub(crate) struct Launch {
    dir: PathBuf,
    /// Deleted with the server; `None` when the test keeps the directory.
    temporary: Option<TempDir>,
    wrapper: Option<Command>,
}

impl Launch {
    /// A fresh temporary directory holding `config` and an empty data directory.
    pub(crate) fn new(config: &str) -> Self {
        let temporary = tempfile::tempdir().expect("create the mirror's temporary directory");
        let mut launch = Self::in_dir(temporary.path(), config);
        launch.temporary = Some(temporary);
        launch
    }

    /// Writes `config` into `dir`, which outlives the server so that another can start on
    /// the same data; a data directory already there is kept, and the log is appended to.
    pub(crate) fn in_dir(dir: &Path, config: &str) -> Self {
        std::fs::create_dir_all(dir.join("data")).expect("create the mirror's data directory");
        std::fs::write(dir.join("config.toml"), config).expect("write the mirror's config");
        Self {
            dir: dir.to_owned(),
            temporary: None,
            wrapper: None,
        }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs the binary through `wrapper`: the binary and its arguments are appended to the
    /// wrapper's. A wrapper that ends by `exec`ing them keeps the child's id the server's.
    pub(crate) fn wrapped_in(mut self, wrapper: Command) -> Self {
        self.wrapper = Some(wrapper);
        self
    }

    /// Spawns `serve` and waits until it prints its `listening on` line.
    pub(crate) async fn start(self) -> MirrorProcess {
        let stderr_log = self.dir.join("mirror.stderr.log");
        let mut child = serve_command(self.wrapper, &self.dir, &stderr_log)
            .spawn()
            .expect("spawn the registry-mirror binary");
        let started = watch_stdout(child.stdout.take().expect("the mirror's piped stdout"));
        // Built before the wait, so that a server failing to start is killed and its log
        // printed like any other.
        let mut server = MirrorProcess {
            url: String::new(),
            preamble: Vec::new(),
            child,
            dir: self.dir,
            stderr_log,
            _temporary: self.temporary,
        };

        let startup = server.wait_until_listening(started).await;
        server.url = startup.url.trim_end_matches('/').to_owned();
        server.preamble = startup.preamble;
        server
    }
}

/// A running `serve`; killed when dropped. If the test is failing by then, the end of the
/// server's stderr is printed with the test's output.
#[derive(Debug)]
pub(crate) struct MirrorProcess {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    url: String,
    /// What `serve` printed on stdout before its `listening on` line.
    preamble: Vec<String>,
    child: Child,
    dir: PathBuf,
    stderr_log: PathBuf,
    _temporary: Option<TempDir>,
}

/// What `serve` printed up to and including its `listening on` line.
#[derive(Debug)]
struct Startup {
    url: String,
    preamble: Vec<String>,
}

impl MirrorProcess {
    async fn wait_until_listening(&mut self, started: oneshot::Receiver<Startup>) -> Startup {
        match tokio::time::timeout(STARTUP_TIMEOUT, started).await {
            Ok(Ok(startup)) => startup,
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

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The lines `serve` printed on stdout before its `listening on` line.
    pub(crate) fn preamble(&self) -> &[String] {
        &self.preamble
    }

    /// The `rmt_` token on the line after [`ADMIN_TOKEN_ANNOUNCEMENT`] in the preamble, if
    /// this was the data directory's first start.
    pub(crate) fn admin_token(&self) -> Option<&str> {
        let position = self
            .preamble
            .iter()
            .position(|line| line == ADMIN_TOKEN_ANNOUNCEMENT)?;
        let token = self.preamble.get(position + 1).map(|line| line.trim());
        token.filter(|token| token.starts_with("rmt_"))
    }

    /// The process id of the child: the server's, also when it runs through a wrapper.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .expect("poll the registry-mirror process")
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The data directory, as the server was told it.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `registry-mirror <args> --data-dir <this server's> --config <this server's>`, to run
    /// beside the server as an administrator would.
    pub(crate) fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.dir.join("config.toml"));
        isolate_environment(&mut command);
        command
    }

    /// Runs [`cli_command`](Self::cli_command) with an empty stdin and returns its stdout,
    /// trimmed; panics if it fails or outlives [`CLI_TIMEOUT`].
    pub(crate) async fn run_cli(&self, args: &[&str]) -> String {
        let line = format!("registry-mirror {}", args.join(" "));
        let mut command = tokio::process::Command::from(self.cli_command(args));
        command.stdin(Stdio::null()).kill_on_drop(true);
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

impl Drop for MirrorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.print_log_tail();
        }
    }
}

/// `serve` on a loopback port of the system's choosing, on `dir`'s configuration and data,
/// its stderr appended to `stderr_log`, run through `wrapper` if there is one.
fn serve_command(wrapper: Option<Command>, dir: &Path, stderr_log: &Path) -> Command {
    let stderr = File::options()
        .create(true)
        .append(true)
        .open(stderr_log)
        .expect("open the mirror's stderr log");
    let mut command = match wrapper {
        Some(mut wrapper) => {
            wrapper.arg(BINARY);
            wrapper
        }
        None => Command::new(BINARY),
    };

    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("config.toml"))
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
        command.env("RUST_LOG", DEFAULT_LOG_FILTER);
    }
    isolate_from_proxies(command);
}

/// Makes a child process talk to loopback directly: a proxy configured on the machine must
/// not carry (or refuse) the tests' traffic.
pub(crate) fn isolate_from_proxies(command: &mut Command) {
    for key in ["http_proxy", "https_proxy", "all_proxy"] {
        command.env_remove(key).env_remove(key.to_ascii_uppercase());
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
}

/// Reads the child's stdout on a thread, reporting the `listening on` line's URL and the
/// lines before it, and keeps draining it so that a later line cannot fail the server with
/// a broken pipe.
fn watch_stdout(stdout: ChildStdout) -> oneshot::Receiver<Startup> {
    let (report, started) = oneshot::channel();
    std::thread::spawn(move || {
        let mut report = Some(report);
        let mut preamble = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(sender) = report.take() else {
                continue;
            };
            match line.trim().strip_prefix("listening on ") {
                Some(url) => {
                    let url = url.to_owned();
                    let preamble = std::mem::take(&mut preamble);
                    let _ = sender.send(Startup { url, preamble });
                }
                None => {
                    preamble.push(line);
                    report = Some(sender);
                }
            }
        }
    });
    started
}
