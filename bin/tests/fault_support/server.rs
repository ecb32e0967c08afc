//! The `registry-mirror` binary as a child process, optionally on a data directory of a
//! fixed, small size (a tmpfs mounted in a mount namespace of its own).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::launch::{Launch, MirrorProcess};

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
    process: MirrorProcess,
    disk: Disk,
}

impl Server {
    /// Starts `serve` with `config` as its TOML file, on a data directory limited by `disk`.
    pub(crate) async fn start(config: &str, disk: Disk) -> Self {
        let mut launch = Launch::new(config);
        if let Disk::Limited(bytes) = disk {
            let wrapper = on_tmpfs(bytes, &launch.data_dir());
            launch = launch.wrapped_in(wrapper);
        }
        let process = launch.start().await;
        Self { process, disk }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        self.process.url()
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> &str {
        self.process.address()
    }

    /// The token of the admin user created on the first start.
    pub(crate) fn admin_token(&self) -> &str {
        self.process
            .admin_token()
            .expect("serve printed an admin token on its first start")
    }

    /// The process id of the server itself.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The data directory as the test process reaches it: through the server's own view of
    /// the file system when it lives in a mount namespace of its own.
    pub(crate) fn data_dir(&self) -> PathBuf {
        let data_dir = self.process.data_dir();
        match self.disk {
            Disk::Unlimited => data_dir,
            Disk::Limited(_) => {
                let inside = data_dir.strip_prefix("/").expect("an absolute path");
                Path::new(&format!("/proc/{}/root", self.pid())).join(inside)
            }
        }
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.process.is_running()
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
}

/// The wrapper that runs the binary through `unshare`, mounting a tmpfs of `bytes` over
/// `data_dir` first. The mount exists only in the server's own mount namespace, so it
/// disappears with the server whatever happens to the test; `exec` keeps the process id,
/// so the child's id is the server's.
fn on_tmpfs(bytes: u64, data_dir: &Path) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(namespace_flags())
        .args(["sh", "-c", MOUNT_AND_EXEC, "sh"])
        .arg(format!("size={bytes}"))
        .arg(data_dir);
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
