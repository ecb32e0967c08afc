//! Proxy repositories: the Maven 2 layout of a remote repository, through the cache.
//!
//! A release artifact is immutable: it is fetched once and checked, before it is stored,
//! against the `.sha1` file upstream publishes beside it (itself cached). When upstream has
//! no `.sha1` (some repositories publish none), the artifact is stored under the sha256 the
//! blob store computes, unverified against upstream: there is nothing to verify against.
//! Listings (`maven-metadata.xml`) and everything under a `-SNAPSHOT` version change, so
//! they are revalidated after `metadata_ttl`. The checksums of a listing are computed from
//! the listing the mirror serves, so the two always agree even when upstream's copies of
//! them were fetched at different moments.
//!
//! Unlike the npm and PyPI mirrors, this one ignores a client's `Cache-Control: no-cache`:
//! mvn sends it (and `Pragma: no-cache`) with every request, so honouring it would ask
//! upstream again for every listing and make `metadata_ttl` meaningless.

use std::sync::Arc;

use bytes::Bytes;
use mirror_core::{
    read_to_bytes, Algorithm, CacheStatus, Digest, Expected, FetchSpec, Upstream, UpstreamRequest,
};

use super::respond::{is_metadata, Answer};
use super::{Inner, Result};
use crate::path::{upstream_target, ChecksumKind, FileKind, MavenPath};

/// Largest checksum file accepted from upstream.
const MAX_CHECKSUM_BYTES: u64 = 4096;

impl Inner {
    pub(super) async fn proxy_read(
        &self,
        repository: &str,
        upstream: &Arc<dyn Upstream>,
        path: &MavenPath,
    ) -> Result<Answer> {
        match &path.kind {
            FileKind::Metadata => {
                let spec = self.metadata_spec(repository, upstream, &path.path);
                Ok(Answer::Cached(self.cache.get(spec).await?))
            }
            FileKind::Checksum { base, kind } if is_metadata(path) => {
                let (status, listing) = self.proxy_listing(repository, upstream, base).await?;
                Ok(Answer::Made(checksum_of(&listing, *kind), status))
            }
            FileKind::Checksum { .. } => {
                let spec = self.checksum_spec(repository, upstream, path, &path.path);
                Ok(Answer::Cached(self.cache.get(spec).await?))
            }
            FileKind::Artifact => self.proxy_artifact(repository, upstream, path).await,
        }
    }

    /// A listing's bytes, for hashing, and how the cache answered.
    async fn proxy_listing(
        &self,
        repository: &str,
        upstream: &Arc<dyn Upstream>,
        path: &str,
    ) -> Result<(CacheStatus, Bytes)> {
        let (status, digest) = self
            .proxy_listing_digest(repository, upstream, path)
            .await?;
        let bytes = read_to_bytes(self.cache.blobs().as_ref(), &digest).await?;
        Ok((status, bytes))
    }

    /// The digest of a listing, fetched or revalidated when due, and how the cache
    /// answered; the blob store has its bytes.
    pub(super) async fn proxy_listing_digest(
        &self,
        repository: &str,
        upstream: &Arc<dyn Upstream>,
        path: &str,
    ) -> Result<(CacheStatus, Digest)> {
        let spec = self.metadata_spec(repository, upstream, path);
        let (status, entry) = self.cache.ensure(spec).await?;
        Ok((status, entry.digest))
    }

    async fn proxy_artifact(
        &self,
        repository: &str,
        upstream: &Arc<dyn Upstream>,
        path: &MavenPath,
    ) -> Result<Answer> {
        let key = cache_key(repository, &path.path);
        if !path.snapshot {
            if let Some(hit) = self.cache.get_cached(&key).await? {
                return Ok(Answer::Cached(hit));
            }
        }
        let mut expected = Expected {
            max_size: Some(self.config.max_artifact_bytes),
            ..Expected::none()
        };
        expected
            .digests
            .extend(self.upstream_sha1(repository, upstream, path).await?);
        let mut spec = FetchSpec::new(
            key,
            Arc::clone(upstream),
            UpstreamRequest::get(upstream_target(&path.path)),
        )
        .expect(expected);
        if path.snapshot {
            spec = spec.revalidate_after(self.config.metadata_ttl);
        }
        Ok(Answer::Cached(self.cache.get(spec).await?))
    }

    /// The sha1 upstream publishes for an artifact; `None` when it publishes none or one
    /// that cannot be read as a sha1.
    async fn upstream_sha1(
        &self,
        repository: &str,
        upstream: &Arc<dyn Upstream>,
        path: &MavenPath,
    ) -> Result<Option<Digest>> {
        let target = path.checksum_path(ChecksumKind::Sha1);
        let spec = self.checksum_spec(repository, upstream, path, &target);
        let entry = match self.cache.ensure(spec).await {
            Ok((_, entry)) => entry,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let text = read_to_bytes(self.cache.blobs().as_ref(), &entry.digest).await?;
        let digest = parse_checksum(&text, ChecksumKind::Sha1)
            .and_then(|hex| Digest::from_hex(Algorithm::Sha1, &hex).ok());
        if digest.is_none() {
            tracing::warn!(
                repository,
                path = target,
                "unreadable upstream sha1, not verifying"
            );
        }
        Ok(digest)
    }

    fn metadata_spec(
        &self,
        repository: &str,
        upstream: &Arc<dyn Upstream>,
        path: &str,
    ) -> FetchSpec {
        let expected = Expected {
            max_size: Some(self.config.max_metadata_bytes),
            ..Expected::none()
        };
        FetchSpec::new(
            cache_key(repository, path),
            Arc::clone(upstream),
            UpstreamRequest::get(upstream_target(path)),
        )
        .revalidate_after(self.config.metadata_ttl)
        .expect(expected)
    }

    /// A checksum file, cached like the file it describes.
    fn checksum_spec(
        &self,
        repository: &str,
        upstream: &Arc<dyn Upstream>,
        path: &MavenPath,
        target: &str,
    ) -> FetchSpec {
        let expected = Expected {
            max_size: Some(MAX_CHECKSUM_BYTES),
            ..Expected::none()
        };
        let spec = FetchSpec::new(
            cache_key(repository, target),
            Arc::clone(upstream),
            UpstreamRequest::get(upstream_target(target)),
        )
        .expect(expected);
        if path.snapshot {
            spec.revalidate_after(self.config.metadata_ttl)
        } else {
            spec
        }
    }
}

fn cache_key(repository: &str, path: &str) -> String {
    format!("maven/{repository}/{path}")
}

/// The hex digest at the start of a checksum file (`<hex>` or `<hex>  <file name>`),
/// lowercased; `None` unless it has the length the algorithm gives.
pub(super) fn parse_checksum(text: &[u8], kind: ChecksumKind) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let token = text.split_whitespace().next()?;
    let valid = token.len() == kind.hex_len() && token.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| token.to_ascii_lowercase())
}

/// The checksum file of some bytes, as Maven writes it: the hex digest alone.
pub(super) fn checksum_of(bytes: &[u8], kind: ChecksumKind) -> Bytes {
    use sha1::Digest as _;
    let hex = match kind {
        ChecksumKind::Md5 => hex::encode(md5::Md5::digest(bytes)),
        ChecksumKind::Sha1 => hex::encode(sha1::Sha1::digest(bytes)),
        ChecksumKind::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
        ChecksumKind::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
    };
    Bytes::from(hex)
}
