//! What the end-to-end tests drive: a fixture npm registry on loopback standing in for the
//! public one, the `registry-mirror` binary as a child process (and its CLI), and the real
//! npm client.

mod catalogue;
mod fixture;
pub(crate) mod http;
#[path = "../common/launch.rs"]
pub(crate) mod launch;
#[path = "../common/loopback.rs"]
pub(crate) mod loopback;
mod mirror;
mod npm;
pub(crate) mod process;
mod terminal;

pub(crate) use catalogue::{index_js, published, tarball_path, BIG_PACKAGE, CORRUPT_PACKAGE};
pub(crate) use fixture::FixtureRegistry;
pub(crate) use mirror::Mirror;
pub(crate) use npm::Npm;

use launch::isolate_from_proxies;
