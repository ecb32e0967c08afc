//! Blob uploads: monolithic (`POST ?digest=`), chunked (`POST`, `PATCH`..., `PUT ?digest=`)
//! and cross-repository mounts.
//!
//! An upload's bytes go straight into a blob store writer as they arrive, so memory stays
//! bounded whatever the blob size, and the writer keeps them in the store's temporary
//! place until the final `PUT`. Only then is the digest known, so the upload hashes its
//! bytes itself (sha256 and sha512, the two algorithms a client may name) and commits the
//! writer only when the digest the client names matches: a wrong digest drops the writer,
//! which discards its bytes, and nothing becomes visible.
//!
//! Upload state (which writer, how many bytes) lives in process memory: an upload is tied
//! to the process that started it, like the temporary file behind it. Uploads idle for
//! longer than [`DockerConfig::upload_timeout`](crate::DockerConfig::upload_timeout) are
//! dropped, with their bytes, by a background sweep (and whenever another upload starts or
//! goes on); at most [`DockerConfig::max_uploads`](crate::DockerConfig::max_uploads) are in
//! progress at once; and a restarted blob store sweeps the temporary files of uploads that
//! were in progress when the process stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use http::{header, HeaderMap, Method, Response, StatusCode};
use mirror_core::digest::MultiHasher;
use mirror_core::{body, Algorithm, BlobWriter, Body, Clock, Digest, Expected};

use super::{created, BlobLink, PrivateRequest};
use crate::error::DockerError;
use crate::path::{parse_digest, RepoName, UploadId};
use crate::service::access::Caller;
use crate::service::{set, Inner, RequestBody, Result};

/// The header that names an upload, for clients that read it rather than `Location`.
const UPLOAD_UUID_HEADER: &str = "docker-upload-uuid";

type Sessions = HashMap<UploadId, Arc<Entry>>;

/// Uploads in progress in this process.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    sessions: Arc<Mutex<Sessions>>,
    /// Set once the background sweeper runs.
    sweeper: OnceLock<()>,
}

/// One upload in progress, as the map holds it.
#[derive(Debug)]
struct Entry {
    repo: RepoName,
    /// Last activity, in milliseconds since the Unix epoch.
    touched_at: AtomicU64,
    /// Locked by the request writing to it, so that chunks cannot interleave.
    session: tokio::sync::Mutex<Session>,
}

/// What an upload received.
#[derive(Debug)]
struct Session {
    /// `None` once the upload was committed or broke.
    writer: Option<Box<dyn BlobWriter>>,
    /// sha256 and sha512 of everything received so far.
    hasher: MultiHasher,
}

impl Session {
    fn new(writer: Box<dyn BlobWriter>) -> Self {
        Session {
            writer: Some(writer),
            hasher: MultiHasher::new([Algorithm::Sha512]),
        }
    }

    fn received(&self) -> u64 {
        self.hasher.len()
    }

    /// Streams a request body into the writer; returns the number of bytes it held.
    async fn append(&mut self, mut body: RequestBody) -> Result<u64> {
        let writer = self.writer.as_mut().ok_or(DockerError::BlobUploadUnknown)?;
        let mut written = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| {
                DockerError::BlobUploadInvalid(format!("the upload body broke off: {err}"))
            })?;
            self.hasher.update(&chunk);
            written += chunk.len() as u64;
            writer.write(chunk).await?;
        }
        Ok(written)
    }
}

impl Uploads {
    fn insert(&self, id: UploadId, repo: RepoName, session: Session, now: u64) {
        let entry = Entry {
            repo,
            touched_at: AtomicU64::new(now),
            session: tokio::sync::Mutex::new(session),
        };
        self.lock().insert(id, Arc::new(entry));
    }

    /// The upload `id` of repository `name`; an id of another repository is unknown here.
    fn get(&self, name: &RepoName, id: &UploadId) -> Result<Arc<Entry>> {
        self.lock()
            .get(id)
            .filter(|entry| entry.repo == *name)
            .cloned()
            .ok_or(DockerError::BlobUploadUnknown)
    }

