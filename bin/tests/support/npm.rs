//! The real `npm` client, in a throw-away project with its own configuration and cache.
//!
//! Nothing from the machine's npm set-up may leak in: a `~/.npmrc` with, say,
//! `omit-lockfile-registry-resolved` would drop the very lockfile fields the tests check,
//! and a cache shared between runs would answer requests the mirror should have served.
//! So npm gets its own user and global config files, cache and `HOME`, and every inherited
//! `npm_config_*` variable is removed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::process::ProcessRun;
use super::{isolate_from_proxies, terminal};

const NPM_TIMEOUT: Duration = Duration::from_secs(180);

/// `npm login` talks to the registry twice at most; a minute means it is stuck at a prompt.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

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
    pub(crate) async fn install(&self, packages: &[&str]) -> ProcessRun {
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

    /// Runs `npm <args>` in the project with this configuration.
    pub(crate) async fn run(&self, args: &[&str]) -> ProcessRun {
        let command_line = format!("npm {}", args.join(" "));
        ProcessRun::of(command_line, self.command(args), None, NPM_TIMEOUT).await
    }

    fn userconfig_path(&self) -> PathBuf {
        self.root.path().join("npmrc")
    }

    fn command(&self, args: &[&str]) -> Command {
        let userconfig = self.userconfig_path();
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

#[allow(
    dead_code,
    reason = "helpers for the publishing tests; npm_install.rs only installs"
)]
impl Npm {
    /// `npm login --auth-type=legacy`, typing `user` and `password` at its prompts.
    pub(crate) async fn login(&self, user: &str, password: &str) -> ProcessRun {
        let args = ["login", "--auth-type=legacy"];
        let command_line = format!("npm {}", args.join(" "));
        let answers = [("Username:", user), ("Password:", password)];
        terminal::run_answering(command_line, &self.command(&args), &answers, LOGIN_TIMEOUT).await
    }

    /// The key npm files this registry's credentials under: its URL without the scheme,
    /// such as `//127.0.0.1:PORT/npm/`.
    pub(crate) fn credentials_key(&self) -> String {
        let without_scheme = self.registry.split_once(':').map(|(_, rest)| rest);
        without_scheme.unwrap_or(&self.registry).to_owned()
    }

    /// Makes `token` this configuration's credential for its registry, as `npm login` would.
    pub(crate) fn use_token(&self, token: &str) {
        let key = format!("{}:_authToken=", self.credentials_key());
        let kept: Vec<String> = self
            .userconfig()
            .lines()
            .filter(|line| !line.starts_with(&key))
            .map(|line| format!("{line}\n"))
            .collect();
        let npmrc = format!("{}{key}{token}\n", kept.concat());
        std::fs::write(self.userconfig_path(), npmrc).expect("write npmrc");
    }

    /// The user configuration file, where `npm login` saves its token.
    pub(crate) fn userconfig(&self) -> String {
        std::fs::read_to_string(self.userconfig_path()).expect("read npmrc")
    }

    /// Writes a package directory for `name@version` whose `index.js` is `index` (replacing
    /// any earlier one for the same name and version), and returns its path.
    pub(crate) fn write_package(&self, name: &str, version: &str, index: &str) -> PathBuf {
        let dir = self
            .root
            .path()
            .join("packages")
            .join(format!("{}-{version}", name.replace('/', "+")));
        std::fs::create_dir_all(&dir).expect("create a package directory");
        let manifest = json!({
            "name": name,
            "version": version,
            "description": format!("private package {name}"),
            "main": "index.js",
            "license": "MIT",
        });
        let manifest = serde_json::to_string_pretty(&manifest).expect("serialise package.json");
        std::fs::write(dir.join("package.json"), manifest).expect("write package.json");
        std::fs::write(dir.join("index.js"), index).expect("write index.js");
        dir
    }

    /// `npm publish <dir> [args...]`.
    pub(crate) async fn publish(&self, dir: &Path, args: &[&str]) -> ProcessRun {
        let dir = dir.to_str().expect("temporary paths are UTF-8");
        self.run(&[&["publish", dir], args].concat()).await
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
