//! The registry token flow, basic auth and redirects, against a real HTTP server on a
//! loopback port that demands credentials and serves content from a [`FakeRegistry`].

use std::collections::HashSet;
use std::convert::Infallible;

use base64::Engine as _;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;

type HyperResponse = hyper::Response<Full<Bytes>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bearer,
    Basic,
}

/// A registry that wants credentials before it serves `content`.
#[derive(Debug)]
struct Guarded {
    mode: Mode,
    content: Arc<FakeRegistry>,
    /// What `/token` (bearer) or `/v2/` (basic) wants in `Authorization`, if anything.
    credentials: Option<String>,
    /// Sends blob GETs there with a 307, as registries send them to object storage.
    redirect_blobs_to: Option<String>,
    state: Mutex<GuardState>,
}

#[derive(Debug, Default)]
struct GuardState {
    base: String,
    valid_tokens: HashSet<String>,
    issued: usize,
    challenges: usize,
    scopes: Vec<String>,
}

impl Guarded {
    fn new(mode: Mode, credentials: Option<&str>) -> Arc<Self> {
        Arc::new(Guarded {
            mode,
            content: FakeRegistry::new(),
            credentials: credentials.map(basic_value),
            redirect_blobs_to: None,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state.lock().unwrap()
    }

    fn answer(&self, request: &hyper::Request<hyper::body::Incoming>) -> HyperResponse {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let path = request.uri().path();
        if path == "/token" {
            return self.token(
                request.uri().query().unwrap_or(""),
                authorization.as_deref(),
            );
        }
        if let Some(refusal) = self.refuse(path, authorization.as_deref()) {
            return refusal;
        }
        let target = request
            .uri()
            .path_and_query()
            .map_or("", |p| p.as_str())
            .trim_start_matches('/');
        if let (Some(storage), true) = (&self.redirect_blobs_to, path.contains("/blobs/")) {
            let digest = path.rsplit('/').next().unwrap_or("");
            let mut response = respond(StatusCode::TEMPORARY_REDIRECT, "");
            let location = format!("{storage}/storage/{digest}");
            response
                .headers_mut()
                .insert(header::LOCATION, location.parse().unwrap());
            return response;
        }
        let mut upstream_request = UpstreamRequest::get(target);
        upstream_request.method = request.method().clone();
        let (status, headers, body) = self.content.answer(&upstream_request);
        let mut response = respond(status, body);
        response.headers_mut().extend(headers);
        response
    }

    fn token(&self, query: &str, authorization: Option<&str>) -> HyperResponse {
        if self.credentials.is_some() && authorization != self.credentials.as_deref() {
            return respond(StatusCode::UNAUTHORIZED, "");
        }
        let mut state = self.state();
        state.issued += 1;
        let token = format!("tok-{}", state.issued);
        state.valid_tokens.insert(token.clone());
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

    fn refuse(&self, path: &str, authorization: Option<&str>) -> Option<HyperResponse> {
        let mut state = self.state();
        let challenge = match self.mode {
            Mode::Bearer => {
                let token = authorization.and_then(|a| a.strip_prefix("Bearer "));
                if token.is_some_and(|t| state.valid_tokens.contains(t)) {
                    return None;
                }
                let repo = crate::upstream::scope_of(path).unwrap_or_default();
                let error = if token.is_some() {
                    ",error=\"invalid_token\""
                } else {
                    ""
                };
                format!(
                    "Bearer realm=\"{}/token\",service=\"fake\",scope=\"{repo}\"{error}",
                    state.base
                )
            }
            Mode::Basic => {
                if authorization.is_some() && authorization == self.credentials.as_deref() {
                    return None;
                }
                "Basic realm=\"fake\"".to_owned()
            }
        };
        state.challenges += 1;
        let mut response = respond(StatusCode::UNAUTHORIZED, "");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
        Some(response)
    }
}

fn basic_value(user_password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
    format!("Basic {encoded}")
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> HyperResponse {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// Serves `answer` on a loopback port until the test ends; returns the base URL.
async fn serve<F>(answer: F) -> String
where
    F: Fn(&hyper::Request<hyper::body::Incoming>) -> HyperResponse + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = Arc::clone(&answer);
            let service = service_fn(move |request| {
                let response = answer(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    base
}

async fn start(guarded: &Arc<Guarded>) -> String {
    let server = Arc::clone(guarded);
    let base = serve(move |request| server.answer(request)).await;
    guarded.state().base = base.clone();
    base
}

fn mirror_of(base: &str, credentials: Option<(&str, &str)>) -> DockerMirror {
    let cache = Cache::builder(
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    )
    .build();
    let mut upstream = UpstreamConfig::new(base);
    if let Some((user, password)) = credentials {
        upstream = upstream.with_credentials(user, password);
    }
    let mut config = DockerConfig::default();
    config.upstreams.insert("guarded.test".into(), upstream);
    DockerMirror::new(cache, config).unwrap()
}

fn image(content: &FakeRegistry, repo: &str, layer: &[u8]) -> (Digest, Digest) {
    let layer = content.blob(layer);
    let manifest = content.manifest(repo, Some("v1"), OCI_MANIFEST, &image_manifest(&layer, 1));
    (manifest, layer)
}

#[tokio::test]
async fn bearer_tokens_are_fetched_cached_sent_up_front_and_renewed() {
    let registry = Guarded::new(Mode::Bearer, Some("reader:secret"));
    let (_, layer) = image(&registry.content, "team/app", b"app layer");
    image(&registry.content, "team/other", b"other layer");
    let base = start(&registry).await;
    let mirror = mirror_of(&base, Some(("reader", "secret")));

    let reply = get(&mirror, "/v2/guarded.test/team/app/manifests/v1").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = get(&mirror, &format!("/v2/guarded.test/team/app/blobs/{layer}")).await;
    assert_eq!(reply.bytes(), Bytes::from_static(b"app layer"));
    {
        let state = registry.state();
        assert_eq!(
            (state.challenges, state.issued),
            (1, 1),
            "one 401, one token"
        );
        assert_eq!(state.scopes, ["repository:team/app:pull"]);
    }

    let reply = get(&mirror, "/v2/guarded.test/team/other/manifests/v1").await;
    assert_eq!(reply.status, StatusCode::OK);
    {
        let state = registry.state();
        assert_eq!(
            state.challenges, 1,
            "the new scope's token was fetched up front"
        );
        assert_eq!(state.issued, 2);
    }

    registry.state().valid_tokens.clear();
    let reply = get(&mirror, "/v2/guarded.test/team/app/tags/list").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let state = registry.state();
    assert_eq!(
        (state.challenges, state.issued),
        (2, 3),
        "refused token renewed once"
    );
}

#[tokio::test]
async fn a_token_realm_refusing_the_mirror_is_denied() {
    let registry = Guarded::new(Mode::Bearer, Some("reader:secret"));
    image(&registry.content, "team/app", b"layer");
    let base = start(&registry).await;

    for credentials in [None, Some(("reader", "wrong"))] {
        let mirror = mirror_of(&base, credentials);
        let reply = get(&mirror, "/v2/guarded.test/team/app/manifests/v1").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(reply.error_code(), "DENIED");
    }
}

#[tokio::test]
async fn basic_upstreams_get_credentials_directly() {
    let registry = Guarded::new(Mode::Basic, Some("reader:secret"));
    let (manifest, _) = image(&registry.content, "team/app", b"layer");
    let base = start(&registry).await;

    let mirror = mirror_of(&base, Some(("reader", "secret")));
    let reply = get(&mirror, "/v2/guarded.test/team/app/manifests/v1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("docker-content-digest"), manifest.to_string());
    assert_eq!(
        registry.state().challenges,
        1,
        "later requests carried credentials"
    );
    assert_eq!(registry.state().issued, 0);

    let anonymous = mirror_of(&base, None);
    let reply = get(&anonymous, "/v2/guarded.test/team/app/manifests/v1").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "DENIED");
}

#[tokio::test]
async fn credentials_are_not_forwarded_to_another_origin() {
    let storage_saw = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let seen = Arc::clone(&storage_saw);
    let storage = serve(move |request| {
        let authorization = request.headers().get(header::AUTHORIZATION);
        seen.lock().unwrap().push(
            authorization
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
        respond(StatusCode::OK, "stored layer")
    })
    .await;
    let registry = Arc::new(Guarded {
        redirect_blobs_to: Some(storage),
        ..Arc::into_inner(Guarded::new(Mode::Bearer, None)).unwrap()
    });
    let (_, layer) = image(&registry.content, "team/app", b"stored layer");
    let base = start(&registry).await;
    let mirror = mirror_of(&base, None);

    let reply = get(&mirror, &format!("/v2/guarded.test/team/app/blobs/{layer}")).await;
    assert_eq!(reply.bytes(), Bytes::from_static(b"stored layer"));
    assert_eq!(
        registry.state().issued,
        1,
        "the registry itself wanted a token"
    );
    assert_eq!(
        *storage_saw.lock().unwrap(),
        [None],
        "no Authorization at the storage origin"
    );
}
