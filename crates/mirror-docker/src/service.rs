//! The distribution API as a tower `Service`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use mirror_core::http_util::wants_revalidation;
use mirror_core::memo::Memo;
use mirror_core::{
    body, Body, BoxError, ByteStream, Cache, CacheStatus, HttpUpstream, Upstream,
    CACHE_STATUS_HEADER,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::DockerConfig;
use crate::error::DockerError;
use crate::locks::KeyedLocks;
use crate::path::{route, Reference, RepoName, Route};
use crate::select::{Selected, Upstreams};
use crate::upstream::RegistryUpstream;

mod blob;
mod listing;
mod manifest;

type Result<T, E = DockerError> = std::result::Result<T, E>;

/// The header every distribution API response carries.
const API_VERSION_HEADER: &str = "docker-distribution-api-version";
/// How long a stale tag or listing is served without asking upstream again after a failed
/// revalidation, so that an outage does not cost every client an upstream timeout.
const STALE_GRACE_MS: u64 = 30_000;

/// A pull-through mirror of container registries: serves the OCI distribution API's read
/// side, fetching manifests and blobs from the configured upstreams on a miss through the
/// shared [`Cache`].
///
/// The service sees whole request paths, `/v2/...` included: registries must sit at the
/// root of their host, so it is mounted there, not nested under a prefix.
#[derive(Debug, Clone)]
pub struct DockerMirror {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cache: Cache,
    upstreams: Upstreams,
    config: DockerConfig,
    /// Serialises revalidation of one tag or tag list.
    locks: KeyedLocks,
    /// Pull-through records as last read or written, so that a hit costs no store read.
    records: Memo<Bytes>,
}

/// Pull-through records kept in memory.
const RECORD_MEMO_CAPACITY: usize = 16_384;

impl DockerMirror {
    /// A mirror of the upstreams in `config`, reached over HTTP(S) with the registry token
    /// flow or basic credentials as each asks.
    pub fn new(cache: Cache, config: DockerConfig) -> Result<Self> {
        let mut upstreams = BTreeMap::new();
        for (name, upstream) in &config.upstreams {
            let http = HttpUpstream::builder(&upstream.url)
                .and_then(|builder| builder.read_timeout(config.upstream_read_timeout).build())
                .map_err(|err| DockerError::Config(format!("upstream {name:?}: {err}")))?;
            let mut registry = RegistryUpstream::new(Arc::new(http))?;
            if let (Some(user), Some(password)) = (&upstream.username, &upstream.password) {
                registry = registry.with_credentials(user, password);
            }
            upstreams.insert(name.clone(), Arc::new(registry) as Arc<dyn Upstream>);
        }
        Self::with_upstreams(cache, config, upstreams)
    }

    /// A mirror that reaches each named upstream through a custom [`Upstream`]; the names
    /// are what clients select (`config.upstreams` then only tells which URL is Docker Hub).
    pub fn with_upstreams(
        cache: Cache,
        config: DockerConfig,
        upstreams: BTreeMap<String, Arc<dyn Upstream>>,
    ) -> Result<Self> {
        let urls = config
            .upstreams
            .iter()
            .map(|(name, upstream)| (name.clone(), upstream.url.clone()))
            .collect();
        let upstreams = Upstreams::new(upstreams, &urls, &config.default_upstream)?;
        let inner = Inner {
            cache,
            upstreams,
            config,
            locks: KeyedLocks::default(),
            records: Memo::new(RECORD_MEMO_CAPACITY),
        };
        Ok(DockerMirror {
            inner: Arc::new(inner),
        })
    }

    /// Answers one request; never fails, errors become OCI `errors` responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, _body) = request.into_parts();
        let mut response = self
            .inner
            .dispatch(&parts)
            .await
            .unwrap_or_else(DockerError::into_response);
        let headers = response.headers_mut();
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
        if !headers.contains_key(CACHE_STATUS_HEADER) {
            // Nothing cached answered this request, so it counts as a miss.
            set(headers, CACHE_STATUS_HEADER, CacheStatus::Miss.as_str());
        }
        response
    }
}

impl<B> tower::Service<Request<B>> for DockerMirror
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mirror = self.clone();
        Box::pin(async move { Ok(mirror.handle(request).await) })
    }
}

/// What a read request asked for, beyond its path.
#[derive(Debug)]
struct Ask<'a> {
    headers: &'a HeaderMap,
    head: bool,
    /// The client sent `Cache-Control: no-cache`.
    revalidate: bool,
    /// containerd's `ns` parameter: the registry the mirror stands in for.
    ns: Option<String>,
    /// `n` of a paginated listing, unparsed.
    n: Option<String>,
    /// `last` of a paginated listing.
    last: Option<String>,
    /// `artifactType` of a referrers request.
    artifact_type: Option<String>,
}

