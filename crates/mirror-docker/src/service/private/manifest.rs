//! Manifests of private repositories: pushed by tag or digest, checked before they are
//! stored, and listed as referrers of their `subject`.
//!
//! A manifest is accepted only when every blob it references (config and layers) and, for
//! an index, every manifest it lists is already in the same repository: a client that
//! pushes out of order, or a layer that never finished uploading, gets
//! `MANIFEST_BLOB_UNKNOWN` instead of a tag that cannot be pulled. The `subject` is the
//! exception the specification makes: a referrer may arrive before what it refers to.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{header, HeaderMap, Response};
use mirror_core::digest::digests_of;
use mirror_core::{body, put_bytes, Algorithm, Body, Digest, Expected, Precondition};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{accepted, created, key, ManifestLink, PrivateRequest, TagLink};
use crate::error::DockerError;
use crate::media;
use crate::path::{parse_digest, Reference, RepoName};
use crate::service::manifest::DIGEST_HEADER;
use crate::service::{set, Ask, Inner, RequestBody, Result};

/// The response header naming the subject of a pushed referrer.
const SUBJECT_HEADER: &str = "oci-subject";
/// The response header naming the tags a push by digest set with `?tag=`.
const TAG_HEADER: &str = "oci-tag";
/// Most `?tag=` parameters one push may set; the specification asks for at least 10.
const MAX_TAGS_PER_PUSH: usize = 100;

/// The parts of a manifest or index the registry looks at.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parsed {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    /// Foreign layers live elsewhere and are not pushed.
    #[serde(default)]
    urls: Option<Vec<String>>,
}

impl Descriptor {
    fn digest(&self) -> Result<Digest> {
        parse_digest(&self.digest).map_err(|_| {
            DockerError::ManifestInvalid(format!("invalid descriptor digest {:?}", self.digest))
        })
    }
}

impl Inner {
    pub(super) async fn put_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        request: PrivateRequest<'_>,
    ) -> Result<Response<Body>> {
        let headers = &request.parts.headers;
        let tags = tags_to_set(reference, &request.ask.tags)?;
        let bytes = read_manifest(headers, request.body, self.config.max_manifest_bytes).await?;
        let digests = digests_of(&bytes, [Algorithm::Sha512]);
        let digest = match reference {
            Reference::Digest(digest) if digests.get(digest.algorithm()) != Some(digest) => {
                return Err(DockerError::DigestInvalid(format!(
                    "the manifest hashes to {}, not {digest}",
                    digests.sha256
                )));
            }
            Reference::Digest(digest) => digest.clone(),
            Reference::Tag(_) => digests.sha256.clone(),
        };
        let manifest: Parsed = serde_json::from_slice(&bytes)
            .map_err(|err| DockerError::ManifestInvalid(format!("manifest is not valid: {err}")))?;
        let media_type = media_type_of(headers, &manifest, &bytes)?;
        self.check_references(name, &manifest).await?;
        let subject = manifest
            .subject
            .as_ref()
            .map(Descriptor::digest)
            .transpose()?;

        let size = bytes.len() as u64;
        let info = put_bytes(self.cache.blobs().as_ref(), bytes, Expected::none()).await?;
        let link = ManifestLink {
            stored: info.digest,
            size,
            media_type: media_type.clone(),
            subject: subject.clone(),
        };
        self.save_record(&key(name, "manifest", &digest.to_string()), &link)
            .await?;
        for tag in &tags {
            let tag_link = TagLink {
                digest: digest.clone(),
            };
            self.save_record(&key(name, "tag", tag), &tag_link).await?;
        }
        if let Some(subject) = &subject {
            let descriptor = referrer_descriptor(&manifest, &media_type, &digest, size);
            let key = key(name, "referrer", &format!("{subject}/{digest}"));
            self.save_record(&key, &descriptor).await?;
        }
        self.register(name).await?;
        tracing::debug!(repository = %name, %reference, %digest, "manifest pushed");

        let mut response = created(&format!("/v2/{name}/manifests/{digest}"), &digest);
        if let Some(subject) = subject {
            set(response.headers_mut(), SUBJECT_HEADER, &subject.to_string());
        }
        if matches!(reference, Reference::Digest(_)) && !tags.is_empty() {
            set(response.headers_mut(), TAG_HEADER, &tags.join(", "));
        }
        Ok(response)
    }

    /// Every blob and manifest a manifest names (its subject aside) must be in `name`.
    async fn check_references(&self, name: &RepoName, manifest: &Parsed) -> Result<()> {
        let blobs = manifest
            .config
            .iter()
            .chain(manifest.layers.iter().flatten())
            .filter(|layer| layer.urls.as_ref().is_none_or(Vec::is_empty));
        for descriptor in blobs {
            let digest = descriptor.digest()?;
            if self.blob_link(name, &digest).await?.is_none() {
                return Err(DockerError::ManifestBlobUnknown(digest));
            }
        }
        for descriptor in manifest.manifests.iter().flatten() {
            let digest = descriptor.digest()?;
            if self.manifest_link(name, &digest).await?.is_none() {
                return Err(DockerError::ManifestBlobUnknown(digest));
            }
        }
        Ok(())
    }

    async fn manifest_link(
        &self,
        name: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestLink>> {
        self.load_record(&key(name, "manifest", &digest.to_string()))
            .await
    }

    /// The digest a reference names in this repository.
    async fn resolve(&self, name: &RepoName, reference: &Reference) -> Result<Digest> {
        match reference {
            Reference::Digest(digest) => Ok(digest.clone()),
            Reference::Tag(tag) => self
                .load_record::<TagLink>(&key(name, "tag", tag))
                .await?
                .map(|link| link.digest)
                .ok_or_else(|| DockerError::ManifestUnknown(format!("{name}:{tag}"))),
        }
    }

    pub(super) async fn get_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let digest = self.resolve(name, reference).await?;
        let unknown = || DockerError::ManifestUnknown(format!("{name}@{digest}"));
        let link = self
            .manifest_link(name, &digest)
            .await?
            .ok_or_else(unknown)?;
        let body = if ask.head {
            body::empty()
        } else {
            let read = self.cache.blobs().read(&link.stored, None).await;
            let read = read.map_err(|err| DockerError::from(err).or_unknown(unknown))?;
            body::from_stream(read.stream)
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        set(headers, header::CONTENT_TYPE, &link.media_type);
        set(headers, header::CONTENT_LENGTH, &link.size.to_string());
        set(headers, DIGEST_HEADER, &digest.to_string());
        set(headers, header::ETAG, &format!("\"{digest}\""));
        Ok(response)
    }

    /// Deletes a tag, or a manifest with the tags naming it and its referrer entry.
    pub(super) async fn delete_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
    ) -> Result<Response<Body>> {
        self.deletes_allowed()?;
        let metadata = self.cache.metadata();
        let digest = match reference {
            Reference::Tag(tag) => {
                self.resolve(name, reference).await?;
                metadata
                    .delete(&key(name, "tag", tag), Precondition::None)
                    .await?;
                tracing::debug!(repository = %name, tag, "tag deleted");
                return Ok(accepted());
            }
            Reference::Digest(digest) => digest,
        };
        let unknown = || DockerError::ManifestUnknown(format!("{name}@{digest}"));
        let link = self
            .manifest_link(name, digest)
            .await?
            .ok_or_else(unknown)?;
        let tag_prefix = key(name, "tag", "");
        for (tag_key, record) in metadata.list(&tag_prefix, None, usize::MAX).await? {
            let tag: Option<TagLink> = serde_json::from_slice(&record.value).ok();
            if tag.is_some_and(|tag| tag.digest == *digest) {
                metadata.delete(&tag_key, Precondition::None).await?;
            }
        }
        if let Some(subject) = &link.subject {
            let referrer = key(name, "referrer", &format!("{subject}/{digest}"));
            metadata.delete(&referrer, Precondition::None).await?;
        }
        metadata
            .delete(
                &key(name, "manifest", &digest.to_string()),
                Precondition::None,
            )
            .await?;
        tracing::debug!(repository = %name, %digest, "manifest deleted");
        Ok(accepted())
    }

    pub(super) fn deletes_allowed(&self) -> Result<()> {
        if self.config.allow_delete {
            Ok(())
        } else {
            Err(DockerError::Unsupported(
                "deletes are disabled on this registry (docker.allow_delete = false)",
            ))
        }
    }
}

