//! The npm registry as a tower `Service`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use mirror_core::auth::{Action, Auth, Identity};
use mirror_core::http_util::{
    base_url, content_range, if_none_match, parse_range, wants_revalidation,
};
use mirror_core::memo::{Memo, Recent};
use mirror_core::{
    body, put_bytes, read_to_bytes, Algorithm, Body, BoxError, Cache, CacheStatus, Digest,
    Expected, FetchSpec, Fetched, HttpUpstream, Precondition, Upstream, UpstreamRequest,
    CACHE_STATUS_HEADER,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use url::Url;

use crate::config::NpmConfig;
use crate::error::NpmError;
use crate::hosted::HostedPackage;
use crate::packument::{derive, TarballInfo};
use crate::path::{route, PackageName, Route};
use mirror_core::body::{count_occurrences, replaced_len, RenderedDocs};

use crate::packument::BASE_SENTINEL;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";
/// Packument transforms allowed at once; each holds a few copies of a document in memory.
const CONCURRENT_TRANSFORMS: usize = 2;
/// Derived records kept in memory (a few hundred bytes each).
const DERIVED_MEMO_CAPACITY: usize = 8192;

/// How long a read of a package's hosted record (or of its absence) is reused: every
/// request for a mirrored package asks whether the name is hosted here, and another replica
/// sharing the store may publish it.
const HOSTED_READ_HOLD: Duration = Duration::from_secs(1);

/// Memory for packuments rendered with a base URL: documents of up to
/// `RENDERED_MAX_ENTRY` stored bytes, `RENDERED_BUDGET` in all; larger ones stream.
const RENDERED_BUDGET: u64 = 16 << 20;
const RENDERED_MAX_ENTRY: u64 = 1 << 20;

type Result<T, E = NpmError> = std::result::Result<T, E>;

/// An npm registry mirror: serves packuments and tarballs, fetching them from upstream on a
/// miss through the shared [`Cache`].
///
/// The service sees paths relative to where it is mounted (as axum's `nest_service` gives
/// them): `/react`, `/@types%2fnode`, `/react/-/react-18.2.0.tgz`.
#[derive(Debug, Clone)]
pub struct NpmMirror {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cache: Cache,
    upstream: Arc<dyn Upstream>,
    upstream_base: Url,
    config: NpmConfig,
    transforms: Semaphore,
    /// Derived records by key, checked against the source digest before use.
    derived_memo: Memo<DerivedRecord>,
    /// Recent reads of hosted records by name; `None` when the name is not hosted here.
    hosted_reads: Recent<Option<Arc<(HostedPackage, u64)>>>,
    rendered: RenderedDocs,
    auth: Option<Auth>,
}

/// The documents derived from one stored upstream packument.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DerivedRecord {
    source: Digest,
    full: StoredDoc,
    abbreviated: StoredDoc,
    tarballs: Digest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredDoc {
    digest: Digest,
    size: u64,
    sentinels: u64,
}

impl NpmMirror {
    /// A mirror of `config.upstream` over HTTP.
    pub fn new(cache: Cache, config: NpmConfig) -> Result<Self> {
        let upstream = HttpUpstream::builder(&config.upstream)?
            .read_timeout(config.upstream_read_timeout)
            .build()?;
        Self::with_upstream(cache, config, Arc::new(upstream))
    }

    /// A mirror that reaches upstream through a custom [`Upstream`]; `config.upstream`
    /// still names upstream's origin, which decides which tarball URLs may be fetched as
    /// they are.
    pub fn with_upstream(
        cache: Cache,
        config: NpmConfig,
        upstream: Arc<dyn Upstream>,
    ) -> Result<Self> {
        let upstream_base = Url::parse(&config.upstream)
            .map_err(|err| NpmError::Config(format!("upstream: {err}")))?;
        let transforms = Semaphore::new(CONCURRENT_TRANSFORMS);
        let inner = Inner {
            cache,
            upstream,
            upstream_base,
            config,
            transforms,
            derived_memo: Memo::new(DERIVED_MEMO_CAPACITY),
            hosted_reads: Recent::new(DERIVED_MEMO_CAPACITY, HOSTED_READ_HOLD),
            rendered: RenderedDocs::new(BASE_SENTINEL, RENDERED_BUDGET, RENDERED_MAX_ENTRY),
            auth: None,
        };
        Ok(NpmMirror {
            inner: Arc::new(inner),
        })
    }

    /// Enables private packages: logins, publishing and access rules through `auth`.
    /// Without it the service is a read-only mirror open to everyone.
    pub fn with_auth(self, auth: Auth) -> Self {
        let inner = &self.inner;
        let inner = Inner {
            cache: inner.cache.clone(),
            upstream: Arc::clone(&inner.upstream),
            upstream_base: inner.upstream_base.clone(),
            config: inner.config.clone(),
            transforms: Semaphore::new(CONCURRENT_TRANSFORMS),
            derived_memo: Memo::new(DERIVED_MEMO_CAPACITY),
            hosted_reads: Recent::new(DERIVED_MEMO_CAPACITY, HOSTED_READ_HOLD),
            rendered: RenderedDocs::new(BASE_SENTINEL, RENDERED_BUDGET, RENDERED_MAX_ENTRY),
            auth: Some(auth),
        };
        NpmMirror {
            inner: Arc::new(inner),
        }
    }

    /// Answers one request; never fails, errors become npm-format responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let result = self.inner.dispatch(&parts, body).await;
        let mut response = result.unwrap_or_else(NpmError::into_response);
        if !response.headers().contains_key(CACHE_STATUS_HEADER) {
            // Answers that involve no upstream (hosted data, logins) come from local state,
            // a hit; errors were answered by nothing cached, a miss.
            let read = parts.method == Method::GET || parts.method == Method::HEAD;
            let status = if read && response.status().is_success() {
                CacheStatus::Hit
            } else {
                CacheStatus::Miss
            };
            set(response.headers_mut(), CACHE_STATUS_HEADER, status.as_str());
        }
        response
    }
}

