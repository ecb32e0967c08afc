//! The distributions the fixture index serves, built in memory: real wheels (zip files with
//! `METADATA`, `WHEEL` and a hashed `RECORD`) and a real sdist whose in-tree build backend
//! needs nothing but the standard library, so that pip and uv can build it without fetching
//! a build dependency from any index.

use std::io::{Cursor, Write as _};
use std::sync::OnceLock;

use base64::Engine as _;
use flate2::write::GzEncoder;
use hyper::body::Bytes;
use sha2::{Digest as _, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The project the tests install; everything else comes in as its dependencies.
pub(crate) const APP: &str = "fixture-app";
/// A wheel whose bytes the fixture tampers with until told otherwise.
pub(crate) const CORRUPT: &str = "fixture-corrupt";

/// What `pip install fixture-app` must install, by normalized name: `fixture-dep` 1.1.0
/// because 1.2.0 needs Python 4 and 2.0.0 is yanked.
pub(crate) const APP_TREE: [(&str, &str); 3] = [
    ("fixture-app", "1.0.0"),
    ("fixture-dep", "1.1.0"),
    ("fixture-sdist-only", "2.0.0"),
];

/// Files that a correct client never downloads.
pub(crate) const NEVER_DOWNLOADED: [&str; 2] = [
    "fixture_dep-1.2.0-py3-none-any.whl",
    "fixture_dep-2.0.0-py3-none-any.whl",
];

/// One file of the index.
#[derive(Debug)]
pub(crate) struct Dist {
    /// Normalized project name.
    pub(crate) project: &'static str,
    pub(crate) version: &'static str,
    pub(crate) filename: String,
    pub(crate) bytes: Bytes,
    /// The wheel's `METADATA`, served as the PEP 658 `.metadata` file.
    pub(crate) metadata: Option<Bytes>,
    pub(crate) requires_python: Option<&'static str>,
    pub(crate) yanked: Option<&'static str>,
    /// Bytes served instead of `bytes` while the fixture corrupts files.
    pub(crate) tampered: Option<Bytes>,
}

impl Dist {
    pub(crate) fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }

    pub(crate) fn metadata_sha256(&self) -> Option<String> {
        self.metadata
            .as_ref()
            .map(|m| hex::encode(Sha256::digest(m)))
    }
}

/// Every file of the index, built once per test process.
pub(crate) fn catalogue() -> &'static [Dist] {
    static CATALOGUE: OnceLock<Vec<Dist>> = OnceLock::new();
    CATALOGUE.get_or_init(build_catalogue)
}

/// The projects of the index, in the order the root page lists them.
pub(crate) fn projects() -> Vec<&'static str> {
    let mut projects: Vec<&str> = catalogue().iter().map(|d| d.project).collect();
    projects.dedup();
    projects
}

/// A file by name; panics for a name the catalogue does not have.
pub(crate) fn dist(filename: &str) -> &'static Dist {
    catalogue()
        .iter()
        .find(|d| d.filename == filename)
        .unwrap_or_else(|| panic!("no {filename} in the catalogue"))
}

fn build_catalogue() -> Vec<Dist> {
    let dep = |version, requires_python, yanked| {
        let mut dist = wheel("fixture-dep", version, requires_python, &[]);
        dist.yanked = yanked;
        dist
    };
    let mut corrupt = wheel(CORRUPT, "1.0.0", None, &[]);
    let mut tampered = corrupt.bytes.to_vec();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    corrupt.tampered = Some(tampered.into());

    vec![
        wheel(
            APP,
            "1.0.0",
            Some(">=3.7"),
            &["fixture_dep>=1.0", "Fixture.Sdist-Only"],
        ),
        dep("1.0.0", None, None),
        dep("1.1.0", Some(">=3.7"), None),
        dep("1.2.0", Some(">=4"), None),
        dep("2.0.0", None, Some("broken release")),
        sdist("fixture-sdist-only", "2.0.0"),
        corrupt,
    ]
}

/// The module name and the file-name form of a project name.
fn underscored(project: &str) -> String {
    project.replace('-', "_")
}

/// The source of each package: it says which version it is.
pub(crate) fn module_source(version: &str) -> String {
    format!("VERSION = \"{version}\"\n")
}

fn core_metadata(
    project: &str,
    version: &str,
    requires_python: Option<&str>,
    requires: &[&str],
) -> String {
    let mut text = format!("Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n");
    if let Some(requires_python) = requires_python {
        text.push_str(&format!("Requires-Python: {requires_python}\n"));
    }
    for requirement in requires {
        text.push_str(&format!("Requires-Dist: {requirement}\n"));
    }
    text
}

