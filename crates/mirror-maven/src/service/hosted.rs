//! Hosted repositories: what `mvn deploy` uploads, file by file, with HTTP PUT.
//!
//! An artifact's body streams into the blob store, hashed on the way (sha1, md5, sha512;
//! the store computes sha256); the record naming it is written only once the blob is
//! committed, so a body cut off mid-way leaves no record and nothing is served. A release
//! is immutable: deploying it again with the same bytes succeeds (a retried deploy), with
//! other bytes it is refused with 409 Conflict, as repository managers refuse redeploys of
//! releases by default. Listings and anything under a `-SNAPSHOT` version may be deployed
//! again. Checksum files are not stored beside a file the mirror has: an uploaded checksum
//! is checked against the stored file (a mismatch is a 400) and the checksums served are
//! computed from the file's own digests, so a mismatched checksum is never served.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt as _, TryStreamExt as _};
use http::{header, HeaderMap, Response};
use http_body_util::BodyExt as _;
use mirror_core::auth::Identity;
use mirror_core::{put_bytes, Body, BoxError, Digest, Expected, Precondition};
use serde::{Deserialize, Serialize};

use super::proxy::{checksum_of, parse_checksum};
use super::respond::{created, Answer};
use super::{parse_listing, Ask, Inner, Result};
use crate::config::VersionPolicy;
use crate::error::MavenError;
use crate::path::{ChecksumKind, FileKind, MavenPath};

/// Largest checksum file a deploy may upload.
const MAX_CHECKSUM_UPLOAD: u64 = 4096;

/// A deployed file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct HostedFile {
    /// sha256, the blob's address.
    digest: Digest,
    size: u64,
    sha1: String,
    md5: String,
    sha512: String,
    uploaded_at: String,
    uploaded_by: String,
}

impl HostedFile {
    fn checksum(&self, kind: ChecksumKind) -> String {
        match kind {
            ChecksumKind::Md5 => self.md5.clone(),
            ChecksumKind::Sha1 => self.sha1.clone(),
            ChecksumKind::Sha256 => self.digest.hex(),
            ChecksumKind::Sha512 => self.sha512.clone(),
        }
    }
}

/// The digests of a body, computed while it streams.
struct Hashes {
    sha1: sha1::Sha1,
    md5: md5::Md5,
    sha512: sha2::Sha512,
}

impl Hashes {
    fn new() -> Self {
        use sha1::Digest as _;
        Hashes {
            sha1: sha1::Sha1::new(),
            md5: md5::Md5::new(),
            sha512: sha2::Sha512::new(),
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        use sha1::Digest as _;
        self.sha1.update(chunk);
        self.md5.update(chunk);
        self.sha512.update(chunk);
    }

    fn finish(self) -> (String, String, String) {
        use sha1::Digest as _;
        (
            hex::encode(self.sha1.finalize()),
            hex::encode(self.md5.finalize()),
            hex::encode(self.sha512.finalize()),
        )
    }
}

impl Inner {
    pub(super) async fn hosted_read(&self, repository: &str, path: &MavenPath) -> Result<Answer> {
        if let FileKind::Checksum { base, kind } = &path.kind {
            if let Some(file) = self.load_hosted(repository, base).await? {
                let checksum = Bytes::from(file.checksum(*kind));
                return Ok(Answer::Made(checksum, mirror_core::CacheStatus::Hit));
            }
        }
        let file = self
            .load_hosted(repository, &path.path)
            .await?
            .ok_or(MavenError::NotFound)?;
        Ok(Answer::Stored {
            digest: file.digest.clone(),
            size: file.size,
        })
    }

    /// The digest of a hosted listing, whose bytes the blob store has; `None` when the
    /// repository has none.
    pub(super) async fn hosted_listing(
        &self,
        repository: &str,
        path: &str,
    ) -> Result<Option<Digest>> {
        let file = self.load_hosted(repository, path).await?;
        Ok(file.map(|file| file.digest.clone()))
    }

