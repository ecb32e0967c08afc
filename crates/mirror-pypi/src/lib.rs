//! A PyPI mirror as a tower [`Service`](tower::Service).
//!
//! [`PypiMirror`] answers the simple repository API that pip, uv and poetry install from,
//! for any upstream index (the public one by default, a devpi or any PEP 503 index by
//! configuration), caching everything through [`mirror_core::Cache`]:
//!
//! - `/simple/<project>/` in PEP 503 HTML or PEP 691 JSON, chosen by `Accept` with
//!   q-values; other spellings of a name (`Foo.Bar`, `foo_bar`) and a missing trailing
//!   slash get a 301 to the normalized URL;
//! - every file URL points at the mirror (`/files/<project>/<file>`), keeping the
//!   `#sha256=` fragment, PEP 691 `hashes`, `requires-python`, `yanked` (PEP 592) and the
//!   core-metadata markers of PEP 658 / 714, whose `.metadata` files are served too;
//! - files are immutable: fetched once, verified against the page's sha256 before they are
//!   stored; pages are revalidated with a conditional request after
//!   [`PypiConfig::index_ttl`], at once when a client sends `Cache-Control: no-cache` or
//!   asks for a file the cached page does not list;
//! - `/simple/` lists every project, revalidated after [`PypiConfig::root_ttl`].
//!
//! With [`PypiMirror::with_auth`] it is also a private index: `twine upload` posts to the
//! mount point (the legacy upload API) with a password or an API token; the form is
//! streamed to a spool, checked in full (digests, file name against name and version, a
//! wheel's `METADATA`, which becomes its PEP 658 file) and only then stored. A project
//! uploaded here is served from the private store only, never merged with the upstream
//! project of the same name, and a name the upstream has cannot be uploaded unless an
//! access rule allows it (dependency confusion).
//!
//! Upstream pages are read (HTML or JSON, whichever upstream answers) into one model and
//! re-rendered, never passed through: a file is only listed if its URL is on the index's
//! origin or on [`PypiConfig::files_upstream`]'s, so the mirror never dials a host that
//! only a page named. Errors are plain text, which pip shows as it is.
//!
//! The service knows nothing of where it is mounted; it sees paths relative to its mount,
//! as axum's `nest_service` passes them:
//!
//! ```no_run
//! use std::sync::Arc;
//! use mirror_core::auth::{AccessPolicy, Auth};
//! use mirror_core::{Cache, MemoryBlobStore, MemoryMetadataStore};
//! use mirror_pypi::{PypiConfig, PypiMirror};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = Arc::new(MemoryMetadataStore::new());
//! let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), metadata.clone()).build();
//! let auth = Auth::new(metadata, AccessPolicy::default());
//! let pypi = PypiMirror::new(cache, PypiConfig::default())?.with_auth(auth);
//! let app = axum::Router::new().nest_service("/pypi", pypi);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! // pip install --index-url http://127.0.0.1:8080/pypi/simple/ requests
//! // twine upload --repository-url http://127.0.0.1:8080/pypi/ -u __token__ -p rmt_... dist/*
//! # Ok(()) }
//! ```

mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hosted;
mod model;
mod name;
mod negotiate;
mod parse;
mod render;
mod route;
mod service;
mod upload;
mod version;

pub use crate::config::PypiConfig;
pub use crate::error::PypiError;
pub use crate::service::PypiMirror;
