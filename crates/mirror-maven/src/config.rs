//! Configuration of the Maven mirror: its repositories and limits.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// How the Maven mirror behaves. Every field has a default; with no configuration the
/// mirror has a `central` proxy of Maven Central, hosted `releases` and `snapshots`, and a
/// `public` group of the three.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MavenConfig {
    /// The repositories, by the name that is the first segment of their URL path. Names a
    /// configuration file gives are added to the default ones (or replace the default of
    /// the same name).
    #[serde(deserialize_with = "with_defaults")]
    pub repositories: BTreeMap<String, RepositoryConfig>,
    /// How long a proxied `maven-metadata.xml` (and anything under a `-SNAPSHOT` version)
    /// is served without asking upstream again.
    #[serde(with = "humantime_serde")]
    pub metadata_ttl: Duration,
    /// Longest wait for upstream's response head or for the next chunk of its body.
    #[serde(with = "humantime_serde")]
    pub upstream_read_timeout: Duration,
    /// Largest artifact accepted from upstream.
    pub max_artifact_bytes: u64,
    /// Largest `maven-metadata.xml` accepted, from upstream or from a deploy; metadata is
    /// parsed in memory to be merged, so this bounds what a hostile document can cost.
    pub max_metadata_bytes: u64,
    /// Largest file a deploy may upload, answered with a 413 beyond.
    pub max_upload_bytes: u64,
}

/// One repository.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum RepositoryConfig {
    /// A pull-through cache of a remote Maven 2 repository.
    Proxy {
        /// The remote repository's base URL, such as `https://repo.maven.apache.org/maven2/`.
        url: String,
        /// User name for HTTP basic authentication upstream, if it needs one.
        #[serde(default)]
        username: Option<String>,
        /// Password (or token) for HTTP basic authentication upstream.
        #[serde(default)]
        password: Option<Password>,
    },
    /// A private repository that `mvn deploy` uploads to.
    Hosted {
        /// Which versions it accepts.
        #[serde(default)]
        versions: VersionPolicy,
    },
    /// Several repositories behind one URL: reads try the members in order, and their
    /// `maven-metadata.xml` files are merged.
    Group {
        /// Member repositories (proxy or hosted), in the order they are tried.
        members: Vec<String>,
    },
}

/// A password, kept out of debug output and logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Which versions a hosted repository accepts, as Maven repository managers split them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum VersionPolicy {
    /// Release versions only; a release, once deployed, can never change.
    Release,
    /// `-SNAPSHOT` versions only; files may be deployed again.
    Snapshot,
    /// Both; releases are still immutable.
    #[default]
    Mixed,
}

impl Default for MavenConfig {
    fn default() -> Self {
        MavenConfig {
            repositories: default_repositories(),
            metadata_ttl: Duration::from_secs(10 * 60),
            upstream_read_timeout: Duration::from_secs(30),
            max_artifact_bytes: 4 << 30,
            max_metadata_bytes: 8 << 20,
            max_upload_bytes: 1 << 30,
        }
    }
}

fn default_repositories() -> BTreeMap<String, RepositoryConfig> {
    let hosted = |versions| RepositoryConfig::Hosted { versions };
    BTreeMap::from([
        (
            "central".to_owned(),
            RepositoryConfig::Proxy {
                url: "https://repo.maven.apache.org/maven2/".to_owned(),
                username: None,
                password: None,
            },
        ),
        ("releases".to_owned(), hosted(VersionPolicy::Release)),
        ("snapshots".to_owned(), hosted(VersionPolicy::Snapshot)),
        (
            "public".to_owned(),
            RepositoryConfig::Group {
                members: ["releases", "snapshots", "central"]
                    .map(str::to_owned)
                    .to_vec(),
            },
        ),
    ])
}

/// Configured repositories over the default ones.
fn with_defaults<'de, D>(deserializer: D) -> Result<BTreeMap<String, RepositoryConfig>, D::Error>
where
    D: Deserializer<'de>,
{
    let configured = BTreeMap::<String, RepositoryConfig>::deserialize(deserializer)?;
    let mut repositories = default_repositories();
    repositories.extend(configured);
    Ok(repositories)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_the_four_usual_repositories() {
        let config = MavenConfig::default();
        let names: Vec<_> = config.repositories.keys().map(String::as_str).collect();
        assert_eq!(names, ["central", "public", "releases", "snapshots"]);
    }
}
