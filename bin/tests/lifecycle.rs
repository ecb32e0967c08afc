//! The process as an operator sees it: stopped with SIGTERM in the middle of a download, or
//! killed with SIGKILL, and started again on the same data directory.

#![allow(
    clippy::expect_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

#[allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of the shared support"
)]
mod support;

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use support::launch::{Launch, MirrorProcess};
use support::{published, tarball_path, FixtureRegistry, BIG_PACKAGE};

/// The binary on a data directory that outlives it, so it can be started again.
struct Process {
    server: MirrorProcess,
}

impl Process {
    async fn start(dir: &Path, upstream: &str) -> Self {
        Self::start_with(dir, upstream, "").await
    }

    /// Starts with `top_level` TOML lines placed before the `[npm]` table.
    async fn start_with(dir: &Path, upstream: &str, top_level: &str) -> Self {
        let config = format!("{top_level}[npm]\nupstream = \"{upstream}\"\n");
        let server = Launch::in_dir(dir, &config).start().await;
        Process { server }
    }

    fn url(&self) -> &str {
        self.server.url()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.server.pid().to_string()])
            .status();
        assert!(status.expect("run kill").success(), "kill {signal} failed");
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.server.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "registry-mirror did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn tarball_url(&self) -> String {
        format!("{}/npm{}", self.url(), tarball_path(BIG_PACKAGE, "1.0.0"))
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build a client")
}

/// Starts a tarball download and returns its response once the first bytes arrived.
async fn start_download(
    client: &reqwest::Client,
    process: &Process,
) -> (reqwest::Response, Vec<u8>) {
    let packument = format!("{}/npm/{BIG_PACKAGE}", process.url());
    let status = client
        .get(&packument)
        .send()
        .await
        .expect("packument")
        .status();
    assert_eq!(status, 200, "GET {packument}");
    let mut response = client
        .get(process.tarball_url())
        .send()
        .await
        .expect("tarball response");
    assert_eq!(response.status(), 200);
    let first = response
        .chunk()
        .await
        .expect("first chunk")
        .expect("a first chunk");
    (response, first.to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_download_finish() {
    let upstream = FixtureRegistry::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start(dir.path(), &upstream.registry_url()).await;
    let client = client();

    let (response, mut body) = start_download(&client, &process).await;
    process.signal("-TERM");
    let mut rest = response.bytes_stream();
    while let Some(chunk) = rest.next().await {
        body.extend_from_slice(&chunk.expect("the download must not be cut by the shutdown"));
    }

    assert!(
        body == published(BIG_PACKAGE, "1.0.0").tarball,
        "the whole tarball arrives"
    );
    let status = process.wait(Duration::from_secs(15));
    assert!(
        status.success(),
        "graceful shutdown exits cleanly: {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_download_leaves_nothing_half_stored() {
    let upstream = FixtureRegistry::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start(dir.path(), &upstream.registry_url()).await;
    let client = client();

    let (response, _) = start_download(&client, &process).await;
    process.signal("-KILL");
    process.wait(Duration::from_secs(5));
    drop(response);

    let process = Process::start(dir.path(), &upstream.registry_url()).await;
    let again = client
        .get(process.tarball_url())
        .send()
        .await
        .expect("tarball after restart");
    assert_eq!(again.status(), 200);
    let cache_status = again.headers()["x-cache-status"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body = again.bytes().await.expect("complete body");
    assert_eq!(
        cache_status, "MISS",
        "the interrupted download must not count as cached"
    );
    assert!(
        body == published(BIG_PACKAGE, "1.0.0").tarball,
        "fresh, correct bytes"
    );
    assert_eq!(upstream.requests(&tarball_path(BIG_PACKAGE, "1.0.0")), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trickling_its_headers_is_cut_off_while_others_are_served() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let upstream = FixtureRegistry::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let process = Process::start_with(
        dir.path(),
        &upstream.registry_url(),
        "header_read_timeout = \"1s\"\n",
    )
    .await;
    let addr = process.url().trim_start_matches("http://").to_owned();

    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");
    let started = Instant::now();
    let health = client()
        .get(format!("{}/healthz", process.url()))
        .send()
        .await
        .expect("health");
    assert_eq!(
        health.status(),
        200,
        "others are served while one client trickles"
    );

    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the trickling connection must be closed by the server"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after about the timeout"
    );
}