    /// The record of a deployed file. A read is reused for [`HOSTED_READ_HOLD`]: a group
    /// asks its hosted members about every file it serves, and they rarely have it. This
    /// process's own deploys update the copy at once.
    ///
    /// [`HOSTED_READ_HOLD`]: super::HOSTED_READ_HOLD
    async fn load_hosted(&self, repository: &str, path: &str) -> Result<Option<Arc<HostedFile>>> {
        let key = hosted_key(repository, path);
        if let Some(file) = self.hosted_reads.get(&key) {
            return Ok(file);
        }
        let file = match self.cache.metadata().get(&key).await? {
            Some(record) => Some(Arc::new(
                serde_json::from_slice(&record.value).map_err(mirror_core::Error::storage)?,
            )),
            None => None,
        };
        self.hosted_reads.insert(&key, file.clone());
        Ok(file)
    }

    /// `PUT` of one file; the caller checked the credential and the write rule.
    pub(super) async fn hosted_deploy<B>(
        &self,
        policy: VersionPolicy,
        path: &MavenPath,
        ask: &Ask<'_>,
        identity: &Identity,
        body: B,
    ) -> Result<Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        check_policy(policy, path)?;
        let limit = self.config.max_upload_bytes;
        if content_length(ask.headers).is_some_and(|length| length > limit) {
            return Err(MavenError::PayloadTooLarge(limit));
        }
        match &path.kind {
            FileKind::Checksum { base, kind } => {
                let text = read_small(body, MAX_CHECKSUM_UPLOAD).await?;
                self.deploy_checksum(path, base, *kind, text, identity)
                    .await?;
            }
            FileKind::Metadata => {
                let text = read_small(body, self.config.max_metadata_bytes).await?;
                parse_listing(text.clone()).await?.map_err(|reason| {
                    MavenError::InvalidUpload(format!("{}: {reason}", path.path))
                })?;
                let file = self.store_small(text, identity).await?;
                self.save_hosted(path, file).await?;
            }
            FileKind::Artifact => {
                let file = self.store_stream(body, identity).await?;
                self.save_hosted(path, file).await?;
            }
        }
        tracing::info!(
            repository = path.repository,
            path = path.path,
            user = identity.user,
            "deployed"
        );
        Ok(created())
    }

    /// A checksum is checked against the file it describes when that file is here, and
    /// kept only when it is not (to serve as uploaded).
    async fn deploy_checksum(
        &self,
        path: &MavenPath,
        base: &str,
        kind: ChecksumKind,
        text: Bytes,
        identity: &Identity,
    ) -> Result<()> {
        let uploaded = parse_checksum(&text, kind).ok_or_else(|| {
            MavenError::InvalidUpload(format!(
                "{} is not a {} checksum",
                path.path,
                kind.extension()
            ))
        })?;
        match self.load_hosted(&path.repository, base).await? {
            Some(file) if file.checksum(kind) == uploaded => Ok(()),
            Some(file) => Err(MavenError::ChecksumMismatch {
                path: path.path.clone(),
                uploaded,
                actual: file.checksum(kind),
            }),
            None => {
                let file = self.store_small(Bytes::from(uploaded), identity).await?;
                self.save_hosted(path, file).await
            }
        }
    }

