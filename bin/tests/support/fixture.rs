//! A small npm registry on loopback, serving the catalogue, standing in for the public one.
//!
//! It behaves like the parts of the public registry the mirror depends on: packuments with
//! an ETag and 304 answers to `If-None-Match`, scoped names both as `@scope%2fname` and
//! `@scope/name`, tarballs at their npm paths, `{"error": ...}` 404s. It counts requests
//! per path so tests can see what reached upstream, and can be stopped so that connections
//! are refused, including the keep-alive connections the mirror already holds.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use sha1::{Digest as _, Sha1};
use tokio::sync::mpsc;

use super::catalogue::{self, Published};
use super::loopback::{self, LoopbackServer};

/// How long the slow tarball waits before its first byte, and between chunks.
const FIRST_BYTE_DELAY: Duration = Duration::from_millis(150);
const CHUNK_DELAY: Duration = Duration::from_millis(5);
const CHUNK_LEN: usize = 32 * 1024;

type FixtureBody = BoxBody<Bytes, Infallible>;

/// The running fixture registry. Stops when dropped.
#[derive(Debug)]
pub(crate) struct FixtureRegistry {
    url: String,
    state: Arc<State>,
    server: LoopbackServer,
}

impl FixtureRegistry {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime.
    pub(crate) async fn start() -> Self {
        let bound = loopback::bind().await;
        let url = format!("http://{}", bound.address());
        let state = Arc::new(State::new(&url));
        let serving = Arc::clone(&state);
        let server = bound.serve(move |request| std::future::ready(serving.respond(&request)));
        Self { url, state, server }
    }

    /// The registry URL with a trailing slash, as npm and the mirror's config expect it.
    pub(crate) fn registry_url(&self) -> String {
        format!("{}/", self.url)
    }

    /// The URL of a path on this registry (`path` starts with a slash).
    pub(crate) fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// How many requests reached `path`. Paths are counted with `%2f` and `%40` decoded, so
    /// `/@fixture/c` counts requests for `/@fixture%2fc` as well.
    pub(crate) fn requests(&self, path: &str) -> usize {
        let counts = self.state.requests.lock().expect("request counts lock");
        counts.get(path).copied().unwrap_or(0)
    }

    /// Switches between serving tampered bytes for the corrupt package (the initial state)
    /// and serving the bytes its integrity describes.
    pub(crate) fn set_tarball_corruption(&self, corrupt: bool) {
        self.state.corrupt.store(corrupt, Ordering::SeqCst);
    }

    /// Stops listening and closes every open connection; new connections are refused.
    pub(crate) async fn stop(&mut self) {
        self.server.stop().await;
    }
}

#[derive(Debug)]
struct State {
    /// Serialised packuments by package name.
    packuments: HashMap<String, Document>,
    /// Published releases by tarball path.
    tarballs: HashMap<String, &'static Published>,
    corrupt: AtomicBool,
    requests: Mutex<HashMap<String, usize>>,
}

impl State {
    fn new(url: &str) -> Self {
        let mut packuments = HashMap::new();
        let mut tarballs = HashMap::new();
        for (name, versions) in catalogue::catalogue() {
            packuments.insert(
                (*name).to_owned(),
                Document::new(&catalogue::packument(versions, url)),
            );
            for published in versions {
                let path = catalogue::tarball_path(published.name(), published.version());
                tarballs.insert(path, published);
            }
        }

        Self {
            packuments,
            tarballs,
            corrupt: AtomicBool::new(true),
            requests: Mutex::new(HashMap::new()),
        }
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<FixtureBody> {
        let path = decode_name(request.uri().path());
        *self
            .requests
            .lock()
            .expect("request counts lock")
            .entry(path.clone())
            .or_default() += 1;

        if request.method() != Method::GET && request.method() != Method::HEAD {
            return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        if let Some(published) = self.tarballs.get(&path) {
            return self.tarball(published);
        }
        match self.packuments.get(path.trim_start_matches('/')) {
            Some(document) => document.respond(request.headers()),
            None => error(StatusCode::NOT_FOUND, "Not found"),
        }
    }

    fn tarball(&self, published: &Published) -> Response<FixtureBody> {
        let bytes = match &published.tampered {
            Some(tampered) if self.corrupt.load(Ordering::SeqCst) => tampered.clone(),
            _ => published.tarball.clone(),
        };
        let body = if published.is_slow() {
            trickle(bytes).boxed()
        } else {
            Full::new(bytes).boxed()
        };

        let mut response = Response::new(body);
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
    }
}

/// Undoes the escaping npm applies to scoped names (`@scope%2fname`).
fn decode_name(path: &str) -> String {
    path.replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%40", "@")
}

/// A packument, serialised once, with its ETag.
#[derive(Debug)]
struct Document {
    body: Bytes,
    etag: HeaderValue,
}

impl Document {
    fn new(packument: &serde_json::Value) -> Self {
        let body = serde_json::to_vec(packument).expect("serialise a packument");
        let etag = format!("\"{}\"", hex::encode(Sha1::digest(&body)));

        Self {
            body: Bytes::from(body),
            etag: HeaderValue::from_str(&etag).expect("a hex ETag is a valid header"),
        }
    }

    fn respond(&self, request_headers: &HeaderMap) -> Response<FixtureBody> {
        let unchanged = request_headers.get(IF_NONE_MATCH) == Some(&self.etag);
        let mut response = if unchanged {
            let mut response = Response::new(Empty::new().boxed());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            Response::new(Full::new(self.body.clone()).boxed())
        };

        let headers = response.headers_mut();
        headers.insert(ETAG, self.etag.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

fn error(status: StatusCode, message: &str) -> Response<FixtureBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Sends `bytes` in small chunks with pauses, announcing the full length up front.
fn trickle(bytes: Bytes) -> Trickle {
    let (chunks, receiver) = mpsc::channel(1);
    let remaining = bytes.len() as u64;
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_BYTE_DELAY).await;
        for start in (0..bytes.len()).step_by(CHUNK_LEN) {
            let end = (start + CHUNK_LEN).min(bytes.len());
            if chunks.send(bytes.slice(start..end)).await.is_err() {
                return;
            }
            tokio::time::sleep(CHUNK_DELAY).await;
        }
    });

    Trickle {
        receiver,
        remaining,
    }
}

#[derive(Debug)]
struct Trickle {
    receiver: mpsc::Receiver<Bytes>,
    remaining: u64,
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = ready!(self.receiver.poll_recv(cx));
        if let Some(chunk) = &chunk {
            self.remaining -= chunk.len() as u64;
        }
        Poll::Ready(chunk.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
