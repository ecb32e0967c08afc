//! Tag listings and the referrers API.
//!
//! Upstream's tag list is fetched whole (following upstream's `Link` pages), cached for the
//! tag TTL, and paginated here with `n` and `last`. Paginating locally keeps every page
//! consistent with one snapshot of the list and lets a cached list answer any page; the
//! price is one full listing upstream per TTL, which is what clients that list tags ask
//! for anyway.

use http::{header, HeaderMap, Response, StatusCode};
use mirror_core::{
    put_bytes, read_to_bytes, Body, CacheStatus, Digest, Expected, FetchSpec, UpstreamRequest,
    CACHE_STATUS_HEADER,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{json_response, key_prefix, read_limited, set, Ask, Inner, Result, STALE_GRACE_MS};
use crate::error::DockerError;
use crate::media::OCI_INDEX;
use crate::path::RepoName;
use crate::select::Selected;

/// Upstream pages followed at most for one tag list.
const MAX_PAGES: usize = 1000;
/// Largest page of a tag list read from upstream.
const MAX_PAGE_BYTES: u64 = 16 << 20;

/// A cached tag list: the sorted tags as a JSON array in the blob store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TagsRecord {
    list: Digest,
    fetched_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_at: Option<u64>,
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Inner {
    pub(super) async fn tags(
        &self,
        selected: &Selected,
        client_name: &RepoName,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let n = match ask.n.as_deref() {
            Some(text) => Some(
                text.parse::<usize>()
                    .map_err(|_| DockerError::PaginationInvalid(text.chars().take(20).collect()))?,
            ),
            None => None,
        };
        let key = format!("{}/tags/{}", key_prefix(selected), selected.repo);
        let (status, tags) = {
            let _revalidating = self.locks.lock(&key).await;
            self.tag_list(selected, &key, ask).await?
        };
        // Tag lists are kept by this service, not by the engine's fetches.
        self.cache.metrics().count(status);

        let (page, more) = paginate(&tags, n, ask.last.as_deref());
        let doc = json!({ "name": client_name.as_str(), "tags": page });
        let mut response = json_response(StatusCode::OK, doc.to_string());
        let headers = response.headers_mut();
        if let (true, Some(n), Some(last)) = (more, n, page.last()) {
            let link = next_page_link(client_name, n, last, ask.ns.as_deref());
            set(headers, header::LINK, &link);
        }
        set(headers, CACHE_STATUS_HEADER, status.as_str());
        Ok(response)
    }

    async fn tag_list(
        &self,
        selected: &Selected,
        key: &str,
        ask: &Ask<'_>,
    ) -> Result<(CacheStatus, Vec<String>)> {
        let record: Option<TagsRecord> = self.load_pulled(key).await?;
        if let Some(record) = record.as_ref().filter(|_| !ask.revalidate) {
            let status = if self.is_fresh(record.fetched_at, self.tag_ttl_ms()) {
                Some(CacheStatus::Hit)
            } else if record
                .failed_at
                .is_some_and(|at| self.is_fresh(at, STALE_GRACE_MS))
            {
                Some(CacheStatus::Stale)
            } else {
                None
            };
            if let Some(status) = status {
                if let Some(tags) = self.stored_tags(record).await? {
                    return Ok((status, tags));
                }
            }
        }
        match self.fetch_tags(selected).await {
            Ok(tags) => {
                let list = serde_json::to_vec(&tags).map_err(mirror_core::Error::storage)?;
                let info =
                    put_bytes(self.cache.blobs().as_ref(), list.into(), Expected::none()).await?;
                let status = match &record {
                    Some(old) if old.list == info.digest => CacheStatus::Revalidated,
                    _ => CacheStatus::Miss,
                };
                let fresh = TagsRecord {
                    list: info.digest,
                    fetched_at: self.now(),
                    failed_at: None,
                };
                self.save_pulled(key, &fresh).await?;
                Ok((status, tags))
            }
            Err(err) if err.allows_stale() => {
                let Some(mut record) = record else {
                    return Err(err);
                };
                let Some(tags) = self.stored_tags(&record).await? else {
                    return Err(err);
                };
                tracing::debug!(key, error = %err, "upstream failed, serving stale tag list");
                record.failed_at = Some(self.now());
                self.save_pulled(key, &record).await?;
                Ok((CacheStatus::Stale, tags))
            }
            Err(err) => Err(err),
        }
    }

    async fn stored_tags(&self, record: &TagsRecord) -> Result<Option<Vec<String>>> {
        let bytes = match read_to_bytes(self.cache.blobs().as_ref(), &record.list).await {
            Ok(bytes) => bytes,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// The whole list from upstream, following its `Link` pages, sorted.
    async fn fetch_tags(&self, selected: &Selected) -> Result<Vec<String>> {
        let mut target = format!("v2/{}/tags/list", selected.repo);
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            let response = selected
                .upstream
                .send(UpstreamRequest::get(&target))
                .await?;
            match response.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(DockerError::NameUnknown(format!(
                        "repository {} is not known upstream",
                        selected.repo
                    )))
                }
                status => return Err(mirror_core::Error::UpstreamStatus { status }.into()),
            }
            let next = next_link(&response.headers);
            let body = read_limited(response.body, MAX_PAGE_BYTES).await?;
            let page: TagsPage = serde_json::from_slice(&body)
                .map_err(|_| DockerError::MalformedUpstream("tag list"))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) => target = next,
                None => break,
            }
        }
        tags.sort_unstable();
        tags.dedup();
        Ok(tags)
    }

    pub(super) async fn referrers(
        &self,
        selected: &Selected,
        digest: &Digest,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let key = format!(
            "{}/referrers/{}@{digest}",
            key_prefix(selected),
            selected.repo
        );
        let target = format!("v2/{}/referrers/{digest}", selected.repo);
        let mut request = UpstreamRequest::get(target);
        request
            .headers
            .insert(header::ACCEPT, http::HeaderValue::from_static(OCI_INDEX));
        let expected = Expected {
            max_size: Some(self.config.max_manifest_bytes),
            ..Expected::none()
        };
        let spec = FetchSpec::new(key, selected.upstream.clone(), request)
            .revalidate_after(self.config.tag_ttl)
            .revalidate_now(ask.revalidate)
            .expect(expected);
        let (status, mut index) = match self.cache.ensure(spec).await {
            Ok((status, entry)) => {
                let bytes = read_to_bytes(self.cache.blobs().as_ref(), &entry.digest).await?;
                (status, parse_index(&bytes)?)
            }
            // The specification's fallback: a registry without the API answers 404, and a
            // mirror of it has no referrers to report.
            Err(err) if err.is_not_found() => (CacheStatus::Miss, empty_index()),
            Err(err) => return Err(err.into()),
        };
        let filtered = ask
            .artifact_type
            .as_deref()
            .map(|wanted| filter_artifact_type(&mut index, wanted));
        let mut response = json_response(StatusCode::OK, index.to_string());
        let headers = response.headers_mut();
        set(headers, header::CONTENT_TYPE, OCI_INDEX);
        if filtered.is_some() {
            set(headers, "oci-filters-applied", "artifactType");
        }
        set(headers, CACHE_STATUS_HEADER, status.as_str());
        Ok(response)
    }
}