    fn remove(&self, id: &UploadId) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Drops uploads idle since before `cutoff`; their writers discard what they hold.
    fn sweep(&self, cutoff: u64) {
        sweep(&self.sessions, cutoff);
    }

    /// Starts, once, a task that sweeps idle uploads even when no other upload comes to
    /// do it; the task ends when the service is dropped.
    fn ensure_sweeper(&self, clock: Clock, timeout: Duration) {
        self.sweeper.get_or_init(|| {
            let sessions = Arc::downgrade(&self.sessions);
            let period = (timeout / 4).max(Duration::from_secs(1));
            let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(period);
                loop {
                    ticks.tick().await;
                    let Some(sessions) = sessions.upgrade() else {
                        return;
                    };
                    sweep(&sessions, clock.now_millis().saturating_sub(timeout_ms));
                }
            });
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        lock(&self.sessions)
    }

    /// Uploads in progress.
    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }
}

fn lock(sessions: &Mutex<Sessions>) -> std::sync::MutexGuard<'_, Sessions> {
    sessions.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sweep(sessions: &Mutex<Sessions>, cutoff: u64) {
    let mut sessions = lock(sessions);
    let before = sessions.len();
    sessions.retain(|_, entry| {
        entry.session.try_lock().is_err() || entry.touched_at.load(Ordering::Relaxed) >= cutoff
    });
    let dropped = before - sessions.len();
    if dropped > 0 {
        tracing::debug!(dropped, "abandoned uploads discarded");
    }
}

impl Inner {
    /// `/v2/<name>/blobs/uploads/[<id>]`, every method.
    pub(super) async fn upload(
        &self,
        name: &RepoName,
        id: Option<UploadId>,
        request: PrivateRequest<'_>,
    ) -> Result<Response<Body>> {
        let method = request.parts.method.clone();
        match (id, method) {
            (None, Method::POST) => self.start_upload(name, request).await,
            (Some(id), Method::PATCH) => self.patch_upload(name, &id, request).await,
            (Some(id), Method::PUT) => self.finish_upload(name, &id, request).await,
            (Some(id), Method::GET) => self.upload_status(name, &id).await,
            (Some(id), Method::DELETE) => {
                self.uploads.get(name, &id)?;
                self.uploads.remove(&id);
                Ok(upload_response(StatusCode::NO_CONTENT, name, &id, 0))
            }
            _ => Err(DockerError::Unsupported(
                "method not allowed on the uploads endpoint",
            )),
        }
    }

    /// `POST`: a mount, a monolithic upload, or the start of a chunked one.
    async fn start_upload(
        &self,
        name: &RepoName,
        request: PrivateRequest<'_>,
    ) -> Result<Response<Body>> {
        let ask = request.ask;
        if let Some(mount) = &ask.mount {
            let mounted = self
                .mount(name, mount, ask.from.as_deref(), request.caller)
                .await?;
            if let Some(response) = mounted {
                return Ok(response);
            }
        }
        let digest = ask.digest.as_deref().map(parse_digest).transpose()?;
        self.uploads.sweep(self.upload_cutoff());
        if self.uploads.count() >= self.config.max_uploads {
            return Err(DockerError::TooManyUploads);
        }
        let writer = self.cache.blobs().writer(Expected::none()).await?;
        let mut session = Session::new(writer);
        if let Some(digest) = digest {
            session.append(request.body).await?;
            return self.commit_upload(name, &mut session, &digest).await;
        }

        let mut random = [0u8; 16];
        getrandom::getrandom(&mut random)
            .map_err(|err| mirror_core::Error::storage(err.to_string()))?;
        let id = UploadId::new(random);
        self.uploads
            .ensure_sweeper(*self.cache.clock(), self.config.upload_timeout);
        self.uploads
            .insert(id.clone(), name.clone(), session, self.now());
        tracing::debug!(repository = %name, upload = id.as_str(), "upload started");
        Ok(upload_response(StatusCode::ACCEPTED, name, &id, 0))
    }

