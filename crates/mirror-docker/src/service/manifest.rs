//! Manifests: immutable by digest, revalidated by tag.
//!
//! A manifest fetched by digest never changes, so it is cached once, verified against the
//! digest, and never asked for again. A tag is a pointer that moves, so the mirror keeps a
//! small tag → digest record next to the manifests. While the record is younger than the
//! tag TTL it is trusted; after that the mirror asks upstream with a `HEAD` of the tag and
//! reads `Docker-Content-Digest` instead of downloading the manifest again: a HEAD does not
//! count against Docker Hub's pull rate limit, and an unchanged tag (the common case) costs
//! no body at all. Only a tag that moved is followed by a GET of the new manifest, by digest.
//! If upstream fails, times out or rate-limits during that check, the manifest the tag last
//! named is served, marked `STALE`.
//!
//! An index (multi-architecture image) is one manifest like any other and is stored whole;
//! the platform manifests it lists are fetched when a client asks for them by digest.

use http::{header, Response, StatusCode};
use mirror_core::{
    body, Body, CacheEntry, CacheStatus, Digest, Expected, FetchSpec, UpstreamRequest,
    CACHE_STATUS_HEADER,
};
use serde::{Deserialize, Serialize};

use super::{key_prefix, set, Ask, Inner, Result, STALE_GRACE_MS};
use crate::error::DockerError;
use crate::media;
use crate::path::parse_digest;
use crate::select::Selected;

/// The header that names a manifest's or blob's digest.
pub(super) const DIGEST_HEADER: &str = "docker-content-digest";

/// What the mirror remembers about a tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TagRecord {
    /// The manifest the tag named when upstream last said.
    digest: Digest,
    /// When upstream last confirmed it, in milliseconds since the Unix epoch.
    fetched_at: u64,
    /// When revalidating it last failed, if that is more recent than `fetched_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_at: Option<u64>,
    /// The cache key of the body, for a registry that does not send the digest on HEAD
    /// (the manifest was then fetched by tag); absent when it is cached by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_key: Option<String>,
}

/// A manifest ready to serve.
struct Manifest {
    status: CacheStatus,
    entry: CacheEntry,
    digest: Digest,
}

impl Inner {
    fn manifest_spec(&self, selected: &Selected, reference: &str, key: String) -> FetchSpec {
        let target = format!("v2/{}/manifests/{reference}", selected.repo);
        let mut request = UpstreamRequest::get(target);
        request
            .headers
            .insert(header::ACCEPT, media::accept_manifests());
        let expected = Expected {
            max_size: Some(self.config.max_manifest_bytes),
            ..Expected::none()
        };
        FetchSpec::new(key, selected.upstream.clone(), request).expect(expected)
    }

    /// The manifest with this digest, cached once and verified.
    async fn manifest_entry(
        &self,
        selected: &Selected,
        digest: &Digest,
    ) -> Result<(CacheStatus, CacheEntry)> {
        let key = format!("{}/manifest/{digest}", key_prefix(selected));
        let spec = self.manifest_spec(selected, &digest.to_string(), key);
        let expected = Expected {
            digests: vec![digest.clone()],
            size: None,
            max_size: Some(self.config.max_manifest_bytes),
        };
        self.cache
            .ensure(spec.expect(expected))
            .await
            .map_err(|err| {
                DockerError::from(err)
                    .or_unknown(|| DockerError::ManifestUnknown(digest.to_string()))
            })
    }

    pub(super) async fn manifest_by_digest(
        &self,
        selected: &Selected,
        digest: &Digest,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let (status, entry) = self.manifest_entry(selected, digest).await?;
        let manifest = Manifest {
            status,
            entry,
            digest: digest.clone(),
        };
        self.manifest_response(manifest, ask, false).await
    }