/// The tags a push sets: the one in the path, or those of `?tag=` on a push by digest.
fn tags_to_set(reference: &Reference, params: &[String]) -> Result<Vec<String>> {
    if let Reference::Tag(tag) = reference {
        return Ok(vec![tag.clone()]);
    }
    if params.len() > MAX_TAGS_PER_PUSH {
        return Err(DockerError::ManifestInvalid(format!(
            "at most {MAX_TAGS_PER_PUSH} tag parameters per push"
        )));
    }
    params
        .iter()
        .map(|param| match Reference::parse(param)? {
            Reference::Tag(tag) => Ok(tag),
            Reference::Digest(_) => Err(DockerError::TagInvalid(param.clone())),
        })
        .collect()
}

/// Reads a pushed manifest, refusing one over `limit` bytes before reading it when its
/// length is declared, and as soon as it grows past the limit otherwise.
async fn read_manifest(headers: &HeaderMap, mut body: RequestBody, limit: u64) -> Result<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(DockerError::ManifestTooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| {
            DockerError::ManifestInvalid(format!("the manifest body broke off: {err}"))
        })?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(DockerError::ManifestTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The manifest's media type: the `Content-Type` it was pushed with, which must agree with
/// the `mediaType` in its body when both are given.
fn media_type_of(headers: &HeaderMap, manifest: &Parsed, bytes: &[u8]) -> Result<String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let declared = (!media::is_generic(content_type))
        .then(|| content_type.map(media::essence))
        .flatten();
    match (declared, manifest.media_type.as_deref()) {
        (Some(declared), Some(inside)) if declared != inside => Err(DockerError::ManifestInvalid(
            format!("the Content-Type {declared} differs from the manifest's mediaType {inside}"),
        )),
        (Some(declared), _) => Ok(declared.to_owned()),
        (None, Some(inside)) => Ok(inside.to_owned()),
        (None, None) => media::sniff(bytes).map(str::to_owned).ok_or_else(|| {
            DockerError::ManifestInvalid("the manifest does not say what type it is".to_owned())
        }),
    }
}

/// The entry for a manifest in its subject's referrers list.
fn referrer_descriptor(manifest: &Parsed, media_type: &str, digest: &Digest, size: u64) -> Value {
    let artifact_type = manifest.artifact_type.clone().or_else(|| {
        manifest
            .config
            .as_ref()
            .and_then(|config| config.media_type.clone())
    });
    let mut descriptor = json!({
        "mediaType": media_type,
        "digest": digest.to_string(),
        "size": size,
    });
    if let Some(artifact_type) = artifact_type {
        descriptor["artifactType"] = Value::String(artifact_type);
    }
    if let Some(annotations) = &manifest.annotations {
        descriptor["annotations"] = Value::Object(annotations.clone());
    }
    descriptor
}
