//! Private packages: credentials, publishing and the hosted side of reads.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use mirror_core::auth::{Access, Action, AuthError, TokenAccess};
use mirror_core::http_util::{content_range, if_none_match, parse_range};
use mirror_core::{body, put_bytes, Body, BoxError, Error as CoreError, Expected, Precondition};
use serde_json::{json, Map, Value};

use super::{empty_response, json_response, set, Ask, Inner, Result, ABBREVIATED};
use crate::error::NpmError;
use crate::hosted::{self, HostedFile, HostedPackage, Refusal};
use crate::packument::BASE_SENTINEL;
use crate::path::PackageName;

/// Attempts at a compare-and-swap before giving up on a busy package.
const CAS_ATTEMPTS: usize = 5;

impl From<Refusal> for NpmError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(message) => NpmError::BadRequest(message),
            Refusal::Conflict(message) => NpmError::Conflict(message),
        }
    }
}

impl Inner {
    /// The identity behind the request's credential; a wrong credential is a 401 even where
    /// anonymous access would do, so a typo in a token never silently downgrades a client.
    pub(super) async fn identify(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<mirror_core::auth::Identity>> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        auth.authenticate(headers).await.map_err(|err| match err {
            AuthError::InvalidCredentials => NpmError::Unauthorized("invalid credentials".into()),
            AuthError::UnsupportedScheme => {
                NpmError::Unauthorized("unsupported authorization".into())
            }
            other => NpmError::Unauthorized(other.to_string()),
        })
    }

    pub(super) fn authorize(
        &self,
        ask: &Ask<'_>,
        name: &PackageName,
        action: Action,
    ) -> Result<()> {
        let Some(auth) = &self.auth else {
            return match action {
                Action::Read => Ok(()),
                Action::Write => Err(NpmError::MethodNotAllowed),
            };
        };
        match auth.check(ask.identity.as_ref(), "npm", name.as_str(), action) {
            Access::Granted => Ok(()),
            Access::NeedsCredentials => {
                Err(NpmError::Unauthorized("authentication required".into()))
            }
            Access::Forbidden => {
                let user = ask
                    .identity
                    .as_ref()
                    .map_or("anonymous", |id| id.user.as_str());
                Err(NpmError::Forbidden(
                    format!("{user} may not {action:?} {}", name.as_str()).to_lowercase(),
                ))
            }
        }
    }

