//! The fetch-on-miss engine.
//!
//! [`Cache::get`] answers "give me this key" from storage when it can and from upstream when
//! it must, under the key's [`Policy`]:
//!
//! - [`Policy::Immutable`] content (artifacts named by digest or version) is fetched once,
//!   verified against the digests the ecosystem declared, and never asked for again;
//! - [`Policy::Revalidate`] content (tags, package documents, indexes) is served while
//!   fresh and then revalidated with a conditional request, so an unchanged document costs
//!   upstream a 304 and no body;
//! - an upstream 404 is remembered for the negative TTL, so a build that probes for missing
//!   artifacts does not hammer upstream.
//!
//! Concurrent requests for one key share one upstream fetch (see the `flight` module); a
//! body is committed to the blob store only after its length and digests check out, and
//! the record pointing at it is written only after that, so a crash at any point leaves
//! either the old state or the new one. When upstream is down, slow or rate-limiting, a
//! cached copy is served as [`CacheStatus::Stale`] rather than failing the client.
//!
//! Large bodies stream to clients as they arrive; bodies of up to 1 MiB are verified before
//! their response starts, so a wrong small artifact becomes a clean 502 rather than a
//! connection cut before any response (an HTTP server drops a response whose body fails
//! before its head was flushed).

mod entry;
mod flight;
mod metrics;

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use tokio::sync::watch;
use tracing::Instrument;

use self::entry::StoredRecord;
use self::flight::{Flight, Phase, Spool};
use crate::clock::Clock;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::storage::{BlobStore, ByteStream, Expected, MetadataStore, Precondition};
use crate::upstream::{Upstream, UpstreamRequest, UpstreamResponse};

pub use self::entry::{CacheEntry, CacheStatus, CACHE_STATUS_HEADER};
pub use self::metrics::{CacheMetrics, MetricsSnapshot};

/// How long a cached key stays good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// Never changes once fetched: never revalidated.
    Immutable,
    /// Fresh for `ttl`, then revalidated with a conditional request.
    Revalidate {
        /// Freshness lifetime.
        ttl: Duration,
    },
}

/// One request to the engine: which key, where upstream has it, and how to treat it.
#[derive(Debug, Clone)]
pub struct FetchSpec {
    key: String,
    upstream: Arc<dyn Upstream>,
    request: UpstreamRequest,
    policy: Policy,
    expected: Expected,
    revalidate_now: bool,
}

impl FetchSpec {
    /// Fetch `request` from `upstream` on a miss and cache it under `key`; immutable unless
    /// [`revalidate_after`](Self::revalidate_after) says otherwise.
    pub fn new(
        key: impl Into<String>,
        upstream: Arc<dyn Upstream>,
        request: UpstreamRequest,
    ) -> Self {
        FetchSpec {
            key: key.into(),
            upstream,
            request,
            policy: Policy::Immutable,
            expected: Expected::none(),
            revalidate_now: false,
        }
    }

    /// Treats the key as fresh for `ttl`, then revalidates it.
    pub fn revalidate_after(mut self, ttl: Duration) -> Self {
        self.policy = Policy::Revalidate { ttl };
        self
    }

    /// Refuses to commit a body that does not match `expected`.
    pub fn expect(mut self, expected: Expected) -> Self {
        self.expected = expected;
        self
    }

    /// Skips the freshness check for this request (a client's `Cache-Control: no-cache`,
    /// or a version missing from a cached document).
    pub fn revalidate_now(mut self, now: bool) -> Self {
        self.revalidate_now = now;
        self
    }

    /// The cache key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Response metadata known before the body arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyMeta {
    /// Body length, when known.
    pub size: Option<u64>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Upstream `ETag`.
    pub etag: Option<String>,
    /// Upstream `Last-Modified`.
    pub last_modified: Option<String>,
    /// sha256 of the body, once stored.
    pub digest: Option<Digest>,
}

impl BodyMeta {
    fn of_entry(entry: &CacheEntry) -> Self {
        BodyMeta {
            size: Some(entry.size),
            content_type: entry.content_type.clone(),
            etag: entry.etag.clone(),
            last_modified: entry.last_modified.clone(),
            digest: Some(entry.digest.clone()),
        }
    }

    fn of_headers(headers: &HeaderMap) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        BodyMeta {
            size: text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
            content_type: text(header::CONTENT_TYPE),
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED),
            digest: None,
        }
    }
}

