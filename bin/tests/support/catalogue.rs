//! The packages the fixture registry publishes.
//!
//! Tarballs are real gzip'd tar files built in memory, once per test binary: the big one
//! carries megabytes of noise, and deflating that in a debug build is slow enough to be
//! worth sharing between tests. Packuments depend on the fixture's address, so the fixture
//! builds them from this catalogue when it starts.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use hyper::body::Bytes;
use serde_json::{json, Map, Value};
use sha1::Sha1;
use sha2::{Digest as _, Sha512};

/// A package whose tarball is big and served slowly, so concurrent requests overlap.
pub(crate) const BIG_PACKAGE: &str = "fixture-big";

/// A package whose served tarball does not match its declared integrity (while the fixture's
/// corruption switch is on, which it is when the fixture starts).
pub(crate) const CORRUPT_PACKAGE: &str = "fixture-corrupt";

const BIG_PAYLOAD_LEN: usize = 2 * 1024 * 1024;

/// One published version, as declared in the source.
#[derive(Debug)]
struct Release {
    name: &'static str,
    version: &'static str,
    dependencies: &'static [(&'static str, &'static str)],
    /// Length of the incompressible `blob.bin` shipped in the tarball (0: none).
    payload_len: usize,
}

/// Versions in publishing order: the last version of a package is its `latest` tag.
const RELEASES: &[Release] = &[
    release("fixture-b", "1.0.0", &[]),
    release("fixture-b", "1.1.0", &[]),
    release("fixture-app-dep-a", "1.0.0", &[("fixture-b", "^1.0.0")]),
    release("@fixture/c", "1.0.0", &[("fixture-b", "^1.0.0")]),
    Release {
        payload_len: BIG_PAYLOAD_LEN,
        ..release(BIG_PACKAGE, "1.0.0", &[])
    },
    release(CORRUPT_PACKAGE, "1.0.0", &[]),
];

const fn release(
    name: &'static str,
    version: &'static str,
    dependencies: &'static [(&'static str, &'static str)],
) -> Release {
    Release {
        name,
        version,
        dependencies,
        payload_len: 0,
    }
}

/// A release with its tarball built.
#[derive(Debug)]
pub(crate) struct Published {
    release: &'static Release,
    /// The bytes `dist.integrity` and `dist.shasum` describe.
    pub(crate) tarball: Bytes,
    /// Bytes served instead of `tarball` while the fixture corrupts tarballs.
    pub(crate) tampered: Option<Bytes>,
}

impl Published {
    fn build(release: &'static Release) -> Self {
        let tampered = (release.name == CORRUPT_PACKAGE).then(|| tampered_tarball(release));

        Self {
            release,
            tarball: Bytes::from(build_tarball(
                release,
                &index_js(release.name, release.version),
            )),
            tampered,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.release.name
    }

    pub(crate) fn version(&self) -> &'static str {
        self.release.version
    }

    /// Whether the fixture trickles this tarball out instead of sending it at once.
    pub(crate) fn is_slow(&self) -> bool {
        self.release.payload_len > 0
    }

    /// The `sha512-<base64>` Subresource Integrity string of the true tarball.
    pub(crate) fn integrity(&self) -> String {
        let digest = Sha512::digest(&self.tarball);
        format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    }

    fn shasum(&self) -> String {
        hex::encode(Sha1::digest(&self.tarball))
    }

    /// The version document inside a packument, with its tarball on `registry` (no slash).
    fn manifest(&self, registry: &str) -> Value {
        let Release { name, version, .. } = self.release;
        json!({
            "name": name,
            "version": version,
            "description": format!("fixture package {name}"),
            "main": "index.js",
            "license": "MIT",
            "dependencies": dependencies(self.release),
            "_id": format!("{name}@{version}"),
            "dist": {
                "tarball": format!("{registry}{}", tarball_path(name, version)),
                "integrity": self.integrity(),
                "shasum": self.shasum(),
                "fileCount": if self.release.payload_len > 0 { 3 } else { 2 },
            },
        })
    }
}