    pub(super) async fn read_body<B>(&self, body: B) -> Result<Bytes>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = self.config.max_publish_bytes;
        let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
        match limited.collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                Err(NpmError::PayloadTooLarge(limit))
            }
            Err(_) => Err(NpmError::BadRequest(
                "the request body could not be read".into(),
            )),
        }
    }

    /// The hosted record of `name` for a read, reusing a recent read (see
    /// [`Inner::hosted_reads`]); writes go through [`Inner::modify`], which reads the store.
    pub(super) async fn read_hosted(
        &self,
        name: &PackageName,
    ) -> Result<Option<Arc<(HostedPackage, u64)>>> {
        if let Some(recent) = self.hosted_reads.get(name.as_str()) {
            return Ok(recent);
        }
        let loaded = self.load_hosted(name).await?.map(Arc::new);
        self.hosted_reads.insert(name.as_str(), loaded.clone());
        Ok(loaded)
    }

    pub(super) async fn load_hosted(
        &self,
        name: &PackageName,
    ) -> Result<Option<(HostedPackage, u64)>> {
        let Some(record) = self.cache.metadata().get(&hosted_key(name)).await? else {
            return Ok(None);
        };
        let package = serde_json::from_slice(&record.value).map_err(CoreError::storage)?;
        Ok(Some((package, record.version)))
    }

    /// Applies `change` to the hosted package with compare-and-swap, retrying on races.
    /// `change` returning `Ok(None)` deletes the package.
    async fn modify<F>(&self, name: &PackageName, change: F) -> Result<Option<(HostedPackage, u64)>>
    where
        F: Fn(Option<HostedPackage>, u64) -> Result<Option<HostedPackage>>,
    {
        let key = hosted_key(name);
        for _ in 0..CAS_ATTEMPTS {
            let loaded = self.load_hosted(name).await?;
            let precondition = loaded
                .as_ref()
                .map_or(Precondition::Absent, |(_, v)| Precondition::Version(*v));
            let version = loaded.as_ref().map_or(0, |(_, v)| *v);
            let outcome = match change(loaded.map(|(package, _)| package), version)? {
                Some(package) => {
                    let bytes = serde_json::to_vec(&package).map_err(CoreError::storage)?;
                    let stored = self
                        .cache
                        .metadata()
                        .put(&key, bytes.into(), precondition)
                        .await;
                    stored.map(|version| Some((package, version)))
                }
                None => self
                    .cache
                    .metadata()
                    .delete(&key, precondition)
                    .await
                    .map(|()| None),
            };
            match outcome {
                Err(CoreError::Conflict { .. }) => continue,
                other => {
                    self.hosted_reads.remove(name.as_str());
                    let written = other?;
                    let shared = written.as_ref().map(|kept| Arc::new(kept.clone()));
                    self.hosted_reads.insert(name.as_str(), shared);
                    return Ok(written);
                }
            }
        }
        Err(NpmError::Conflict(format!(
            "{} is being changed by someone else; retry",
            name.as_str()
        )))
    }

    pub(super) fn hosted_packument(
        &self,
        package: &HostedPackage,
        version: u64,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let abbreviated = super::accepts_abbreviated(ask.headers);
        let doc = if abbreviated {
            hosted::render_abbreviated(package)
        } else {
            hosted::render_full(package, &rev(version))
        };
        let text = doc.to_string().replace(BASE_SENTINEL, &ask.base);
        let etag = format!(
            "\"{}\"",
            &mirror_core::digest::sha256_of(text.as_bytes()).hex()[..32]
        );
        let mut response = if if_none_match(ask.headers, &etag) {
            empty_response(StatusCode::NOT_MODIFIED)
        } else {
            json_response(StatusCode::OK, text)
        };
        let headers = response.headers_mut();
        set(
            headers,
            header::CONTENT_TYPE,
            if abbreviated {
                ABBREVIATED
            } else {
                "application/json"
            },
        );
        set(headers, header::ETAG, &etag);
        set(headers, header::VARY, "Accept, Authorization");
        set(headers, header::CACHE_CONTROL, "private, no-cache");
        set(headers, mirror_core::CACHE_STATUS_HEADER, "HIT");
        Ok(response)
    }

    pub(super) fn hosted_version(
        &self,
        package: &HostedPackage,
        wanted: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let doc = hosted::render_full(package, "");
        let version = doc["dist-tags"]
            .get(wanted)
            .and_then(Value::as_str)
            .unwrap_or(wanted);
        let manifest = doc["versions"].get(version).ok_or(NpmError::NotFound)?;
        let text = manifest.to_string().replace(BASE_SENTINEL, &ask.base);
        Ok(json_response(StatusCode::OK, text))
    }

    pub(super) async fn hosted_tarball(
        &self,
        package: &HostedPackage,
        file: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        let stored = package.files.get(file).ok_or(NpmError::NotFound)?;
        let range = parse_range(ask.headers, stored.size)
            .map_err(|()| CoreError::RangeNotSatisfiable { size: stored.size })?;
        let mut response = if ask.head {
            empty_response(StatusCode::OK)
        } else {
            let read = self
                .cache
                .blobs()
                .read(&stored.digest, range.clone())
                .await?;
            Response::new(body::from_stream(read.stream))
        };
        let headers = response.headers_mut();
        let length = match &range {
            Some(range) => {
                set(
                    headers,
                    header::CONTENT_RANGE,
                    &content_range(range, stored.size),
                );
                range.end - range.start
            }
            None => stored.size,
        };
        set(headers, header::CONTENT_LENGTH, &length.to_string());
        set(headers, header::CONTENT_TYPE, "application/octet-stream");
        set(headers, header::ACCEPT_RANGES, "bytes");
        set(
            headers,
            header::ETAG,
            &format!("\"{}\"", stored.digest.hex()),
        );
        set(headers, mirror_core::CACHE_STATUS_HEADER, "HIT");
        if range.is_some() && !ask.head {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        Ok(response)
    }

    pub(super) fn whoami(&self, ask: &Ask<'_>) -> Result<Response<Body>> {
        let identity = ask
            .identity
            .as_ref()
            .ok_or_else(|| NpmError::Unauthorized("not logged in".into()))?;
        Ok(json_response(
            StatusCode::OK,
            json!({ "username": identity.user }).to_string(),
        ))
    }

    /// npm's legacy login: the password is checked and a new read-write token returned.
    /// Registration is not open; users are created with `registry-mirror user add`.
    pub(super) async fn login(&self, user: &str, body: Bytes) -> Result<Response<Body>> {
        let auth = self.auth.as_ref().ok_or(NpmError::MethodNotAllowed)?;
        let doc: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|_| NpmError::BadRequest("login body is not a JSON object".into()))?;
        let name = doc.get("name").and_then(Value::as_str).unwrap_or(user);
        let password = doc
            .get("password")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name != user {
            return Err(NpmError::BadRequest(
                "user name in the body differs from the URL".into(),
            ));
        }
        let Some(identity) = auth.login(user, password).await? else {
            return Err(NpmError::Unauthorized(
                "bad username or password (accounts are created by an administrator with `registry-mirror user add`)".into(),
            ));
        };
        let label = Some("npm login".to_owned());
        let (_, token) = auth
            .create_token(&identity.user, TokenAccess::ReadWrite, None, label)
            .await?;
        tracing::debug!(user = identity.user, "npm login");
        let doc = json!({ "ok": true, "id": format!("org.couchdb.user:{user}"), "rev": "1-0", "token": token });
        Ok(json_response(StatusCode::CREATED, doc.to_string()))
    }

    /// `npm logout`: revokes the token presented, if it is the caller's own.
    pub(super) async fn logout(&self, token: &str, ask: &Ask<'_>) -> Result<Response<Body>> {
        let auth = self.auth.as_ref().ok_or(NpmError::MethodNotAllowed)?;
        let mut headers = HeaderMap::new();
        let bearer =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| NpmError::InvalidPath)?;
        headers.insert(header::AUTHORIZATION, bearer);
        let presented = auth
            .authenticate(&headers)
            .await
            .ok()
            .flatten()
            .ok_or(NpmError::NotFound)?;
        let caller = ask.identity.as_ref().map(|id| id.user.as_str());
        let id = presented
            .token_id
            .filter(|_| caller == Some(presented.user.as_str()))
            .ok_or(NpmError::NotFound)?;
        auth.revoke_token(&id).await?;
        Ok(json_response(StatusCode::OK, r#"{"ok":true}"#))
    }

    pub(super) async fn dist_tags(
        &self,
        name: &PackageName,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Read)?;
        let (package, _) = self.load_hosted(name).await?.ok_or(NpmError::NotFound)?;
        Ok(json_response(
            StatusCode::OK,
            hosted::tags(&package).to_string(),
        ))
    }

    pub(super) async fn set_dist_tag(
        &self,
        name: &PackageName,
        tag: &str,
        body: Bytes,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Write)?;
        let version: String = serde_json::from_slice(&body)
            .map_err(|_| NpmError::BadRequest("body must be a JSON string: the version".into()))?;
        let now = self.now();
        let changed = self
            .modify(name, |package, _| {
                let package = package.ok_or(NpmError::NotFound)?;
                Ok(Some(hosted::set_tag(package, tag, &version, &now)?))
            })
            .await?;
        tags_response(changed.as_ref())
    }

    pub(super) async fn remove_dist_tag(
        &self,
        name: &PackageName,
        tag: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Write)?;
        let now = self.now();
        let changed = self
            .modify(name, |package, _| {
                let package = package.ok_or(NpmError::NotFound)?;
                Ok(Some(hosted::remove_tag(package, tag, &now)?))
            })
            .await?;
        tags_response(changed.as_ref())
    }

    /// `PUT /<name>`: a publish when the body carries a tarball, else an update of the
    /// hosted packument (deprecate, unpublish of one version).
    pub(super) async fn write_packument(
        &self,
        name: &PackageName,
        rev: Option<&str>,
        body: Bytes,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Write)?;
        let doc: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|_| NpmError::BadRequest("body is not a JSON object".into()))?;
        drop(body);
        if hosted::is_publish(&doc) {
            return self.publish(name, &doc).await;
        }
        let now = self.now();
        // The update is a whole document read earlier: if the package changed since, it
        // could silently drop a version published in between, so its revision must match.
        let rev = rev.or_else(|| doc.get("_rev").and_then(Value::as_str));
        let expected = rev.map(parse_rev).transpose()?;
        let expected = expected.ok_or_else(|| {
            NpmError::BadRequest("an update must name the revision it changes".into())
        })?;
        self.modify(name, |package, version| {
            let package = package.ok_or(NpmError::NotFound)?;
            if version != expected {
                return Err(NpmError::Conflict(
                    "the package changed since it was read; fetch it and retry".into(),
                ));
            }
            let updated = hosted::apply_update(package, &doc, &now)?;
            Ok((!hosted::is_empty(&updated)).then_some(updated))
        })
        .await?;
        Ok(json_response(StatusCode::OK, r#"{"ok":true}"#))
    }

    async fn publish(
        &self,
        name: &PackageName,
        doc: &Map<String, Value>,
    ) -> Result<Response<Body>> {
        let publish = hosted::parse_publish(doc, name)?;
        if self.load_hosted(name).await?.is_none() {
            self.ensure_not_upstream(name).await?;
        }
        let info = put_bytes(
            self.cache.blobs().as_ref(),
            publish.tarball.clone(),
            Expected::none(),
        )
        .await?;
        let file = HostedFile {
            digest: info.digest,
            size: info.size,
            version: publish.version.clone(),
        };
        let now = self.now();
        let version = publish.version.clone();
        let publish = std::sync::Mutex::new(Some(publish));
        self.modify(name, |existing, _| {
            let taken = publish
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let publish = match taken {
                Some(publish) => publish,
                None => hosted::parse_publish(doc, name)?,
            };
            Ok(Some(hosted::apply_publish(
                existing,
                name,
                publish,
                file.clone(),
                &now,
            )?))
        })
        .await?;
        tracing::info!(package = name.as_str(), version, "published");
        Ok(json_response(StatusCode::CREATED, r#"{"ok":true}"#))
    }

    /// A new private name must not shadow one that exists upstream, unless a rule allows it:
    /// that is how dependency confusion starts.
    async fn ensure_not_upstream(&self, name: &PackageName) -> Result<()> {
        let allowed = self.auth.as_ref().is_some_and(|auth| {
            auth.policy()
                .may_publish_over_upstream("npm", name.as_str())
        });
        if allowed {
            return Ok(());
        }
        match self.cache.ensure(self.packument_spec(name, true)).await {
            Ok(_) => Err(NpmError::Forbidden(format!(
                "{} exists on the upstream registry; publishing it here would shadow it (an access rule with publish_over_upstream = true allows it)",
                name.as_str()
            ))),
            Err(err) if err.is_not_found() => Ok(()),
            Err(err) => Err(NpmError::UpstreamCheck(err)),
        }
    }

    /// `DELETE /<name>/-rev/<rev>`: unpublishes the whole package.
    pub(super) async fn unpublish(
        &self,
        name: &PackageName,
        rev: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Write)?;
        parse_rev(rev)?;
        self.modify(name, |package, _| match package {
            Some(_) => Ok(None),
            None => Err(NpmError::NotFound),
        })
        .await?;
        tracing::info!(package = name.as_str(), "unpublished");
        Ok(json_response(StatusCode::OK, r#"{"ok":true}"#))
    }

    /// `DELETE /<name>/-/<file>/-rev/<rev>`: the tarball of a version already removed from
    /// the packument; its record went with the version, so only a check remains.
    pub(super) async fn delete_tarball(
        &self,
        name: &PackageName,
        file: &str,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>> {
        self.authorize(ask, name, Action::Write)?;
        if let Some((package, _)) = self.load_hosted(name).await? {
            if package.files.contains_key(file) {
                return Err(NpmError::BadRequest(format!(
                    "{file} still belongs to a published version"
                )));
            }
        }
        Ok(json_response(StatusCode::OK, r#"{"ok":true}"#))
    }

    fn now(&self) -> String {
        humantime::format_rfc3339_millis(self.cache.clock().now()).to_string()
    }
}

fn tags_response(changed: Option<&(HostedPackage, u64)>) -> Result<Response<Body>> {
    let (package, _) = changed.ok_or(NpmError::NotFound)?;
    Ok(json_response(
        StatusCode::OK,
        hosted::tags(package).to_string(),
    ))
}

fn hosted_key(name: &PackageName) -> String {
    format!("npm/hosted/{}", name.as_str())
}

/// The `_rev` of a hosted packument: its record version, in CouchDB's `N-hash` shape.
fn rev(version: u64) -> String {
    format!(
        "{version}-{}",
        &mirror_core::digest::sha256_of(&version.to_le_bytes()).hex()[..16]
    )
}

fn parse_rev(rev: &str) -> Result<u64> {
    rev.split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| NpmError::BadRequest(format!("invalid revision {rev:?}")))
}
