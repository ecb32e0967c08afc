//! A Maven repository manager as a tower [`Service`](tower::Service).
//!
//! [`MavenMirror`] serves the Maven 2 repository layout that mvn and gradle read and
//! deploy to, at `/<repository>/<group path>/<artifact>/<version>/<file>`, for three kinds
//! of repository ([`RepositoryConfig`]):
//!
//! - **proxy**: a pull-through cache of a remote repository (Maven Central by default),
//!   through [`mirror_core::Cache`]. Release artifacts are immutable: fetched once,
//!   verified before they are stored against the `.sha1` upstream publishes beside them
//!   (stored under their own sha256 when upstream publishes none), never fetched again.
//!   `maven-metadata.xml` and everything under a `-SNAPSHOT` version are revalidated after
//!   [`MavenConfig::metadata_ttl`]. An upstream 404 is remembered briefly, and a cached
//!   copy is served when upstream fails; responses say HIT, MISS, REVALIDATED or STALE in
//!   `x-cache-status`.
//! - **hosted**: a private repository that `mvn deploy` uploads to with HTTP `PUT`, with
//!   a user's password or an API token (Basic auth, from settings.xml `<server>`). Bodies
//!   stream to the blob store; a release, once deployed, can never change (409 Conflict);
//!   uploaded checksums are checked against the file they describe, and the checksums
//!   served are always computed from the stored file.
//! - **group**: members tried in order, first hit wins; their `maven-metadata.xml` files
//!   are merged (versions united, the highest `latest` and `release`).
//!
//! With no configuration there are a `central` proxy, hosted `releases` and `snapshots`,
//! and a `public` group of all three. Request paths are checked before they name anything
//! (no `..`, `.`, empty segments, backslashes, encoded slashes or control characters);
//! errors are plain text, which mvn prints.
//!
//! The service knows nothing of where it is mounted; it sees paths relative to its mount,
//! as axum's `nest_service` passes them:
//!
//! ```no_run
//! use std::sync::Arc;
//! use mirror_core::auth::{AccessPolicy, Auth};
//! use mirror_core::{Cache, MemoryBlobStore, MemoryMetadataStore};
//! use mirror_maven::{MavenConfig, MavenMirror};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = Arc::new(MemoryMetadataStore::new());
//! let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), metadata.clone()).build();
//! let auth = Auth::new(metadata, AccessPolicy::default());
//! let maven = MavenMirror::new(cache, MavenConfig::default())?.with_auth(auth);
//! let app = axum::Router::new().nest_service("/maven", maven);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! // settings.xml: <mirror><mirrorOf>*</mirrorOf><url>http://127.0.0.1:8080/maven/public/</url></mirror>
//! // pom.xml: <distributionManagement> to http://127.0.0.1:8080/maven/releases/
//! # Ok(()) }
//! ```

mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod metadata;
mod path;
mod service;

pub use crate::config::{MavenConfig, Password, RepositoryConfig, VersionPolicy};
pub use crate::error::MavenError;
pub use crate::service::MavenMirror;