    /// Links a blob another private repository holds, when the caller may pull it there;
    /// `None` when it cannot be mounted, and a normal upload starts instead. Without
    /// `from`, any private repository the caller may pull from will do.
    async fn mount(
        &self,
        name: &RepoName,
        mount: &str,
        from: Option<&str>,
        caller: &Caller,
    ) -> Result<Option<Response<Body>>> {
        let digest = parse_digest(mount)?;
        let sources = match from {
            Some(from) => RepoName::parse(from).into_iter().collect(),
            None => self.registered_repositories().await?,
        };
        for source in sources {
            let Some(link) = self.mountable(&source, &digest, caller).await? else {
                continue;
            };
            self.link_blob(name, &digest, &link).await?;
            tracing::debug!(repository = %name, from = %source, %digest, "blob mounted");
            return Ok(Some(created(
                &format!("/v2/{name}/blobs/{digest}"),
                &digest,
            )));
        }
        Ok(None)
    }

    /// The blob's link in `source`, if the caller may pull it from there and its bytes are
    /// stored.
    async fn mountable(
        &self,
        source: &RepoName,
        digest: &Digest,
        caller: &Caller,
    ) -> Result<Option<BlobLink>> {
        if !self.config.is_private(source.as_str()) || !self.may_read(caller, source) {
            return Ok(None);
        }
        let Some(link) = self.blob_link(source, digest).await? else {
            return Ok(None);
        };
        let stored = self.cache.blobs().size(&link.stored).await?;
        Ok((stored == Some(link.size)).then_some(link))
    }

    /// `PATCH`: one more chunk, which must start where the upload stands.
    async fn patch_upload(
        &self,
        name: &RepoName,
        id: &UploadId,
        request: PrivateRequest<'_>,
    ) -> Result<Response<Body>> {
        self.uploads.sweep(self.upload_cutoff());
        let entry = self.uploads.get(name, id)?;
        let mut session = entry.session.lock().await;
        if session.writer.is_none() {
            return Err(DockerError::BlobUploadUnknown);
        }
        let received = self
            .append_chunk(&mut session, id, &request.parts.headers, request.body)
            .await?;
        entry.touched_at.store(self.now(), Ordering::Relaxed);
        Ok(upload_response(StatusCode::ACCEPTED, name, id, received))
    }

    /// Appends one chunk, checking it against its `Content-Range`. An upload whose body
    /// broke off, or held other bytes than its range said, is dropped: the client cannot
    /// know how much of it arrived.
    async fn append_chunk(
        &self,
        session: &mut Session,
        id: &UploadId,
        headers: &HeaderMap,
        body: RequestBody,
    ) -> Result<u64> {
        let range = chunk_range(headers)?;
        let start = session.received();
        if let Some((first, _)) = range.filter(|(first, _)| *first != start) {
            tracing::debug!(upload = id.as_str(), first, start, "chunk out of order");
            return Err(DockerError::ChunkOutOfOrder { uploaded: start });
        }
        let written = match session.append(body).await {
            Ok(written) => written,
            Err(err) => {
                self.uploads.remove(id);
                return Err(err);
            }
        };
        if let Some((first, last)) = range.filter(|_| written > 0) {
            if last + 1 - first != written {
                self.uploads.remove(id);
                return Err(DockerError::BlobUploadInvalid(format!(
                    "Content-Range {first}-{last} announced {} bytes, the chunk held {written}",
                    last + 1 - first
                )));
            }
        }
        Ok(session.received())
    }

