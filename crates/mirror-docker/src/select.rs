//! Which upstream registry a request is for, and the repository name there.
//!
//! Three ways to pick one, all looked up in the configured list only, so a request can select
//! a registry but never name a new host to dial:
//!
//! - containerd's `ns=<registry>` query parameter, sent when the mirror stands in for that
//!   registry in its `hosts.toml`; the path then holds the plain repository name;
//! - a path prefix, `/v2/<registry>/<repository>/...`, for clients that can only be given a
//!   mirror host and path (podman's `registries.conf`, `skopeo`, `docker pull mirror/ghcr.io/...`);
//! - otherwise the default upstream.
//!
//! On Docker Hub a one-component name is an official image under `library/`, and a first
//! component that looks like a host (`quay.io/...`) cannot be a Hub namespace, so naming an
//! unconfigured registry that way is refused rather than passed to Docker Hub.

use std::collections::BTreeMap;
use std::sync::Arc;

use mirror_core::Upstream;

use crate::config::{DOCKER_HUB, DOCKER_HUB_URL};
use crate::error::DockerError;
use crate::path::RepoName;

/// The configured upstreams, by the name clients select them with.
#[derive(Debug)]
pub(crate) struct Upstreams {
    by_name: BTreeMap<String, Entry>,
    default: String,
}

#[derive(Debug)]
struct Entry {
    upstream: Arc<dyn Upstream>,
    /// Docker Hub, where one-component names live under `library/`.
    hub: bool,
}

/// A request's upstream and the repository name to ask it for.
#[derive(Debug, Clone)]
pub(crate) struct Selected {
    /// The configured name, part of every storage key.
    pub(crate) registry: String,
    pub(crate) upstream: Arc<dyn Upstream>,
    /// The name on the upstream registry.
    pub(crate) repo: RepoName,
}

impl Upstreams {
    /// `upstreams` by name, with the URLs of their configuration to recognise Docker Hub.
    pub(crate) fn new(
        upstreams: BTreeMap<String, Arc<dyn Upstream>>,
        urls: &BTreeMap<String, String>,
        default: &str,
    ) -> Result<Self, DockerError> {
        if !upstreams.contains_key(default) {
            return Err(DockerError::Config(format!(
                "default upstream {default:?} is not among the configured upstreams"
            )));
        }
        if let Some(bad) = upstreams.keys().find(|name| !is_registry_name(name)) {
            return Err(DockerError::Config(format!(
                "upstream name {bad:?} is not a registry host name (lowercase letters, digits, \
                 '.', '-', and an optional ':port'); clients select upstreams by that name"
            )));
        }
        let by_name = upstreams
            .into_iter()
            .map(|(name, upstream)| {
                let hub = name == DOCKER_HUB || urls.get(&name).is_some_and(|url| is_hub_url(url));
                (name, Entry { upstream, hub })
            })
            .collect();
        Ok(Upstreams {
            by_name,
            default: default.to_owned(),
        })
    }

    /// Picks the upstream for a request on `name`, with the `ns` parameter if it had one.
    pub(crate) fn select(
        &self,
        name: &RepoName,
        ns: Option<&str>,
    ) -> Result<Selected, DockerError> {
        if let Some(ns) = ns {
            let entry = self.by_name.get(ns).ok_or_else(|| not_configured(ns))?;
            return Ok(self.selected(ns, entry, name.clone()));
        }
        if let Some((first, rest)) = name.split_first() {
            if let Some(entry) = self.by_name.get(first) {
                return Ok(self.selected(first, entry, rest));
            }
        }
        let entry = self
            .by_name
            .get(&self.default)
            .ok_or_else(|| not_configured(&self.default))?;
        if let Some((first, _)) = name.split_first() {
            if entry.hub && looks_like_host(first) {
                return Err(not_configured(first));
            }
        }
        Ok(self.selected(&self.default, entry, name.clone()))
    }

    fn selected(&self, registry: &str, entry: &Entry, repo: RepoName) -> Selected {
        let repo = if entry.hub && repo.is_single() {
            repo.prefixed("library")
        } else {
            repo
        };
        Selected {
            registry: registry.to_owned(),
            upstream: Arc::clone(&entry.upstream),
            repo,
        }
    }
}

fn not_configured(registry: &str) -> DockerError {
    DockerError::NameUnknown(format!(
        "registry {registry:?} is not configured as an upstream of this mirror"
    ))
}

