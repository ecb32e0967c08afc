//! What the end-to-end tests drive: a fixture npm registry on loopback standing in for the
//! public one, the `registry-mirror` binary as a child process (and its CLI), and the real
//! npm client.

mod catalogue;
mod fixture;
pub(crate) mod http;
mod mirror;
mod npm;
pub(crate) mod process;
mod terminal;

pub(crate) use catalogue::{index_js, published, tarball_path, BIG_PACKAGE, CORRUPT_PACKAGE};
pub(crate) use fixture::FixtureRegistry;
pub(crate) use mirror::Mirror;
pub(crate) use npm::Npm;

/// Makes a child process talk to loopback directly: a proxy configured on the machine must
/// not carry (or refuse) the tests' traffic.
pub(crate) fn isolate_from_proxies(command: &mut std::process::Command) {
    for key in ["http_proxy", "https_proxy", "all_proxy"] {
        command.env_remove(key).env_remove(key.to_ascii_uppercase());
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
}
