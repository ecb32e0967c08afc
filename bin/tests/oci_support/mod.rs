//! What the container image end-to-end tests drive: the real distribution registry from
//! Debian's `docker-registry` package as the upstream (open, or behind htpasswd), an
//! in-test HTTP front that counts upstream requests or demands bearer tokens, images built
//! in memory and pushed with the real `skopeo`, and the `registry-mirror` binary as a child
//! process.

mod front;
mod image;
#[path = "../common/launch.rs"]
mod launch;
mod mirror;
mod registry;
mod skopeo;

pub(crate) use front::{Front, FrontMode};
pub(crate) use image::{noise, Image, Index, OCI_INDEX, OCI_MANIFEST};
pub(crate) use mirror::Mirror;
pub(crate) use registry::Registry;
pub(crate) use skopeo::{Run, Skopeo};

use std::time::Duration;

use launch::isolate_from_proxies;

/// A client that talks to loopback directly, whatever proxy the machine configures, and
/// follows no redirects (the tests look at what each server answers).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build an HTTP client")
}

/// A free loopback port for a server that cannot bind port 0 itself: bound, then released.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The end of a log file, for the output of a failing test.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(32 * 1024);
    String::from_utf8_lossy(&text[start..]).into_owned()
}
