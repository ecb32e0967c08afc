//! What the fault tests drive: an upstream that misbehaves on demand, the binary (on a
//! small disk when asked), and checks of what the data directory holds.

pub(crate) mod crowd;
pub(crate) mod cut;
pub(crate) mod fetch;
pub(crate) mod h2c;
#[path = "../common/launch.rs"]
mod launch;
pub(crate) mod registry;
pub(crate) mod server;
pub(crate) mod store;
pub(crate) mod upstream;

/// The real distributions the PyPI tests build, for uploads.
#[allow(
    dead_code,
    reason = "only the wheel builder is needed here, not the install tests' catalogue"
)]
#[path = "../pypi_support/dists.rs"]
pub(crate) mod dists;
