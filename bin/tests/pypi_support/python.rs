//! Real `pip` and `uv` installing into fresh virtual environments.
//!
//! Nothing from the machine's Python set-up may leak in: a `PIP_INDEX_URL`,
//! `PIP_FIND_LINKS` or `UV_INDEX_URL`, a `pip.conf` or a `uv.toml` could supply files that
//! never went through the mirror and make a broken mirror look fine. So every `PIP_*` and
//! `UV_*` variable is removed, pip gets `--isolated` and `PIP_CONFIG_FILE=/dev/null` (no
//! configuration file at all), uv gets `--no-config`, both get no cache, and `HOME` points
//! at an empty directory.

use std::collections::BTreeMap;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::Command;

use super::isolate_from_proxies;

const INSTALL_TIMEOUT: Duration = Duration::from_secs(240);

/// A virtual environment made by `python3 -m venv`, deleted when dropped.
#[derive(Debug)]
pub(crate) struct Venv {
    root: TempDir,
    python: PathBuf,
}

impl Venv {
    /// A fresh environment with pip in it.
    pub(crate) async fn with_pip() -> Self {
        Self::create(&[]).await
    }

    /// A fresh environment without pip, for uv, which installs into it from outside.
    pub(crate) async fn bare() -> Self {
        Self::create(&["--without-pip"]).await
    }

    async fn create(flags: &[&str]) -> Self {
        let root = tempfile::tempdir().expect("create a temporary directory for a venv");
        std::fs::create_dir(root.path().join("home")).expect("create the venv's home");
        let env_dir = root.path().join("env");
        let mut command = isolated(Command::new("python3"), root.path());
        command.args(["-m", "venv"]).args(flags).arg(&env_dir);
        run(command, "python3 -m venv").await.assert_success();
        Self {
            python: env_dir.join("bin").join("python"),
            root,
        }
    }

    /// `pip install --index-url INDEX PACKAGES` with this environment's pip.
    pub(crate) async fn pip_install(&self, index: &str, packages: &[&str]) -> Run {
        let mut command = isolated(Command::new(&self.python), self.root.path());
        command
            .args(["-m", "pip", "install", "--isolated", "--no-cache-dir"])
            .args(["--index-url", index])
            .args([
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
            ])
            .args(["--retries", "1", "--timeout", "30"])
            .args(packages)
            .env("PIP_CONFIG_FILE", "/dev/null");
        run(command, &format!("pip install {}", packages.join(" "))).await
    }

    /// `uv pip install --index-url INDEX PACKAGES` into this environment.
    pub(crate) async fn uv_install(&self, index: &str, packages: &[&str]) -> Run {
        let mut command = isolated(uv(), self.root.path());
        command
            .args([
                "pip",
                "install",
                "--no-config",
                "--no-cache",
                "--color",
                "never",
            ])
            .arg("--python")
            .arg(&self.python)
            .args(["--index-url", index])
            .args(packages);
        run(command, &format!("uv pip install {}", packages.join(" "))).await
    }

    /// Installed distributions by normalized name, with their versions, read from each
    /// `*.dist-info/METADATA` in site-packages.
    pub(crate) fn installed(&self) -> BTreeMap<String, String> {
        let mut installed = BTreeMap::new();
        for metadata in self.dist_info_metadata() {
            let text = std::fs::read_to_string(&metadata).expect("read METADATA");
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            let name = field("Name:").to_ascii_lowercase().replace(['_', '.'], "-");
            installed.insert(name, field("Version:"));
        }
        installed.retain(|name, _| name.starts_with("fixture-"));
        installed
    }

