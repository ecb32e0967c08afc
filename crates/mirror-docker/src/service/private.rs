//! Private repositories: content pushed to this registry, served from local storage only.
//!
//! Bytes live in the shared blob store, addressed by sha256 like everything the mirror
//! caches, so a layer pushed to several repositories (or also pulled through) is stored
//! once. What makes a blob or manifest part of a repository is a small *link* record in the
//! metadata store, keyed by repository and by the digest the client used (sha256 or
//! sha512): a blob is visible only in the repositories that pushed or mounted it, and a
//! delete removes the link, never bytes another repository may share.
//!
//! Record keys put the repository name before an `@`, which no repository name contains,
//! so that listing one repository's tags can never run into another repository whose name
//! extends it (`a` and `a/tags`).

mod manifest;
mod upload;

use http::{header, request::Parts, Method, Response, StatusCode};
use mirror_core::auth::Action;
use mirror_core::http_util::{content_range, parse_range};
use mirror_core::{body, Body, Digest, Precondition};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::access::Caller;
use super::blob::set_blob_headers;
use super::listing::paginate;
use super::{json_response, set, Ask, Inner, RequestBody, Result};
use crate::error::DockerError;
use crate::media::OCI_INDEX;
use crate::path::{RepoName, Route};

pub(crate) use self::upload::Uploads;

/// Namespace of per-repository records.
const PREFIX: &str = "docker-private/";
/// Namespace of the catalog: one record per private repository that received content.
const REPOS: &str = "docker-private-repos/";

/// A blob in a repository: where its bytes are stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlobLink {
    /// The sha256 the blob store knows the bytes by.
    stored: Digest,
    size: u64,
}

/// A manifest in a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestLink {
    /// The sha256 the blob store knows the bytes by.
    stored: Digest,
    size: u64,
    media_type: String,
    /// The manifest this one refers to, whose referrers list it appears in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Digest>,
}

/// A tag: the manifest it names.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TagLink {
    digest: Digest,
}

/// The key of one record of a repository: `docker-private/<name>@<kind>/<rest>`.
fn key(name: &RepoName, kind: &str, rest: &str) -> String {
    format!("{PREFIX}{name}@{kind}/{rest}")
}

/// A request to a private repository.
pub(super) struct PrivateRequest<'a> {
    pub(super) parts: &'a Parts,
    pub(super) ask: &'a Ask<'a>,
    pub(super) caller: &'a Caller,
    pub(super) body: RequestBody,
}

impl Inner {
    /// Answers a request for a private repository; nothing here ever reaches upstream.
    pub(super) async fn private(
        &self,
        route: Route,
        request: PrivateRequest<'_>,
    ) -> Result<Response<Body>> {
        let method = request.parts.method.clone();
        let name = match &route {
            Route::Manifest(name, _)
            | Route::Blob(name, _)
            | Route::Upload(name, _)
            | Route::Tags(name)
            | Route::Referrers(name, _) => name.clone(),
            Route::Base | Route::Catalog | Route::Token => {
                return Err(DockerError::NotServed("not a repository endpoint"))
            }
        };
        let reading = method == Method::GET || method == Method::HEAD;
        let (action, verb) = match (reading, method == Method::DELETE) {
            (true, _) => (Action::Read, "pull"),
            (false, true) => (Action::Write, "delete from"),
            (false, false) => (Action::Write, "push to"),
        };
        self.authorize_to(request.caller, &name, action, verb)?;
        if matches!(route, Route::Upload(..)) && !request.caller.is_signed_in() {
            // Asking how far an upload got is part of a push: clients ask with a pull-scoped
            // token, so a signed-in reader may, an anonymous one may not.
            return Err(DockerError::Unauthorized(format!(
                "authentication required to push to {name}"
            )));
        }
        match (route, method) {
            (Route::Upload(name, id), _) => self.upload(&name, id, request).await,
            (Route::Manifest(name, reference), Method::PUT) => {
                self.put_manifest(&name, &reference, request).await
            }
            (Route::Manifest(name, reference), Method::DELETE) => {
                self.delete_manifest(&name, &reference).await
            }
            (Route::Manifest(name, reference), _) if reading => {
                self.get_manifest(&name, &reference, request.ask).await
            }
            (Route::Blob(name, digest), Method::DELETE) => self.delete_blob(&name, &digest).await,
            (Route::Blob(name, digest), _) if reading => {
                self.get_blob(&name, &digest, request.ask).await
            }
            (Route::Tags(name), Method::GET) => self.private_tags(&name, request.ask).await,
            (Route::Referrers(name, digest), Method::GET) => {
                self.private_referrers(&name, &digest, request.ask).await
            }
            _ => Err(DockerError::Unsupported(
                "method not allowed on this endpoint",
            )),
        }
    }

