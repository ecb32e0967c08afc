//! What the faulty upstream publishes: one artifact per test case, in each ecosystem's
//! layout, with the digests the ecosystem declares for it.

use base64::Engine as _;
use hyper::body::Bytes;
use serde_json::json;
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};

use super::upstream::{Behaviour, FaultyUpstream};

/// Larger than the 1 MiB the mirror verifies before answering: streamed as it arrives.
pub(crate) const BIG: usize = 3 * 1024 * 1024;
/// Small enough to be verified before the response starts.
pub(crate) const SMALL: usize = 64 * 1024;

/// An artifact the mirror can be asked for, and the bytes upstream declared for it.
#[derive(Debug, Clone)]
pub(crate) struct Artifact {
    /// Which ecosystem and case, for messages.
    pub(crate) label: String,
    /// Its path on the upstream.
    pub(crate) upstream_path: String,
    /// Its path on the mirror.
    pub(crate) mirror_path: String,
    /// The true bytes.
    pub(crate) bytes: Bytes,
}

impl Artifact {
    /// Whether the mirror streams it rather than verifying it before answering.
    pub(crate) fn is_big(&self) -> bool {
        self.bytes.len() > 1024 * 1024
    }
}

/// The configuration pointing every ecosystem at `upstream`, with a short read timeout.
pub(crate) fn mirror_config(upstream: &FaultyUpstream, read_timeout: &str) -> String {
    let url = upstream.url();
    format!(
        r#"[npm]
upstream = "{url}/"
metadata_ttl = "5m"
upstream_read_timeout = "{read_timeout}"
[pypi]
upstream = "{url}/simple/"
files_upstream = ""
index_ttl = "5m"
upstream_read_timeout = "{read_timeout}"
[docker]
upstream_read_timeout = "{read_timeout}"
[docker.upstreams."docker.io"]
url = "{url}"
"#
    )
}

/// Incompressible bytes (xorshift64) that differ with `seed`.
pub(crate) fn noise(len: usize, seed: u64) -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ seed.wrapping_mul(0x0100_0000_01b3);
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    Bytes::from(bytes)
}

/// The same length as `bytes`, one byte different in the middle.
pub(crate) fn tampered(bytes: &Bytes) -> Bytes {
    let mut changed = bytes.to_vec();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x5a;
    Bytes::from(changed)
}

/// Publishes npm package `name@1.0.0` with `len` bytes of tarball: its packument served
/// well, its tarball not served yet (a 404 until the test sets a behaviour).
pub(crate) fn npm_package(upstream: &FaultyUpstream, name: &str, len: usize) -> Artifact {
    let bytes = noise(len, seed_of(name));
    let file = format!("/{name}/-/{name}-1.0.0.tgz");
    let integrity = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&bytes))
    );
    let packument = json!({
        "_id": name,
        "name": name,
        "dist-tags": { "latest": "1.0.0" },
        "versions": { "1.0.0": {
            "name": name,
            "version": "1.0.0",
            "dist": {
                "tarball": format!("{}{file}", upstream.url()),
                "integrity": integrity,
                "shasum": hex::encode(Sha1::digest(&bytes)),
            },
        }},
        "time": { "created": "2024-01-01T00:00:00.000Z", "1.0.0": "2024-01-01T00:00:00.000Z" },
    });
    let document = Bytes::from(packument.to_string());
    upstream.set(
        &format!("/{name}"),
        Behaviour::document(&document, "application/json"),
    );

    Artifact {
        label: format!("npm tarball of {len} bytes ({name})"),
        mirror_path: format!("/npm{file}"),
        upstream_path: file,
        bytes,
    }
}

/// Publishes PyPI project `name` with one sdist of `len` bytes: its simple page served
/// well, the file not served yet.
pub(crate) fn pypi_project(upstream: &FaultyUpstream, name: &str, len: usize) -> Artifact {
    let bytes = noise(len, seed_of(name));
    let file = format!("{}-1.0.tar.gz", name.replace('-', "_"));
    let upstream_path = format!("/packages/{file}");
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let page = format!(
        "<!DOCTYPE html>\n<html><body>\n<a href=\"{}{upstream_path}#sha256={sha256}\">{file}</a>\n\
         </body></html>\n",
        upstream.url()
    );
    upstream.set(
        &format!("/simple/{name}/"),
        Behaviour::document(&Bytes::from(page), "text/html"),
    );

    Artifact {
        label: format!("PyPI file of {len} bytes ({name})"),
        mirror_path: format!("/pypi/files/{name}/{file}"),
        upstream_path,
        bytes,
    }
}

/// An OCI blob of `len` bytes in repository `fault/<name>`, named by its digest.
pub(crate) fn oci_blob(name: &str, len: usize) -> Artifact {
    let bytes = noise(len, seed_of(name));
    let path = format!(
        "/v2/fault/{name}/blobs/sha256:{}",
        hex::encode(Sha256::digest(&bytes))
    );
    Artifact {
        label: format!("OCI blob of {len} bytes ({name})"),
        upstream_path: path.clone(),
        mirror_path: path,
        bytes,
    }
}

/// Publishes an OCI image manifest tagged `latest` in repository `fault/<name>`; returns the
/// upstream path of the tag and the manifest's bytes.
pub(crate) fn oci_tag(upstream: &FaultyUpstream, name: &str) -> (String, Bytes) {
    let config = noise(512, seed_of(name));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", hex::encode(Sha256::digest(&config))),
            "size": config.len(),
        },
        "layers": [],
    });
    let body = Bytes::from(manifest.to_string());
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    let tag = format!("/v2/fault/{name}/manifests/latest");
    for path in [tag.clone(), format!("/v2/fault/{name}/manifests/{digest}")] {
        let behaviour = Behaviour::Manifest {
            body: body.clone(),
            digest: digest.clone(),
        };
        upstream.set(&path, behaviour);
    }
    (tag, body)
}

/// Small and big artifacts of every ecosystem, named after `case`.
pub(crate) fn every_kind(upstream: &FaultyUpstream, case: &str) -> Vec<Artifact> {
    let mut artifacts = Vec::new();
    for (size, len) in [("small", SMALL), ("big", BIG)] {
        let name = format!("{case}-{size}");
        artifacts.push(npm_package(upstream, &name, len));
        artifacts.push(pypi_project(upstream, &name, len));
        artifacts.push(oci_blob(&name, len));
    }
    artifacts
}

fn seed_of(name: &str) -> u64 {
    name.bytes()
        .fold(7_u64, |seed, byte| seed.wrapping_mul(31) ^ u64::from(byte))
}
