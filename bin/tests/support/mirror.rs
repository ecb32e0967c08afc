//! The `registry-mirror` binary, run as a child process the way a user runs it, with the
//! fixture as its npm upstream.

use super::http::{self, Fetched};
use super::launch::{Launch, MirrorProcess, ADMIN_TOKEN_ANNOUNCEMENT, CLI_TIMEOUT};
use super::process::ProcessRun;

/// A running mirror with a fresh data directory; killed when dropped. If the test is
/// failing by then, the end of the mirror's stderr is printed with the test's output.
#[derive(Debug)]
pub(crate) struct Mirror {
    process: MirrorProcess,
    client: reqwest::Client,
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
        let process = Launch::new(&config_toml(upstream, extra)).start().await;
        Self {
            process,
            client: http::client(),
        }
    }

    /// The registry URL npm clients use: `http://127.0.0.1:PORT/npm/`.
    pub(crate) fn npm_registry(&self) -> String {
        format!("{}/npm/", self.process.url())
    }

    /// GETs `path` (starting with a slash) on the mirror.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Fetched {
        let url = format!("{}{path}", self.process.url());
        http::get(&self.client, &url, headers).await
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
}

#[allow(
    dead_code,
    reason = "for the publishing tests; npm_install.rs needs neither users nor tokens"
)]
impl Mirror {
    /// The mirror's base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) fn url(&self) -> &str {
        self.process.url()
    }

    /// The admin token `serve` printed on its first start, after checking the announcement
    /// came as documented: before the `listening on` line, followed by a hint line.
    pub(crate) fn admin_token(&self) -> &str {
        let preamble = self.process.preamble();
        let token = self.process.admin_token().unwrap_or_else(|| {
            panic!("no {ADMIN_TOKEN_ANNOUNCEMENT:?} line then `rmt_` token: {preamble:?}")
        });
        let hint = preamble
            .iter()
            .skip_while(|line| line.trim() != token)
            .nth(1);
        assert!(
            hint.is_some_and(|hint| !hint.trim().is_empty()),
            "no hint line after the admin token: {preamble:?}"
        );
        token
    }

    /// Runs `registry-mirror <args> --data-dir <this mirror's> --config <this mirror's>`
    /// alongside the running server, with `input` on its standard input.
    pub(crate) async fn cli(&self, args: &[&str], input: Option<&str>) -> ProcessRun {
        let command_line = format!("registry-mirror {}", args.join(" "));
        let command = self.process.cli_command(args);
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