    pub(super) async fn tagged_manifest(
        &self,
        selected: &Selected,
        tag: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let key = format!("{}/tag/{}:{tag}", key_prefix(selected), selected.repo);
        let record: Option<TagRecord> = self.load_pulled(&key).await?;
        if let Some(manifest) = self.trusted(selected, record.as_ref(), ask).await? {
            return self.manifest_response(manifest, ask, true).await;
        }
        let _revalidating = self.locks.lock(&key).await;
        // Another request may have revalidated the tag while this one waited.
        let record: Option<TagRecord> = self.load_pulled(&key).await?;
        if let Some(manifest) = self.trusted(selected, record.as_ref(), ask).await? {
            return self.manifest_response(manifest, ask, true).await;
        }
        let manifest = match self.revalidate_tag(selected, tag, &key).await {
            Ok(manifest) => manifest,
            Err(err) if err.allows_stale() => match record {
                Some(record) => self.stale(selected, &key, record, err).await?,
                None => return Err(err),
            },
            Err(err) => return Err(err),
        };
        self.manifest_response(manifest, ask, true).await
    }

    /// The manifest a record names, when the record may be used without asking upstream:
    /// within the TTL, or within the grace period after a failed revalidation.
    async fn trusted(
        &self,
        selected: &Selected,
        record: Option<&TagRecord>,
        ask: &Ask<'_>,
    ) -> Result<Option<Manifest>> {
        let Some(record) = record.filter(|_| !ask.revalidate) else {
            return Ok(None);
        };
        let status = if self.is_fresh(record.fetched_at, self.tag_ttl_ms()) {
            CacheStatus::Hit
        } else if record
            .failed_at
            .is_some_and(|at| self.is_fresh(at, STALE_GRACE_MS))
        {
            CacheStatus::Stale
        } else {
            return Ok(None);
        };
        let Some(entry) = self.cached_body(selected, record).await? else {
            return Ok(None);
        };
        self.cache.metrics().count(status);
        Ok(Some(Manifest {
            status,
            entry,
            digest: record.digest.clone(),
        }))
    }

    /// The stored body of the manifest a record names, without asking upstream.
    async fn cached_body(
        &self,
        selected: &Selected,
        record: &TagRecord,
    ) -> Result<Option<CacheEntry>> {
        match &record.body_key {
            Some(key) => self.stored_entry(key).await,
            None => self.stored_manifest(selected, &record.digest).await,
        }
    }

    /// The manifest `digest` if it is stored, neither asking upstream nor counting a hit.
    async fn stored_manifest(
        &self,
        selected: &Selected,
        digest: &Digest,
    ) -> Result<Option<CacheEntry>> {
        let key = format!("{}/manifest/{digest}", key_prefix(selected));
        self.stored_entry(&key).await
    }

    async fn stored_entry(&self, key: &str) -> Result<Option<CacheEntry>> {
        let Some(entry) = self.cache.lookup(key).await? else {
            return Ok(None);
        };
        let stored = self.cache.blobs().size(&entry.digest).await?;
        Ok((stored == Some(entry.size)).then_some(entry))
    }

