//! An OCI / Docker registry pull-through mirror and private registry as a tower
//! [`Service`](tower::Service).
//!
//! [`DockerMirror`] serves the read side of the OCI distribution API (`/v2/`, manifests and
//! blobs by tag or digest, tag listings, the referrers API) for several upstream registries
//! at once, caching through [`mirror_core::Cache`]:
//!
//! - manifests by digest and blobs are immutable: fetched once, verified against their
//!   digest while they stream to the first client, single flight;
//! - tags are revalidated after [`DockerConfig::tag_ttl`] with a `HEAD` (which does not count
//!   against Docker Hub's pull limit), and served stale when upstream fails or rate-limits;
//! - the upstream is Docker Hub by default (one-part names map to `library/`), or any
//!   configured registry selected by containerd's `ns=` parameter or a path prefix
//!   (`/v2/ghcr.io/org/app/...`). Requests select among configured registries only;
//! - [`RegistryUpstream`] does the registry token flow (and basic auth) for each upstream.
//!
//! Repository names matching [`DockerConfig::private_repositories`] (`private/*` by default)
//! are a private registry instead, served from the same stores and never from upstream:
//! chunked, monolithic and mounted blob uploads that stream to storage and are checked
//! against their sha256 or sha512 digest before they become visible, manifests checked for
//! the blobs they reference, tags, the catalog, referrers and (when
//! [`DockerConfig::allow_delete`]) deletes. Pushes need a credential:
//! [`DockerMirror::with_auth`] hands it the users, tokens and access rules of
//! [`mirror_core::auth::Auth`], and the service then answers `docker login` itself, with a
//! token endpoint at `/v2/_token` that issues short-lived signed tokens.
//!
//! Registries must sit at the root of their host, so the service sees whole paths and is
//! routed `/v2` and everything under it:
//!
//! ```no_run
//! use std::sync::Arc;
//! use mirror_core::{Cache, MemoryBlobStore, MemoryMetadataStore};
//! use mirror_docker::{DockerConfig, DockerMirror};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), Arc::new(MemoryMetadataStore::new()))
//!     .build();
//! let auth = mirror_core::auth::Auth::new(
//!     cache.metadata().clone(),
//!     mirror_core::auth::AccessPolicy::default(),
//! );
//! let docker = DockerMirror::new(cache, DockerConfig::default())?.with_auth(auth);
//! let app = axum::Router::new()
//!     .route_service("/v2", docker.clone())
//!     .route_service("/v2/", docker.clone())
//!     .route_service("/v2/{*path}", docker);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod challenge;
mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod locks;
mod media;
mod path;
mod select;
mod service;
mod token;
mod upstream;

pub use crate::config::{DockerConfig, UpstreamConfig, DOCKER_HUB, DOCKER_HUB_URL};
pub use crate::error::DockerError;
pub use crate::service::DockerMirror;
pub use crate::upstream::RegistryUpstream;
