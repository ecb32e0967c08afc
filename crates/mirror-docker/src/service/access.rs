//! Who is calling, what they may do, and the token endpoint that container clients log in
//! through.
//!
//! Docker, podman and skopeo send no credential until a `401` tells them how: a
//! `WWW-Authenticate: Bearer realm=...` challenge sends them to the token endpoint with
//! basic credentials, and they come back with a bearer token. The endpoint is served by
//! this service itself (at `/v2/_token`), so an embedder gets it with the registry. Plain
//! basic credentials (a password or an `rmt_` API token) are accepted on every call too,
//! for curl and scripts.

use http::{header, request::Parts, HeaderValue, Method, Response, StatusCode};
use mirror_core::auth::{Access, Action, AuthError, Identity};
use mirror_core::http_util::base_url;
use mirror_core::Body;
use serde_json::json;

use super::{json_response, Inner, Result};
use crate::error::DockerError;
use crate::path::{RepoName, Route, TOKEN_SEGMENT};
use crate::token::{Claims, Grant, TokenSigner};

/// The sender of a request.
#[derive(Debug, Clone)]
pub(super) enum Caller {
    /// No credential.
    Anonymous,
    /// A user's password or API token, sent as basic credentials or an `rmt_` bearer token.
    User(Identity),
    /// A token from this registry's token endpoint.
    Signed(Claims),
}

impl Caller {
    /// True when the caller showed a user's credential, or a token issued to a user.
    pub(super) fn is_signed_in(&self) -> bool {
        self.identity().is_some()
    }

    fn identity(&self) -> Option<Identity> {
        match self {
            Caller::Anonymous => None,
            Caller::User(identity) => Some(identity.clone()),
            Caller::Signed(claims) => claims.identity(),
        }
    }
}

