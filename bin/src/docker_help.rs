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
    let others: Vec<(&str, &str)> = docker
        .upstreams
        .iter()
        .filter(|(name, _)| name.as_str() != DOCKER_HUB)
        .map(|(name, upstream)| (name.as_str(), upstream.url.as_str()))
        .collect();
    let default = docker.default_upstream.as_str();

    let mut out = std::io::stdout().lock();
    let insecure = untrusted_http_host(base).map_or_else(String::new, |host| {
        format!(",\n  \"insecure-registries\": [\"{host}\"]")
    });
    if default == DOCKER_HUB {
        write!(
            out,
            "# Docker Engine: /etc/docker/daemon.json, then restart dockerd.
# (Docker's registry-mirrors setting applies to Docker Hub images only.)
{{
  \"registry-mirrors\": [\"{base}\"]{insecure}
}}
"
        )?;
    } else {
        write!(
            out,
            "# Docker Engine: not as a registry-mirrors entry. Docker sends Docker Hub pulls to
# a mirror without saying which registry they are for, and this mirror answers such
# names from its default upstream, {default:?} (docker.default_upstream). Set
# default_upstream = \"docker.io\" to mirror Docker Hub for dockerd, or pull by path
# prefix as shown below.
"
        )?;
    }
    write!(
        out,
        "
# containerd (and Kubernetes nodes using it): point the CRI plugin's registry
# config_path at /etc/containerd/certs.d, then add one hosts.toml per registry.
# (containerd tells the mirror which registry it stands in for with ?ns=<registry>.)
"
    )?;
    if docker.upstreams.contains_key(DOCKER_HUB) {
        print_hosts_toml(&mut out, DOCKER_HUB, hub_url, base)?;
    }
    for (name, url) in &others {
        print_hosts_toml(&mut out, name, url, base)?;
    }
    let (example_name, example_url) = others.first().copied().unwrap_or(EXAMPLE_REGISTRY);
    if others.is_empty() {
        write!(
            out,
            "
# Other registries must be configured first, for example in the mirror's TOML:
#   [docker.upstreams.\"{example_name}\"]
#   url = \"{example_url}\"
# and then get a hosts.toml like the one above.
"
        )?;
    }
    let unprefixed = if default == DOCKER_HUB {
        format!("#   docker pull {host}/library/alpine:latest        (Docker Hub, the default)")
    } else {
        format!("#   docker pull {host}/<repository>:<tag>        ({default}, the default)")
    };
    write!(
        out,
        "
# Clients that take only a host and path (podman, skopeo, crane, docker pull) select the
# registry by the first path segment instead:
#   docker pull {host}/{example_name}/<repository>:<tag>
{unprefixed}
"
    )?;
    print_push(&mut out, &host, &docker.private_repositories)?;
    Ok(())
}

/// The containerd `hosts.toml` that sends one registry's pulls to the mirror.
fn print_hosts_toml(
    out: &mut impl Write,
    registry: &str,
    url: &str,
    base: &str,
) -> Result<(), BoxError> {
    write!(
        out,
        "
# /etc/containerd/certs.d/{registry}/hosts.toml
server = \"{url}\"

[host.\"{base}\"]
  capabilities = [\"pull\", \"resolve\"]
"
    )?;
    Ok(())
}

/// How to push to the private registry, or how to turn it on.
fn print_push(out: &mut impl Write, host: &str, private: &[String]) -> Result<(), BoxError> {
    let Some(pattern) = private.first() else {
        writeln!(
            out,
            "
# Private registry: off. List the repository names to host in the mirror's TOML:
#   [docker]
#   private_repositories = [\"private/*\"]"
        )?;
        return Ok(());
    };
    let example = pattern.replace('*', "app");
    write!(
        out,
        "
# Private registry: names matching {private:?} (docker.private_repositories) are
# hosted here, never fetched upstream. Pushes need a user or token
# (registry-mirror user add NAME / registry-mirror token create --user NAME):
#   docker login {host}
#   docker tag app:1 {host}/{example}:1
#   docker push {host}/{example}:1
#   skopeo copy --dest-creds NAME:PASSWORD oci:./layout:1 docker://{host}/{example}:1
#   skopeo copy --all --dest-creds NAME:PASSWORD docker://SOURCE docker://{host}/{example}:1
# (skopeo over plain HTTP also needs --dest-tls-verify=false.)
"
    )?;
    Ok(())
}