    /// Asks upstream which manifest the tag names now, fetching it if it is new.
    async fn revalidate_tag(&self, selected: &Selected, tag: &str, key: &str) -> Result<Manifest> {
        let digest = match self.head_tag(selected, tag).await {
            Ok(digest) => digest,
            Err(err @ DockerError::ManifestUnknown(_)) => {
                self.delete_pulled(key).await?;
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        let (manifest, body_key) = match digest {
            Some(digest) => {
                let (status, entry) = match self.stored_manifest(selected, &digest).await? {
                    // Upstream was asked, and the body it names was already here.
                    Some(entry) => {
                        self.cache.metrics().count(CacheStatus::Revalidated);
                        (CacheStatus::Revalidated, entry)
                    }
                    None => self.manifest_entry(selected, &digest).await?,
                };
                let manifest = Manifest {
                    status,
                    entry,
                    digest,
                };
                (manifest, None)
            }
            None => self.fetch_by_tag(selected, tag).await?,
        };
        let record = TagRecord {
            digest: manifest.digest.clone(),
            fetched_at: self.now(),
            failed_at: None,
            body_key,
        };
        self.save_pulled(key, &record).await?;
        tracing::debug!(key, digest = %record.digest, status = %manifest.status, "tag revalidated");
        Ok(manifest)
    }

    /// `HEAD` of the tag upstream: the digest it names, or `None` if upstream did not say.
    async fn head_tag(&self, selected: &Selected, tag: &str) -> Result<Option<Digest>> {
        let target = format!("v2/{}/manifests/{tag}", selected.repo);
        let mut request = UpstreamRequest::head(target);
        request
            .headers
            .insert(header::ACCEPT, media::accept_manifests());
        let response = selected.upstream.send(request).await?;
        match response.status {
            StatusCode::OK => {
                let digest = response
                    .headers
                    .get(DIGEST_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_digest(v.trim()).ok());
                Ok(digest)
            }
            StatusCode::NOT_FOUND => Err(DockerError::ManifestUnknown(format!(
                "{}:{tag}",
                selected.repo
            ))),
            status => Err(mirror_core::Error::UpstreamStatus { status }.into()),
        }
    }

    /// For a registry that names no digest on HEAD: GET the manifest by tag, and take the
    /// sha256 of what arrives as its digest.
    async fn fetch_by_tag(
        &self,
        selected: &Selected,
        tag: &str,
    ) -> Result<(Manifest, Option<String>)> {
        let key = format!("{}/tagged/{}:{tag}", key_prefix(selected), selected.repo);
        let spec = self
            .manifest_spec(selected, tag, key.clone())
            .revalidate_after(self.config.tag_ttl)
            .revalidate_now(true);
        let (status, entry) = self.cache.ensure(spec).await.map_err(|err| {
            DockerError::from(err).or_unknown(|| DockerError::ManifestUnknown(tag.to_owned()))
        })?;
        let manifest = Manifest {
            status,
            digest: entry.digest.clone(),
            entry,
        };
        Ok((manifest, Some(key)))
    }

    /// Serves what the tag named before, because upstream could not say what it names now.
    async fn stale(
        &self,
        selected: &Selected,
        key: &str,
        mut record: TagRecord,
        err: DockerError,
    ) -> Result<Manifest> {
        let Some(entry) = self.cached_body(selected, &record).await? else {
            return Err(err);
        };
        tracing::debug!(key, error = %err, "upstream failed, serving stale tag");
        record.failed_at = Some(self.now());
        self.save_pulled(key, &record).await?;
        self.cache.metrics().count(CacheStatus::Stale);
        Ok(Manifest {
            status: CacheStatus::Stale,
            entry,
            digest: record.digest,
        })
    }

    async fn manifest_response(
        &self,
        manifest: Manifest,
        ask: &Ask<'_>,
        negotiate: bool,
    ) -> Result<Response<Body>> {
        let media_type = self.media_type(&manifest.entry).await?;
        if negotiate && !media::accepts(ask.headers, &media_type) {
            return Err(DockerError::ManifestUnknown(format!(
                "the manifest is a {media_type}, which the request's Accept header does not list"
            )));
        }
        let body = if ask.head {
            body::empty()
        } else {
            let read = self
                .cache
                .blobs()
                .read(&manifest.entry.digest, None)
                .await?;
            body::from_stream(read.stream)
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        set(headers, header::CONTENT_TYPE, &media_type);
        set(
            headers,
            header::CONTENT_LENGTH,
            &manifest.entry.size.to_string(),
        );
        set(headers, DIGEST_HEADER, &manifest.digest.to_string());
        set(headers, header::ETAG, &format!("\"{}\"", manifest.digest));
        set(headers, CACHE_STATUS_HEADER, manifest.status.as_str());
        Ok(response)
    }

    /// The manifest's media type: upstream's `Content-Type`, or the body's own `mediaType`
    /// when upstream sent a generic one.
    async fn media_type(&self, entry: &CacheEntry) -> Result<String> {
        let content_type = entry.content_type.as_deref();
        if !media::is_generic(content_type) {
            return Ok(content_type
                .map(media::essence)
                .unwrap_or_default()
                .to_owned());
        }
        let bytes = mirror_core::read_to_bytes(self.cache.blobs().as_ref(), &entry.digest).await?;
        media::sniff(&bytes)
            .map(str::to_owned)
            .ok_or(DockerError::MalformedUpstream("manifest"))
    }
}
