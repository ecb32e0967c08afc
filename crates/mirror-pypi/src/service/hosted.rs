//! Private projects: credentials, uploads, and the hosted side of reads.
//!
//! An upload is checked in full (credential, form, digests, file name, a wheel's
//! `METADATA`, the dependency-confusion guard) while its file waits in a spool; only then
//! is the file stored as a blob, its metadata next, and the project's record last, with a
//! compare-and-swap. A failure before that last step leaves no record pointing at anything,
//! so a refused upload is never listed or served.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt as _;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::BodyExt as _;
use mirror_core::auth::{Access, Action, AuthError, Identity};
use mirror_core::{
    body, Algorithm, BlobInfo, Body, BoxError, Digest, Error as CoreError, Expected, Precondition,
    CACHE_STATUS_HEADER,
};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::respond::{blob_response, hosted_page_response, set};
use super::{json_text, Ask, Inner, Result};
use crate::error::PypiError;
use crate::hosted::{self, DistKind, HostedFile, HostedProject, Refusal, StoredBlob};
use crate::name::ProjectName;
use crate::negotiate::negotiate;
use crate::render::{self, BASE_SENTINEL};
use crate::upload::{self, Fields, Spooled, Upload};

/// The ecosystem name access rules use for this service.
const ECOSYSTEM: &str = "pypi";
/// Attempts at a compare-and-swap before giving up on a busy project.
const CAS_ATTEMPTS: usize = 5;
/// Bytes read from the spool at a time when copying an upload into the blob store.
const COPY_CHUNK: usize = 256 * 1024;
/// What a 401 asks for, in the words twine and pip users know.
const CREDENTIALS_NEEDED: &str =
    "authentication required: a user name and password, or __token__ and an API token";

impl From<Refusal> for PypiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Exists(file) => PypiError::FileExists(file),
            Refusal::Invalid(message) => PypiError::InvalidUpload(message),
        }
    }
}

