//! Building responses from what a repository answered.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use mirror_core::http_util::{content_range, parse_range};
use mirror_core::{body, BlobStore, Body, CacheStatus, Digest, Fetched, CACHE_STATUS_HEADER};

use super::{Ask, Result};
use crate::path::{FileKind, MavenPath};

/// What a repository answered for a read.
#[derive(Debug)]
pub(super) enum Answer {
    /// A proxied file from the cache engine, streaming if it is still arriving.
    Cached(Fetched),
    /// A hosted file in the blob store.
    Stored { digest: Digest, size: u64 },
    /// Made for this request (a checksum, a merged listing), with how what it was made
    /// from was answered.
    Made(Bytes, CacheStatus),
}

pub(super) async fn respond(
    blobs: &dyn BlobStore,
    answer: Answer,
    path: &MavenPath,
    ask: &Ask<'_>,
    head: bool,
) -> Result<Response<Body>> {
    let (status, size, digest) = match &answer {
        Answer::Cached(fetched) => (fetched.status(), fetched.meta().size, None),
        Answer::Stored { digest, size } => (CacheStatus::Hit, Some(*size), Some(digest.clone())),
        Answer::Made(bytes, status) => (*status, Some(bytes.len() as u64), None),
    };
    let digest = digest.or_else(|| match &answer {
        Answer::Cached(fetched) => fetched.meta().digest.clone(),
        _ => None,
    });
    let range = match size {
        Some(size) if !head => parse_range(ask.headers, size)
            .map_err(|()| mirror_core::Error::RangeNotSatisfiable { size })?,
        _ => None,
    };
    let (body, range) = if head {
        (body::empty(), None)
    } else {
        open(blobs, answer, range).await?
    };
    let mut response = Response::new(body);
    describe(response.headers_mut(), path, size, range.as_ref());
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let headers = response.headers_mut();
    if let Some(digest) = digest {
        set(headers, header::ETAG, &format!("\"{}\"", digest.hex()));
    }
    set(headers, CACHE_STATUS_HEADER, status.as_str());
    Ok(response)
}

type Range = std::ops::Range<u64>;

async fn open(
    blobs: &dyn BlobStore,
    answer: Answer,
    range: Option<Range>,
) -> Result<(Body, Option<Range>)> {
    match answer {
        Answer::Cached(fetched) => {
            let read = fetched.open(range).await?;
            Ok((body::from_stream(read.stream), read.range))
        }
        Answer::Stored { digest, .. } => {
            let read = blobs.read(&digest, range.clone()).await?;
            Ok((body::from_stream(read.stream), range))
        }
        Answer::Made(bytes, _) => match range {
            Some(range) => {
                let (start, end) = (range.start as usize, range.end as usize);
                Ok((body::full(bytes.slice(start..end)), Some(range)))
            }
            None => Ok((body::full(bytes), None)),
        },
    }
}

/// Length, type and caching headers.
fn describe(headers: &mut HeaderMap, path: &MavenPath, size: Option<u64>, range: Option<&Range>) {
    match (range, size) {
        (Some(range), Some(size)) => {
            set(headers, header::CONTENT_RANGE, &content_range(range, size));
            let length = range.end - range.start;
            set(headers, header::CONTENT_LENGTH, &length.to_string());
        }
        (None, Some(size)) => set(headers, header::CONTENT_LENGTH, &size.to_string()),
        (_, None) => {}
    }
    set(headers, header::CONTENT_TYPE, content_type(path));
    set(headers, header::ACCEPT_RANGES, "bytes");
    let immutable = !path.snapshot && !is_metadata(path);
    let cache_control = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    set(headers, header::CACHE_CONTROL, cache_control);
}

/// True for a listing and the checksums of one, which change with every deploy.
pub(super) fn is_metadata(path: &MavenPath) -> bool {
    match &path.kind {
        FileKind::Metadata => true,
        FileKind::Checksum { base, .. } => base.ends_with(crate::path::METADATA_FILE),
        FileKind::Artifact => false,
    }
}

fn content_type(path: &MavenPath) -> &'static str {
    if let FileKind::Checksum { .. } = path.kind {
        return "text/plain";
    }
    let extension = path.path.rsplit('.').next().unwrap_or_default();
    match extension {
        "jar" | "war" | "ear" => "application/java-archive",
        "pom" | "xml" => "text/xml",
        "asc" => "application/pgp-signature",
        "json" | "module" => "application/json",
        _ => "application/octet-stream",
    }
}

/// A response to a deploy.
pub(super) fn created() -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::CREATED;
    set(response.headers_mut(), CACHE_STATUS_HEADER, "MISS");
    response
}

pub(super) fn set(headers: &mut HeaderMap, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}