    fn dist_info_metadata(&self) -> Vec<PathBuf> {
        let lib = self.root.path().join("env").join("lib");
        let mut found = Vec::new();
        for python in std::fs::read_dir(&lib).expect("read the venv's lib directory") {
            let site = python.expect("lib entry").path().join("site-packages");
            let Ok(entries) = std::fs::read_dir(&site) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("site-packages entry").path();
                if path.extension().is_some_and(|e| e == "dist-info") {
                    found.push(path.join("METADATA"));
                }
            }
        }
        found
    }

    /// Runs `python -c CODE` in the environment, as a check that installed code imports.
    pub(crate) async fn python(&self, code: &str) -> Run {
        let mut command = isolated(Command::new(&self.python), self.root.path());
        command.args(["-c", code]);
        run(command, "python -c").await
    }
}

/// `twine upload --repository-url URL -u USER -p PASSWORD --non-interactive FILES` with the
/// twine of the Python that runs the tests (scripts/check.sh installs it), from an empty home:
/// no `.pypirc`, no keyring entry and no `TWINE_*` setting can supply another credential.
#[allow(
    dead_code,
    reason = "for the upload tests; pypi_install.rs uploads nothing"
)]
pub(crate) async fn twine_upload(
    repository_url: &str,
    credentials: (&str, &str),
    files: &[PathBuf],
) -> Run {
    let root = tempfile::tempdir().expect("create a temporary home for twine");
    std::fs::create_dir(root.path().join("home")).expect("create twine's home");
    let (user, password) = credentials;
    let mut command = isolated(Command::new("python3"), root.path());
    command
        .args(["-m", "twine", "upload", "--repository-url", repository_url])
        .args(["-u", user, "-p", password])
        .args(["--non-interactive", "--disable-progress-bar"])
        .args(files);
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    run(command, &format!("twine upload {}", names.join(" "))).await
}

/// `uv` from PATH, else the one `pip install uv` put in the Python that runs the tests.
fn uv() -> Command {
    let on_path = std::process::Command::new("uv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        Command::new("uv")
    } else {
        let mut command = Command::new("python3");
        command.args(["-m", "uv"]);
        command
    }
}

/// A command with none of the machine's pip, uv or Python settings.
fn isolated(mut command: Command, root: &Path) -> Command {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy().to_ascii_uppercase();
        let python_setting = ["PIP_", "UV_", "PYTHON", "TWINE_"]
            .iter()
            .any(|p| key_text.starts_with(p));
        if python_setting || key_text == "VIRTUAL_ENV" {
            command.env_remove(key);
        }
    }
    command
        .env("HOME", root.join("home"))
        .env("XDG_CONFIG_HOME", root.join("home").join(".config"))
        .env("XDG_CACHE_HOME", root.join("home").join(".cache"))
        .env("PYTHONNOUSERSITE", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(root)
        .kill_on_drop(true);
    isolate_from_proxies(command.as_std_mut());
    command
}

async fn run(mut command: Command, description: &str) -> Run {
    let output = match tokio::time::timeout(INSTALL_TIMEOUT, command.output()).await {
        Err(_) => panic!("`{description}` did not finish in {INSTALL_TIMEOUT:?}"),
        Ok(Err(error)) if error.kind() == ErrorKind::NotFound => panic!(
            "`{description}`: program not found; these tests drive real python3 (with venv), \
             pip, uv and twine: run ./scripts/check.sh, which installs them"
        ),
        Ok(output) => output.unwrap_or_else(|error| panic!("run `{description}`: {error}")),
    };
    Run::new(description, &output)
}

/// What one command did.
pub(crate) struct Run {
    description: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn new(description: &str, output: &Output) -> Self {
        Run {
            description: description.to_owned(),
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub(crate) fn assert_success(&self) {
        assert!(self.status.success(), "expected success from {self}");
    }

    pub(crate) fn assert_failure(&self) {
        assert!(!self.status.success(), "expected a failure from {self}");
    }

    /// Whether stdout or stderr mentions `text`.
    pub(crate) fn mentions(&self, text: &str) -> bool {
        self.stdout.contains(text) || self.stderr.contains(text)
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.description, self.status, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
