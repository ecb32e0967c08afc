//! Configuration of the PyPI mirror.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How the PyPI mirror behaves. Every field has a default suited to mirroring the public
/// index.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PypiConfig {
    /// The simple index mirrored, as pip's `--index-url` would name it
    /// (`https://host/simple/`); any PEP 503 or PEP 691 index, such as devpi's.
    pub upstream: String,
    /// A second origin the index may link its files to (the public index keeps them on
    /// another host). File URLs on neither this origin nor the index's are left out of the
    /// pages served: the mirror never dials a host that only a document named. Empty to
    /// allow the index's own origin only.
    pub files_upstream: String,
    /// How long a project page is served without asking upstream; a revalidation costs
    /// upstream a 304 when nothing changed.
    #[serde(with = "humantime_serde")]
    pub index_ttl: Duration,
    /// How long the root listing of every project is served without asking upstream. Long:
    /// it is large and installers never read it.
    #[serde(with = "humantime_serde")]
    pub root_ttl: Duration,
    /// The URL clients reach this mount at, such as `https://mirror.example.com/pypi`. When
    /// unset, it is rebuilt per request from `Host` and `X-Forwarded-*` headers.
    pub public_url: Option<String>,
    /// The path this service is mounted at, used to rebuild URLs from request headers.
    pub mount_path: String,
    /// Longest wait for upstream's response head or for the next chunk of its body; past
    /// it the fetch fails with a 504 (or a stale copy is served). A download may take
    /// longer in total as long as bytes keep coming.
    #[serde(with = "humantime_serde")]
    pub upstream_read_timeout: Duration,
    /// Largest index page (project page, root listing or `.metadata` file) accepted from
    /// upstream.
    pub max_page_bytes: u64,
    /// Largest distribution file (wheel, sdist) accepted from upstream.
    pub max_file_bytes: u64,
    /// Largest upload request accepted (the file with its form), answered with a 413 beyond.
    pub max_upload_bytes: u64,
    /// Where an upload's file waits while it is checked, before it goes to the blob store;
    /// the system's temporary directory when unset.
    pub spool_dir: Option<PathBuf>,
}

impl Default for PypiConfig {
    fn default() -> Self {
        PypiConfig {
            upstream: "https://pypi.org/simple/".to_owned(),
            files_upstream: "https://files.pythonhosted.org/".to_owned(),
            index_ttl: Duration::from_secs(10 * 60),
            root_ttl: Duration::from_secs(60 * 60),
            public_url: None,
            mount_path: "/pypi".to_owned(),
            upstream_read_timeout: Duration::from_secs(30),
            max_page_bytes: 256 << 20,
            max_file_bytes: 4 << 30,
            max_upload_bytes: 512 << 20,
            spool_dir: None,
        }
    }
}