impl Inner {
    /// The identity behind the request's credential; a wrong credential is a 401 even where
    /// anonymous access would do, so a mistyped token never silently downgrades a client.
    pub(super) async fn identify(&self, headers: &HeaderMap) -> Result<Option<Identity>> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        auth.authenticate(headers).await.map_err(|err| match err {
            AuthError::InvalidCredentials => PypiError::Unauthorized("invalid credentials".into()),
            AuthError::UnsupportedScheme => {
                PypiError::Unauthorized("unsupported authorization scheme; use Basic".into())
            }
            other => PypiError::Unauthorized(other.to_string()),
        })
    }

    /// Applies the access rules to one project. Without auth, reads are open and writes
    /// are not offered at all.
    fn authorize(
        &self,
        identity: Option<&Identity>,
        name: &ProjectName,
        action: Action,
    ) -> Result<()> {
        let Some(auth) = &self.auth else {
            return match action {
                Action::Read => Ok(()),
                Action::Write => Err(PypiError::MethodNotAllowed),
            };
        };
        match auth.check(identity, ECOSYSTEM, name.as_str(), action) {
            Access::Granted => Ok(()),
            Access::NeedsCredentials => Err(PypiError::Unauthorized(CREDENTIALS_NEEDED.into())),
            Access::Forbidden => Err(PypiError::Forbidden(forbidden(identity, name, action))),
        }
    }

    /// The root listing names every project, so it is as open as reading is by default.
    pub(super) fn authorize_listing(&self, ask: &Ask<'_>) -> Result<()> {
        let closed = self
            .auth
            .as_ref()
            .is_some_and(|auth| !auth.policy().anonymous_read);
        if closed && ask.identity.is_none() {
            return Err(PypiError::Unauthorized(CREDENTIALS_NEEDED.into()));
        }
        Ok(())
    }

    /// The hosted project of that name, once the reader is allowed to see it; `None` when
    /// the name is not hosted here and the mirror answers.
    pub(super) async fn readable_hosted(
        &self,
        name: &ProjectName,
        ask: &Ask<'_>,
    ) -> Result<Option<Arc<HostedProject>>> {
        self.authorize(ask.identity.as_ref(), name, Action::Read)?;
        if let Some(recent) = self.hosted_reads.get(name.as_str()) {
            return Ok(recent);
        }
        let loaded = self.load_hosted(name).await?;
        let shared = loaded.map(|(project, _)| Arc::new(project));
        self.hosted_reads.insert(name.as_str(), shared.clone());
        Ok(shared)
    }

    async fn load_hosted(&self, name: &ProjectName) -> Result<Option<(HostedProject, u64)>> {
        let Some(record) = self.cache.metadata().get(&hosted_key(name)).await? else {
            return Ok(None);
        };
        let project = serde_json::from_slice(&record.value).map_err(CoreError::storage)?;
        Ok(Some((project, record.version)))
    }

    /// `POST /`: the legacy upload API. The credential is checked before the body is read,
    /// and the project's write rule as soon as the form has named it.
    pub(super) async fn upload<B>(
        &self,
        headers: &HeaderMap,
        body: B,
        identity: Option<&Identity>,
    ) -> Result<Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let identity = self.uploader(headers, identity)?;
        let boundary = multipart_boundary(headers)?;
        let (upload, content) = self.read_upload(body, &boundary, identity).await?;
        self.publish(upload, content, identity).await
    }

    /// Refuses, before the body is read, an upload that cannot succeed whatever it holds.
    fn uploader<'a>(
        &self,
        headers: &HeaderMap,
        identity: Option<&'a Identity>,
    ) -> Result<&'a Identity> {
        if self.auth.is_none() {
            return Err(PypiError::MethodNotAllowed);
        }
        let identity =
            identity.ok_or_else(|| PypiError::Unauthorized(CREDENTIALS_NEEDED.into()))?;
        if !identity.can_write {
            return Err(PypiError::Forbidden(
                "this API token is read-only; uploads need a read-write token".into(),
            ));
        }
        let limit = self.config.max_upload_bytes;
        if content_length(headers).is_some_and(|length| length > limit) {
            return Err(PypiError::PayloadTooLarge(limit));
        }
        Ok(identity)
    }

    /// Reads the form, spooling its file, and checks it against itself and the file.
    async fn read_upload<B>(
        &self,
        body: B,
        boundary: &str,
        identity: &Identity,
    ) -> Result<(Upload, Spooled)>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut gate = |fields: &Fields| match fields.get("name") {
            Some(_) => {
                let name = upload::project_of(fields).map_err(PypiError::InvalidUpload)?;
                self.authorize(Some(identity), &name, Action::Write)
            }
            None => Ok(()),
        };
        let stream = body.into_data_stream().map_err(Into::<BoxError>::into);
        let (limit, spool_dir) = (
            self.config.max_upload_bytes,
            self.config.spool_dir.as_deref(),
        );
        let form = upload::read_form(stream, boundary, limit, spool_dir, &mut gate).await?;
        let content = form
            .content
            .ok_or_else(|| PypiError::InvalidUpload("missing content (the file)".into()))?;
        let checked =
            upload::check_upload(&form.fields, &content).map_err(PypiError::InvalidUpload)?;
        self.authorize(Some(identity), &checked.project, Action::Write)?;
        Ok((checked, content))
    }

    async fn publish(
        &self,
        upload: Upload,
        content: Spooled,
        identity: &Identity,
    ) -> Result<Response<Body>> {
        let name = upload.project.clone();
        let metadata = match upload.kind {
            DistKind::BdistWheel => Some(wheel_metadata(&content, &upload).await?),
            DistKind::Sdist => None,
        };
        let mut file = HostedFile {
            filename: upload.filename,
            version: upload.version.normalized(),
            kind: upload.kind,
            digest: Digest::from_hex(Algorithm::Sha256, &content.sha256)?,
            size: content.size,
            requires_python: upload.requires_python,
            core_metadata: None,
            uploaded_at: self.now(),
            uploaded_by: identity.user.clone(),
        };
        match self.load_hosted(&name).await? {
            Some((project, _)) => hosted::check_new_file(&project, &file)?,
            None => self.ensure_not_upstream(&name).await?,
        }

        self.store_spooled(content).await?;
        if let Some(metadata) = metadata {
            let (digest, size) = self.store_blob(metadata).await?;
            file.core_metadata = Some(StoredBlob { digest, size });
        }
        self.modify(&name, |existing| {
            Ok(hosted::apply_upload(existing, &name, file.clone())?)
        })
        .await?;
        tracing::info!(project = %name, file = file.filename, user = identity.user, "uploaded");
        Ok(uploaded_response())
    }

    /// A new private name must not shadow one that exists upstream, unless a rule allows it:
    /// every client of the mirror would get the private files in place of the public
    /// project (dependency confusion).
    async fn ensure_not_upstream(&self, name: &ProjectName) -> Result<()> {
        let allowed = self.auth.as_ref().is_some_and(|auth| {
            auth.policy()
                .may_publish_over_upstream(ECOSYSTEM, name.as_str())
        });
        if allowed {
            return Ok(());
        }
        match self.cache.ensure(self.page_spec(name, true)).await {
            Ok(_) => Err(PypiError::Forbidden(format!(
                "{name} exists on the upstream index; uploading it here would shadow it \
                 (an access rule with publish_over_upstream = true allows it)"
            ))),
            Err(err) if err.is_not_found() => Ok(()),
            Err(err) => Err(PypiError::UpstreamCheck(err)),
        }
    }

    /// Copies the spooled file into the blob store, which checks it once more against the
    /// digest and size read while it arrived.
    async fn store_spooled(&self, content: Spooled) -> Result<BlobInfo> {
        let expected = Expected {
            digests: vec![Digest::from_hex(Algorithm::Sha256, &content.sha256)?],
            size: Some(content.size),
            max_size: None,
        };
        let mut writer = self.cache.blobs().writer(expected).await?;
        let mut file = tokio::fs::File::from_std(content.file);
        file.rewind().await.map_err(CoreError::storage)?;
        loop {
            let mut chunk = BytesMut::with_capacity(COPY_CHUNK);
            if file
                .read_buf(&mut chunk)
                .await
                .map_err(CoreError::storage)?
                == 0
            {
                break;
            }
            writer.write(chunk.freeze()).await?;
        }
        Ok(writer.commit().await?)
    }

    /// Applies `change` to the hosted project with compare-and-swap, retrying on races.
    async fn modify<F>(&self, name: &ProjectName, change: F) -> Result<HostedProject>
    where
        F: Fn(Option<HostedProject>) -> Result<HostedProject>,
    {
        let key = hosted_key(name);
        for _ in 0..CAS_ATTEMPTS {
            let loaded = self.load_hosted(name).await?;
            let precondition = loaded
                .as_ref()
                .map_or(Precondition::Absent, |(_, v)| Precondition::Version(*v));
            let project = change(loaded.map(|(project, _)| project))?;
            let bytes = serde_json::to_vec(&project).map_err(CoreError::storage)?;
            self.hosted_reads.remove(name.as_str());
            match self
                .cache
                .metadata()
                .put(&key, bytes.into(), precondition)
                .await
            {
                Ok(_) => {
                    let shared = Arc::new(project.clone());
                    self.hosted_reads.insert(name.as_str(), Some(shared));
                    return Ok(project);
                }
                Err(CoreError::Conflict { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(PypiError::Contended(name.to_string()))
    }

    /// A hosted project's page: its own files only, never the upstream's.
    pub(super) fn hosted_page(
        &self,
        project: &HostedProject,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let format = negotiate(ask.headers).ok_or(PypiError::NotAcceptable)?;
        let page = project.page();
        let (rendered, base) = if format.is_json() {
            (render::project_json(&page), json_text(&ask.base))
        } else {
            (render::project_html(&page), render::escape(&ask.base))
        };
        let text = String::from_utf8_lossy(&rendered).replace(BASE_SENTINEL, &base);
        Ok(hosted_page_response(text, format, ask.headers, ask.head))
    }

    pub(super) async fn hosted_file(
        &self,
        project: &HostedProject,
        file: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let stored = project.file(file).ok_or(PypiError::NotFound)?;
        let blob = (&stored.digest, stored.size);
        let content_type = "application/octet-stream";
        blob_response(self.blobs(), blob, ask.headers, ask.head, content_type).await
    }

    pub(super) async fn hosted_metadata(
        &self,
        project: &HostedProject,
        file: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let stored = project
            .file(file)
            .and_then(|f| f.core_metadata.as_ref())
            .ok_or(PypiError::NotFound)?;
        let blob = (&stored.digest, stored.size);
        let content_type = "text/plain; charset=utf-8";
        blob_response(self.blobs(), blob, ask.headers, ask.head, content_type).await
    }

    fn blobs(&self) -> &dyn mirror_core::BlobStore {
        self.cache.blobs().as_ref()
    }

    fn now(&self) -> String {
        humantime::format_rfc3339_micros(self.cache.clock().now()).to_string()
    }
}

/// Reads and checks a wheel's `METADATA` on the blocking pool.
async fn wheel_metadata(content: &Spooled, upload: &Upload) -> Result<Vec<u8>> {
    let file = content.file.try_clone().map_err(CoreError::storage)?;
    let upload = upload.clone();
    tokio::task::spawn_blocking(move || upload::core_metadata(file, &upload))
        .await
        .map_err(CoreError::storage)?
        .map_err(PypiError::InvalidUpload)
}

fn forbidden(identity: Option<&Identity>, name: &ProjectName, action: Action) -> String {
    let user = identity.map_or("anonymous", |id| id.user.as_str());
    match action {
        Action::Read => format!("{user} may not read {name}"),
        Action::Write => format!("{user} may not upload to {name}"),
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

fn multipart_boundary(headers: &HeaderMap) -> Result<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| multer::parse_boundary(value).ok())
        .ok_or_else(|| PypiError::InvalidUpload("expected a multipart/form-data body".into()))
}

fn uploaded_response() -> Response<Body> {
    let mut response = Response::new(body::full("OK\n"));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    set(headers, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(headers, CACHE_STATUS_HEADER, "MISS");
    response
}

fn hosted_key(name: &ProjectName) -> String {
    format!("pypi/hosted/{name}")
}