mirror_core::impl_mirror_service!(NpmMirror);

/// What the request asked for, decided from its headers.
struct Ask<'a> {
    headers: &'a HeaderMap,
    base: String,
    head: bool,
    identity: Option<Identity>,
}

impl Inner {
    async fn dispatch<B>(&self, parts: &http::request::Parts, body: B) -> Result<Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let route = route(parts.uri.path()).ok_or(NpmError::InvalidPath)?;
        let public_url = self.config.public_url.as_deref();
        let base = base_url(
            public_url,
            &parts.headers,
            &parts.uri,
            &self.config.mount_path,
        );
        let identity = self.identify(&parts.headers).await?;
        let ask = Ask {
            headers: &parts.headers,
            base,
            head: parts.method == Method::HEAD,
            identity,
        };
        let read = parts.method == Method::GET || parts.method == Method::HEAD;
        match (read, &parts.method, route) {
            (true, _, Route::Root) => {
                Ok(json_response(StatusCode::OK, r#"{"db_name":"registry"}"#))
            }
            (true, _, Route::Ping) => Ok(json_response(StatusCode::OK, "{}")),
            (true, _, Route::Packument(name)) => self.read_packument(&name, &ask).await,
            (true, _, Route::Version(name, version)) => {
                self.read_version(&name, &version, &ask).await
            }
            (true, _, Route::Tarball(name, file)) => self.read_tarball(&name, &file, &ask).await,
            (true, _, Route::Whoami) => self.whoami(&ask),
            (true, _, Route::DistTags(name)) => self.dist_tags(&name, &ask).await,
            (false, &Method::PUT, Route::Login(user)) => {
                self.login(&user, self.read_body(body).await?).await
            }
            (false, &Method::DELETE, Route::Logout(token)) => self.logout(&token, &ask).await,
            (false, &Method::PUT, Route::DistTag(name, tag)) => {
                self.set_dist_tag(&name, &tag, self.read_body(body).await?, &ask)
                    .await
            }
            (false, &Method::DELETE, Route::DistTag(name, tag)) => {
                self.remove_dist_tag(&name, &tag, &ask).await
            }
            (false, &Method::PUT, Route::Packument(name)) => {
                self.write_packument(&name, None, self.read_body(body).await?, &ask)
                    .await
            }
            (false, &Method::PUT, Route::Revision(name, rev)) => {
                self.write_packument(&name, Some(&rev), self.read_body(body).await?, &ask)
                    .await
            }
            (false, &Method::DELETE, Route::Revision(name, rev)) => {
                self.unpublish(&name, &rev, &ask).await
            }
            (false, &Method::DELETE, Route::TarballRevision(name, file, _)) => {
                self.delete_tarball(&name, &file, &ask).await
            }
            (_, _, Route::UnsupportedSpecial) => Err(NpmError::NotFound),
            _ => Err(NpmError::MethodNotAllowed),
        }
    }

    /// The mirrored packument, unless the name is hosted here.
    async fn read_packument(&self, name: &PackageName, ask: &Ask<'_>) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Read)?;
        match self.read_hosted(name).await?.as_deref() {
            Some((package, version)) => self.hosted_packument(package, *version, ask),
            None => self.packument(name, ask).await,
        }
    }

    async fn read_version(
        &self,
        name: &PackageName,
        version: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Read)?;
        match self.read_hosted(name).await?.as_deref() {
            Some((package, _)) => self.hosted_version(package, version, ask),
            None => self.version(name, version).await,
        }
    }

