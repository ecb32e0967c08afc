//! The `registry-mirror` binary as a child process, optionally on a data directory of a
//! fixed, small size (a tmpfs mounted in a mount namespace of its own).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// The line `serve` prints before the admin token on its first start.
const ADMIN_TOKEN_ANNOUNCEMENT: &str =
    "created user admin with this admin token (shown only once, keep it safe):";

/// How big the data directory may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Disk {
    /// Whatever the temporary directory's file system holds.
    Unlimited,
    /// A tmpfs of this many bytes, private to the server's mount namespace.
    Limited(u64),
}

/// A running server with its own configuration and data directory; killed when dropped,
/// printing the end of its log if the test is failing.
#[derive(Debug)]
pub(crate) struct Server {
    url: String,
    admin_token: Option<String>,
    child: Child,
    data_dir: PathBuf,
    disk: Disk,
    stderr_log: PathBuf,
    _dir: TempDir,
}

/// What `serve` printed on stdout up to its `listening on` line.
#[derive(Debug)]
struct Startup {
    url: String,
    preamble: Vec<String>,
}

impl Server {
    /// Starts `serve` with `config` as its TOML file, on a data directory limited by `disk`.
    pub(crate) async fn start(config: &str, disk: Disk) -> Self {
        let dir = tempfile::tempdir().expect("create the server's temporary directory");
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir).expect("create the data directory");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write the configuration");
        let stderr_log = dir.path().join("stderr.log");

        let mut command = wrapped(disk, &data_dir);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_log).expect("create the server's log"));
        isolate_environment(&mut command);
        let mut child = command.spawn().expect("spawn registry-mirror");
        let started = watch_stdout(child.stdout.take().expect("piped stdout"));
        let mut server = Server {
            url: String::new(),
            admin_token: None,
            child,
            data_dir,
            disk,
            stderr_log,
            _dir: dir,
        };

        let startup = match tokio::time::timeout(STARTUP_TIMEOUT, started).await {
            Ok(Ok(startup)) => startup,
            Ok(Err(_)) => panic!(
                "registry-mirror exited without printing `listening on` ({:?})",
                server.child.try_wait()
            ),
            Err(_) => panic!("registry-mirror printed no `listening on` in {STARTUP_TIMEOUT:?}"),
        };
        server.url = startup.url.trim_end_matches('/').to_owned();
        server.admin_token = admin_token(&startup.preamble);
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The token of the admin user created on the first start.
    pub(crate) fn admin_token(&self) -> &str {
        self.admin_token
            .as_deref()
            .expect("serve printed an admin token on its first start")
    }

    /// The process id of the server itself.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The data directory as the test process reaches it: through the server's own view of
    /// the file system when it lives in a mount namespace of its own.
    pub(crate) fn data_dir(&self) -> PathBuf {
        match self.disk {
            Disk::Unlimited => self.data_dir.clone(),
            Disk::Limited(_) => {
                let inside = self.data_dir.strip_prefix("/").expect("an absolute path");
                Path::new(&format!("/proc/{}/root", self.pid())).join(inside)
            }
        }
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The resident set size in KiB, from `/proc/<pid>/status`.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.print_log_tail();
        }
    }
}

/// The command that runs the binary: directly, or through `unshare` mounting a tmpfs of the
/// given size over the data directory first. The mount exists only in the server's own
/// mount namespace, so it disappears with the server whatever happens to the test; `exec`
/// keeps the process id, so the child's id is the server's.
fn wrapped(disk: Disk, data_dir: &Path) -> Command {
    let binary = env!("CARGO_BIN_EXE_registry-mirror");
    let Disk::Limited(bytes) = disk else {
        return Command::new(binary);
    };
    let mut command = Command::new("unshare");
    command
        .args(namespace_flags())
        .args(["sh", "-c", MOUNT_AND_EXEC, "sh"])
        .arg(format!("size={bytes}"))
        .arg(data_dir)
        .arg(binary);
    command
}

/// Mounts a tmpfs with options `$1` on `$2`, then runs the rest of the arguments.
const MOUNT_AND_EXEC: &str =
    r#"mount -t tmpfs -o "$1" registry-mirror-test "$2" && shift 2 && exec "$@""#;

/// `unshare` flags that let this process mount a tmpfs: a user namespace where it is root
/// (works unprivileged where the kernel allows it), else a mount namespace alone (root).
fn namespace_flags() -> &'static [&'static str] {
    static FLAGS: OnceLock<&'static [&'static str]> = OnceLock::new();
    FLAGS.get_or_init(|| {
        let candidates: [&'static [&'static str]; 2] =
            [&["--user", "--map-root-user", "--mount"], &["--mount"]];
        let probe = tempfile::tempdir().expect("a directory to probe mounting on");
        let works = |flags: &&[&str]| {
            Command::new("unshare")
                .args(*flags)
                .args(["sh", "-c", MOUNT_AND_EXEC, "sh", "size=1m"])
                .arg(probe.path())
                .arg("true")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        candidates.into_iter().find(works).unwrap_or_else(|| {
            panic!(
                "cannot mount a small tmpfs for the disk-full test: neither `unshare --user \
                 --map-root-user --mount` (unprivileged user namespaces) nor `unshare --mount` \
                 (root) could mount one; run as root or enable user namespaces"
            )
        })
    })
}

/// Settings from the machine's environment must not override the test's.
fn isolate_environment(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("REGISTRY_MIRROR_") || key_text.to_lowercase().ends_with("_proxy") {
            command.env_remove(key);
        }
    }
    command.env("NO_PROXY", "*");
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "debug,hyper=info,hyper_util=info,reqwest=info");
    }
}

fn admin_token(preamble: &[String]) -> Option<String> {
    let position = preamble
        .iter()
        .position(|line| line == ADMIN_TOKEN_ANNOUNCEMENT)?;
    preamble
        .get(position + 1)
        .map(|line| line.trim().to_owned())
        .filter(|token| token.starts_with("rmt_"))
}

/// Reads stdout on a thread up to the `listening on` line, then keeps draining it.
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
