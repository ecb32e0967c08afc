//! What the engine records about each cached key.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// A cached response: where its body is and how to revalidate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// sha256 of the body in the blob store.
    pub digest: Digest,
    /// Body length.
    pub size: u64,
    /// `Content-Type` upstream sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Upstream `ETag`, for `If-None-Match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Upstream `Last-Modified`, for `If-Modified-Since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// When upstream last confirmed this body, in milliseconds since the Unix epoch.
    pub fetched_at: u64,
}

/// One record under a cache key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StoredRecord {
    Entry(CacheEntry),
    /// Upstream said the key does not exist.
    Negative {
        fetched_at: u64,
    },
}

/// How a response was produced, sent to clients in the cache-status header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Served from the cache without asking upstream.
    Hit,
    /// Fetched from upstream (and stored) for this request.
    Miss,
    /// Upstream confirmed the cached copy was still current.
    Revalidated,
    /// Upstream failed, so a cached copy past its freshness was served.
    Stale,
}

impl CacheStatus {
    /// The header value: `HIT`, `MISS`, `REVALIDATED` or `STALE`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Stale => "STALE",
        }
    }
}

impl std::fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of the response header carrying a [`CacheStatus`].
pub const CACHE_STATUS_HEADER: &str = "x-cache-status";
