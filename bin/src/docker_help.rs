//! `registry-mirror docker help`: the client configuration for Docker and containerd.

use std::io::Write;

use mirror_docker::{DOCKER_HUB, DOCKER_HUB_URL};

use crate::{untrusted_http_host, BoxError, HelpArgs};

/// The registry shown as the example of a non-Docker-Hub upstream when none is configured.
const EXAMPLE_REGISTRY: (&str, &str) = ("ghcr.io", "https://ghcr.io");

pub(crate) fn print(args: &HelpArgs) -> Result<(), BoxError> {
    let config = args.common.config()?;
    let base = args.base_url()?;
    let base = base.as_str();
    let host = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .to_owned();
    let docker = &config.docker;
    let hub_url = docker
        .upstreams
        .get(DOCKER_HUB)
        .map_or(DOCKER_HUB_URL, |u| u.url.as_str());
    let other = docker
        .upstreams
        .iter()
        .find(|(name, _)| name.as_str() != DOCKER_HUB && **name != docker.default_upstream)
        .map(|(name, upstream)| (name.as_str(), upstream.url.as_str()));
    let (other_name, other_url) = other.unwrap_or(EXAMPLE_REGISTRY);

    let mut out = std::io::stdout().lock();
    let insecure = untrusted_http_host(base).map_or_else(String::new, |host| {
        format!(",\n  \"insecure-registries\": [\"{host}\"]")
    });
    write!(
        out,
        "# Docker Engine: /etc/docker/daemon.json, then restart dockerd.
# (Docker's registry-mirrors setting applies to Docker Hub images only.)
{{
  \"registry-mirrors\": [\"{base}\"]{insecure}
}}

# containerd (and Kubernetes nodes using it): point the CRI plugin's registry
# config_path at /etc/containerd/certs.d, then add one hosts.toml per registry.

# /etc/containerd/certs.d/docker.io/hosts.toml
server = \"{hub_url}\"

[host.\"{base}\"]
  capabilities = [\"pull\", \"resolve\"]
"
    )?;
    if other.is_none() {
        write!(
            out,
            "
# Other registries must be configured first, for example in the mirror's TOML:
#   [docker.upstreams.\"{other_name}\"]
#   url = \"{other_url}\"
"
        )?;
    }
    write!(
        out,
        "
# /etc/containerd/certs.d/{other_name}/hosts.toml
# (containerd tells the mirror which registry it stands in for with ?ns={other_name})
server = \"{other_url}\"

[host.\"{base}\"]
  capabilities = [\"pull\", \"resolve\"]

# Clients that take only a host and path (podman, skopeo, crane, docker pull) select the
# registry by the first path segment instead:
#   docker pull {host}/{other_name}/<repository>:<tag>
#   docker pull {host}/library/alpine:latest        (Docker Hub, the default)
"
    )?;
    Ok(())
}
