//! An npm registry mirror as a tower [`Service`](tower::Service).
//!
//! [`NpmMirror`] answers the npm client's read API (packuments, full and abbreviated,
//! single versions and tarballs) for any upstream registry, caching everything through
//! [`mirror_core::Cache`]:
//!
//! - tarballs are immutable, verified against the packument's `dist.integrity` (or
//!   `dist.shasum`) before they are stored;
//! - packuments are revalidated after [`NpmConfig::metadata_ttl`] with a conditional
//!   request; a client's `Cache-Control: no-cache`, or a request for a version or tarball the
//!   cached packument does not list, revalidates at once, so a release published a moment
//!   ago installs without waiting out the TTL;
//! - every `dist.tarball` is rewritten to point at the mirror.
//!
//! The service knows nothing of where it is mounted; it sees paths relative to its mount,
//! as axum's `nest_service` passes them:
//!
//! ```no_run
//! use std::sync::Arc;
//! use mirror_core::{Cache, MemoryBlobStore, MemoryMetadataStore};
//! use mirror_npm::{NpmConfig, NpmMirror};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), Arc::new(MemoryMetadataStore::new()))
//!     .build();
//! let npm = NpmMirror::new(cache, NpmConfig::default())?;
//! let app = axum::Router::new().nest_service("/npm", npm);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod hosted;
mod packument;
mod path;
mod service;

pub use crate::config::NpmConfig;
pub use crate::error::NpmError;
pub use crate::service::NpmMirror;