/// What clients can select an upstream by: a host name, optionally with a port (only
/// reachable through `ns=`, since a port cannot be part of a repository path).
fn is_registry_name(name: &str) -> bool {
    let (host, port) = name.split_once(':').unwrap_or((name, "1"));
    let host_ok = !host.is_empty()
        && !host.starts_with(['.', '-'])
        && host
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    host_ok && !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit())
}

/// Docker's own rule for telling a registry host from a Hub namespace.
fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost"
}

fn is_hub_url(url: &str) -> bool {
    let host = |url: &str| url::Url::parse(url).ok()?.host_str().map(str::to_owned);
    host(url).is_some_and(|h| Some(h) == host(DOCKER_HUB_URL))
}

#[cfg(test)]
mod tests {
    use mirror_core::HttpUpstream;

    use super::*;

    fn upstreams() -> Upstreams {
        let mut map: BTreeMap<String, Arc<dyn Upstream>> = BTreeMap::new();
        let mut urls = BTreeMap::new();
        for (name, url) in [
            ("docker.io", DOCKER_HUB_URL),
            ("ghcr.io", "https://ghcr.io"),
            ("hub", "https://registry-1.docker.io/"),
        ] {
            let http = HttpUpstream::builder(url).unwrap().build().unwrap();
            map.insert(name.into(), Arc::new(http));
            urls.insert(name.to_owned(), url.to_owned());
        }
        Upstreams::new(map, &urls, "docker.io").unwrap()
    }

    fn pick(name: &str, ns: Option<&str>) -> Result<(String, String), &'static str> {
        let name = RepoName::parse(name).unwrap();
        upstreams()
            .select(&name, ns)
            .map(|s| (s.registry, s.repo.to_string()))
            .map_err(|e| e.code())
    }

    fn ok(registry: &str, repo: &str) -> Result<(String, String), &'static str> {
        Ok((registry.to_owned(), repo.to_owned()))
    }

    #[test]
    fn default_is_docker_hub_with_library() {
        assert_eq!(pick("nginx", None), ok("docker.io", "library/nginx"));
        assert_eq!(
            pick("bitnami/redis", None),
            ok("docker.io", "bitnami/redis")
        );
    }

    #[test]
    fn path_prefix_selects_configured_registries() {
        assert_eq!(pick("ghcr.io/org/app", None), ok("ghcr.io", "org/app"));
        assert_eq!(pick("ghcr.io/app", None), ok("ghcr.io", "app"));
        assert_eq!(
            pick("docker.io/nginx", None),
            ok("docker.io", "library/nginx")
        );
        assert_eq!(
            pick("hub/nginx", None),
            ok("hub", "library/nginx"),
            "hub by its url"
        );
        assert_eq!(
            pick("quay.io/org/app", None),
            Err("NAME_UNKNOWN"),
            "never dialled"
        );
    }

    #[test]
    fn ns_parameter_selects_and_keeps_the_path_whole() {
        assert_eq!(pick("org/app", Some("ghcr.io")), ok("ghcr.io", "org/app"));
        assert_eq!(
            pick("ghcr.io/x", Some("ghcr.io")),
            ok("ghcr.io", "ghcr.io/x")
        );
        assert_eq!(
            pick("nginx", Some("docker.io")),
            ok("docker.io", "library/nginx")
        );
        assert_eq!(pick("org/app", Some("evil.example")), Err("NAME_UNKNOWN"));
    }

    #[test]
    fn upstream_names_must_be_selectable() {
        for good in ["ghcr.io", "localhost:5000", "127.0.0.1:5000", "my-registry"] {
            assert!(is_registry_name(good), "{good}");
        }
        for bad in [
            "a/b",
            "Ghcr.io",
            "",
            ":5000",
            "host:",
            "host:port",
            ".x",
            "a b",
        ] {
            assert!(!is_registry_name(bad), "{bad:?}");
        }
        let http = HttpUpstream::builder("https://ghcr.io")
            .unwrap()
            .build()
            .unwrap();
        let map = BTreeMap::from([(
            "ghcr.io/org".to_owned(),
            Arc::new(http) as Arc<dyn Upstream>,
        )]);
        let err = Upstreams::new(map, &BTreeMap::new(), "ghcr.io/org").unwrap_err();
        assert!(
            err.to_string().contains("not a registry host name"),
            "{err}"
        );
    }

    #[test]
    fn default_must_be_configured() {
        let err = Upstreams::new(BTreeMap::new(), &BTreeMap::new(), "docker.io").unwrap_err();
        assert_eq!(err.code(), "UNKNOWN");
    }
}
