//! The `registry-mirror` binary, run as a child process with a `[pypi]` section pointing at
//! the fixture index.

use super::launch::{Launch, MirrorProcess};

/// A running mirror with a fresh data directory; killed when dropped. If the test is
/// failing by then, the end of the mirror's stderr is printed with the test's output.
#[derive(Debug)]
pub(crate) struct PypiMirror {
    process: MirrorProcess,
}

impl PypiMirror {
    /// Starts the binary mirroring `simple_url`, with files allowed from `files_url` too,
    /// and waits until it listens.
    pub(crate) async fn start(simple_url: &str, files_url: &str) -> Self {
        Self::start_with_config(simple_url, files_url, "").await
    }

    /// Like [`start`](Self::start), with `extra` appended to the configuration file (such
    /// as `[[auth.rules]]` tables).
    pub(crate) async fn start_with_config(simple_url: &str, files_url: &str, extra: &str) -> Self {
        let config = format!(
            "[pypi]\nupstream = \"{simple_url}\"\nfiles_upstream = \"{files_url}\"\n{extra}"
        );
        let process = Launch::new(&config).start().await;
        Self { process }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        self.process.url()
    }

    /// The index URL pip and uv are given: `http://127.0.0.1:PORT/pypi/simple/`.
    pub(crate) fn index_url(&self) -> String {
        format!("{}/pypi/simple/", self.url())
    }

    /// Runs `registry-mirror ARGS` on this mirror's data directory and configuration beside
    /// the running server, as an administrator would, and returns what it printed; panics
    /// if it fails.
    #[allow(
        dead_code,
        reason = "for the upload tests; pypi_install.rs needs no users"
    )]
    pub(crate) async fn cli(&self, args: &[&str]) -> String {
        self.process.run_cli(args).await
    }
}
