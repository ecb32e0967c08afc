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
use super::process::ProcessRun;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Hashing a password is deliberately slow, but a CLI command is still a matter of seconds.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The line `serve` prints before the admin token on its very first start.
const ADMIN_TOKEN_ANNOUNCEMENT: &str =
    "created user admin with this admin token (shown only once, keep it safe):";

/// How much of the end of the mirror's log a failing test prints.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// A running mirror with a fresh data directory; killed when dropped. If the test is
/// failing by then, the end of the mirror's stderr is printed with the test's output.
#[derive(Debug)]
pub(crate) struct Mirror {
    url: String,
    /// What `serve` printed on stdout before its `listening on` line.
    preamble: Vec<String>,
    child: Child,
    stderr_log: PathBuf,
    client: reqwest::Client,
    /// Holds the config file and the data directory.
    dir: TempDir,
}

/// What `serve` printed up to and including its `listening on` line.
#[derive(Debug)]
struct Startup {
    url: String,
    preamble: Vec<String>,
}

impl Mirror {
    /// Starts the binary with `upstream` as its npm upstream and waits until it listens.
    pub(crate) async fn start(upstream: &str) -> Self {
        Self::start_with_config(upstream, "").await
    }

    /// Like [`Mirror::start`], with `extra` TOML merged into the configuration file: its
    /// tables add to (or override keys of) the ones `start` writes, so `[npm]` may appear
    /// in it as well as `[auth]` or `[[auth.rules]]`.
    pub(crate) async fn start_with_config(upstream: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("create the mirror's temporary directory");
        let stderr_log = dir.path().join("mirror.stderr.log");
        let mut child = command(dir.path(), &config_toml(upstream, extra), &stderr_log)
            .spawn()
            .expect("spawn the registry-mirror binary");
        let started = watch_stdout(child.stdout.take().expect("the mirror's piped stdout"));
        // Built before the wait, so that a mirror failing to start is killed and its log
        // printed like any other.
        let mut mirror = Self {
            url: String::new(),
            preamble: Vec::new(),
            child,
            stderr_log,
            client: http::client(),
            dir,
        };

        let startup = mirror.wait_until_listening(started).await;
        mirror.url = startup.url.trim_end_matches('/').to_owned();
        mirror.preamble = startup.preamble;
        mirror
    }

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

#[allow(
    dead_code,
    reason = "for the publishing tests; npm_install.rs needs neither users nor tokens"
)]
impl Mirror {
    /// The mirror's base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The admin token `serve` printed on its first start, after checking the announcement
    /// came as documented: before the `listening on` line, followed by a hint line.
    pub(crate) fn admin_token(&self) -> &str {
        let position = self
            .preamble
            .iter()
            .position(|line| line == ADMIN_TOKEN_ANNOUNCEMENT);
        let position = position.unwrap_or_else(|| {
            panic!(
                "no {ADMIN_TOKEN_ANNOUNCEMENT:?} line before `listening on`: {:?}",
                self.preamble
            )
        });
        let token = self.preamble.get(position + 1).map(|line| line.trim());
        let token = token.filter(|token| token.starts_with("rmt_"));
        let hint = self.preamble.get(position + 2);
        assert!(
            hint.is_some_and(|hint| !hint.trim().is_empty()),
            "no hint line after the admin token: {:?}",
            self.preamble
        );
        token.unwrap_or_else(|| panic!("no `rmt_` token line: {:?}", self.preamble))
    }

    /// Runs `registry-mirror <args> --data-dir <this mirror's> --config <this mirror's>`
    /// alongside the running server, with `input` on its standard input.
    pub(crate) async fn cli(&self, args: &[&str], input: Option<&str>) -> ProcessRun {
        let command_line = format!("registry-mirror {}", args.join(" "));
        let mut command = Command::new(env!("CARGO_BIN_EXE_registry-mirror"));
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"));
        isolate_environment(&mut command);
        ProcessRun::of(command_line, command, input, CLI_TIMEOUT).await
    }

    /// `registry-mirror user add <name> --password <password>`, which must succeed.
    pub(crate) async fn add_user(&self, name: &str, password: &str) {
        self.cli(&["user", "add", name, "--password", password], None)
            .await
            .assert_success();
    }

    /// `registry-mirror token create --user <user> [options]`: the token it printed.
    pub(crate) async fn create_token(&self, user: &str, options: &[&str]) -> String {
        let created = self
            .cli(
                &[&["token", "create", "--user", user], options].concat(),
                None,
            )
            .await;
        let token = created.success_stdout();
        assert!(
            token.starts_with("rmt_") && !token.contains(char::is_whitespace),
            "stdout should be the token alone: {created}"
        );
        token.to_owned()
    }
}

/// Writes `config` and makes an empty data directory in `dir`, and the command running the
/// mirror on them.
fn command(dir: &Path, config: &str, stderr_log: &Path) -> Command {
    let data_dir = dir.join("data");
    std::fs::create_dir(&data_dir).expect("create the mirror's data directory");
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config).expect("write the mirror's config");
    let stderr = File::create(stderr_log).expect("create the mirror's stderr log");

    let mut command = Command::new(env!("CARGO_BIN_EXE_registry-mirror"));
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--config")
        .arg(&config_path)
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

/// The configuration: the fixture as npm upstream, with `extra` merged in.
fn config_toml(upstream: &str, extra: &str) -> String {
    let mut config = toml::Table::new();
    let mut npm = toml::Table::new();
    npm.insert("upstream".to_owned(), upstream.into());
    npm.insert("metadata_ttl".to_owned(), "5m".into());
    config.insert("npm".to_owned(), npm.into());

    let extra: toml::Table = extra
        .parse()
        .unwrap_or_else(|error| panic!("extra mirror config is not TOML: {error}\n{extra}"));
    merge(&mut config, extra);
    config.to_string()
}

/// Adds `extra`'s keys to `base`, recursing into tables both have.
fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(extra)) => merge(base, extra),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Reads the child's stdout on a thread, reporting the `listening on` line's URL and the
/// lines before it, and keeps draining it so that a later line cannot fail the mirror with
/// a broken pipe.
fn watch_stdout(stdout: ChildStdout) -> oneshot::Receiver<Startup> {
    let (report, started) = oneshot::channel();
    std::thread::spawn(move || {
        let mut report = Some(report);
        let mut preamble = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if report.is_none() {
                continue;
            }
            match line.trim().strip_prefix("listening on ") {
                Some(url) => {
                    let startup = Startup {
                        url: url.to_owned(),
                        preamble: std::mem::take(&mut preamble),
                    };
                    if let Some(report) = report.take() {
                        let _ = report.send(startup);
                    }
                }
                None => preamble.push(line),
            }
        }
    });
    started
}