    async fn read_tarball(
        &self,
        name: &PackageName,
        file: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Read)?;
        match self.read_hosted(name).await?.as_deref() {
            Some((package, _)) => self.hosted_tarball(package, file, ask).await,
            None => self.tarball(name, file, ask).await,
        }
    }

    fn packument_spec(&self, name: &PackageName, revalidate_now: bool) -> FetchSpec {
        let mut request = UpstreamRequest::get(name.upstream_path());
        request
            .headers
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let expected = Expected {
            max_size: Some(self.config.max_packument_bytes),
            ..Expected::none()
        };
        FetchSpec::new(
            format!("npm/packument/{}", name.as_str()),
            Arc::clone(&self.upstream),
            request,
        )
        .revalidate_after(self.config.metadata_ttl)
        .revalidate_now(revalidate_now)
        .expect(expected)
    }

    /// Makes sure the packument is current and its derived documents exist.
    async fn derived(
        &self,
        name: &PackageName,
        revalidate_now: bool,
    ) -> Result<(CacheStatus, DerivedRecord)> {
        let (status, entry) = self
            .cache
            .ensure(self.packument_spec(name, revalidate_now))
            .await?;
        let key = format!("npm/derived/{}", name.as_str());
        if let Some(record) = self.load_derived(&key, &entry.digest).await? {
            return Ok((status, record));
        }
        let _permit = self
            .transforms
            .acquire()
            .await
            .map_err(mirror_core::Error::storage)?;
        if let Some(record) = self.load_derived(&key, &entry.digest).await? {
            return Ok((status, record));
        }
        let record = self.transform(name, &entry.digest).await?;
        let value = serde_json::to_vec(&record).map_err(mirror_core::Error::storage)?;
        self.cache
            .metadata()
            .put(&key, value.into(), Precondition::None)
            .await?;
        self.derived_memo.insert(&key, record.clone());
        Ok((status, record))
    }

    async fn load_derived(&self, key: &str, source: &Digest) -> Result<Option<DerivedRecord>> {
        if let Some(record) = self.derived_memo.get(key) {
            if self.derived_current(&record, source) {
                return Ok(Some(record));
            }
        }
        let Some(record) = self.cache.metadata().get(key).await? else {
            return Ok(None);
        };
        let record: Option<DerivedRecord> = serde_json::from_slice(&record.value).ok();
        let record = record.filter(|r| self.derived_current(r, source));
        if let Some(record) = &record {
            self.derived_memo.insert(key, record.clone());
        }
        Ok(record)
    }

    /// Whether a derived record was made from the stored packument `source`.
    fn derived_current(&self, record: &DerivedRecord, source: &Digest) -> bool {
        &record.source == source
    }

    async fn transform(&self, name: &PackageName, source: &Digest) -> Result<DerivedRecord> {
        let raw = read_to_bytes(self.cache.blobs().as_ref(), source).await?;
        let (name_owned, base) = (name.clone(), self.upstream_base.clone());
        let derived = tokio::task::spawn_blocking(move || derive(&raw, &name_owned, &base))
            .await
            .map_err(mirror_core::Error::storage)?
            .map_err(NpmError::MalformedPackument)?;
        tracing::debug!(
            package = name.as_str(),
            tarballs = derived.tarballs.len(),
            "packument derived"
        );
        let tarballs =
            serde_json::to_vec(&derived.tarballs).map_err(mirror_core::Error::storage)?;
        Ok(DerivedRecord {
            source: source.clone(),
            full: self.store_doc(derived.full).await?,
            abbreviated: self.store_doc(derived.abbreviated).await?,
            tarballs: self.store_blob(tarballs).await?,
        })
    }

    async fn store_doc(&self, doc: Vec<u8>) -> Result<StoredDoc> {
        let sentinels = count_occurrences(&doc, BASE_SENTINEL);
        let size = doc.len() as u64;
        let digest = self.store_blob(doc).await?;
        Ok(StoredDoc {
            digest,
            size,
            sentinels,
        })
    }

    async fn store_blob(&self, bytes: Vec<u8>) -> Result<Digest> {
        let info = put_bytes(self.cache.blobs().as_ref(), bytes.into(), Expected::none()).await?;
        Ok(info.digest)
    }

    async fn packument(&self, name: &PackageName, ask: &Ask<'_>) -> Result<Response<Body>> {
        let (status, record) = self.derived(name, wants_revalidation(ask.headers)).await?;
        let abbreviated = accepts_abbreviated(ask.headers);
        let (doc, content_type) = if abbreviated {
            (&record.abbreviated, ABBREVIATED)
        } else {
            (&record.full, "application/json")
        };
        let etag = doc_etag(doc, &ask.base);
        let mut response = if if_none_match(ask.headers, &etag) {
            empty_response(StatusCode::NOT_MODIFIED)
        } else {
            self.doc_response(doc, ask).await?
        };
        let headers = response.headers_mut();
        set(headers, header::CONTENT_TYPE, content_type);
        set(headers, header::ETAG, &etag);
        set(headers, header::VARY, "Accept");
        set(headers, header::CACHE_CONTROL, "public, max-age=300");
        set(headers, CACHE_STATUS_HEADER, status.as_str());
        Ok(response)
    }

    async fn doc_response(&self, doc: &StoredDoc, ask: &Ask<'_>) -> Result<Response<Body>> {
        let len = replaced_len(doc.size, doc.sentinels, BASE_SENTINEL, ask.base.len());
        let mut response = if ask.head {
            empty_response(StatusCode::OK)
        } else {
            let base = Bytes::from(ask.base.clone());
            let blobs = self.cache.blobs();
            let rendered = self
                .rendered
                .body(blobs.as_ref(), &doc.digest, doc.size, base);
            Response::new(rendered.await?)
        };
        set(
            response.headers_mut(),
            header::CONTENT_LENGTH,
            &len.to_string(),
        );
        Ok(response)
    }

    /// `/<name>/<version or dist-tag>`: one version's manifest from the full document.
    async fn version(&self, name: &PackageName, wanted: &str) -> Result<Response<Body>> {
        let (status, record) = self.derived(name, false).await?;
        let found = self.find_version(&record, wanted).await?;
        let doc = match (found, status) {
            (Some(doc), _) => doc,
            (None, CacheStatus::Hit) => {
                let (_, record) = self.derived(name, true).await?;
                self.find_version(&record, wanted)
                    .await?
                    .ok_or(NpmError::NotFound)?
            }
            (None, _) => return Err(NpmError::NotFound),
        };
        Ok(json_response(StatusCode::OK, doc))
    }

    async fn find_version(&self, record: &DerivedRecord, wanted: &str) -> Result<Option<String>> {
        let full = read_to_bytes(self.cache.blobs().as_ref(), &record.full.digest).await?;
        let wanted = wanted.to_owned();
        let found = tokio::task::spawn_blocking(move || version_of(&full, &wanted))
            .await
            .map_err(mirror_core::Error::storage)?;
        Ok(found)
    }

    async fn tarball(
        &self,
        name: &PackageName,
        file: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let key = format!("npm/tarball/{}/{file}", name.as_str());
        let fetched = match self.cache.get_cached(&key).await? {
            Some(hit) => hit,
            None => {
                let info = self.tarball_info(name, file).await?;
                let spec = FetchSpec::new(
                    key,
                    Arc::clone(&self.upstream),
                    UpstreamRequest::get(&info.target),
                )
                .expect(tarball_expectation(&info, self.config.max_tarball_bytes));
                self.cache.get(spec).await?
            }
        };
        tarball_response(fetched, ask).await
    }

    /// Finds a tarball in the packument, revalidating it at once if the file is not listed:
    /// it may have been published since the packument was cached.
    async fn tarball_info(&self, name: &PackageName, file: &str) -> Result<TarballInfo> {
        let (status, record) = self.derived(name, false).await?;
        if let Some(info) = self.lookup_tarball(&record, file).await? {
            return Ok(info);
        }
        if status != CacheStatus::Hit {
            return Err(NpmError::NotFound);
        }
        let (_, record) = self.derived(name, true).await?;
        self.lookup_tarball(&record, file)
            .await?
            .ok_or(NpmError::NotFound)
    }

    async fn lookup_tarball(
        &self,
        record: &DerivedRecord,
        file: &str,
    ) -> Result<Option<TarballInfo>> {
        let index = read_to_bytes(self.cache.blobs().as_ref(), &record.tarballs).await?;
        let mut index: BTreeMap<String, TarballInfo> =
            serde_json::from_slice(&index).map_err(mirror_core::Error::storage)?;
        Ok(index.remove(file))
    }
}

