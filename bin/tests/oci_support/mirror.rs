//! The `registry-mirror` binary, run as a child process the way a user runs it.

use super::client;
use super::launch::{Launch, MirrorProcess};

/// A running mirror with a fresh data directory; killed when dropped, its log printed if
/// the test is failing.
#[derive(Debug)]
pub(crate) struct Mirror {
    /// `127.0.0.1:PORT`, as image references name it.
    pub(crate) host: String,
    process: MirrorProcess,
    client: reqwest::Client,
}

impl Mirror {
    /// Starts the binary with `[docker]` configuration `docker_toml` (the section's body
    /// and its sub-tables) and waits until it listens.
    pub(crate) async fn start(docker_toml: &str) -> Self {
        let process = Launch::new(docker_toml).start().await;
        Mirror {
            host: process.address().to_owned(),
            process,
            client: client(),
        }
    }

    /// Adds a user with `registry-mirror user add` on this mirror's data, as an operator
    /// does while the server runs.
    pub(crate) async fn add_user(&self, name: &str, password: &str) {
        let add = ["user", "add", name, "--password", password];
        self.process.run_cli(&add).await;
    }

    /// Creates an API token for `user` with `registry-mirror token create`; returns it.
    pub(crate) async fn create_token(&self, user: &str, options: &[&str]) -> String {
        let create = [&["token", "create", "--user", user], options].concat();
        let token = self.process.run_cli(&create).await;
        assert!(token.starts_with("rmt_"), "a token on stdout: {token}");
        token
    }

    /// A request builder for `method` `path` (from `/v2/...`) on the mirror.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url()))
    }

    pub(crate) fn url(&self) -> String {
        self.process.url().to_owned()
    }

    /// GETs `path` (from `/v2/...`) on the mirror.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.url()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("a response from the mirror")
    }
}