/// An answer from the engine, ready to stream.
#[derive(Debug)]
pub struct Fetched {
    status: CacheStatus,
    meta: BodyMeta,
    source: Source,
    blobs: Arc<dyn BlobStore>,
}

#[derive(Debug)]
enum Source {
    Stored(Digest),
    InFlight(watch::Receiver<Phase>),
}

/// A body to send, with the range it covers.
pub struct BodyRead {
    /// The byte range streamed; `None` for the whole body.
    pub range: Option<Range<u64>>,
    /// The bytes.
    pub stream: ByteStream,
}

impl std::fmt::Debug for BodyRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyRead")
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl Fetched {
    /// How this answer was produced.
    pub fn status(&self) -> CacheStatus {
        self.status
    }

    /// Size, type and validators of the body.
    pub fn meta(&self) -> &BodyMeta {
        &self.meta
    }

    /// Opens the body, or the requested byte range of it when the size is known.
    ///
    /// A body still arriving from upstream streams as it arrives; an error item ends the
    /// stream if the fetch fails or the body does not verify.
    pub async fn open(self, range: Option<Range<u64>>) -> Result<BodyRead> {
        let range = match (range, self.meta.size) {
            (Some(range), Some(size)) if range.start > range.end || range.end > size => {
                return Err(Error::RangeNotSatisfiable { size });
            }
            (Some(range), Some(_)) => Some(range),
            _ => None,
        };
        match self.source {
            Source::Stored(digest) => {
                let read = self.blobs.read(&digest, range.clone()).await?;
                Ok(BodyRead {
                    range,
                    stream: read.stream,
                })
            }
            Source::InFlight(mut rx) => {
                let (start, end) = range.as_ref().map_or((0, None), |r| (r.start, Some(r.end)));
                if self.meta.size.is_some_and(|size| size <= SMALL_BODY) {
                    // Small enough to wait for: the client then gets either the verified
                    // body or a clean error response, never a connection cut mid-way.
                    if let Phase::Failed(err) = flight::finished(&mut rx).await? {
                        return Err(flight::duplicate(&err));
                    }
                }
                let stream = first_chunk_checked(flight::spool_stream(rx, start, end)).await?;
                Ok(BodyRead { range, stream })
            }
        }
    }

    /// Reads the whole body into memory; for small documents only.
    pub async fn bytes(self) -> Result<Bytes> {
        let mut stream = self.open(None).await?.stream;
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.into())
    }
}

/// Builds a [`Cache`].
#[derive(Debug)]
pub struct CacheBuilder {
    blobs: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    spool_dir: Option<PathBuf>,
    negative_ttl: Duration,
    stale_grace: Duration,
    clock: Clock,
}

impl CacheBuilder {
    /// After a failed revalidation, how long the stale copy is served without asking
    /// upstream again (default 30 s), so that an outage costs clients no upstream timeout on
    /// every request.
    pub fn stale_grace(mut self, grace: Duration) -> Self {
        self.stale_grace = grace;
        self
    }

    /// Directory for bodies in flight (default: the system temporary directory). Put it on a
    /// disk with room for the largest artifacts being fetched at once.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// How long an upstream 404 is remembered (default 60 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The clock used for freshness (tests anchor it under a paused tokio clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                blobs: self.blobs,
                metadata: self.metadata,
                spool_dir: self.spool_dir,
                negative_ttl: self.negative_ttl,
                stale_grace: self.stale_grace,
                clock: self.clock,
                flights: Mutex::new(HashMap::new()),
                failed_revalidations: Mutex::new(HashMap::new()),
                recent_records: Mutex::new(HashMap::new()),
                metrics: CacheMetrics::default(),
            }),
        }
    }
}

/// The fetch-on-miss engine; cheap to clone, shared by every ecosystem service.
#[derive(Debug, Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    blobs: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    spool_dir: Option<PathBuf>,
    negative_ttl: Duration,
    stale_grace: Duration,
    clock: Clock,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    /// Keys whose last revalidation failed, with when it failed (ms since the epoch).
    failed_revalidations: Mutex<HashMap<String, u64>>,
    /// Records read or written moments ago, with when (ms since the epoch), so that a burst
    /// of hits on one key reads the metadata store once.
    recent_records: Mutex<HashMap<String, (u64, StoredRecord)>>,
    metrics: CacheMetrics,
}

