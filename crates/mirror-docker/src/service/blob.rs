//! Blobs: immutable, verified against their digest while they stream to the first client.

use http::{header, Response, StatusCode};
use mirror_core::http_util::{content_range, parse_range};
use mirror_core::{
    body, Body, Digest, Expected, FetchSpec, Fetched, UpstreamRequest, CACHE_STATUS_HEADER,
};

use super::manifest::DIGEST_HEADER;
use super::{key_prefix, set, Ask, Inner, Result};
use crate::error::DockerError;
use crate::select::Selected;

impl Inner {
    pub(super) async fn blob(
        &self,
        selected: &Selected,
        digest: &Digest,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let unknown = || DockerError::BlobUnknown(digest.clone());
        let key = format!("{}/blob/{digest}", key_prefix(selected));
        if let Some(hit) = self.cache.get_cached(&key).await? {
            return blob_response(hit, digest, ask).await;
        }
        if ask.head {
            return self.head_upstream_blob(selected, digest).await;
        }
        let target = format!("v2/{}/blobs/{digest}", selected.repo);
        let spec = FetchSpec::new(key, selected.upstream.clone(), UpstreamRequest::get(target))
            .expect(Expected::digest(digest.clone()));
        let fetched = self
            .cache
            .get(spec)
            .await
            .map_err(|err| DockerError::from(err).or_unknown(unknown))?;
        blob_response(fetched, digest, ask).await
    }

    /// Answers a HEAD of an uncached blob from upstream's HEAD, without downloading it.
    async fn head_upstream_blob(
        &self,
        selected: &Selected,
        digest: &Digest,
    ) -> Result<Response<Body>> {
        let target = format!("v2/{}/blobs/{digest}", selected.repo);
        let response = selected
            .upstream
            .send(UpstreamRequest::head(target))
            .await?;
        match response.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(DockerError::BlobUnknown(digest.clone())),
            status => return Err(mirror_core::Error::UpstreamStatus { status }.into()),
        }
        let mut reply = Response::new(body::empty());
        let headers = reply.headers_mut();
        if let Some(length) = response.headers.get(header::CONTENT_LENGTH) {
            headers.insert(header::CONTENT_LENGTH, length.clone());
        }
        set_blob_headers(headers, digest);
        set(headers, CACHE_STATUS_HEADER, "MISS");
        Ok(reply)
    }
}

async fn blob_response(fetched: Fetched, digest: &Digest, ask: &Ask<'_>) -> Result<Response<Body>> {
    let status = fetched.status();
    let size = fetched.meta().size;
    let range = match size {
        Some(size) => parse_range(ask.headers, size)
            .map_err(|()| mirror_core::Error::RangeNotSatisfiable { size })?,
        None => None,
    };
    let read = if ask.head {
        None
    } else {
        Some(fetched.open(range).await?)
    };
    let served = read.as_ref().and_then(|read| read.range.clone());
    let mut response =
        Response::new(read.map_or_else(body::empty, |read| body::from_stream(read.stream)));
    let headers = response.headers_mut();
    match (served, size) {
        (Some(range), Some(size)) => {
            set(headers, header::CONTENT_RANGE, &content_range(&range, size));
            set(
                headers,
                header::CONTENT_LENGTH,
                &(range.end - range.start).to_string(),
            );
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        (_, Some(size)) => set(headers, header::CONTENT_LENGTH, &size.to_string()),
        (_, None) => {}
    }
    let headers = response.headers_mut();
    set_blob_headers(headers, digest);
    set(headers, CACHE_STATUS_HEADER, status.as_str());
    Ok(response)
}

pub(super) fn set_blob_headers(headers: &mut http::HeaderMap, digest: &Digest) {
    set(headers, header::CONTENT_TYPE, "application/octet-stream");
    set(headers, DIGEST_HEADER, &digest.to_string());
    set(headers, header::ETAG, &format!("\"{digest}\""));
    set(headers, header::ACCEPT_RANGES, "bytes");
    set(
        headers,
        header::CACHE_CONTROL,
        "public, max-age=31536000, immutable",
    );
}