    async fn get_blob(
        &self,
        name: &RepoName,
        digest: &Digest,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let link = self
            .load_record::<BlobLink>(&key(name, "blob", &digest.to_string()))
            .await?
            .ok_or_else(|| DockerError::BlobUnknown(digest.clone()))?;
        let range = parse_range(ask.headers, link.size)
            .map_err(|()| mirror_core::Error::RangeNotSatisfiable { size: link.size })?;
        let mut response = if ask.head {
            let mut response = Response::new(body::empty());
            set(
                response.headers_mut(),
                header::CONTENT_LENGTH,
                &link.size.to_string(),
            );
            response
        } else {
            let read = self
                .cache
                .blobs()
                .read(&link.stored, range.clone())
                .await
                .map_err(|err| {
                    DockerError::from(err).or_unknown(|| DockerError::BlobUnknown(digest.clone()))
                })?;
            let mut response = Response::new(body::from_stream(read.stream));
            let headers = response.headers_mut();
            let length = read.range.end - read.range.start;
            set(headers, header::CONTENT_LENGTH, &length.to_string());
            if range.is_some() {
                set(
                    headers,
                    header::CONTENT_RANGE,
                    &content_range(&read.range, link.size),
                );
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            response
        };
        set_blob_headers(response.headers_mut(), digest);
        Ok(response)
    }

    async fn delete_blob(&self, name: &RepoName, digest: &Digest) -> Result<Response<Body>> {
        self.deletes_allowed()?;
        let key = key(name, "blob", &digest.to_string());
        if self.load_record::<BlobLink>(&key).await?.is_none() {
            return Err(DockerError::BlobUnknown(digest.clone()));
        }
        self.cache
            .metadata()
            .delete(&key, Precondition::None)
            .await?;
        tracing::debug!(repository = %name, %digest, "blob unlinked");
        Ok(accepted())
    }

    /// Records that a repository holds a blob, and that the repository exists.
    async fn link_blob(&self, name: &RepoName, digest: &Digest, link: &BlobLink) -> Result<()> {
        self.save_record(&key(name, "blob", &digest.to_string()), link)
            .await?;
        self.register(name).await
    }

    async fn blob_link(&self, name: &RepoName, digest: &Digest) -> Result<Option<BlobLink>> {
        self.load_record(&key(name, "blob", &digest.to_string()))
            .await
    }

    /// Adds a repository to the catalog.
    async fn register(&self, name: &RepoName) -> Result<()> {
        let key = format!("{REPOS}{name}");
        match self
            .cache
            .metadata()
            .put(&key, "{}".into(), Precondition::Absent)
            .await
        {
            Ok(_) | Err(mirror_core::Error::Conflict { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn private_tags(&self, name: &RepoName, ask: &Ask<'_>) -> Result<Response<Body>> {
        let n = page_size(ask)?;
        let prefix = key(name, "tag", "");
        let records = self
            .cache
            .metadata()
            .list(&prefix, None, usize::MAX)
            .await?;
        let tags: Vec<String> = records
            .into_iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        if tags.is_empty() && !self.is_registered(name).await? {
            return Err(DockerError::NameUnknown(format!(
                "repository {name} is not known to this registry"
            )));
        }
        let (page, more) = paginate(&tags, n, ask.last.as_deref());
        let doc = json!({ "name": name.as_str(), "tags": page });
        let mut response = json_response(StatusCode::OK, doc.to_string());
        if let (true, Some(n), Some(last)) = (more, n, page.last()) {
            let link = next_link(&format!("/v2/{name}/tags/list"), n, last);
            set(response.headers_mut(), header::LINK, &link);
        }
        Ok(response)
    }

    /// Every private repository that received content, in name order.
    async fn registered_repositories(&self) -> Result<Vec<RepoName>> {
        let records = self.cache.metadata().list(REPOS, None, usize::MAX).await?;
        Ok(records
            .into_iter()
            .filter_map(|(key, _)| RepoName::parse(key.strip_prefix(REPOS)?).ok())
            .collect())
    }

    async fn is_registered(&self, name: &RepoName) -> Result<bool> {
        let key = format!("{REPOS}{name}");
        Ok(self.cache.metadata().get(&key).await?.is_some())
    }

    /// `GET /v2/_catalog`: the private repositories the caller may pull from.
    pub(super) async fn catalog(&self, caller: &Caller, ask: &Ask<'_>) -> Result<Response<Body>> {
        let n = page_size(ask)?;
        let names: Vec<String> = self
            .registered_repositories()
            .await?
            .into_iter()
            .filter(|name| self.may_read(caller, name))
            .map(|name| name.as_str().to_owned())
            .collect();
        let (page, more) = paginate(&names, n, ask.last.as_deref());
        let doc = json!({ "repositories": page });
        let mut response = json_response(StatusCode::OK, doc.to_string());
        if let (true, Some(n), Some(last)) = (more, n, page.last()) {
            set(
                response.headers_mut(),
                header::LINK,
                &next_link("/v2/_catalog", n, last),
            );
        }
        Ok(response)
    }

    async fn private_referrers(
        &self,
        name: &RepoName,
        digest: &Digest,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let prefix = key(name, "referrer", &format!("{digest}/"));
        let records = self
            .cache
            .metadata()
            .list(&prefix, None, usize::MAX)
            .await?;
        let mut manifests: Vec<Value> = records
            .iter()
            .filter_map(|(_, record)| serde_json::from_slice(&record.value).ok())
            .collect();
        if let Some(wanted) = &ask.artifact_type {
            manifests.retain(|m| m.get("artifactType").and_then(Value::as_str) == Some(wanted));
        }
        let doc = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        let mut response = json_response(StatusCode::OK, doc.to_string());
        let headers = response.headers_mut();
        set(headers, header::CONTENT_TYPE, OCI_INDEX);
        if ask.artifact_type.is_some() {
            set(headers, "oci-filters-applied", "artifactType");
        }
        Ok(response)
    }

    /// Refuses a push to a repository this registry proxies, naming the setting to change.
    pub(super) fn refuse_proxied_push(&self, name: &RepoName) -> DockerError {
        DockerError::Denied(format!(
            "repository {name} is not private on this registry, so it is read-only: \
             pushes and deletes are accepted only for names matching docker.private_repositories \
             (now {:?}); add a pattern matching {name} to that list in the configuration",
            self.config.private_repositories
        ))
    }
}

/// The `n` of a listing: absent, or a number.
fn page_size(ask: &Ask<'_>) -> Result<Option<usize>> {
    ask.n
        .as_deref()
        .map(|text| {
            text.parse::<usize>()
                .map_err(|_| DockerError::PaginationInvalid(text.chars().take(20).collect()))
        })
        .transpose()
}

fn next_link(path: &str, n: usize, last: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("n", &n.to_string());
    query.append_pair("last", last);
    format!("<{path}?{}>; rel=\"next\"", query.finish())
}

/// `202 Accepted` with no body, the answer to a delete.
fn accepted() -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    set(response.headers_mut(), header::CONTENT_LENGTH, "0");
    response
}

/// A `201 Created` pointing at what was stored.
fn created(location: &str, digest: &Digest) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    set(headers, header::LOCATION, location);
    set(headers, super::manifest::DIGEST_HEADER, &digest.to_string());
    set(headers, header::CONTENT_LENGTH, "0");
    response
}
