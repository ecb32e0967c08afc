//! What the Maven end-to-end tests drive besides the shared support (the launcher and the
//! loopback server in `support`): a fixture Maven
//! repository on loopback standing in for Maven Central, the artifacts it serves, and the
//! real mvn client with a settings.xml pointing at the mirror.

pub(crate) mod artifacts;
mod mvn;
mod repository;

pub(crate) use mvn::{Mvn, Project};
pub(crate) use repository::FixtureRepository;

/// Configuration merged into the mirror's: the `central` proxy reads the fixture, and
/// listings are revalidated at once so that a new deploy is seen by the next build.
pub(crate) fn mirror_config(upstream: &str) -> String {
    format!(
        "[maven]\nmetadata_ttl = \"0s\"\n\
         [maven.repositories.central]\nkind = \"proxy\"\nurl = \"{upstream}\"\n"
    )
}