/// Tags after `last`, at most `n` of them, and whether more follow.
pub(super) fn paginate<'a>(
    tags: &'a [String],
    n: Option<usize>,
    last: Option<&str>,
) -> (&'a [String], bool) {
    let start = last.map_or(0, |last| tags.partition_point(|tag| tag.as_str() <= last));
    let rest = tags.get(start..).unwrap_or_default();
    match n {
        Some(n) if n < rest.len() => (rest.get(..n).unwrap_or_default(), n > 0),
        _ => (rest, false),
    }
}

fn next_page_link(name: &RepoName, n: usize, last: &str, ns: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("n", &n.to_string());
    query.append_pair("last", last);
    if let Some(ns) = ns {
        query.append_pair("ns", ns);
    }
    format!("</v2/{name}/tags/list?{}>; rel=\"next\"", query.finish())
}

/// The target of upstream's `Link: <...>; rel="next"`, relative to its base or absolute.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
            let next = params.split(';').any(|p| {
                matches!(
                    p.trim().replace(' ', "").as_str(),
                    "rel=\"next\"" | "rel=next"
                )
            });
            if !next {
                return None;
            }
            if target.starts_with("http://") || target.starts_with("https://") {
                Some(target.to_owned())
            } else {
                target.strip_prefix('/').map(str::to_owned)
            }
        })
}

fn empty_index() -> Value {
    json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] })
}

fn parse_index(bytes: &[u8]) -> Result<Value> {
    let index: Value = serde_json::from_slice(bytes)
        .map_err(|_| DockerError::MalformedUpstream("referrers index"))?;
    if index.get("manifests").is_some_and(Value::is_array) {
        Ok(index)
    } else {
        Err(DockerError::MalformedUpstream("referrers index"))
    }
}

fn filter_artifact_type(index: &mut Value, wanted: &str) {
    if let Some(Value::Array(manifests)) = index.get_mut("manifests") {
        manifests.retain(|m| m.get("artifactType").and_then(Value::as_str) == Some(wanted));
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn paginates_after_last() {
        let all = tags(&["a", "b", "c", "d"]);
        assert_eq!(paginate(&all, None, None), (&all[..], false));
        assert_eq!(paginate(&all, Some(2), None), (&all[..2], true));
        assert_eq!(paginate(&all, Some(2), Some("b")), (&all[2..], false));
        assert_eq!(paginate(&all, Some(5), Some("bb")), (&all[2..], false));
        assert_eq!(paginate(&all, None, Some("z")), (&all[4..], false));
        assert_eq!(paginate(&all, Some(0), None), (&all[..0], false));
    }

    #[test]
    fn reads_upstream_links() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            HeaderValue::from_static("</v2/a/tags/list?n=2&last=b>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("v2/a/tags/list?n=2&last=b")
        );
        headers.insert(
            header::LINK,
            HeaderValue::from_static("<http://x/v2/a>; rel=prev"),
        );
        assert_eq!(next_link(&headers), None);
    }

    #[test]
    fn builds_our_links() {
        let name = RepoName::parse("up.test/a").unwrap();
        assert_eq!(
            next_page_link(&name, 2, "b", Some("ghcr.io")),
            "</v2/up.test/a/tags/list?n=2&last=b&ns=ghcr.io>; rel=\"next\""
        );
    }
}
