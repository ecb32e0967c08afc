//! The real `npm` client, in a throw-away project with its own configuration and cache.
//!
//! Nothing from the machine's npm set-up may leak in: a `~/.npmrc` with, say,
//! `omit-lockfile-registry-resolved` would drop the very lockfile fields the tests check,
//! and a cache shared between runs would answer requests the mirror should have served.
//! So npm gets its own user and global config files, cache and `HOME`, and every inherited
//! `npm_config_*` variable is removed.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::isolate_from_proxies;

const NPM_TIMEOUT: Duration = Duration::from_secs(180);

/// A project directory and an npm configuration pointing at one registry.
#[derive(Debug)]
pub(crate) struct Npm {
    root: TempDir,
    project: PathBuf,
    registry: String,
    cache: PathBuf,
    caches_used: usize,
}

impl Npm {
    /// A fresh project using `registry` (with a trailing slash), with no dependencies yet.
    pub(crate) fn new(registry: &str) -> Self {
        let root = tempfile::tempdir().expect("create a temporary npm project");
        for dir in ["project", "home"] {
            std::fs::create_dir(root.path().join(dir)).expect("create an npm directory");
        }
        std::fs::write(root.path().join("npmrc"), npmrc(registry)).expect("write npmrc");
        std::fs::write(root.path().join("global-npmrc"), "").expect("write global npmrc");

        let npm = Self {
            project: root.path().join("project"),
            cache: root.path().join("cache-1"),
            root,
            registry: registry.to_owned(),
            caches_used: 1,
        };
        npm.write_dependencies(&[]);
        npm
    }

    pub(crate) fn project(&self) -> &Path {
        &self.project
    }

    /// Writes the project's `package.json` with these `(name, range)` dependencies.
    pub(crate) fn write_dependencies(&self, dependencies: &[(&str, &str)]) {
        let dependencies: serde_json::Map<String, Value> = dependencies
            .iter()
            .map(|(name, range)| ((*name).to_owned(), Value::from(*range)))
            .collect();
        let manifest = json!({
            "name": "fixture-project",
            "version": "1.0.0",
            "private": true,
            "dependencies": dependencies,
        });
        let manifest = serde_json::to_string_pretty(&manifest).expect("serialise package.json");
        std::fs::write(self.project().join("package.json"), manifest).expect("write package.json");
    }

    /// Runs `npm install [packages...]` in the project.
    pub(crate) async fn install(&self, packages: &[&str]) -> NpmRun {
        self.run(&[&["install"], packages].concat()).await
    }

    /// The project's `package-lock.json`.
    pub(crate) fn lockfile(&self) -> Value {
        let path = self.project().join("package-lock.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
        serde_json::from_str(&text).expect("package-lock.json is JSON")
    }

    /// Deletes `node_modules` and the lockfile and switches to a new, empty npm cache, so
    /// that the next install has to fetch everything again.
    pub(crate) fn start_over_with_empty_cache(&mut self) {
        std::fs::remove_dir_all(self.project().join("node_modules")).expect("remove node_modules");
        std::fs::remove_file(self.project().join("package-lock.json")).expect("remove lockfile");
        self.caches_used += 1;
        self.cache = self.root.path().join(format!("cache-{}", self.caches_used));
    }

    async fn run(&self, args: &[&str]) -> NpmRun {
        let command_line = format!("npm {}", args.join(" "));
        let mut command = tokio::process::Command::from(self.command(args));
        command.kill_on_drop(true);

        let output = match tokio::time::timeout(NPM_TIMEOUT, command.output()).await {
            Err(_) => panic!("`{command_line}` did not finish in {NPM_TIMEOUT:?}"),
            Ok(Err(error)) if error.kind() == ErrorKind::NotFound => {
                panic!("`npm` is not on PATH: these tests drive the real npm client, install it")
            }
            Ok(output) => output.unwrap_or_else(|error| panic!("run `{command_line}`: {error}")),
        };

        NpmRun {
            command_line,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let userconfig = self.root.path().join("npmrc");
        let mut command = Command::new("npm");
        command
            .args(args)
            .arg("--userconfig")
            .arg(&userconfig)
            .arg("--globalconfig")
            .arg(self.root.path().join("global-npmrc"))
            .arg("--cache")
            .arg(&self.cache)
            .args(["--registry", &self.registry])
            .args([
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--loglevel=http",
            ])
            .current_dir(self.project());
        for (key, _) in std::env::vars_os() {
            if key
                .to_string_lossy()
                .to_ascii_lowercase()
                .starts_with("npm_config_")
            {
                command.env_remove(key);
            }
        }
        command
            .env("npm_config_userconfig", &userconfig)
            .env("HOME", self.root.path().join("home"));
        isolate_from_proxies(&mut command);
        command
    }
}

/// Retries stay on (a mirror should survive them) but back off in milliseconds, not the
/// default tens of seconds, so that a failing install fails quickly.
fn npmrc(registry: &str) -> String {
    format!(
        "registry={registry}\n\
         fetch-retries=2\n\
         fetch-retry-mintimeout=100\n\
         fetch-retry-maxtimeout=1000\n"
    )
}

/// What one npm command did.
pub(crate) struct NpmRun {
    command_line: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl NpmRun {
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

impl fmt::Display for NpmRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command_line, self.status, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for NpmRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
