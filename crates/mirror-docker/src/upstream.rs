//! [`RegistryUpstream`]: an [`Upstream`] that speaks the registry authentication protocols.
//!
//! Registries answer an anonymous request with a 401 and a challenge. For `Basic`, the
//! configured credentials are sent directly. For `Bearer` (Docker Hub, GHCR, Quay, the
//! distribution registry with token auth) a token is fetched from the challenge's `realm`
//! for its `service` and `scope` — anonymously, or with the credentials as basic auth — and
//! the request is sent again with it.
//!
//! Tokens are cached per scope (one repository's pull access) until shortly before their
//! `expires_in`, and sent up front on later requests: once the registry's realm is known, a
//! request for a new repository fetches its token first instead of collecting another 401.
//! A token refused later (`invalid_token`, or any 401 while one was sent) is dropped and
//! fetched again once. Concurrent requests for one scope wait for one token fetch.
//!
//! Credentials never leave the configured origins: the registry's requests carry them in
//! `Authorization`, which the HTTP client strips when a redirect (to object storage, say)
//! changes the host or port, and the token realm receives them only because the registry
//! named it in its own challenge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use http::{header, HeaderValue, StatusCode};
use mirror_core::{Error, Result, Upstream, UpstreamRequest, UpstreamResponse};
use serde::Deserialize;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use crate::challenge::{challenges, Challenge};

/// Lifetime assumed for a token that states none, and the least the specification allows.
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Largest token response read.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;
/// Token slots kept before expired ones are pruned.
const MAX_TOKEN_SLOTS: usize = 4096;

/// A remote registry reached through another [`Upstream`] (usually
/// [`HttpUpstream`](mirror_core::HttpUpstream)), adding basic credentials or bearer tokens
/// from the registry token flow as each registry asks.
pub struct RegistryUpstream {
    inner: Arc<dyn Upstream>,
    credentials: Option<(String, String)>,
    /// For token realms; made when a registry first asks for a token.
    realm_client: OnceLock<reqwest::Client>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
}

