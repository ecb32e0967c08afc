//! The PyPI simple API as a tower `Service`.

mod hosted;
mod respond;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use mirror_core::auth::{Auth, Identity};
use mirror_core::body::RenderedDocs;
use mirror_core::http_util::{base_url, wants_revalidation};
use mirror_core::memo::{Memo, Recent};
use mirror_core::{
    put_bytes, read_to_bytes, Body, BoxError, Cache, CacheEntry, CacheStatus, Digest, Expected,
    FetchSpec, HttpUpstream, Precondition, Upstream, UpstreamRequest, CACHE_STATUS_HEADER,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use url::Url;

use self::respond::{file_response, page_response, redirect, set, PageAnswer};
use crate::config::PypiConfig;
use crate::error::PypiError;
use crate::hosted::HostedProject;
use crate::model::{expectation, DistFile, ProjectPage};
use crate::name::ProjectName;
use crate::negotiate::{negotiate, Format};
use crate::parse::{self, AllowedOrigins, PageSource};
use crate::render::{self, BASE_SENTINEL};
use crate::route::{is_upload_path, route, Route};

/// What the mirror asks upstream for: JSON, which carries every field, else HTML.
const UPSTREAM_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
     application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";
/// Page transforms allowed at once; each holds a few copies of a page in memory.
const CONCURRENT_TRANSFORMS: usize = 2;
/// Derived records kept in memory (a few hundred bytes each).
const DERIVED_MEMO_CAPACITY: usize = 8192;

/// How long a read of a project's hosted record (or of its absence) is reused: every
/// request for a mirrored project asks whether the name is hosted here, and another replica
/// sharing the store may upload it.
const HOSTED_READ_HOLD: Duration = Duration::from_secs(1);

/// Memory for pages rendered with a base URL: pages of up to `RENDERED_MAX_ENTRY` stored
/// bytes, `RENDERED_BUDGET` in all; larger ones stream.
const RENDERED_BUDGET: u64 = 16 << 20;
const RENDERED_MAX_ENTRY: u64 = 1 << 20;
/// Bumped when what a page is derived into changes, so records from older code are redone.
const DERIVE_VERSION: u32 = 1;

type Result<T, E = PypiError> = std::result::Result<T, E>;

/// A PyPI mirror: serves the simple API (PEP 503 HTML and PEP 691 JSON) and distribution
/// files, fetching them from upstream on a miss through the shared [`Cache`]; with
/// [`with_auth`](PypiMirror::with_auth), also a private index that twine uploads to.
///
/// The service sees paths relative to where it is mounted (as axum's `nest_service` gives
/// them): `/simple/`, `/simple/requests/`, `/files/requests/<file>`, and `POST /` (or
/// `POST /legacy/`) for uploads.
#[derive(Debug, Clone)]
pub struct PypiMirror {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cache: Cache,
    index: Arc<dyn Upstream>,
    files: Arc<dyn Upstream>,
    index_base: Url,
    files_base: Option<Url>,
    origins: AllowedOrigins,
    config: PypiConfig,
    transforms: Semaphore,
    /// Derived records by key, checked against the source digest before use.
    derived_memo: Memo<DerivedRecord>,
    /// Recent reads of hosted records by name; `None` when the name is not hosted here.
    hosted_reads: Recent<Option<Arc<HostedProject>>>,
    rendered: RenderedDocs,
    auth: Option<Auth>,
}

/// The pages derived from one stored upstream page.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DerivedRecord {
    /// The upstream page they were derived from.
    source: Digest,
    /// The code and configuration they were derived with.
    context: String,
    html: StoredPage,
    json: StoredPage,
    /// The [`ProjectPage`] as JSON; none for the root listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<Digest>,
}

/// A rendered page in the blob store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPage {
    digest: Digest,
    size: u64,
    sentinels: u64,
}

/// What a transform produces from an upstream page.
struct Rendered {
    html: Vec<u8>,
    json: Vec<u8>,
    model: Option<Vec<u8>>,
}

