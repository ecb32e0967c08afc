//! Building responses: pages with their sentinel replaced, files with ranges, redirects.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use mirror_core::http_util::{content_range, if_none_match, parse_range};
use mirror_core::{body, BlobStore, Body, CacheStatus, Digest, Fetched, CACHE_STATUS_HEADER};

use super::Result;
use crate::negotiate::Format;
use mirror_core::body::{replaced_len, RenderedDocs};

use crate::render::BASE_SENTINEL;

/// A stored page and how to serve it.
pub(super) struct PageAnswer<'a> {
    pub(super) digest: &'a Digest,
    pub(super) size: u64,
    pub(super) sentinels: u64,
    /// The base URL, escaped for the page's format.
    pub(super) base: String,
    pub(super) format: Format,
    pub(super) status: CacheStatus,
    pub(super) max_age: u64,
}

impl PageAnswer<'_> {
    /// Depends on the stored page, the base substituted into it, and the media type.
    fn etag(&self) -> String {
        let base = mirror_core::digest::sha256_of(self.base.as_bytes()).hex();
        let kind = match self.format {
            Format::Html => 'h',
            Format::HtmlV1 => 'v',
            Format::JsonV1 => 'j',
        };
        format!("\"{}-{}{kind}\"", &self.digest.hex()[..32], &base[..8])
    }
}

pub(super) async fn page_response(
    blobs: &dyn BlobStore,
    rendered: &RenderedDocs,
    page: &PageAnswer<'_>,
    request: &HeaderMap,
    head: bool,
) -> Result<Response<Body>> {
    let etag = page.etag();
    let mut response = if if_none_match(request, &etag) {
        status_only(StatusCode::NOT_MODIFIED)
    } else {
        let length = replaced_len(page.size, page.sentinels, BASE_SENTINEL, page.base.len());
        let mut response = if head {
            status_only(StatusCode::OK)
        } else {
            let base = Bytes::from(page.base.clone());
            let body = rendered.body(blobs, page.digest, page.size, base).await?;
            Response::new(body)
        };
        set(
            response.headers_mut(),
            header::CONTENT_LENGTH,
            &length.to_string(),
        );
        response
    };
    let headers = response.headers_mut();
    set(headers, header::CONTENT_TYPE, page.format.content_type());
    set(headers, header::ETAG, &etag);
    let cache_control = format!("public, max-age={}", page.max_age);
    set(headers, header::CACHE_CONTROL, &cache_control);
    set(headers, CACHE_STATUS_HEADER, page.status.as_str());
    Ok(response)
}

/// An immutable file (a distribution or its metadata), with byte ranges.
pub(super) async fn file_response(
    fetched: Fetched,
    request: &HeaderMap,
    head: bool,
    content_type: &str,
) -> Result<Response<Body>> {
    let status = fetched.status();
    let meta = fetched.meta().clone();
    let range = match meta.size {
        Some(size) => parse_range(request, size)
            .map_err(|()| mirror_core::Error::RangeNotSatisfiable { size })?,
        None => None,
    };
    let read = if head {
        None
    } else {
        Some(fetched.open(range).await?)
    };
    let served_range = read.as_ref().and_then(|r| r.range.clone());
    let mut response =
        Response::new(read.map_or_else(body::empty, |r| body::from_stream(r.stream)));
    if served_range.is_some() && meta.size.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let headers = response.headers_mut();
    match (served_range, meta.size) {
        (Some(range), Some(size)) => {
            set(headers, header::CONTENT_RANGE, &content_range(&range, size));
            set(
                headers,
                header::CONTENT_LENGTH,
                &(range.end - range.start).to_string(),
            );
        }
        (_, Some(size)) => set(headers, header::CONTENT_LENGTH, &size.to_string()),
        (_, None) => {}
    }
    if let Some(digest) = &meta.digest {
        set(headers, header::ETAG, &format!("\"{}\"", digest.hex()));
    }
    set(headers, header::CONTENT_TYPE, content_type);
    set(headers, header::ACCEPT_RANGES, "bytes");
    set(
        headers,
        header::CACHE_CONTROL,
        "public, max-age=31536000, immutable",
    );
    set(headers, CACHE_STATUS_HEADER, status.as_str());
    Ok(response)
}

/// A hosted project's page, rendered for this request. Hosted pages change with every
/// upload and may be access-controlled, so clients revalidate them and shared caches keep
/// none.
pub(super) fn hosted_page_response(
    text: String,
    format: Format,
    request: &HeaderMap,
    head: bool,
) -> Response<Body> {
    let etag = format!(
        "\"{}\"",
        &mirror_core::digest::sha256_of(text.as_bytes()).hex()[..32]
    );
    let length = text.len();
    let not_modified = if_none_match(request, &etag);
    let mut response = if not_modified {
        status_only(StatusCode::NOT_MODIFIED)
    } else if head {
        status_only(StatusCode::OK)
    } else {
        Response::new(body::full(text))
    };
    let headers = response.headers_mut();
    if !not_modified {
        set(headers, header::CONTENT_LENGTH, &length.to_string());
    }
    set(headers, header::CONTENT_TYPE, format.content_type());
    set(headers, header::ETAG, &etag);
    set(headers, header::CACHE_CONTROL, "private, no-cache");
    set(headers, CACHE_STATUS_HEADER, CacheStatus::Hit.as_str());
    response
}

/// A hosted file (a distribution or its metadata) straight from the blob store, with byte
/// ranges; immutable, but kept out of shared caches like the page that lists it.
pub(super) async fn blob_response(
    blobs: &dyn BlobStore,
    blob: (&Digest, u64),
    request: &HeaderMap,
    head: bool,
    content_type: &str,
) -> Result<Response<Body>> {
    let (digest, size) = blob;
    // Like the mirror's files, a HEAD describes the whole file whatever range it names.
    let range = if head {
        None
    } else {
        parse_range(request, size).map_err(|()| mirror_core::Error::RangeNotSatisfiable { size })?
    };
    let mut response = if head {
        status_only(StatusCode::OK)
    } else {
        let read = blobs.read(digest, range.clone()).await?;
        Response::new(body::from_stream(read.stream))
    };
    let headers = response.headers_mut();
    let length = match &range {
        Some(range) => {
            set(headers, header::CONTENT_RANGE, &content_range(range, size));
            range.end - range.start
        }
        None => size,
    };
    set(headers, header::CONTENT_LENGTH, &length.to_string());
    set(headers, header::CONTENT_TYPE, content_type);
    set(headers, header::ACCEPT_RANGES, "bytes");
    set(headers, header::ETAG, &format!("\"{}\"", digest.hex()));
    set(
        headers,
        header::CACHE_CONTROL,
        "private, max-age=31536000, immutable",
    );
    set(headers, CACHE_STATUS_HEADER, CacheStatus::Hit.as_str());
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

/// A permanent redirect to the canonical URL of what was asked for.
pub(super) fn redirect(location: &str) -> Response<Body> {
    let mut response = status_only(StatusCode::MOVED_PERMANENTLY);
    let headers = response.headers_mut();
    set(headers, header::LOCATION, location);
    // No cached content answered; like errors, a redirect counts as a miss.
    set(headers, CACHE_STATUS_HEADER, CacheStatus::Miss.as_str());
    response
}

pub(super) fn set(headers: &mut HeaderMap, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    response
}