/// Every published release, grouped by package name, versions in publishing order.
pub(crate) fn catalogue() -> &'static BTreeMap<&'static str, Vec<Published>> {
    static CATALOGUE: OnceLock<BTreeMap<&'static str, Vec<Published>>> = OnceLock::new();

    CATALOGUE.get_or_init(|| {
        let mut packages: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for release in RELEASES {
            packages
                .entry(release.name)
                .or_default()
                .push(Published::build(release));
        }
        packages
    })
}

/// One release of the catalogue; panics on a name or version the catalogue lacks.
pub(crate) fn published(name: &str, version: &str) -> &'static Published {
    catalogue()
        .get(name)
        .and_then(|versions| versions.iter().find(|p| p.version() == version))
        .unwrap_or_else(|| panic!("the fixture publishes no {name}@{version}"))
}

/// The full packument of `versions`, with tarball URLs on `registry` (no trailing slash).
pub(crate) fn packument(versions: &[Published], registry: &str) -> Value {
    let name = versions[0].name();
    let latest = versions[versions.len() - 1].version();
    let manifests: Map<String, Value> = versions
        .iter()
        .map(|p| (p.version().to_owned(), p.manifest(registry)))
        .collect();

    json!({
        "_id": name,
        "name": name,
        "description": format!("fixture package {name}"),
        "dist-tags": { "latest": latest },
        "versions": manifests,
        "time": publication_times(versions),
        "license": "MIT",
    })
}

fn publication_times(versions: &[Published]) -> Map<String, Value> {
    let stamp = |day: usize| Value::from(format!("2024-01-{:02}T12:00:00.000Z", day + 1));
    let mut time = Map::new();
    time.insert("created".to_owned(), stamp(0));
    time.insert("modified".to_owned(), stamp(versions.len() - 1));
    for (day, published) in versions.iter().enumerate() {
        time.insert(published.version().to_owned(), stamp(day));
    }
    time
}

/// Where a tarball lives under a registry, npm style: `/<name>/-/<basename>-<version>.tgz`,
/// where the basename drops the scope (`/@fixture/c/-/c-1.0.0.tgz`).
pub(crate) fn tarball_path(name: &str, version: &str) -> String {
    let basename = name.rsplit('/').next().unwrap_or(name);
    format!("/{name}/-/{basename}-{version}.tgz")
}

/// The `index.js` a package ships, so a test can tell which version got installed.
pub(crate) fn index_js(name: &str, version: &str) -> String {
    format!("module.exports = \"{name}@{version}\";\n")
}

fn dependencies(release: &Release) -> Map<String, Value> {
    release
        .dependencies
        .iter()
        .map(|(name, range)| ((*name).to_owned(), Value::from(*range)))
        .collect()
}

/// A valid tarball whose content differs from the published one, so only a digest check
/// (not a gzip or tar error) can tell it apart.
fn tampered_tarball(release: &Release) -> Bytes {
    let index = format!("module.exports = \"tampered {}\";\n", release.name);
    Bytes::from(build_tarball(release, &index))
}

fn build_tarball(release: &Release, index_js: &str) -> Vec<u8> {
    let manifest = json!({
        "name": release.name,
        "version": release.version,
        "description": format!("fixture package {}", release.name),
        "main": "index.js",
        "license": "MIT",
        "dependencies": dependencies(release),
    });
    let manifest = serde_json::to_vec_pretty(&manifest).expect("serialise package.json");
    let mut files = vec![
        ("package/package.json", manifest),
        ("package/index.js", index_js.as_bytes().to_vec()),
    ];
    if release.payload_len > 0 {
        files.push(("package/blob.bin", noise(release.payload_len)));
    }

    gzip_tar(&files)
}

fn gzip_tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, contents) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_704_110_400);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, contents.as_slice())
            .expect("append to an in-memory tar");
    }

    let gzip = tar.into_inner().expect("finish an in-memory tar");
    gzip.finish().expect("finish an in-memory gzip")
}

/// Incompressible bytes (xorshift64), so the big tarball stays big after gzip.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}
