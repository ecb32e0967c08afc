//! Counters the engine keeps for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::entry::CacheStatus;

/// Monotonic counters of what the engine did.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    hits: AtomicU64,
    misses: AtomicU64,
    revalidated: AtomicU64,
    stale: AtomicU64,
    upstream_requests: AtomicU64,
    upstream_failures: AtomicU64,
    upstream_bytes: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Answers served from the cache.
    pub hits: u64,
    /// Bodies fetched from upstream.
    pub misses: u64,
    /// Cached copies confirmed by upstream.
    pub revalidated: u64,
    /// Cached copies served because upstream failed.
    pub stale: u64,
    /// Requests sent upstream.
    pub upstream_requests: u64,
    /// Fetches that failed with nothing cached to fall back on.
    pub upstream_failures: u64,
    /// Body bytes received from upstream and stored.
    pub upstream_bytes: u64,
}

impl CacheMetrics {
    /// Counts one answer. [`Cache::ensure`](crate::Cache::ensure) and
    /// [`Cache::get_cached`](crate::Cache::get_cached) count theirs; a service that answers
    /// from state of its own (a container tag confirmed by a `HEAD`, say) counts here.
    pub fn count(&self, status: CacheStatus) {
        let counter = match status {
            CacheStatus::Hit => &self.hits,
            CacheStatus::Miss => &self.misses,
            CacheStatus::Revalidated => &self.revalidated,
            CacheStatus::Stale => &self.stale,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn upstream_request(&self) {
        self.upstream_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn upstream_failure(&self) {
        self.upstream_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn upstream_bytes(&self, bytes: u64) {
        self.upstream_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            hits: get(&self.hits),
            misses: get(&self.misses),
            revalidated: get(&self.revalidated),
            stale: get(&self.stale),
            upstream_requests: get(&self.upstream_requests),
            upstream_failures: get(&self.upstream_failures),
            upstream_bytes: get(&self.upstream_bytes),
        }
    }
}
