//! Composes the stores, the cache and the ecosystem services on one listener.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, StatusCode};
use mirror_core::auth::Auth;
use mirror_core::{BlobStore, Cache, FsBlobStore, HotBlobs, RedbMetadataStore};

/// Largest blob the in-memory cache holds: package documents and small artifacts.
const MEMORY_CACHE_MAX_ENTRY: u64 = 1024 * 1024;
use mirror_docker::DockerMirror;
use mirror_maven::MavenMirror;
use mirror_npm::NpmMirror;
use mirror_pypi::PypiMirror;
use tracing::Instrument;

use crate::config::Config;

/// Everything the server holds.
#[derive(Debug, Clone)]
pub(crate) struct App {
    cache: Cache,
    pub(crate) auth: Auth,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot prepare data directory {0}")]
    DataDir(String, #[source] std::io::Error),
    #[error("cannot open storage")]
    Storage(#[from] mirror_core::Error),
    #[error("cannot set up npm")]
    Npm(#[from] mirror_npm::NpmError),
    #[error("cannot set up pypi")]
    Pypi(#[from] mirror_pypi::PypiError),
    #[error("cannot set up maven")]
    Maven(#[from] mirror_maven::MavenError),
    #[error("cannot set up container images")]
    Docker(#[from] mirror_docker::DockerError),
    #[error("cannot listen on {0}")]
    Listen(std::net::SocketAddr, #[source] std::io::Error),
}

/// The metadata store of a data directory, shared with CLI processes while a server runs.
pub(crate) fn open_metadata(config: &Config) -> Result<Arc<RedbMetadataStore>, StartError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|err| StartError::DataDir(dir.display().to_string(), err))?;
    Ok(Arc::new(RedbMetadataStore::open(
        dir.join("metadata.redb"),
    )?))
}

/// Users and tokens of a data directory, with the configured access rules.
pub(crate) fn open_auth(config: &Config) -> Result<Auth, StartError> {
    Ok(Auth::new(open_metadata(config)?, config.auth.clone()))
}

/// Opens the stores under the data directory and builds the router.
pub(crate) fn build(config: &Config) -> Result<(Router, App), StartError> {
    let dir = &config.data_dir;
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool)
        .map_err(|err| StartError::DataDir(dir.display().to_string(), err))?;
    let disk: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.join("blobs"))?);
    let blobs: Arc<dyn BlobStore> = if config.memory_cache_bytes == 0 {
        disk
    } else {
        Arc::new(HotBlobs::new(
            disk,
            config.memory_cache_bytes,
            MEMORY_CACHE_MAX_ENTRY,
        ))
    };
    let metadata = open_metadata(config)?;
    let auth = Auth::new(metadata.clone(), config.auth.clone());
    let cache = Cache::builder(blobs, metadata)
        .spool_dir(spool)
        .negative_ttl(config.negative_ttl)
        .build();
    let npm = NpmMirror::new(cache.clone(), config.npm())?.with_auth(auth.clone());
    let pypi = PypiMirror::new(cache.clone(), config.pypi())?.with_auth(auth.clone());
    let docker = DockerMirror::new(cache.clone(), config.docker())?.with_auth(auth.clone());
    let maven = MavenMirror::new(cache.clone(), config.maven.clone())?.with_auth(auth.clone());
    let app = App { cache, auth };

    let router = Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .nest_service("/npm", npm)
        .nest_service("/pypi", pypi)
        .nest_service("/maven", maven)
        // Registries must sit at the host root; the service sees the whole `/v2...` path.
        .route_service("/v2", docker.clone())
        .route_service("/v2/", docker.clone())
        .route_service("/v2/{*path}", docker)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(app.clone());
    Ok((router, app))
}

async fn health() -> &'static str {
    "ok\n"
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found\n")
}

/// Prometheus text exposition of the cache counters.
async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let m = app.cache.metrics().snapshot();
    let counters = [
        (
            "registry_mirror_cache_hits_total",
            "Answers served from the cache.",
            m.hits,
        ),
        (
            "registry_mirror_cache_misses_total",
            "Bodies fetched from upstream.",
            m.misses,
        ),
        (
            "registry_mirror_cache_revalidated_total",
            "Cached copies confirmed by upstream.",
            m.revalidated,
        ),
        (
            "registry_mirror_cache_stale_total",
            "Stale copies served because upstream failed.",
            m.stale,
        ),
        (
            "registry_mirror_upstream_requests_total",
            "Requests sent upstream.",
            m.upstream_requests,
        ),
        (
            "registry_mirror_upstream_failures_total",
            "Fetches that failed with nothing cached.",
            m.upstream_failures,
        ),
        (
            "registry_mirror_upstream_bytes_total",
            "Body bytes received from upstream.",
            m.upstream_bytes,
        ),
    ];
    let failed_logins = (
        "registry_mirror_auth_failures_total",
        "Requests refused for a wrong credential.",
        app.auth.failed_logins(),
    );
    let mut text = String::new();
    for (name, help, value) in counters.into_iter().chain([failed_logins]) {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// One span per request; status and latency when the response head is ready.
async fn log_request(request: Request, next: Next) -> Response {
    let span =
        tracing::debug_span!("request", method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    span.in_scope(|| tracing::debug!(status, latency_ms, "response"));
    response
}