impl PypiMirror {
    /// A mirror of `config.upstream` (and of `config.files_upstream` for files) over HTTP.
    pub fn new(cache: Cache, config: PypiConfig) -> Result<Self> {
        let http = |url: &str| -> Result<Arc<dyn Upstream>> {
            let upstream = HttpUpstream::builder(url)?
                .read_timeout(config.upstream_read_timeout)
                .build()?;
            Ok(Arc::new(upstream))
        };
        let index = http(&config.upstream)?;
        let files = if config.files_upstream.trim().is_empty() {
            Arc::clone(&index)
        } else {
            http(&config.files_upstream)?
        };
        Self::with_upstreams(cache, config, index, files)
    }

    /// A mirror that reaches upstream through custom [`Upstream`]s: `index` for pages and
    /// for files on `config.upstream`'s origin, `files` for files on
    /// `config.files_upstream`'s origin. The two URLs in `config` still decide which file
    /// URLs may be fetched at all.
    pub fn with_upstreams(
        cache: Cache,
        config: PypiConfig,
        index: Arc<dyn Upstream>,
        files: Arc<dyn Upstream>,
    ) -> Result<Self> {
        let index_base = base_of("upstream", &config.upstream)?;
        let files_base = match config.files_upstream.trim() {
            "" => None,
            url => Some(base_of("files_upstream", url)?),
        };
        let origins =
            AllowedOrigins::new(std::iter::once(index_base.clone()).chain(files_base.clone()));
        Ok(PypiMirror {
            inner: Arc::new(Inner {
                cache,
                index,
                files,
                index_base,
                files_base,
                origins,
                config,
                transforms: Semaphore::new(CONCURRENT_TRANSFORMS),
                derived_memo: Memo::new(DERIVED_MEMO_CAPACITY),
                hosted_reads: Recent::new(DERIVED_MEMO_CAPACITY, HOSTED_READ_HOLD),
                rendered: RenderedDocs::new(BASE_SENTINEL, RENDERED_BUDGET, RENDERED_MAX_ENTRY),
                auth: None,
            }),
        })
    }

    /// Enables private projects: uploads with a user's password or an API token, and the
    /// access rules of `auth` (ecosystem `pypi`, normalized project names) on every read and
    /// write. Without it the service is a read-only mirror open to everyone.
    pub fn with_auth(self, auth: Auth) -> Self {
        let inner = &self.inner;
        PypiMirror {
            inner: Arc::new(Inner {
                cache: inner.cache.clone(),
                index: Arc::clone(&inner.index),
                files: Arc::clone(&inner.files),
                index_base: inner.index_base.clone(),
                files_base: inner.files_base.clone(),
                origins: inner.origins.clone(),
                config: inner.config.clone(),
                transforms: Semaphore::new(CONCURRENT_TRANSFORMS),
                derived_memo: Memo::new(DERIVED_MEMO_CAPACITY),
                hosted_reads: Recent::new(DERIVED_MEMO_CAPACITY, HOSTED_READ_HOLD),
                rendered: RenderedDocs::new(BASE_SENTINEL, RENDERED_BUDGET, RENDERED_MAX_ENTRY),
                auth: Some(auth),
            }),
        }
    }

    /// Answers one request; never fails, errors become plain-text responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let result = self.inner.dispatch(&parts, body).await;
        let mut response = result.unwrap_or_else(|err| {
            let mut response = err.into_response();
            // Nothing cached answered this request, so it counts as a miss.
            set(
                response.headers_mut(),
                CACHE_STATUS_HEADER,
                CacheStatus::Miss.as_str(),
            );
            response
        });
        set(response.headers_mut(), header::VARY, "Accept");
        response
    }
}

/// An upstream URL as a base to resolve paths against: http(s), ending in `/`.
fn base_of(what: &str, url: &str) -> Result<Url> {
    let mut base = Url::parse(url).map_err(|err| PypiError::Config(format!("{what}: {err}")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(PypiError::Config(format!("{what}: not an http(s) URL")));
    }
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    Ok(base)
}

mirror_core::impl_mirror_service!(PypiMirror);

/// What the request asked for, decided from its headers.
struct Ask<'a> {
    headers: &'a HeaderMap,
    /// The mirror's URL for this mount, as the client reaches it.
    base: String,
    head: bool,
    /// Who sent it, when it carried a valid credential.
    identity: Option<Identity>,
}

