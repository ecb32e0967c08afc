//! The distribution API as a tower `Service`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mirror_core::auth::{Action, Auth};
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
use crate::token::TokenSigner;
use crate::upstream::RegistryUpstream;

use self::private::{PrivateRequest, Uploads};

mod access;
mod blob;
mod listing;
mod manifest;
mod private;

/// A request body as the service reads it: chunks, or the error that broke it off.
type RequestBody = BoxStream<'static, Result<Bytes, BoxError>>;

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
    upstreams: Arc<Upstreams>,
    config: DockerConfig,
    /// Serialises revalidation of one tag or tag list.
    locks: KeyedLocks,
    /// Pull-through records as last read or written, so that a hit costs no store read.
    records: Memo<Bytes>,
    /// Users and access rules; without them the private registry takes no pushes.
    auth: Option<Auth>,
    /// Blob uploads in progress.
    uploads: Uploads,
    /// Signs the token endpoint's tokens; loaded from the metadata store on first use.
    signer: tokio::sync::OnceCell<TokenSigner>,
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
        Ok(Self::from_parts(cache, Arc::new(upstreams), config, None))
    }

    /// Enables the private registry's pushes, logins (its token endpoint) and access rules
    /// through `auth`. Without it, private repositories can be pulled from but not pushed
    /// to, and every read is anonymous.
    pub fn with_auth(self, auth: Auth) -> Self {
        let inner = &self.inner;
        Self::from_parts(
            inner.cache.clone(),
            Arc::clone(&inner.upstreams),
            inner.config.clone(),
            Some(auth),
        )
    }

    fn from_parts(
        cache: Cache,
        upstreams: Arc<Upstreams>,
        config: DockerConfig,
        auth: Option<Auth>,
    ) -> Self {
        let inner = Inner {
            cache,
            upstreams,
            config,
            locks: KeyedLocks::default(),
            records: Memo::new(RECORD_MEMO_CAPACITY),
            auth,
            uploads: Uploads::default(),
            signer: tokio::sync::OnceCell::new(),
        };
        DockerMirror {
            inner: Arc::new(inner),
        }
    }

    /// Answers one request; never fails, errors become OCI `errors` responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let body: RequestBody = body.into_data_stream().map_err(Into::into).boxed();
        let mut response = match self.inner.dispatch(&parts, body).await {
            Ok(response) => response,
            Err(err) => self.inner.error_response(err, &parts),
        };
        let headers = response.headers_mut();
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
        if !headers.contains_key(CACHE_STATUS_HEADER) {
            // Nothing cached answered this request, so it counts as a miss.
            set(headers, CACHE_STATUS_HEADER, CacheStatus::Miss.as_str());
        }
        response
    }
}

mirror_core::impl_mirror_service!(DockerMirror);

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
    /// `digest` of an upload: the digest the finished blob must have.
    digest: Option<String>,
    /// `mount` of an upload: the digest of a blob to mount from another repository.
    mount: Option<String>,
    /// `from` of a mount: the repository holding the blob.
    from: Option<String>,
    /// `tag` of a manifest pushed by digest, repeated: tags to point at it.
    tags: Vec<String>,
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
            digest: None,
            mount: None,
            from: None,
            tags: Vec::new(),
        };
        let query = parts.uri.query().unwrap_or_default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if key == "tag" {
                ask.tags.push(value.into_owned());
                continue;
            }
            let slot = match key.as_ref() {
                "ns" => &mut ask.ns,
                "n" => &mut ask.n,
                "last" => &mut ask.last,
                "artifactType" => &mut ask.artifact_type,
                "digest" => &mut ask.digest,
                "mount" => &mut ask.mount,
                "from" => &mut ask.from,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        ask
    }
}

