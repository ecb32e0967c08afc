//! What the fuzz targets share: a current-thread runtime, fresh in-memory stores, an
//! in-process upstream that answers whatever a target scripts, and a one-call way to send a
//! request to a service and read the whole answer.
//!
//! Targets drive the parsers through the crates' public services wherever a request is
//! cheap (in memory, no network), so that what is fuzzed is what a client or an upstream
//! reaches; only pure parsers behind the token flow or deep inside a module go through
//! the `fuzzing` features of mirror-pypi and mirror-docker.

use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mirror_core::auth::{AccessPolicy, Auth, TokenAccess};
use mirror_core::{
    Body, Cache, MemoryBlobStore, MemoryMetadataStore, MetadataStore, Upstream, UpstreamRequest,
    UpstreamResponse,
};
use tower::ServiceExt;

/// The host every request claims, so base URLs are predictable.
pub const HOST: &str = "mirror.test";

/// One runtime for the whole fuzzing process: building one per input would dominate.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Runs a future to completion on [`runtime`].
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// A cache over fresh memory stores, with the stores kept for inspection.
pub struct Stores {
    /// The cache the service gets.
    pub cache: Cache,
    /// Its blob store.
    pub blobs: Arc<MemoryBlobStore>,
    /// Its metadata store.
    pub metadata: Arc<MemoryMetadataStore>,
}

impl Stores {
    /// Empty stores.
    pub fn new() -> Self {
        let blobs = Arc::new(MemoryBlobStore::new());
        let metadata = Arc::new(MemoryMetadataStore::new());
        let cache = Cache::builder(blobs.clone(), metadata.clone()).build();
        Stores {
            cache,
            blobs,
            metadata,
        }
    }

    /// Keys of metadata records under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let listed = self.metadata.list(prefix, None, 1000).await;
        listed
            .expect("memory store lists")
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }
}

impl Default for Stores {
    fn default() -> Self {
        Self::new()
    }
}

/// What the scripted upstream answers to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// A 404 with no body.
    pub fn not_found() -> Self {
        Answer::new(StatusCode::NOT_FOUND, Bytes::new())
    }

    /// An answer without headers.
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Answer {
            status,
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// Adds a header when `value` is a valid header value; fuzzed values may not be.
    pub fn header(mut self, name: http::HeaderName, value: &str) -> Self {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }
}

type Script = dyn Fn(&UpstreamRequest) -> Answer + Send + Sync;

/// An upstream in this process that answers each request with what a closure returns.
pub struct Scripted {
    script: Box<Script>,
}

impl Scripted {
    /// An upstream answering with `script`.
    pub fn new(script: impl Fn(&UpstreamRequest) -> Answer + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Scripted {
            script: Box::new(script),
        })
    }

    /// An upstream that has nothing.
    pub fn empty() -> Arc<Self> {
        Self::new(|_| Answer::not_found())
    }
}

impl fmt::Debug for Scripted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scripted")
    }
}

#[async_trait]
impl Upstream for Scripted {
    async fn send(&self, request: UpstreamRequest) -> mirror_core::Result<UpstreamResponse> {
        let answer = (self.script)(&request);
        let body = futures_util::stream::iter([Ok(answer.body)]);
        Ok(UpstreamResponse {
            status: answer.status,
            headers: answer.headers,
            body: Box::pin(body),
        })
    }

    fn name(&self) -> &str {
        "scripted"
    }
}

/// A signed-in user who may write anything: the [`Auth`] and the `Authorization` value.
///
/// Made once per process (the user has no password, so no slow hashing) in stores of its
/// own, so that each input's cache stores start empty. Made on a thread of its own, since
/// the first call may come from inside [`runtime`].
pub fn writer() -> &'static (Auth, String) {
    static WRITER: OnceLock<(Auth, String)> = OnceLock::new();
    WRITER.get_or_init(|| {
        std::thread::scope(|scope| scope.spawn(make_writer).join().expect("writer made"))
    })
}

fn make_writer() -> (Auth, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let auth = Auth::new(
            Arc::new(MemoryMetadataStore::new()),
            AccessPolicy::default(),
        );
        auth.add_user("fuzzer", None, false).await.expect("user");
        let (_, token) = auth
            .create_token("fuzzer", TokenAccess::ReadWrite, None, None)
            .await
            .expect("token");
        (auth, format!("Bearer {token}"))
    })
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body; empty when it failed mid-way (see `body_failed`).
    pub body: Bytes,
    /// True when the body stream ended in an error.
    pub body_failed: bool,
}

impl Reply {
    /// A header as text, or "".
    pub fn header(&self, name: impl http::header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Sends `request` to `service` and reads the whole response. With `FUZZ_DEBUG` set in
/// the environment, prints each request's status, for checking what a seed reaches.
pub async fn send<S>(service: S, request: Request<Body>) -> Reply
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible>,
{
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let Ok(response) = service.oneshot(request).await;
    let (parts, body) = response.into_parts();
    let (body, body_failed) = match body.collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(_) => (Bytes::new(), true),
    };
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        eprintln!("{method} {uri} -> {}: {text}", parts.status);
    }
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        body_failed,
    }
}

/// A request with the test host; `None` when the fuzzed path is not a valid URI.
pub fn request(method: http::Method, path: &str, body: impl Into<Bytes>) -> Option<Request<Body>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, HOST)
        .body(mirror_core::body::full(body.into()))
        .ok()
}
