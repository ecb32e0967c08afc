//! A small Maven repository on loopback standing in for Maven Central.
//!
//! It serves the artifacts a test generates (with their `.sha1` files and listings), and
//! behind them Debian's system repository (`/usr/share/maven-repo`, where the packaged
//! Maven plugins live) with a `.sha1` computed for every file, as Central publishes one:
//! mvn needs its own plugins, and the tests must reach nothing but loopback. It counts
//! requests per path and can be stopped so that connections are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use sha1::{Digest as _, Sha1};

use crate::support::loopback::{self, LoopbackServer};

/// Where Debian's Maven packages install their artifacts.
const SYSTEM_REPOSITORY: &str = "/usr/share/maven-repo";
/// The path the repository is served under, like Central's `/maven2/`.
const PREFIX: &str = "/maven2/";

/// The running fixture repository. Stops when dropped.
#[derive(Debug)]
pub(crate) struct FixtureRepository {
    url: String,
    state: Arc<State>,
    server: LoopbackServer,
}

#[derive(Debug, Default)]
struct State {
    files: Mutex<HashMap<String, Bytes>>,
    requests: Mutex<HashMap<String, usize>>,
    /// The `Authorization` header every request must carry, when set.
    authorization: Mutex<Option<String>>,
}

impl FixtureRepository {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime.
    pub(crate) async fn start() -> Self {
        assert!(
            Path::new(SYSTEM_REPOSITORY)
                .join("org/apache/maven/plugins")
                .is_dir(),
            "{SYSTEM_REPOSITORY} has no Maven plugins: install Debian's maven packages \
             (scripts/check.sh does)"
        );
        let bound = loopback::bind().await;
        let url = format!("http://{}{PREFIX}", bound.address());
        let state = Arc::new(State::default());
        let serving = Arc::clone(&state);
        let server = bound.serve(move |request| {
            let state = Arc::clone(&serving);
            async move { state.respond(&request).await }
        });
        Self { url, state, server }
    }

    /// The repository's base URL, ending in `/maven2/`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Serves `bytes` at `path` (relative to the base), without a checksum.
    pub(crate) fn put(&self, path: &str, bytes: impl Into<Bytes>) {
        let mut files = self.state.files.lock().expect("files lock");
        files.insert(path.to_owned(), bytes.into());
    }

    /// Serves `bytes` at `path` with its `.sha1`, as Central publishes artifacts.
    pub(crate) fn put_with_sha1(&self, path: &str, bytes: &[u8]) {
        self.put(path, bytes.to_vec());
        self.put(&format!("{path}.sha1"), hex::encode(Sha1::digest(bytes)));
    }

    /// From now on, answers 401 to requests without these basic credentials.
    pub(crate) fn require_basic_auth(&self, user: &str, password: &str) {
        use base64::Engine as _;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        *self.state.authorization.lock().expect("authorization lock") =
            Some(format!("Basic {encoded}"));
    }

    /// How many requests reached `path` (relative to the base).
    pub(crate) fn requests(&self, path: &str) -> usize {
        let counts = self.state.requests.lock().expect("request counts lock");
        counts.get(path).copied().unwrap_or(0)
    }

    /// Stops listening and closes every open connection.
    pub(crate) async fn stop(&mut self) {
        self.server.stop().await;
    }
}

impl State {
    async fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(path) = request.uri().path().strip_prefix(PREFIX) else {
            return status(StatusCode::NOT_FOUND);
        };
        *self
            .requests
            .lock()
            .expect("request counts lock")
            .entry(path.to_owned())
            .or_default() += 1;
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return status(StatusCode::METHOD_NOT_ALLOWED);
        }
        let wanted = self
            .authorization
            .lock()
            .expect("authorization lock")
            .clone();
        if let Some(wanted) = wanted {
            let given = request.headers().get(hyper::header::AUTHORIZATION);
            if given.is_none_or(|given| given.as_bytes() != wanted.as_bytes()) {
                return status(StatusCode::UNAUTHORIZED);
            }
        }
        let generated = self.files.lock().expect("files lock").get(path).cloned();
        let body = match generated {
            Some(bytes) => Some(bytes),
            None => system_file(path).await,
        };
        match body {
            Some(bytes) if request.method() == Method::HEAD => {
                let mut response = status(StatusCode::OK);
                let length = hyper::header::HeaderValue::from(bytes.len());
                response
                    .headers_mut()
                    .insert(hyper::header::CONTENT_LENGTH, length);
                response
            }
            Some(bytes) => Response::new(Full::new(bytes)),
            None => status(StatusCode::NOT_FOUND),
        }
    }
}

/// A file of the system repository, or the sha1 of one.
async fn system_file(path: &str) -> Option<Bytes> {
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    if let Some(base) = path.strip_suffix(".sha1") {
        let bytes = tokio::fs::read(system_path(base)).await.ok()?;
        return Some(Bytes::from(hex::encode(Sha1::digest(&bytes))));
    }
    let file = system_path(path);
    if !tokio::fs::metadata(&file).await.ok()?.is_file() {
        return None;
    }
    tokio::fs::read(file).await.ok().map(Bytes::from)
}

fn system_path(path: &str) -> PathBuf {
    Path::new(SYSTEM_REPOSITORY).join(path)
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
