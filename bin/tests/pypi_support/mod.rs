//! What the PyPI end-to-end tests drive: a fixture index on loopback standing in for the
//! public one (an index host and a file host), distributions built in memory, the
//! `registry-mirror` binary as a child process (and its CLI), and real pip and uv in fresh
//! virtualenvs, and twine.

pub(crate) mod dists;
pub(crate) mod http;
mod index;
mod mirror;
pub(crate) mod python;

pub(crate) use index::{FixtureIndex, Mode};
pub(crate) use mirror::PypiMirror;
pub(crate) use python::Venv;

/// Makes a child process talk to loopback directly: a proxy configured on the machine must
/// not carry (or refuse) the tests' traffic.
fn isolate_from_proxies(command: &mut std::process::Command) {
    for key in ["http_proxy", "https_proxy", "all_proxy"] {
        command.env_remove(key).env_remove(key.to_ascii_uppercase());
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
}