    /// Streams an upload into the blob store, hashing it on the way.
    async fn store_stream<B>(&self, body: B, identity: &Identity) -> Result<HostedFile>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = self.config.max_upload_bytes;
        let expected = Expected {
            max_size: Some(limit),
            ..Expected::none()
        };
        let mut writer = self.cache.blobs().writer(expected).await?;
        let mut hashes = Hashes::new();
        let mut stream = std::pin::pin!(body.into_data_stream().map_err(Into::<BoxError>::into));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(MavenError::UploadBody)?;
            hashes.update(&chunk);
            writer
                .write(chunk)
                .await
                .map_err(|err| too_large(err, limit))?;
        }
        let info = writer.commit().await.map_err(|err| too_large(err, limit))?;
        let (sha1, md5, sha512) = hashes.finish();
        Ok(self.record(info.digest, info.size, (sha1, md5, sha512), identity))
    }

    async fn store_small(&self, bytes: Bytes, identity: &Identity) -> Result<HostedFile> {
        let hashes = [ChecksumKind::Sha1, ChecksumKind::Md5, ChecksumKind::Sha512]
            .map(|kind| String::from_utf8_lossy(&checksum_of(&bytes, kind)).into_owned());
        let [sha1, md5, sha512] = hashes;
        let info = put_bytes(self.cache.blobs().as_ref(), bytes, Expected::none()).await?;
        Ok(self.record(info.digest, info.size, (sha1, md5, sha512), identity))
    }

    fn record(
        &self,
        digest: Digest,
        size: u64,
        (sha1, md5, sha512): (String, String, String),
        identity: &Identity,
    ) -> HostedFile {
        HostedFile {
            digest,
            size,
            sha1,
            md5,
            sha512,
            uploaded_at: humantime::format_rfc3339_millis(self.cache.clock().now()).to_string(),
            uploaded_by: identity.user.clone(),
        }
    }

    /// Writes the record naming a stored file. A release that exists already may only be
    /// "replaced" by the same bytes.
    async fn save_hosted(&self, path: &MavenPath, file: HostedFile) -> Result<()> {
        let key = hosted_key(&path.repository, &path.path);
        let value = serde_json::to_vec(&file).map_err(mirror_core::Error::storage)?;
        let mutable = path.snapshot || !matches!(path.kind, FileKind::Artifact);
        let precondition = if mutable {
            Precondition::None
        } else {
            Precondition::Absent
        };
        let metadata = self.cache.metadata();
        match metadata.put(&key, value.into(), precondition).await {
            Ok(_) => {
                self.hosted_reads.insert(&key, Some(Arc::new(file)));
                Ok(())
            }
            Err(mirror_core::Error::Conflict { .. }) => {
                // The store has a record this process may not have seen yet.
                self.hosted_reads.remove(&key);
                match self.load_hosted(&path.repository, &path.path).await? {
                    Some(existing) if existing.digest == file.digest => Ok(()),
                    Some(_) => Err(MavenError::ReleaseExists(path.path.clone())),
                    None => Err(MavenError::Contended(path.path.clone())),
                }
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Refuses a version the repository does not take.
fn check_policy(policy: VersionPolicy, path: &MavenPath) -> Result<()> {
    // A listing above the versions (`group/artifact/maven-metadata.xml`) belongs to both.
    let versioned =
        path.version().is_some() && !matches!(path.kind, FileKind::Metadata) || path.snapshot;
    match policy {
        VersionPolicy::Release if path.snapshot => Err(MavenError::VersionPolicy(format!(
            "{} is a SNAPSHOT; deploy it to a snapshot repository",
            path.path
        ))),
        VersionPolicy::Snapshot if versioned && !path.snapshot => {
            Err(MavenError::VersionPolicy(format!(
                "{} is a release; deploy it to a release repository",
                path.path
            )))
        }
        VersionPolicy::Release | VersionPolicy::Snapshot | VersionPolicy::Mixed => Ok(()),
    }
}

/// Reads a small body whole, refusing it past `limit`.
async fn read_small<B>(body: B, limit: u64) -> Result<Bytes>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut buf = BytesMut::new();
    let mut stream = std::pin::pin!(body.into_data_stream().map_err(Into::<BoxError>::into));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(MavenError::UploadBody)?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(MavenError::PayloadTooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn too_large(err: mirror_core::Error, limit: u64) -> MavenError {
    match err {
        mirror_core::Error::TooLarge { .. } => MavenError::PayloadTooLarge(limit),
        other => other.into(),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn hosted_key(repository: &str, path: &str) -> String {
    format!("maven/hosted/{repository}/{path}")
}