    /// `PUT ?digest=`: the last chunk (possibly empty), then the digest check and commit.
    async fn finish_upload(
        &self,
        name: &RepoName,
        id: &UploadId,
        request: PrivateRequest<'_>,
    ) -> Result<Response<Body>> {
        let digest = request.ask.digest.as_deref().ok_or_else(|| {
            DockerError::DigestInvalid("the digest query parameter is required".to_owned())
        })?;
        let digest = parse_digest(digest)?;
        let entry = self.uploads.get(name, id)?;
        let mut session = entry.session.lock().await;
        if session.writer.is_none() {
            return Err(DockerError::BlobUploadUnknown);
        }
        self.append_chunk(&mut session, id, &request.parts.headers, request.body)
            .await?;
        self.uploads.remove(id);
        self.commit_upload(name, &mut session, &digest).await
    }

    /// Commits what the upload received if it hashes to `digest`; otherwise its bytes are
    /// discarded with the writer.
    async fn commit_upload(
        &self,
        name: &RepoName,
        session: &mut Session,
        digest: &Digest,
    ) -> Result<Response<Body>> {
        let writer = session
            .writer
            .take()
            .ok_or(DockerError::BlobUploadUnknown)?;
        let digests = std::mem::take(&mut session.hasher).finish();
        let actual = digests.get(digest.algorithm());
        if actual != Some(digest) {
            let actual = actual.map_or_else(String::new, ToString::to_string);
            return Err(DockerError::DigestInvalid(format!(
                "the uploaded content hashes to {actual}, not {digest}"
            )));
        }
        let info = writer.commit().await?;
        let link = BlobLink {
            stored: info.digest,
            size: info.size,
        };
        self.link_blob(name, digest, &link).await?;
        tracing::debug!(repository = %name, %digest, size = link.size, "blob pushed");
        Ok(created(&format!("/v2/{name}/blobs/{digest}"), digest))
    }

    /// `GET` on an upload: how far it got.
    async fn upload_status(&self, name: &RepoName, id: &UploadId) -> Result<Response<Body>> {
        let entry = self.uploads.get(name, id)?;
        let received = entry.session.lock().await.received();
        Ok(upload_response(StatusCode::NO_CONTENT, name, id, received))
    }

    fn upload_cutoff(&self) -> u64 {
        let timeout = u64::try_from(self.config.upload_timeout.as_millis()).unwrap_or(u64::MAX);
        self.now().saturating_sub(timeout)
    }
}

/// The first and last byte a chunk's `Content-Range` announces (`<first>-<last>`, with or
/// without a `bytes ` unit and `/<size>` suffix).
fn chunk_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || DockerError::BlobUploadInvalid("malformed Content-Range".to_owned());
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let text = text.strip_prefix("bytes").map_or(text, str::trim_start);
    let text = text.split('/').next().unwrap_or_default();
    let (first, last) = text.split_once('-').ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if last < first {
        return Err(invalid());
    }
    Ok(Some((first, last)))
}

/// The answer about an upload in progress: where it is, and the bytes it holds.
fn upload_response(
    status: StatusCode,
    name: &RepoName,
    id: &UploadId,
    received: u64,
) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    set(
        headers,
        header::LOCATION,
        &format!("/v2/{name}/blobs/uploads/{}", id.as_str()),
    );
    set(
        headers,
        header::RANGE,
        &format!("0-{}", received.saturating_sub(1)),
    );
    set(headers, UPLOAD_UUID_HEADER, id.as_str());
    set(headers, header::CONTENT_LENGTH, "0");
    response
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn range(value: &str) -> Result<Option<(u64, u64)>> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(value).unwrap());
        chunk_range(&headers)
    }

    #[test]
    fn reads_chunk_ranges_in_the_forms_clients_send() {
        assert_eq!(chunk_range(&HeaderMap::new()).unwrap(), None);
        assert_eq!(range("0-1023").unwrap(), Some((0, 1023)));
        assert_eq!(range("bytes 1024-2047/*").unwrap(), Some((1024, 2047)));
        assert_eq!(range("bytes 5-5/6").unwrap(), Some((5, 5)));
        for bad in ["", "5", "a-b", "9-3", "-3", "1--2", "bytes=0-1"] {
            let err = range(bad).unwrap_err();
            assert_eq!(err.code(), "BLOB_UPLOAD_INVALID", "{bad:?}");
        }
    }
}
