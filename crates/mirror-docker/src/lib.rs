//! An OCI / Docker registry pull-through mirror as a tower [`Service`](tower::Service).
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
//! let docker = DockerMirror::new(cache, DockerConfig::default())?;
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
mod upstream;

pub use crate::config::{DockerConfig, UpstreamConfig, DOCKER_HUB, DOCKER_HUB_URL};
pub use crate::error::DockerError;
pub use crate::service::DockerMirror;
pub use crate::upstream::RegistryUpstream;