/// How long a record read from the metadata store is reused without reading it again. Only
/// this engine writes cache records and it updates the copy when it does; the bound is for
/// another process or engine sharing the store.
const RECORD_REUSE_MS: u64 = 1_000;
/// Records remembered at most; the memory is dropped whole when it fills up.
const RECENT_RECORDS_MAX: usize = 16_384;

/// What the stored record says before any upstream call.
enum Decision {
    Hit(CacheEntry),
    /// Past its freshness, but upstream failed moments ago: serve without asking again.
    Stale(CacheEntry),
    KnownMissing,
    Fetch(Option<CacheEntry>),
}

impl Cache {
    /// Starts building an engine over a blob store and a metadata store.
    pub fn builder(blobs: Arc<dyn BlobStore>, metadata: Arc<dyn MetadataStore>) -> CacheBuilder {
        CacheBuilder {
            blobs,
            metadata,
            spool_dir: None,
            negative_ttl: Duration::from_secs(60),
            stale_grace: Duration::from_secs(30),
            clock: Clock::new(),
        }
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blobs
    }

    /// The metadata store.
    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.metadata
    }

    /// The clock freshness is judged by.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.inner.metrics
    }

    /// The cached entry of a key, without asking upstream.
    pub async fn lookup(&self, key: &str) -> Result<Option<CacheEntry>> {
        match self.inner.load(key).await? {
            Some(StoredRecord::Entry(entry)) => Ok(Some(entry)),
            _ => Ok(None),
        }
    }

    /// A cached body as a [`CacheStatus::Hit`], without asking upstream; `None` when the key
    /// is not stored. Immutable content served from here needs no upstream details at all.
    pub async fn get_cached(&self, key: &str) -> Result<Option<Fetched>> {
        let Some(entry) = self.lookup(key).await? else {
            return Ok(None);
        };
        if self.inner.blobs.size(&entry.digest).await? != Some(entry.size) {
            return Ok(None);
        }
        self.inner.metrics.count(CacheStatus::Hit);
        Ok(Some(self.stored(CacheStatus::Hit, &entry)))
    }

    /// Answers a request, streaming from upstream on a miss.
    ///
    /// Fails with [`Error::NotFound`] when upstream does not have the key, and with an
    /// upstream error only when no cached copy exists to serve instead.
    pub async fn get(&self, spec: FetchSpec) -> Result<Fetched> {
        match self.inner.decide(&spec).await? {
            Decision::Hit(entry) => {
                return Ok(self.stored(self.inner.counted(CacheStatus::Hit), &entry))
            }
            Decision::Stale(entry) => {
                return Ok(self.stored(self.inner.counted(CacheStatus::Stale), &entry))
            }
            Decision::KnownMissing | Decision::Fetch(_) => {}
        }
        let mut rx = self.join_flight(spec);
        match flight::started(&mut rx).await? {
            Phase::Streaming { meta, .. } => Ok(Fetched {
                status: CacheStatus::Miss,
                meta: (*meta).clone(),
                source: Source::InFlight(rx),
                blobs: Arc::clone(&self.inner.blobs),
            }),
            phase => {
                let (status, entry) = settled(phase)?;
                Ok(self.stored(status, &entry))
            }
        }
    }

    /// Makes sure a key is cached and current, waiting for any download to finish; for
    /// documents a service transforms before serving.
    pub async fn ensure(&self, spec: FetchSpec) -> Result<(CacheStatus, CacheEntry)> {
        match self.inner.decide(&spec).await? {
            Decision::Hit(entry) => return Ok((self.inner.counted(CacheStatus::Hit), entry)),
            Decision::Stale(entry) => return Ok((self.inner.counted(CacheStatus::Stale), entry)),
            Decision::KnownMissing | Decision::Fetch(_) => {}
        }
        let mut rx = self.join_flight(spec);
        settled(flight::finished(&mut rx).await?)
    }

    fn stored(&self, status: CacheStatus, entry: &CacheEntry) -> Fetched {
        Fetched {
            status,
            meta: BodyMeta::of_entry(entry),
            source: Source::Stored(entry.digest.clone()),
            blobs: Arc::clone(&self.inner.blobs),
        }
    }

    /// Joins the flight for the key, starting one if none is under way.
    fn join_flight(&self, spec: FetchSpec) -> watch::Receiver<Phase> {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = flights.get(&spec.key) {
            return flight.subscribe();
        }
        let flight = Flight::new();
        let rx = flight.subscribe();
        flights.insert(spec.key.clone(), Arc::clone(&flight));
        drop(flights);
        let span = tracing::debug_span!("fetch", key = %spec.key);
        let guard = FlightGuard {
            inner: Arc::clone(&self.inner),
            key: spec.key.clone(),
            flight: Arc::clone(&flight),
        };
        let task = async move {
            let phase = guard.inner.fly(&flight, spec).await;
            // Leave the map before announcing the end: a request arriving now must start
            // afresh (or find the committed entry), never join a flight that already failed.
            guard.release();
            flight.set(phase);
        };
        tokio::spawn(task.instrument(span));
        rx
    }
}