/// What this registry was last seen to ask for.
#[derive(Debug, Clone)]
enum Scheme {
    Unknown,
    Basic,
    Bearer(Realm),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Realm {
    url: Url,
    service: Option<String>,
}

#[derive(Clone)]
struct Token {
    value: String,
    renew_at: Instant,
}

/// The `Authorization` a request was sent with.
struct Sent {
    value: HeaderValue,
    /// The bearer token, to recognise it if it is refused.
    token: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl std::fmt::Debug for RegistryUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryUpstream")
            .field("inner", &self.inner)
            .field("username", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

impl RegistryUpstream {
    /// Wraps `inner`, which reaches the registry's origin; anonymous until
    /// [`with_credentials`](Self::with_credentials).
    pub fn new(inner: Arc<dyn Upstream>) -> Result<Self> {
        Ok(RegistryUpstream {
            inner,
            credentials: None,
            realm_client: OnceLock::new(),
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Authenticates as `username`: basic auth where the registry asks for it, and at the
    /// token realm where it asks for tokens.
    pub fn with_credentials(mut self, username: &str, password: &str) -> Self {
        self.credentials = Some((username.to_owned(), password.to_owned()));
        self
    }

    fn realm_client(&self) -> Result<&reqwest::Client> {
        if let Some(client) = self.realm_client.get() {
            return Ok(client);
        }
        let built = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("registry-mirror/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Error::upstream("cannot build token client", err))?;
        Ok(self.realm_client.get_or_init(|| built))
    }

    fn basic(&self) -> Option<HeaderValue> {
        let (user, password) = self.credentials.as_ref()?;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    fn scheme(&self) -> Scheme {
        self.scheme
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_scheme(&self, scheme: Scheme) {
        *self.scheme.lock().unwrap_or_else(PoisonError::into_inner) = scheme;
    }

    /// The credential to send up front, from what the registry asked for before.
    async fn up_front(&self, scope: Option<&str>) -> Result<Option<Sent>> {
        match self.scheme() {
            Scheme::Unknown => Ok(None),
            Scheme::Basic => Ok(self.basic().map(|value| Sent { value, token: None })),
            Scheme::Bearer(realm) => {
                let key = scope.unwrap_or_default();
                let token = self.token(&realm, key, scope, None).await?;
                Ok(Some(bearer(token)?))
            }
        }
    }

    /// Answers a 401: the credential to retry with, or `None` to pass the 401 on.
    async fn answer(
        &self,
        headers: &http::HeaderMap,
        scope: Option<&str>,
        sent: Option<&Sent>,
    ) -> Result<Option<Sent>> {
        let offered = challenges(headers);
        let bearer_challenge = offered.iter().find_map(|challenge| match challenge {
            Challenge::Bearer {
                realm,
                service,
                scope,
                error,
            } => Some((realm, service, scope, error)),
            Challenge::Basic => None,
        });
        if let Some((realm, service, challenge_scope, error)) = bearer_challenge {
            let realm = Realm {
                url: realm_url(realm)?,
                service: service.clone(),
            };
            self.set_scheme(Scheme::Bearer(realm.clone()));
            let refused = sent.and_then(|sent| sent.token.as_deref());
            tracing::debug!(upstream = self.inner.name(), error = ?error, "bearer challenge");
            let key = scope.or(challenge_scope.as_deref()).unwrap_or_default();
            let wanted = challenge_scope.as_deref().or(scope);
            let token = self.token(&realm, key, wanted, refused).await?;
            return Ok(Some(bearer(token)?));
        }
        let basic_offered = offered.contains(&Challenge::Basic);
        let sent_basic = sent.is_some_and(|sent| sent.token.is_none());
        if basic_offered && !sent_basic {
            if let Some(value) = self.basic() {
                self.set_scheme(Scheme::Basic);
                return Ok(Some(Sent { value, token: None }));
            }
        }
        Ok(None)
    }

    /// A valid token for `key`, fetched unless cached; `refused` is a token upstream just
    /// turned down, which is not reused even if it looks unexpired.
    async fn token(
        &self,
        realm: &Realm,
        key: &str,
        scope: Option<&str>,
        refused: Option<&str>,
    ) -> Result<String> {
        let slot = self.slot(key);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref() {
            let usable = Instant::now() < token.renew_at && Some(token.value.as_str()) != refused;
            if usable {
                return Ok(token.value.clone());
            }
        }
        let token = self.fetch_token(realm, scope).await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Option<Token>>> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= MAX_TOKEN_SLOTS && !tokens.contains_key(key) {
            let now = Instant::now();
            tokens.retain(|_, slot| match slot.try_lock() {
                Ok(token) => token.as_ref().is_some_and(|t| now < t.renew_at),
                Err(_) => true,
            });
        }
        Arc::clone(tokens.entry(key.to_owned()).or_default())
    }

    async fn fetch_token(&self, realm: &Realm, scope: Option<&str>) -> Result<Token> {
        let mut url = realm.url.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &realm.service {
                query.append_pair("service", service);
            }
            for scope in scope.into_iter().flat_map(str::split_ascii_whitespace) {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self.realm_client()?.get(url);
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let span = tracing::debug_span!("token", realm = %realm.url);
        let response = request.send().instrument(span).await.map_err(token_error)?;
        let status = response.status();
        if !status.is_success() {
            let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            tracing::debug!(%status, "token request refused");
            return Err(Error::UpstreamStatus { status });
        }
        let body = read_limited(response).await?;
        parse_token(&body)
    }
}

fn token_error(err: reqwest::Error) -> Error {
    if err.is_timeout() {
        Error::UpstreamTimeout
    } else {
        Error::upstream("token request failed", err)
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(token_error)? {
        if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
            return Err(Error::upstream(
                "token response too large",
                "over the limit",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_token(body: &[u8]) -> Result<Token> {
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|err| Error::upstream("malformed token response", err))?;
    let value = parsed
        .token
        .or(parsed.access_token)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Error::upstream("token response without a token", "no token field"))?;
    let lifetime = parsed
        .expires_in
        .map_or(MIN_TOKEN_LIFETIME, Duration::from_secs)
        .max(MIN_TOKEN_LIFETIME);
    // Renew a little early so that a token never expires between check and use.
    let renew_at = Instant::now() + lifetime - lifetime / 10;
    Ok(Token { value, renew_at })
}

/// The token a token response carries, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn token_of(body: &[u8]) -> Option<String> {
    parse_token(body).ok().map(|token| token.value)
}

fn realm_url(realm: &str) -> Result<Url> {
    let url = Url::parse(realm).map_err(|err| Error::upstream("bad token realm", err))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::upstream("bad token realm", "not an http(s) url"));
    }
    Ok(url)
}

fn bearer(token: String) -> Result<Sent> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|err| Error::upstream("token is not a valid header value", err))?;
    value.set_sensitive(true);
    Ok(Sent {
        value,
        token: Some(token),
    })
}

fn with_authorization(request: &UpstreamRequest, sent: Option<&Sent>) -> UpstreamRequest {
    let mut request = request.clone();
    if let Some(sent) = sent {
        request
            .headers
            .insert(header::AUTHORIZATION, sent.value.clone());
    }
    request
}

/// The pull scope of the repository a distribution API path names, such as
/// `repository:library/nginx:pull` for `v2/library/nginx/manifests/latest`.
pub(crate) fn scope_of(target: &str) -> Option<String> {
    let path = match Url::parse(target) {
        Ok(url) => url.path().to_owned(),
        Err(_) => target
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segments.iter().position(|s| *s == "v2")? + 1;
    let end = segments
        .iter()
        .rposition(|s| matches!(*s, "manifests" | "blobs" | "tags" | "referrers"))?;
    (end > start).then(|| format!("repository:{}:pull", segments[start..end].join("/")))
}

#[async_trait]
impl Upstream for RegistryUpstream {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse> {
        let scope = scope_of(&request.target);
        let sent = self.up_front(scope.as_deref()).await?;
        let response = self
            .inner
            .send(with_authorization(&request, sent.as_ref()))
            .await?;
        if response.status != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        match self
            .answer(&response.headers, scope.as_deref(), sent.as_ref())
            .await?
        {
            Some(retry) => {
                drop(response);
                self.inner
                    .send(with_authorization(&request, Some(&retry)))
                    .await
            }
            None => Ok(response),
        }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_of_api_paths() {
        let scope = |t| scope_of(t);
        assert_eq!(
            scope("v2/library/nginx/manifests/latest").as_deref(),
            Some("repository:library/nginx:pull")
        );
        assert_eq!(
            scope("v2/a/blobs/sha256:00").as_deref(),
            Some("repository:a:pull")
        );
        assert_eq!(
            scope("http://h:5/v2/o/r/tags/list?n=1&last=x").as_deref(),
            Some("repository:o/r:pull")
        );
        assert_eq!(scope("v2/").as_deref(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_expire_after_their_lifetime() {
        let token = parse_token(br#"{"token":"t","expires_in":300}"#).unwrap();
        assert_eq!(token.value, "t");
        tokio::time::advance(Duration::from_secs(269)).await;
        assert!(Instant::now() < token.renew_at);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(Instant::now() >= token.renew_at);

        let short = parse_token(br#"{"access_token":"a","expires_in":5}"#).unwrap();
        assert_eq!(short.value, "a");
        assert!(
            short.renew_at > Instant::now() + Duration::from_secs(50),
            "at least 60 s"
        );
        assert!(parse_token(br#"{"token":""}"#).is_err());
        assert!(parse_token(b"<html>").is_err());
    }
}
