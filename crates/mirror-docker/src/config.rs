//! Configuration of the container image mirror.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The name Docker Hub goes by, in image references and as an upstream name.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API answers.
pub const DOCKER_HUB_URL: &str = "https://registry-1.docker.io";

/// How the container image mirror behaves. Every field has a default: Docker Hub as the only
/// upstream, tags revalidated after five minutes, repositories under `private/` hosted here
/// (pushes need a credential), deletes of hosted content allowed to users who may push.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DockerConfig {
    /// The upstream that serves requests which select no other: a name in
    /// [`upstreams`](Self::upstreams).
    pub default_upstream: String,
    /// How long a tag is served without asking upstream which manifest it names.
    #[serde(with = "humantime_serde")]
    pub tag_ttl: Duration,
    /// The registries this mirror may reach, by the name clients select them with (containerd's
    /// `ns=` parameter, or the first path segment: `/v2/<name>/<repository>/...`). Docker Hub is
    /// always present as `docker.io` unless configured otherwise.
    #[serde(deserialize_with = "with_docker_hub")]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Largest manifest or index accepted from upstream or in a push (4 MiB, the limit
    /// registries share).
    pub max_manifest_bytes: u64,
    /// Longest wait for an upstream's response head or for the next chunk of its body;
    /// past it the fetch fails with a 504 (or a stale copy is served). A layer may take
    /// longer in total as long as bytes keep coming.
    #[serde(with = "humantime_serde")]
    pub upstream_read_timeout: Duration,
    /// Repository names hosted by this registry rather than proxied, as patterns where `*`
    /// matches any run of characters, `/` included. Pushes are accepted only for these
    /// names, and pulls of them are answered from local storage and never go upstream.
    /// Default: `["private/*"]`, so `docker push <host>/private/app:1` works out of the box;
    /// an empty list turns the private registry off.
    pub private_repositories: Vec<String>,
    /// Whether clients that may push may also delete manifests, tags and blobs of private
    /// repositories (default: true). When false those deletes answer `405 UNSUPPORTED`.
    pub allow_delete: bool,
    /// How long an unfinished upload may stay idle before its bytes are discarded
    /// (default: one hour).
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
    /// Most uploads in progress at once; more get `429 TOOMANYREQUESTS` until some finish
    /// or time out (default: 1024).
    pub max_uploads: usize,
    /// How long a bearer token from the registry's token endpoint stays valid (default:
    /// five minutes; clients fetch a new one when it runs out).
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// The URL clients use to reach this registry, for the token endpoint named in
    /// authentication challenges; else rebuilt from `Host` / `X-Forwarded-*` headers.
    pub public_url: Option<String>,
}

/// One upstream registry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// The registry's base URL, such as `https://ghcr.io` (the API lives under `/v2/` there).
    pub url: String,
    /// User name for basic authentication, or for the token service.
    #[serde(default)]
    pub username: Option<String>,
    /// Password or access token that goes with `username`.
    #[serde(default)]
    pub password: Option<String>,
}

impl UpstreamConfig {
    /// An anonymous upstream at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        UpstreamConfig {
            url: url.into(),
            username: None,
            password: None,
        }
    }

    /// The same upstream, reached with credentials.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            default_upstream: DOCKER_HUB.to_owned(),
            tag_ttl: Duration::from_secs(300),
            upstreams: default_upstreams(),
            max_manifest_bytes: 4 << 20,
            upstream_read_timeout: Duration::from_secs(30),
            private_repositories: vec!["private/*".to_owned()],
            allow_delete: true,
            upload_timeout: Duration::from_secs(3600),
            max_uploads: 1024,
            token_ttl: Duration::from_secs(300),
            public_url: None,
        }
    }
}

impl DockerConfig {
    /// True when `name` is hosted here rather than proxied.
    pub fn is_private(&self, name: &str) -> bool {
        self.private_repositories
            .iter()
            .any(|pattern| mirror_core::auth::glob_match(pattern, name))
    }
}

fn default_upstreams() -> BTreeMap<String, UpstreamConfig> {
    BTreeMap::from([(DOCKER_HUB.to_owned(), UpstreamConfig::new(DOCKER_HUB_URL))])
}

/// Configured upstreams, plus Docker Hub when the file does not name it: adding one
/// registry must not silently remove the default one.
fn with_docker_hub<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, UpstreamConfig>, D::Error> {
    let mut upstreams = BTreeMap::<String, UpstreamConfig>::deserialize(deserializer)?;
    for (name, config) in default_upstreams() {
        upstreams.entry(name).or_insert(config);
    }
    Ok(upstreams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        docker: DockerConfig,
    }

    #[test]
    fn adding_an_upstream_keeps_docker_hub() {
        let file: File = serde_json::from_value(serde_json::json!({"docker": {
            "tag_ttl": "1s",
            "upstreams": {"ghcr.io": {"url": "https://ghcr.io", "username": "u", "password": "p"}}
        }}))
        .unwrap();
        let docker = file.docker;
        assert_eq!(docker.tag_ttl, Duration::from_secs(1));
        assert_eq!(docker.default_upstream, DOCKER_HUB);
        assert_eq!(docker.upstreams[DOCKER_HUB].url, DOCKER_HUB_URL);
        assert_eq!(docker.upstreams["ghcr.io"].username.as_deref(), Some("u"));
        assert!(!format!("{:?}", docker.upstreams["ghcr.io"]).contains("\"p\""));
    }
}