impl<'a> Ask<'a> {
    fn new(parts: &'a http::request::Parts) -> Self {
        let mut ask = Ask {
            headers: &parts.headers,
            head: parts.method == Method::HEAD,
            revalidate: wants_revalidation(&parts.headers),
            ns: None,
            n: None,
            last: None,
            artifact_type: None,
        };
        let query = parts.uri.query().unwrap_or_default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "ns" => &mut ask.ns,
                "n" => &mut ask.n,
                "last" => &mut ask.last,
                "artifactType" => &mut ask.artifact_type,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        ask
    }
}

impl Inner {
    async fn dispatch(&self, parts: &http::request::Parts) -> Result<Response<Body>> {
        let route = route(parts.uri.path())?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return Err(DockerError::Unsupported(
                "this mirror serves pulls only; pushes and deletes are not supported",
            ));
        }
        let ask = Ask::new(parts);
        match route {
            Route::Base => Ok(base_response()),
            Route::Catalog => Err(DockerError::NotServed(
                "a pull-through mirror cannot list the repositories of its upstreams",
            )),
            Route::Upload(_) => Err(DockerError::Unsupported(
                "this mirror serves pulls only; uploads are not supported",
            )),
            Route::Manifest(name, Reference::Tag(tag)) => {
                let selected = self.select(&name, &ask)?;
                self.tagged_manifest(&selected, &tag, &ask).await
            }
            Route::Manifest(name, Reference::Digest(digest)) => {
                let selected = self.select(&name, &ask)?;
                self.manifest_by_digest(&selected, &digest, &ask).await
            }
            Route::Blob(name, digest) => {
                let selected = self.select(&name, &ask)?;
                self.blob(&selected, &digest, &ask).await
            }
            Route::Tags(name) => {
                let selected = self.select(&name, &ask)?;
                self.tags(&selected, &name, &ask).await
            }
            Route::Referrers(name, digest) => {
                let selected = self.select(&name, &ask)?;
                self.referrers(&selected, &digest, &ask).await
            }
        }
    }

    fn select(&self, name: &RepoName, ask: &Ask<'_>) -> Result<Selected> {
        self.upstreams.select(name, ask.ns.as_deref())
    }

    fn now(&self) -> u64 {
        self.cache.clock().now_millis()
    }

    fn is_fresh(&self, at: u64, ttl_ms: u64) -> bool {
        self.now().saturating_sub(at) < ttl_ms
    }

    fn tag_ttl_ms(&self) -> u64 {
        u64::try_from(self.config.tag_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// A pull-through record (a tag, a tag list), from memory when this process read or
    /// wrote it before: only this service writes them.
    async fn load_record<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let value = match self.records.get(key) {
            Some(value) => value,
            None => {
                let Some(record) = self.cache.metadata().get(key).await? else {
                    return Ok(None);
                };
                self.records.insert(key, record.value.clone());
                record.value
            }
        };
        match serde_json::from_slice(&value) {
            Ok(value) => Ok(Some(value)),
            Err(err) => {
                tracing::warn!(key, error = %err, "unreadable record, refetching");
                Ok(None)
            }
        }
    }

    async fn save_record<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = Bytes::from(serde_json::to_vec(value).map_err(mirror_core::Error::storage)?);
        self.records.remove(key);
        self.cache
            .metadata()
            .put(key, bytes.clone(), mirror_core::Precondition::None)
            .await?;
        self.records.insert(key, bytes);
        Ok(())
    }

    async fn delete_record(&self, key: &str) -> Result<()> {
        self.records.remove(key);
        self.cache
            .metadata()
            .delete(key, mirror_core::Precondition::None)
            .await?;
        Ok(())
    }
}

/// The storage key prefix of everything cached from one upstream.
fn key_prefix(selected: &Selected) -> String {
    format!("docker/{}", selected.registry)
}

/// `GET /v2/`: tells clients this is a registry that needs no credentials to read.
fn base_response() -> Response<Body> {
    let mut response = json_response(StatusCode::OK, "{}");
    set(
        response.headers_mut(),
        CACHE_STATUS_HEADER,
        CacheStatus::Hit.as_str(),
    );
    response
}

/// Reads a small upstream body into memory, refusing one over `limit` bytes.
async fn read_limited(mut stream: ByteStream, limit: u64) -> Result<Bytes> {
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(mirror_core::Error::TooLarge { limit }.into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

fn set(headers: &mut HeaderMap, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn json_response(status: StatusCode, json: impl Into<Bytes>) -> Response<Body> {
    let json = json.into();
    let mut response = Response::new(body::full(json.clone()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    set(headers, header::CONTENT_TYPE, "application/json");
    set(headers, header::CONTENT_LENGTH, &json.len().to_string());
    response
}

#[cfg(test)]
mod tests;
