//! Configuration of the npm mirror.

use std::time::Duration;

use serde::Deserialize;

/// How the npm mirror behaves. Every field has a default suited to mirroring the public
/// registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct NpmConfig {
    /// The registry mirrored, as clients would configure it (`https://host/` or with a path).
    pub upstream: String,
    /// How long a packument is served without asking upstream. Short by default: a
    /// revalidation costs upstream a 304, and new releases show up quickly.
    #[serde(with = "humantime_serde")]
    pub metadata_ttl: Duration,
    /// The URL clients reach this mount at, such as `https://mirror.example.com/npm`. When
    /// unset, it is rebuilt per request from `Host` and `X-Forwarded-*` headers.
    pub public_url: Option<String>,
    /// The path this service is mounted at, used to rebuild URLs from request headers.
    pub mount_path: String,
    /// Longest wait for upstream's response head or for the next chunk of its body; past
    /// it the fetch fails with a 504 (or a stale copy is served). A download may take
    /// longer in total as long as bytes keep coming.
    #[serde(with = "humantime_serde")]
    pub upstream_read_timeout: Duration,
    /// Largest packument accepted from upstream.
    pub max_packument_bytes: u64,
    /// Largest tarball accepted from upstream.
    pub max_tarball_bytes: u64,
    /// Largest publish request body accepted (the tarball travels base64-encoded in it).
    pub max_publish_bytes: u64,
}

impl Default for NpmConfig {
    fn default() -> Self {
        NpmConfig {
            upstream: "https://registry.npmjs.org/".to_owned(),
            metadata_ttl: Duration::from_secs(60),
            public_url: None,
            mount_path: "/npm".to_owned(),
            upstream_read_timeout: Duration::from_secs(30),
            max_packument_bytes: 256 << 20,
            max_tarball_bytes: 2 << 30,
            max_publish_bytes: 128 << 20,
        }
    }
}