impl Inner {
    async fn dispatch<B>(&self, parts: &http::request::Parts, body: B) -> Result<Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
        let identity = self.identify(headers).await?;
        if method == Method::POST && is_upload_path(uri.path()) {
            return self.upload(headers, body, identity.as_ref()).await;
        }
        if method != Method::GET && method != Method::HEAD {
            return Err(PypiError::MethodNotAllowed);
        }
        let public_url = self.config.public_url.as_deref();
        let ask = Ask {
            headers,
            base: base_url(public_url, headers, uri, &self.config.mount_path),
            head: method == Method::HEAD,
            identity,
        };
        self.read(route(uri.path())?, &ask).await
    }

    /// A read: the private store answers for hosted projects, the mirror for every other.
    async fn read(&self, route: Route, ask: &Ask<'_>) -> Result<Response<Body>> {
        match route {
            Route::Redirect(path) => Ok(redirect(&format!("{}{path}", ask.base))),
            Route::RootIndex => {
                self.authorize_listing(ask)?;
                self.root(ask).await
            }
            Route::Project(name) => match self.readable_hosted(&name, ask).await? {
                Some(project) => self.hosted_page(&project, ask),
                None => self.project(&name, ask).await,
            },
            Route::File(name, file) => match self.readable_hosted(&name, ask).await? {
                Some(project) => self.hosted_file(&project, &file, ask).await,
                None => self.file(&name, &file, ask).await,
            },
            Route::Metadata(name, file) => match self.readable_hosted(&name, ask).await? {
                Some(project) => self.hosted_metadata(&project, &file, ask).await,
                None => self.metadata(&name, &file, ask).await,
            },
        }
    }

    async fn root(&self, ask: &Ask<'_>) -> Result<Response<Body>> {
        let format = negotiate(ask.headers).ok_or(PypiError::NotAcceptable)?;
        let (status, entry) = self.cache.ensure(self.root_spec(ask)).await?;
        let record = self
            .derived("pypi/derived-root", &entry, |raw, content_type| {
                let root = parse::root_index(raw, content_type)?;
                Ok(Rendered {
                    html: render::root_html(&root),
                    json: render::root_json(&root),
                    model: None,
                })
            })
            .await?;
        self.answer_page(&record, status, format, ask, self.config.root_ttl)
            .await
    }

    async fn project(&self, name: &ProjectName, ask: &Ask<'_>) -> Result<Response<Body>> {
        let format = negotiate(ask.headers).ok_or(PypiError::NotAcceptable)?;
        let revalidate_now = wants_revalidation(ask.headers);
        let (status, record) = self.project_record(name, revalidate_now).await?;
        self.answer_page(&record, status, format, ask, self.config.index_ttl)
            .await
    }

    async fn answer_page(
        &self,
        record: &DerivedRecord,
        status: CacheStatus,
        format: Format,
        ask: &Ask<'_>,
        ttl: std::time::Duration,
    ) -> Result<Response<Body>> {
        let (page, base) = if format.is_json() {
            (&record.json, json_text(&ask.base))
        } else {
            (&record.html, render::escape(&ask.base))
        };
        let answer = PageAnswer {
            digest: &page.digest,
            size: page.size,
            sentinels: page.sentinels,
            base,
            format,
            status,
            max_age: ttl.as_secs(),
        };
        let blobs = self.cache.blobs();
        page_response(
            blobs.as_ref(),
            &self.rendered,
            &answer,
            ask.headers,
            ask.head,
        )
        .await
    }

    fn root_spec(&self, ask: &Ask<'_>) -> FetchSpec {
        FetchSpec::new("pypi/root", Arc::clone(&self.index), page_request(""))
            .revalidate_after(self.config.root_ttl)
            .revalidate_now(wants_revalidation(ask.headers))
            .expect(self.page_limit())
    }

    fn page_spec(&self, name: &ProjectName, revalidate_now: bool) -> FetchSpec {
        let request = page_request(&format!("{name}/"));
        FetchSpec::new(
            format!("pypi/page/{name}"),
            Arc::clone(&self.index),
            request,
        )
        .revalidate_after(self.config.index_ttl)
        .revalidate_now(revalidate_now)
        .expect(self.page_limit())
    }

    fn page_limit(&self) -> Expected {
        Expected {
            max_size: Some(self.config.max_page_bytes),
            ..Expected::none()
        }
    }

    /// Makes sure a project's page is current and derived. A cached page that turns out
    /// malformed is asked for again at once rather than failing until its TTL runs out.
    async fn project_record(
        &self,
        name: &ProjectName,
        revalidate_now: bool,
    ) -> Result<(CacheStatus, DerivedRecord)> {
        let key = format!("pypi/derived/{name}");
        let page_url = self
            .index_base
            .join(&format!("{name}/"))
            .map_err(|err| PypiError::Config(format!("upstream: {err}")))?;
        let mut now = revalidate_now;
        loop {
            let (status, entry) = self.cache.ensure(self.page_spec(name, now)).await?;
            let (url, origins, project) = (page_url.clone(), self.origins.clone(), name.clone());
            let derived = self
                .derived(&key, &entry, move |raw, content_type| {
                    render_project(raw, content_type, &project, &url, &origins)
                })
                .await;
            match derived {
                Err(PypiError::MalformedPage(reason)) if status == CacheStatus::Hit && !now => {
                    tracing::debug!(project = %name, %reason, "cached page malformed, refetching");
                    now = true;
                }
                result => return result.map(|record| (status, record)),
            }
        }
    }

    /// The record derived from a stored page, deriving it if needed.
    async fn derived<F>(&self, key: &str, entry: &CacheEntry, transform: F) -> Result<DerivedRecord>
    where
        F: FnOnce(&[u8], Option<&str>) -> Result<Rendered, String> + Send + 'static,
    {
        if let Some(record) = self.load_derived(key, &entry.digest).await? {
            return Ok(record);
        }
        let _permit = self
            .transforms
            .acquire()
            .await
            .map_err(mirror_core::Error::storage)?;
        if let Some(record) = self.load_derived(key, &entry.digest).await? {
            return Ok(record);
        }
        let raw = read_to_bytes(self.cache.blobs().as_ref(), &entry.digest).await?;
        let content_type = entry.content_type.clone();
        let rendered =
            tokio::task::spawn_blocking(move || transform(&raw, content_type.as_deref()))
                .await
                .map_err(mirror_core::Error::storage)?
                .map_err(PypiError::MalformedPage)?;
        let record = self.store_rendered(entry.digest.clone(), rendered).await?;
        let value = serde_json::to_vec(&record).map_err(mirror_core::Error::storage)?;
        self.cache
            .metadata()
            .put(key, value.into(), Precondition::None)
            .await?;
        self.derived_memo.insert(key, record.clone());
        Ok(record)
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

    /// Whether a derived record was made from the stored page `source` in this service's
    /// configuration.
    fn derived_current(&self, record: &DerivedRecord, source: &Digest) -> bool {
        &record.source == source && record.context == self.context()
    }

    /// Names what a derived record depends on besides the upstream page.
    fn context(&self) -> String {
        let files = self.files_base.as_ref().map_or("", Url::as_str);
        format!("{DERIVE_VERSION} {} {files}", self.index_base)
    }

    async fn store_rendered(&self, source: Digest, rendered: Rendered) -> Result<DerivedRecord> {
        let model = match rendered.model {
            Some(model) => Some(self.store_blob(model).await?.0),
            None => None,
        };
        Ok(DerivedRecord {
            source,
            context: self.context(),
            html: self.store_page(rendered.html).await?,
            json: self.store_page(rendered.json).await?,
            model,
        })
    }

    async fn store_page(&self, page: Vec<u8>) -> Result<StoredPage> {
        let sentinels = mirror_core::body::count_occurrences(&page, crate::render::BASE_SENTINEL);
        let (digest, size) = self.store_blob(page).await?;
        Ok(StoredPage {
            digest,
            size,
            sentinels,
        })
    }

    async fn store_blob(&self, bytes: Vec<u8>) -> Result<(Digest, u64)> {
        let info = put_bytes(self.cache.blobs().as_ref(), bytes.into(), Expected::none()).await?;
        Ok((info.digest, info.size))
    }

    async fn file(&self, name: &ProjectName, file: &str, ask: &Ask<'_>) -> Result<Response<Body>> {
        let key = format!("pypi/file/{name}/{file}");
        let fetched = match self.cache.get_cached(&key).await? {
            Some(hit) => hit,
            None => {
                let dist = self.find_file(name, file).await?;
                let request = UpstreamRequest::get(dist.url.as_str());
                let expected = expectation(&dist.hashes, self.config.max_file_bytes);
                let spec =
                    FetchSpec::new(key, self.upstream_for(&dist.url)?, request).expect(expected);
                self.cache.get(spec).await?
            }
        };
        file_response(fetched, ask.headers, ask.head, "application/octet-stream").await
    }

    /// A file's core metadata (PEP 658), verified against the hash its page gave.
    async fn metadata(
        &self,
        name: &ProjectName,
        file: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let key = format!("pypi/metadata/{name}/{file}");
        let fetched = match self.cache.get_cached(&key).await? {
            Some(hit) => hit,
            None => {
                let dist = self.find_file(name, file).await?;
                let hashes = dist.core_metadata.as_ref().ok_or(PypiError::NotFound)?;
                let url = dist.metadata_url();
                let expected = expectation(hashes, self.config.max_page_bytes);
                let spec = FetchSpec::new(key, self.upstream_for(&url)?, UpstreamRequest::get(url))
                    .expect(expected);
                self.cache.get(spec).await?
            }
        };
        file_response(fetched, ask.headers, ask.head, "text/plain; charset=utf-8").await
    }

    /// Finds a file in the project's page, revalidating the page at once if the file is not
    /// listed: it may have been uploaded since the page was cached.
    async fn find_file(&self, name: &ProjectName, file: &str) -> Result<DistFile> {
        let (status, record) = self.project_record(name, false).await?;
        if let Some(found) = self.lookup_file(&record, file).await? {
            return Ok(found);
        }
        if status != CacheStatus::Hit {
            return Err(PypiError::NotFound);
        }
        let (_, record) = self.project_record(name, true).await?;
        self.lookup_file(&record, file)
            .await?
            .ok_or(PypiError::NotFound)
    }

    async fn lookup_file(&self, record: &DerivedRecord, file: &str) -> Result<Option<DistFile>> {
        let Some(model) = &record.model else {
            return Ok(None);
        };
        let raw = read_to_bytes(self.cache.blobs().as_ref(), model).await?;
        let page: ProjectPage =
            serde_json::from_slice(&raw).map_err(mirror_core::Error::storage)?;
        Ok(page.files.into_iter().find(|f| f.filename == file))
    }

    /// The upstream that may fetch `url`: the index's for its own origin, the file host's
    /// for that one. Pages were filtered the same way, so anything else is not listed.
    fn upstream_for(&self, url: &str) -> Result<Arc<dyn Upstream>> {
        let url = Url::parse(url).map_err(|_| PypiError::NotFound)?;
        if url.origin() == self.index_base.origin() {
            return Ok(Arc::clone(&self.index));
        }
        match &self.files_base {
            Some(base) if base.origin() == url.origin() => Ok(Arc::clone(&self.files)),
            _ => Err(PypiError::NotFound),
        }
    }
}

fn page_request(target: &str) -> UpstreamRequest {
    let mut request = UpstreamRequest::get(target);
    request
        .headers
        .insert(header::ACCEPT, HeaderValue::from_static(UPSTREAM_ACCEPT));
    request
}

fn render_project(
    raw: &[u8],
    content_type: Option<&str>,
    name: &ProjectName,
    page_url: &Url,
    origins: &AllowedOrigins,
) -> Result<Rendered, String> {
    let source = PageSource {
        url: page_url,
        content_type,
        origins,
    };
    let page = parse::project_page(raw, name.as_str(), &source)?;
    let model = serde_json::to_vec(&page).map_err(|err| err.to_string())?;
    Ok(Rendered {
        html: render::project_html(&page),
        json: render::project_json(&page),
        model: Some(model),
    })
}

/// Text as it may stand inside a JSON string.
fn json_text(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests;