/// A pure-Python wheel of `project` whose module says its version, with the given metadata.
pub(crate) fn wheel(
    project: &'static str,
    version: &'static str,
    requires_python: Option<&'static str>,
    requires: &[&str],
) -> Dist {
    let module = underscored(project);
    let dist_info = format!("{module}-{version}.dist-info");
    let metadata = core_metadata(project, version, requires_python, requires);
    let wheel_file = "Wheel-Version: 1.0\nGenerator: registry-mirror tests\n\
                      Root-Is-Purelib: true\nTag: py3-none-any\n";
    let files = [
        (format!("{module}/__init__.py"), module_source(version)),
        (format!("{dist_info}/METADATA"), metadata.clone()),
        (format!("{dist_info}/WHEEL"), wheel_file.to_owned()),
    ];
    let mut record: String = files.iter().map(|(n, d)| record_line(n, d)).collect();
    record.push_str(&format!("{dist_info}/RECORD,,\n"));

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let record_entry = (format!("{dist_info}/RECORD"), record);
    for (name, data) in files.iter().chain([&record_entry]) {
        zip.start_file(name, options).expect("start a wheel entry");
        zip.write_all(data.as_bytes()).expect("write a wheel entry");
    }
    let bytes = zip.finish().expect("finish the wheel").into_inner();

    Dist {
        project,
        version,
        filename: format!("{module}-{version}-py3-none-any.whl"),
        bytes: bytes.into(),
        metadata: Some(metadata.into()),
        requires_python,
        yanked: None,
        tampered: None,
    }
}

/// A `RECORD` line: path, urlsafe-base64 sha256 without padding, size.
fn record_line(name: &str, data: &str) -> String {
    let digest = Sha256::digest(data.as_bytes());
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("{name},sha256={digest},{}\n", data.len())
}

/// A source distribution built by [`BACKEND`], a PEP 517 backend inside the sdist.
pub(crate) fn sdist(project: &'static str, version: &'static str) -> Dist {
    let module = underscored(project);
    let root = format!("{module}-{version}");
    let pyproject = "[build-system]\nrequires = []\nbuild-backend = \"fixture_backend\"\n\
                     backend-path = [\".\"]\n";
    let backend = BACKEND
        .replace("@NAME@", &module)
        .replace("@VERSION@", version);
    let files = [
        (
            "PKG-INFO".to_owned(),
            core_metadata(project, version, None, &[]),
        ),
        ("pyproject.toml".to_owned(), pyproject.to_owned()),
        ("fixture_backend.py".to_owned(), backend),
        (format!("{module}/__init__.py"), module_source(version)),
    ];

    let gzip = GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    for (name, data) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, format!("{root}/{name}"), data.as_bytes())
            .expect("add an sdist entry");
    }
    let gzip = tar.into_inner().expect("finish the sdist tar");
    let bytes = gzip.finish().expect("finish the sdist gzip");

    Dist {
        project,
        version,
        filename: format!("{root}.tar.gz"),
        bytes: bytes.into(),
        metadata: None,
        requires_python: None,
        yanked: None,
        tampered: None,
    }
}

/// The sdist's build backend: writes a wheel of the package with `zipfile`, so building it
/// needs no `setuptools` or `wheel` from an index.
const BACKEND: &str = r#"import base64
import hashlib
import os
import zipfile

NAME = "@NAME@"
VERSION = "@VERSION@"
DIST_INFO = NAME + "-" + VERSION + ".dist-info"
HERE = os.path.dirname(os.path.abspath(__file__))
WHEEL = b"Wheel-Version: 1.0\nGenerator: fixture_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _read(*parts):
    with open(os.path.join(HERE, *parts), "rb") as f:
        return f.read()


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    path = os.path.join(metadata_directory, DIST_INFO)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "METADATA"), "wb") as f:
        f.write(_read("PKG-INFO"))
    with open(os.path.join(path, "WHEEL"), "wb") as f:
        f.write(WHEEL)
    return DIST_INFO


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d\n" % (name, digest, len(data))


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    filename = NAME + "-" + VERSION + "-py3-none-any.whl"
    files = [
        (NAME + "/__init__.py", _read(NAME, "__init__.py")),
        (DIST_INFO + "/METADATA", _read("PKG-INFO")),
        (DIST_INFO + "/WHEEL", WHEEL),
    ]
    record = "".join(_record_line(n, d) for n, d in files) + DIST_INFO + "/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as wheel:
        for name, data in files:
            wheel.writestr(name, data)
        wheel.writestr(DIST_INFO + "/RECORD", record)
    return filename
"#;