fn tarball_expectation(info: &TarballInfo, max_size: u64) -> Expected {
    let integrity = info
        .integrity
        .as_deref()
        .and_then(|sri| Digest::from_sri(sri).ok());
    let shasum = || {
        info.shasum
            .as_deref()
            .and_then(|hex| Digest::from_hex(Algorithm::Sha1, hex).ok())
    };
    let digests = integrity.or_else(shasum).into_iter().collect();
    Expected {
        digests,
        size: None,
        max_size: Some(max_size),
    }
}

async fn tarball_response(fetched: Fetched, ask: &Ask<'_>) -> Result<Response<Body>> {
    let status = fetched.status();
    let meta = fetched.meta().clone();
    let range = match meta.size {
        Some(size) => parse_range(ask.headers, size)
            .map_err(|()| mirror_core::Error::RangeNotSatisfiable { size })?,
        None => None,
    };
    let read = if ask.head {
        None
    } else {
        Some(fetched.open(range).await?)
    };
    let (code, length) = match (read.as_ref().and_then(|r| r.range.clone()), meta.size) {
        (Some(range), Some(size)) => (StatusCode::PARTIAL_CONTENT, Some((range, size))),
        _ => (StatusCode::OK, None),
    };
    let mut response =
        Response::new(read.map_or_else(body::empty, |r| body::from_stream(r.stream)));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    match (&length, meta.size) {
        (Some((range, size)), _) => {
            set(headers, header::CONTENT_RANGE, &content_range(range, *size));
            set(
                headers,
                header::CONTENT_LENGTH,
                &(range.end - range.start).to_string(),
            );
        }
        (None, Some(size)) => set(headers, header::CONTENT_LENGTH, &size.to_string()),
        (None, None) => {}
    }
    if let Some(digest) = &meta.digest {
        set(headers, header::ETAG, &format!("\"{}\"", digest.hex()));
    }
    set(headers, header::CONTENT_TYPE, "application/octet-stream");
    set(headers, header::ACCEPT_RANGES, "bytes");
    set(
        headers,
        header::CACHE_CONTROL,
        "public, max-age=31536000, immutable",
    );
    set(headers, CACHE_STATUS_HEADER, status.as_str());
    Ok(response)
}

