//! Mounts the npm mirror inside an existing axum application, next to its own routes.
//!
//! ```text
//! cargo run -p examples --example axum_npm
//! npm install --registry http://127.0.0.1:3000/registry/npm/ left-pad
//! ```

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use mirror_core::{Cache, FsBlobStore, RedbMetadataStore};
use mirror_npm::{NpmConfig, NpmMirror};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::temp_dir().join("axum-npm-example");
    std::fs::create_dir_all(&data)?;
    let blobs = Arc::new(FsBlobStore::open(data.join("blobs"))?);
    let metadata = Arc::new(RedbMetadataStore::open(data.join("metadata.redb"))?);
    let cache = Cache::builder(blobs, metadata).build();

    // The mount path is only used to rebuild tarball URLs from the request's Host header.
    let mut config = NpmConfig::default();
    config.mount_path = "/registry/npm".to_owned();
    let npm = NpmMirror::new(cache, config)?;

    let app = Router::new()
        .route("/", get(|| async { "my application\n" }))
        .nest_service("/registry/npm", npm);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
