//! What the PyPI end-to-end tests drive: a fixture index on loopback standing in for the
//! public one (an index host and a file host), distributions built in memory, the
//! `registry-mirror` binary as a child process (and its CLI), and real pip and uv in fresh
//! virtualenvs, and twine.

pub(crate) mod dists;
pub(crate) mod http;
mod index;
#[path = "../common/launch.rs"]
mod launch;
#[path = "../common/loopback.rs"]
mod loopback;
mod mirror;
pub(crate) mod python;

pub(crate) use index::{FixtureIndex, Mode};
pub(crate) use mirror::PypiMirror;
pub(crate) use python::Venv;

use launch::isolate_from_proxies;
