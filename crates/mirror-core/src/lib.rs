//! The shared core of Easy Registry Mirror: storage, upstream access and the fetch-on-miss
//! engine that every ecosystem crate (npm, OCI, PyPI, Maven) builds on.
//!
//! Three traits make the seams:
//!
//! - [`BlobStore`] keeps artifacts by sha256 and only makes a blob visible once its bytes
//!   were verified; [`MetadataStore`] keeps small records with compare-and-swap. Defaults:
//!   [`FsBlobStore`] on local disk and [`RedbMetadataStore`]; [`MemoryBlobStore`] and
//!   [`MemoryMetadataStore`] for tests and embedders.
//! - [`Upstream`] fetches from a remote registry; [`HttpUpstream`] does it over HTTP with
//!   timeouts, retries and credentials.
//! - [`Cache`] is the fetch-on-miss engine: single flight, streaming while fetching,
//!   verification before commit, TTL revalidation, negative caching and stale-if-error.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mirror_core::{
//!     Cache, FetchSpec, FsBlobStore, HttpUpstream, RedbMetadataStore, Upstream, UpstreamRequest,
//! };
//!
//! # async fn run() -> mirror_core::Result<()> {
//! let blobs = Arc::new(FsBlobStore::open("data/blobs")?);
//! let metadata = Arc::new(RedbMetadataStore::open("data/metadata.redb")?);
//! let cache = Cache::builder(blobs, metadata).build();
//!
//! let upstream: Arc<dyn Upstream> = Arc::new(HttpUpstream::builder("https://registry.example/")?.build()?);
//! let spec = FetchSpec::new("docs/index", upstream, UpstreamRequest::get("index.json"))
//!     .revalidate_after(Duration::from_secs(300));
//! let fetched = cache.get(spec).await?;
//! println!("{}", fetched.status()); // MISS the first time, HIT afterwards
//! # Ok(()) }
//! ```

pub mod auth;
pub mod body;
mod cache;
mod clock;
pub mod digest;
mod error;
pub mod http_util;
pub mod memo;
mod service;
mod storage;
mod upstream;

pub use crate::body::Body;
pub use crate::cache::{
    BodyMeta, BodyRead, Cache, CacheBuilder, CacheEntry, CacheMetrics, CacheStatus, FetchSpec,
    Fetched, MetricsSnapshot, Policy, CACHE_STATUS_HEADER,
};
pub use crate::clock::Clock;
pub use crate::digest::{Algorithm, Digest};
pub use crate::error::{BoxError, Error, ErrorKind, Result};
#[doc(hidden)]
pub use crate::service::__private;
pub use crate::storage::{
    check_precondition, put_bytes, read_to_bytes, BlobInfo, BlobRead, BlobStore, BlobWriter,
    ByteStream, Expected, FsBlobStore, HotBlobs, MemoryBlobStore, MemoryMetadataStore,
    MetadataStore, Precondition, Record, RedbMetadataStore, WriteVerifier,
};
pub use crate::upstream::{
    Credentials, HttpUpstream, HttpUpstreamBuilder, Upstream, UpstreamRequest, UpstreamResponse,
};