/// True when the client prefers the abbreviated form (npm sends it with q=1.0 and JSON as
/// a fallback).
fn accepts_abbreviated(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case(ABBREVIATED) && !refused
        })
}

/// Depends on both the stored document and the base URL substituted into it.
fn doc_etag(doc: &StoredDoc, base: &str) -> String {
    let base_hash = mirror_core::digest::sha256_of(base.as_bytes()).hex();
    format!("\"{}-{}\"", &doc.digest.hex()[..32], &base_hash[..8])
}

/// Picks one version (or the version a dist-tag names) out of a full packument.
fn version_of(full: &[u8], wanted: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Doc<'a> {
        #[serde(borrow, default)]
        versions: BTreeMap<String, &'a serde_json::value::RawValue>,
        #[serde(rename = "dist-tags", default)]
        dist_tags: BTreeMap<String, String>,
    }
    let doc: Doc<'_> = serde_json::from_slice(full).ok()?;
    let version = doc.dist_tags.get(wanted).map_or(wanted, String::as_str);
    doc.versions.get(version).map(|raw| raw.get().to_owned())
}

fn set(headers: &mut HeaderMap, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    response
}

fn json_response(status: StatusCode, json: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(body::full(json.into()));
    *response.status_mut() = status;
    set(
        response.headers_mut(),
        header::CONTENT_TYPE,
        "application/json",
    );
    response
}

mod write;

#[cfg(test)]
mod tests;