impl Inner {
    async fn dispatch(
        &self,
        parts: &http::request::Parts,
        body: RequestBody,
    ) -> Result<Response<Body>> {
        let route = route(parts.uri.path())?;
        let caller = self.identify(parts).await?;
        let ask = Ask::new(parts);
        let reading = parts.method == Method::GET || parts.method == Method::HEAD;
        let name = match &route {
            Route::Base if reading => return self.base(&caller),
            Route::Token => return self.issue_token(parts, &caller).await,
            Route::Catalog if reading => return self.catalog(&caller, &ask).await,
            Route::Base | Route::Catalog => {
                return Err(DockerError::Unsupported(
                    "method not allowed on this endpoint",
                ))
            }
            Route::Manifest(name, _)
            | Route::Blob(name, _)
            | Route::Upload(name, _)
            | Route::Tags(name)
            | Route::Referrers(name, _) => name.clone(),
        };
        // containerd's `ns` says the request stands for another registry's repository, so
        // it is pulled through even when its name looks like one of ours.
        if ask.ns.is_none() && self.config.is_private(name.as_str()) {
            let request = PrivateRequest {
                parts,
                ask: &ask,
                caller: &caller,
                body,
            };
            return self.private(route, request).await;
        }
        if !reading {
            return Err(self.refuse_proxied_push(&name));
        }
        self.authorize(&caller, &name, Action::Read)?;
        self.proxied(route, &ask).await
    }

    /// Answers a read of a repository pulled through from upstream.
    async fn proxied(&self, route: Route, ask: &Ask<'_>) -> Result<Response<Body>> {
        match route {
            Route::Manifest(name, Reference::Tag(tag)) => {
                let selected = self.select(&name, ask)?;
                self.tagged_manifest(&selected, &tag, ask).await
            }
            Route::Manifest(name, Reference::Digest(digest)) => {
                let selected = self.select(&name, ask)?;
                self.manifest_by_digest(&selected, &digest, ask).await
            }
            Route::Blob(name, digest) => {
                let selected = self.select(&name, ask)?;
                self.blob(&selected, &digest, ask).await
            }
            Route::Tags(name) => {
                let selected = self.select(&name, ask)?;
                self.tags(&selected, &name, ask).await
            }
            Route::Referrers(name, digest) => {
                let selected = self.select(&name, ask)?;
                self.referrers(&selected, &digest, ask).await
            }
            Route::Upload(..) => Err(DockerError::Unsupported(
                "uploads go to private repositories only",
            )),
            Route::Base | Route::Catalog | Route::Token => {
                Err(DockerError::NotServed("not a repository endpoint"))
            }
        }
    }

    /// An error as the client sees it; a 401 carries the challenge that leads to the token
    /// endpoint when logins are enabled.
    fn error_response(&self, err: DockerError, parts: &http::request::Parts) -> Response<Body> {
        let mut response = err.into_response();
        if response.status() == StatusCode::UNAUTHORIZED {
            if let Some(challenge) = self.challenge(parts) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge);
            }
        }
        response
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

    /// A record from the metadata store.
    async fn load_record<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(record) = self.cache.metadata().get(key).await? else {
            return Ok(None);
        };
        decode_record(key, &record.value)
    }

    async fn save_record<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(mirror_core::Error::storage)?;
        self.cache
            .metadata()
            .put(key, bytes.into(), mirror_core::Precondition::None)
            .await?;
        Ok(())
    }

    /// A pull-through record (a tag, a tag list), from memory when this process read or
    /// wrote it before: only the pull-through side writes them, through
    /// [`save_pulled`](Self::save_pulled) and [`delete_pulled`](Self::delete_pulled).
    /// Private repositories' records are shared with other replicas and never kept here.
    async fn load_pulled<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
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
        decode_record(key, &value)
    }

    async fn save_pulled<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = Bytes::from(serde_json::to_vec(value).map_err(mirror_core::Error::storage)?);
        self.records.remove(key);
        self.cache
            .metadata()
            .put(key, bytes.clone(), mirror_core::Precondition::None)
            .await?;
        self.records.insert(key, bytes);
        Ok(())
    }

    async fn delete_pulled(&self, key: &str) -> Result<()> {
        self.records.remove(key);
        self.cache
            .metadata()
            .delete(key, mirror_core::Precondition::None)
            .await?;
        Ok(())
    }
}

/// A stored record's JSON; an unreadable one counts as absent, so it is fetched again.
fn decode_record<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<Option<T>> {
    match serde_json::from_slice(value) {
        Ok(value) => Ok(Some(value)),
        Err(err) => {
            tracing::warn!(key, error = %err, "unreadable record, refetching");
            Ok(None)
        }
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