impl Inner {
    /// Who sent the request. A wrong credential is a 401 even where anonymous access would
    /// do, so that a mistyped password never silently turns into an anonymous pull.
    pub(super) async fn identify(&self, parts: &Parts) -> Result<Caller> {
        let Some(auth) = &self.auth else {
            return Ok(Caller::Anonymous);
        };
        let value = parts.headers.get(header::AUTHORIZATION);
        if is_empty_basic(value) {
            return Ok(Caller::Anonymous);
        }
        let bearer = value
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && !token.trim().starts_with("rmt_")
            })
            .map(|(_, token)| token.trim());
        if let Some(token) = bearer {
            let signer = self.signer().await?;
            return match signer.verify(token, self.now()) {
                Some(claims) => Ok(Caller::Signed(claims)),
                None => Err(DockerError::Unauthorized(
                    "invalid or expired token".to_owned(),
                )),
            };
        }
        match auth.authenticate(&parts.headers).await {
            Ok(Some(identity)) => Ok(Caller::User(identity)),
            Ok(None) => Ok(Caller::Anonymous),
            Err(AuthError::UnsupportedScheme) => Err(DockerError::Unauthorized(
                "unsupported authorization scheme".to_owned(),
            )),
            Err(_) => Err(DockerError::Unauthorized("invalid credentials".to_owned())),
        }
    }

    /// Checks that the caller may do `action` on the repository `name`.
    pub(super) fn authorize(&self, caller: &Caller, name: &RepoName, action: Action) -> Result<()> {
        self.authorize_to(caller, name, action, verb(action))
    }

    /// Like [`authorize`](Self::authorize), with the verb a refusal names (`delete from`
    /// is a write as much as `push to`, but a user deleting should not read "push").
    pub(super) fn authorize_to(
        &self,
        caller: &Caller,
        name: &RepoName,
        action: Action,
        verb: &str,
    ) -> Result<()> {
        let Some(auth) = &self.auth else {
            return match action {
                Action::Read => Ok(()),
                Action::Write => Err(DockerError::Unsupported(
                    "pushes need user accounts, and this registry was set up without them",
                )),
            };
        };
        let access = match caller {
            Caller::Signed(claims) => signed_access(claims, name, action),
            other => auth.check(other.identity().as_ref(), "docker", name.as_str(), action),
        };
        match access {
            Access::Granted => Ok(()),
            Access::NeedsCredentials => Err(DockerError::Unauthorized(format!(
                "authentication required to {verb} {name}"
            ))),
            Access::Forbidden => {
                let user = caller
                    .identity()
                    .map_or("anonymous".to_owned(), |id| id.user);
                Err(DockerError::Denied(format!("{user} may not {verb} {name}")))
            }
        }
    }

    /// Whether the caller may pull from `name` as a side effect of another request (a
    /// mount source, a catalog entry). A token is read for who it names rather than the
    /// repositories it was scoped to, since clients scope tokens to the request's own
    /// repository.
    pub(super) fn may_read(&self, caller: &Caller, name: &RepoName) -> bool {
        if self.authorize(caller, name, Action::Read).is_ok() {
            return true;
        }
        match (caller, &self.auth) {
            (Caller::Signed(claims), Some(auth)) => {
                let identity = claims.identity();
                auth.check(identity.as_ref(), "docker", name.as_str(), Action::Read)
                    == Access::Granted
            }
            _ => false,
        }
    }

    /// `GET /v2/`: a `401` with the challenge until the client shows a credential, so that
    /// clients learn where to log in before they push (container clients only send
    /// credentials after such a challenge). A mirror with nothing to log in for (no private
    /// repositories, anonymous reads) answers `200` to everyone, as a plain mirror does.
    pub(super) fn base(&self, caller: &Caller) -> Result<Response<Body>> {
        let login_useful = self.auth.as_ref().is_some_and(|auth| {
            !self.config.private_repositories.is_empty() || !auth.policy().anonymous_read
        });
        if login_useful && matches!(caller, Caller::Anonymous) {
            return Err(DockerError::Unauthorized(
                "log in to push; anonymous clients may fetch an anonymous token".to_owned(),
            ));
        }
        Ok(super::base_response())
    }

    /// `GET /v2/_token?service=...&scope=repository:<name>:pull,push`: a token granting
    /// each requested action the caller may do, and silently leaving out the others (the
    /// API call that needs one then answers 401 or 403).
    pub(super) async fn issue_token(
        &self,
        parts: &Parts,
        caller: &Caller,
    ) -> Result<Response<Body>> {
        if self.auth.is_none() {
            return Err(DockerError::NotServed(
                "this registry was set up without user accounts",
            ));
        }
        if parts.method != Method::GET {
            return Err(DockerError::Unsupported(
                "the token endpoint answers GET only",
            ));
        }
        if let Caller::Signed(_) = caller {
            // A token may not buy a newer one, or one stolen token would never expire.
            return Err(DockerError::Unauthorized(
                "log in with a password or an API token, not a bearer token".to_owned(),
            ));
        }
        let query = parts.uri.query().unwrap_or_default();
        let access = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == "scope")
            .flat_map(|(_, scope)| {
                let scopes: Vec<String> = scope.split(' ').map(str::to_owned).collect();
                scopes
            })
            .filter_map(|scope| self.grant(caller, &scope))
            .collect();
        let ttl_ms = u64::try_from(self.config.token_ttl.as_millis()).unwrap_or(u64::MAX);
        let now = self.now();
        let claims = Claims {
            sub: caller.identity().map(|id| id.user),
            admin: caller.identity().is_some_and(|id| id.admin),
            exp: now.saturating_add(ttl_ms),
            access,
        };
        let token = self.signer().await?.sign(&claims);
        let issued_at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now);
        let doc = json!({
            "token": token,
            "access_token": token,
            "expires_in": ttl_ms / 1000,
            "issued_at": humantime::format_rfc3339_seconds(issued_at).to_string(),
        });
        let mut response = json_response(StatusCode::OK, doc.to_string());
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    /// What the caller gets of one `repository:<name>:<actions>` scope.
    fn grant(&self, caller: &Caller, scope: &str) -> Option<Grant> {
        let (kind_and_name, actions) = scope.rsplit_once(':')?;
        let name = RepoName::parse(kind_and_name.strip_prefix("repository:")?).ok()?;
        let wants = |wanted: &[&str]| actions.split(',').any(|a| wanted.contains(&a));
        let may = |action| self.authorize(caller, &name, action).is_ok();
        let push = wants(&["push", "delete", "*"])
            && self.config.is_private(name.as_str())
            && may(Action::Write);
        Some(Grant {
            pull: wants(&["pull", "*"]) && may(Action::Read),
            push,
            name: name.as_str().to_owned(),
        })
    }

    /// The key tokens are signed with, read (or created) once.
    async fn signer(&self) -> Result<&TokenSigner> {
        let store = self.cache.metadata().as_ref();
        Ok(self
            .signer
            .get_or_try_init(|| TokenSigner::shared(store))
            .await?)
    }

    /// The `WWW-Authenticate` challenge that sends a client to the token endpoint, scoped to
    /// what the refused request needed.
    pub(super) fn challenge(&self, parts: &Parts) -> Option<HeaderValue> {
        self.auth.as_ref()?;
        let base = base_url(
            self.config.public_url.as_deref(),
            &parts.headers,
            &parts.uri,
            "",
        );
        let service = base
            .split_once("://")
            .map_or(base.as_str(), |(_, host)| host);
        let mut value = format!("Bearer realm=\"{base}/v2/{TOKEN_SEGMENT}\",service=\"{service}\"");
        if let Some(name) = crate::path::route(parts.uri.path())
            .ok()
            .and_then(route_name)
        {
            let actions = if parts.method == Method::GET || parts.method == Method::HEAD {
                "pull"
            } else {
                "pull,push"
            };
            value.push_str(&format!(",scope=\"repository:{name}:{actions}\""));
        }
        HeaderValue::from_str(&value).ok()
    }
}

/// A signed token grants what it names; one that does not name the repository sends the
/// client back for a new token (401), one that names it without the action is a refusal.
/// `Basic` with an empty user name and password, which clients built on Go's registry
/// libraries (the OCI conformance suite among them) send when they have no credentials:
/// the same as sending none.
fn is_empty_basic(value: Option<&HeaderValue>) -> bool {
    use base64::Engine as _;
    value
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .is_some_and(|(scheme, payload)| {
            scheme.eq_ignore_ascii_case("basic")
                && base64::engine::general_purpose::STANDARD
                    .decode(payload.trim())
                    .is_ok_and(|decoded| decoded == b":")
        })
}

fn signed_access(claims: &Claims, name: &RepoName, action: Action) -> Access {
    let granted = claims.grant(name.as_str()).map(|grant| match action {
        Action::Read => grant.pull,
        Action::Write => grant.push,
    });
    match granted {
        Some(true) => Access::Granted,
        Some(false) if claims.sub.is_some() => Access::Forbidden,
        Some(false) | None => Access::NeedsCredentials,
    }
}

fn route_name(route: Route) -> Option<RepoName> {
    match route {
        Route::Manifest(name, _)
        | Route::Blob(name, _)
        | Route::Upload(name, _)
        | Route::Tags(name)
        | Route::Referrers(name, _) => Some(name),
        Route::Base | Route::Catalog | Route::Token => None,
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Read => "pull",
        Action::Write => "push to",
    }
}