/// Removes a finished flight from the map, also when its task panics, so that waiters see
/// the flight's end instead of waiting forever.
struct FlightGuard {
    inner: Arc<Inner>,
    key: String,
    flight: Arc<Flight>,
}

impl FlightGuard {
    /// Removes this flight from the map, unless a newer one already took its place.
    fn release(&self) {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if flights
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// Bodies up to this size are verified before their response starts.
const SMALL_BODY: u64 = 1 << 20;

/// Waits for the first chunk of a body still arriving, so that a fetch failing before any
/// byte could be sent (a small artifact whose digest turns out wrong) becomes an error
/// response instead of a connection closed before the response head.
async fn first_chunk_checked(mut stream: ByteStream) -> Result<ByteStream> {
    match stream.next().await {
        Some(Ok(first)) => Ok(futures_util::stream::once(async move { Ok(first) })
            .chain(stream)
            .boxed()),
        Some(Err(err)) => Err(err),
        None => Ok(futures_util::stream::empty().boxed()),
    }
}

/// The status and entry of a finished flight.
fn settled(phase: Phase) -> Result<(CacheStatus, CacheEntry)> {
    match phase {
        Phase::Committed { entry, .. } => Ok((CacheStatus::Miss, entry)),
        Phase::Resolved {
            status,
            entry: Some(entry),
        } => Ok((status, entry)),
        Phase::Resolved { entry: None, .. } => Err(Error::NotFound),
        Phase::Failed(err) => Err(flight::duplicate(&err)),
        Phase::Pending | Phase::Streaming { .. } => Err(Error::storage("flight not settled")),
    }
}

fn record_key(key: &str) -> String {
    format!("cache/{key}")
}

impl Inner {
    async fn load(&self, key: &str) -> Result<Option<StoredRecord>> {
        if let Some(record) = self.recent_record(key) {
            return Ok(Some(record));
        }
        let Some(record) = self.metadata.get(&record_key(key)).await? else {
            return Ok(None);
        };
        match serde_json::from_slice::<StoredRecord>(&record.value) {
            Ok(stored) => {
                self.remember_record(key, &stored);
                Ok(Some(stored))
            }
            Err(err) => {
                tracing::warn!(key, error = %err, "unreadable cache record, refetching");
                Ok(None)
            }
        }
    }

    async fn save(&self, key: &str, record: &StoredRecord) -> Result<()> {
        let value = serde_json::to_vec(record).map_err(Error::storage)?;
        // Forget the old copy first: should the write fail, the store is what counts.
        self.recent_records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        self.metadata
            .put(&record_key(key), value.into(), Precondition::None)
            .await?;
        self.remember_record(key, record);
        Ok(())
    }

    fn recent_record(&self, key: &str) -> Option<StoredRecord> {
        let now = self.clock.now_millis();
        let recent = self
            .recent_records
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (at, record) = recent.get(key)?;
        (now.saturating_sub(*at) < RECORD_REUSE_MS).then(|| record.clone())
    }

    fn remember_record(&self, key: &str, record: &StoredRecord) {
        let now = self.clock.now_millis();
        let mut recent = self
            .recent_records
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if recent.len() >= RECENT_RECORDS_MAX && !recent.contains_key(key) {
            recent.clear();
        }
        recent.insert(key.to_owned(), (now, record.clone()));
    }

    fn is_fresh(&self, fetched_at: u64, ttl: Duration) -> bool {
        let age = self.clock.now_millis().saturating_sub(fetched_at);
        u128::from(age) < ttl.as_millis()
    }

    async fn decide(&self, spec: &FetchSpec) -> Result<Decision> {
        let decision = match self.load(&spec.key).await? {
            None => Decision::Fetch(None),
            Some(StoredRecord::Negative { fetched_at }) => {
                let fresh = self.is_fresh(fetched_at, self.negative_ttl);
                if fresh && !spec.revalidate_now {
                    Decision::KnownMissing
                } else {
                    Decision::Fetch(None)
                }
            }
            Some(StoredRecord::Entry(entry)) => self.decide_entry(spec, entry).await?,
        };
        if let Decision::KnownMissing = decision {
            self.metrics.count(CacheStatus::Hit);
            return Err(Error::NotFound);
        }
        Ok(decision)
    }

    async fn decide_entry(&self, spec: &FetchSpec, entry: CacheEntry) -> Result<Decision> {
        if self.blobs.size(&entry.digest).await? != Some(entry.size) {
            tracing::warn!(key = spec.key, digest = %entry.digest, "cached blob missing, refetching");
            return Ok(Decision::Fetch(None));
        }
        let fresh = match spec.policy {
            Policy::Immutable => true,
            Policy::Revalidate { ttl } => {
                !spec.revalidate_now && self.is_fresh(entry.fetched_at, ttl)
            }
        };
        Ok(if fresh {
            Decision::Hit(entry)
        } else if !spec.revalidate_now && self.recently_failed(&spec.key) {
            Decision::Stale(entry)
        } else {
            Decision::Fetch(Some(entry))
        })
    }

    fn recently_failed(&self, key: &str) -> bool {
        let failures = self
            .failed_revalidations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failures
            .get(key)
            .is_some_and(|at| self.is_fresh(*at, self.stale_grace))
    }

    fn note_revalidation(&self, key: &str, failed: bool) {
        let mut failures = self
            .failed_revalidations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if failed {
            failures.insert(key.to_owned(), self.clock.now_millis());
        } else if !failures.is_empty() {
            failures.remove(key);
        }
    }

    fn counted(&self, status: CacheStatus) -> CacheStatus {
        self.metrics.count(status);
        status
    }

    /// Runs one flight to its end, announcing the streaming phase; returns the final one.
    async fn fly(&self, flight: &Flight, spec: FetchSpec) -> Phase {
        let phase = match self.decide(&spec).await {
            Ok(Decision::Hit(entry)) => Phase::Resolved {
                status: CacheStatus::Hit,
                entry: Some(entry),
            },
            Ok(Decision::Stale(entry)) => Phase::Resolved {
                status: CacheStatus::Stale,
                entry: Some(entry),
            },
            Ok(Decision::Fetch(cached)) => {
                let phase = self.fetch(flight, &spec, cached).await;
                let stale = matches!(
                    &phase,
                    Phase::Resolved {
                        status: CacheStatus::Stale,
                        ..
                    }
                );
                self.note_revalidation(&spec.key, stale);
                phase
            }
            Ok(Decision::KnownMissing) | Err(Error::NotFound) => Phase::Resolved {
                status: CacheStatus::Hit,
                entry: None,
            },
            Err(err) => Phase::Failed(Arc::new(err)),
        };
        if let Phase::Resolved { status, .. } = &phase {
            self.metrics.count(*status);
        }
        if let Phase::Failed(err) = &phase {
            tracing::debug!(key = spec.key, error = %err, "fetch failed");
            self.metrics.upstream_failure();
        }
        phase
    }

    async fn fetch(&self, flight: &Flight, spec: &FetchSpec, cached: Option<CacheEntry>) -> Phase {
        let mut request = spec.request.clone();
        if let Some(entry) = &cached {
            add_validators(&mut request.headers, entry);
        }
        self.metrics.upstream_request();
        let response = match spec.upstream.send(request).await {
            Ok(response) => response,
            Err(err) => return self.stale_or(cached, err),
        };
        match response.status {
            StatusCode::OK => self.stream(flight, spec, response, cached).await,
            StatusCode::NOT_MODIFIED if cached.is_some() => {
                self.revalidated(spec, cached, &response.headers).await
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => self.missing(spec).await,
            status => self.stale_or(cached, Error::UpstreamStatus { status }),
        }
    }

    fn stale_or(&self, cached: Option<CacheEntry>, err: Error) -> Phase {
        match cached {
            Some(entry) => {
                tracing::debug!(error = %err, "upstream failed, serving stale");
                Phase::Resolved {
                    status: CacheStatus::Stale,
                    entry: Some(entry),
                }
            }
            None => Phase::Failed(Arc::new(err)),
        }
    }

    async fn revalidated(
        &self,
        spec: &FetchSpec,
        cached: Option<CacheEntry>,
        headers: &HeaderMap,
    ) -> Phase {
        let Some(mut entry) = cached else {
            return Phase::Failed(Arc::new(Error::UpstreamStatus {
                status: StatusCode::NOT_MODIFIED,
            }));
        };
        let fresh = BodyMeta::of_headers(headers);
        entry.etag = fresh.etag.or(entry.etag);
        entry.last_modified = fresh.last_modified.or(entry.last_modified);
        entry.fetched_at = self.clock.now_millis();
        if let Err(err) = self
            .save(&spec.key, &StoredRecord::Entry(entry.clone()))
            .await
        {
            tracing::warn!(key = spec.key, error = %err, "cannot record revalidation");
        }
        Phase::Resolved {
            status: CacheStatus::Revalidated,
            entry: Some(entry),
        }
    }

    async fn missing(&self, spec: &FetchSpec) -> Phase {
        let record = StoredRecord::Negative {
            fetched_at: self.clock.now_millis(),
        };
        if let Err(err) = self.save(&spec.key, &record).await {
            tracing::warn!(key = spec.key, error = %err, "cannot record upstream 404");
        }
        Phase::Resolved {
            status: CacheStatus::Miss,
            entry: None,
        }
    }

    /// Streams a 200 body into the spool and the blob store, then commits it.
    async fn stream(
        &self,
        flight: &Flight,
        spec: &FetchSpec,
        response: UpstreamResponse,
        cached: Option<CacheEntry>,
    ) -> Phase {
        let mut meta = BodyMeta::of_headers(&response.headers);
        if let (Some(want), Some(got)) = (spec.expected.size, meta.size) {
            if want != got {
                let err = Error::LengthMismatch {
                    expected: want,
                    actual: got,
                };
                return self.stale_or(cached, err);
            }
        }
        meta.size = meta.size.or(spec.expected.size);
        match self.receive(flight, spec, response.body, meta).await {
            Ok(phase) => phase,
            Err(err) if err.is_upstream() => self.stale_or(cached, err),
            Err(err) => Phase::Failed(Arc::new(err)),
        }
    }

    async fn receive(
        &self,
        flight: &Flight,
        spec: &FetchSpec,
        mut body: ByteStream,
        meta: BodyMeta,
    ) -> Result<Phase> {
        let spool = Arc::new(Spool::create(self.spool_dir.as_deref())?);
        let mut expected = spec.expected.clone();
        expected.size = expected.size.or(meta.size);
        let mut writer = self.blobs.writer(expected).await?;
        flight.set(Phase::Streaming {
            meta: Arc::new(meta.clone()),
            spool: Arc::clone(&spool),
            written: 0,
        });

        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            writer.write(chunk.clone()).await?;
            let len = chunk.len() as u64;
            spool.write_at(chunk, written).await?;
            written += len;
            flight.advance(written);
        }

        let info = writer.commit().await?;
        self.metrics.upstream_bytes(info.size);
        let entry = CacheEntry {
            digest: info.digest,
            size: info.size,
            content_type: meta.content_type,
            etag: meta.etag,
            last_modified: meta.last_modified,
            fetched_at: self.clock.now_millis(),
        };
        self.save(&spec.key, &StoredRecord::Entry(entry.clone()))
            .await?;
        self.metrics.count(CacheStatus::Miss);
        Ok(Phase::Committed { entry, spool })
    }
}

fn add_validators(headers: &mut HeaderMap, entry: &CacheEntry) {
    let value = |text: &Option<String>| text.as_deref().and_then(|t| HeaderValue::from_str(t).ok());
    if let Some(etag) = value(&entry.etag) {
        headers.insert(header::IF_NONE_MATCH, etag);
    }
    if let Some(date) = value(&entry.last_modified) {
        headers.insert(header::IF_MODIFIED_SINCE, date);
    }
}

#[cfg(test)]
mod tests;
