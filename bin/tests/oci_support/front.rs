//! An HTTP front for the upstream registry, in the test process: it forwards every request
//! to the registry and records it, so tests can count exactly what the mirror asked
//! upstream for; in bearer mode it also acts as a registry that demands tokens from its own
//! token realm, as Docker Hub and GHCR do.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use super::client;

/// What the front demands before it forwards a request.
#[derive(Debug, Clone)]
pub(crate) enum FrontMode {
    /// Nothing: a plain counting proxy.
    Open,
    /// A bearer token from `/token`, which wants these basic credentials (`user:password`).
    Bearer { realm_credentials: String },
}

/// A running front; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub(crate) struct Front {
    /// `127.0.0.1:PORT`.
    pub(crate) host: String,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    backend: String,
    mode: FrontMode,
    client: reqwest::Client,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `METHOD /path?query` of every request forwarded to the registry.
    forwarded: Vec<String>,
    /// Requests answered with a 401 challenge.
    challenged: usize,
    /// Tokens issued, and the scopes asked for.
    tokens: HashSet<String>,
    scopes: Vec<String>,
}

impl Front {
    /// Starts a front for the registry at `backend` (`http://host:port`).
    pub(crate) async fn start(backend: &str, mode: FrontMode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the front");
        let host = listener.local_addr().expect("front address").to_string();
        let shared = Arc::new(Shared {
            backend: backend.trim_end_matches('/').to_owned(),
            mode,
            client: client(),
            state: Mutex::default(),
        });
        let serving = Arc::clone(&shared);
        let realm = format!("http://{host}/token");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (shared, realm) = (Arc::clone(&serving), realm.clone());
                let service = service_fn(move |request| {
                    let (shared, realm) = (Arc::clone(&shared), realm.clone());
                    async move { Ok::<_, Infallible>(shared.answer(request, &realm).await) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Front { host, shared }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Every request forwarded so far, as `METHOD /path?query`.
    pub(crate) fn forwarded(&self) -> Vec<String> {
        self.shared.state().forwarded.clone()
    }

    /// How many forwarded requests were exactly `METHOD /path`.
    pub(crate) fn count(&self, method: &str, path: &str) -> usize {
        let wanted = format!("{method} {path}");
        self.forwarded().iter().filter(|r| **r == wanted).count()
    }

    pub(crate) fn challenged(&self) -> usize {
        self.shared.state().challenged
    }

    pub(crate) fn tokens_issued(&self) -> usize {
        self.shared.state().tokens.len()
    }

    pub(crate) fn scopes(&self) -> Vec<String> {
        self.shared.state().scopes.clone()
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("front state")
    }

    async fn answer(&self, request: Request<Incoming>, realm: &str) -> Response<Full<Bytes>> {
        if request.uri().path() == "/token" {
            return self.token(&request);
        }
        if let Some(challenge) = self.challenge(&request, realm) {
            return challenge;
        }
        self.forward(request).await
    }

    fn token(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let FrontMode::Bearer { realm_credentials } = &self.mode else {
            return respond(StatusCode::NOT_FOUND, "");
        };
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(realm_credentials)
        );
        let given = request.headers().get(header::AUTHORIZATION);
        if given.and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return respond(StatusCode::UNAUTHORIZED, "");
        }
        let query = request.uri().query().unwrap_or_default();
        let mut state = self.state();
        let token = format!("token-{}", state.tokens.len() + 1);
        state.tokens.insert(token.clone());
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if key == "scope" {
                state.scopes.push(value.into_owned());
            }
        }
        respond(
            StatusCode::OK,
            json!({"token": token, "expires_in": 300}).to_string(),
        )
    }

    /// A 401 with a bearer challenge, unless the request carries a token issued here.
    fn challenge(&self, request: &Request<Incoming>, realm: &str) -> Option<Response<Full<Bytes>>> {
        let FrontMode::Bearer { .. } = &self.mode else {
            return None;
        };
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut state = self.state();
        if token.is_some_and(|t| state.tokens.contains(t)) {
            return None;
        }
        state.challenged += 1;
        let scope = scope_of(request.uri().path());
        let challenge =
            format!("Bearer realm=\"{realm}\",service=\"front.test\",scope=\"{scope}\"");
        let mut response = respond(StatusCode::UNAUTHORIZED, "");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            challenge.parse().expect("a valid challenge header"),
        );
        Some(response)
    }

    async fn forward(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        self.state()
            .forwarded
            .push(format!("{} {target}", request.method()));
        let mut upstream = self.client.request(
            request.method().clone(),
            format!("{}{target}", self.backend),
        );
        for (name, value) in request.headers() {
            if name != header::HOST && name != header::AUTHORIZATION {
                upstream = upstream.header(name, value);
            }
        }
        let Ok(answer) = upstream.send().await else {
            return respond(StatusCode::BAD_GATEWAY, "registry unreachable");
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let body = answer.bytes().await.unwrap_or_default();
        let mut response = respond(status, body);
        for (name, value) in &headers {
            if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                response.headers_mut().insert(name, value.clone());
            }
        }
        response
    }
}

fn scope_of(path: &str) -> String {
    let repo = path
        .trim_start_matches("/v2/")
        .rsplit_once(['/'])
        .map(|(rest, _)| rest)
        .and_then(|rest| {
            ["/manifests", "/blobs", "/tags"]
                .iter()
                .find_map(|marker| rest.strip_suffix(marker))
        })
        .unwrap_or_default();
    format!("repository:{repo}:pull")
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}
