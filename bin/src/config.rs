//! The configuration file, its defaults, and the flags and environment that override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mirror_core::auth::AccessPolicy;
use mirror_docker::DockerConfig;
use mirror_maven::MavenConfig;
use mirror_npm::NpmConfig;
use mirror_pypi::PypiConfig;
use serde::Deserialize;

/// Everything `registry-mirror` can be told. Every key is optional; the defaults are the
/// embedded default: loopback, one data directory, the public registries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    /// The URL clients use to reach this server; else rebuilt from request headers.
    pub(crate) public_url: Option<String>,
    /// How long an upstream 404 is remembered.
    #[serde(with = "humantime_serde")]
    pub(crate) negative_ttl: Duration,
    /// `text` or `json`.
    pub(crate) log_format: LogFormat,
    /// Time a client has to send its request headers (slow clients are cut off); also how
    /// long a connection with no request in flight is kept, over HTTP/1 and HTTP/2.
    #[serde(with = "humantime_serde")]
    pub(crate) header_read_timeout: Duration,
    /// Longest pause in a request body while the server waits for it: a stalled upload
    /// fails and its connection is closed, while a slow but flowing one goes on.
    #[serde(with = "humantime_serde")]
    pub(crate) body_read_timeout: Duration,
    /// Client connections served at once.
    pub(crate) max_connections: usize,
    /// Bytes of small, recently served blobs (up to 1 MiB each) kept in memory; 0 turns
    /// the memory cache off.
    pub(crate) memory_cache_bytes: u64,
    pub(crate) npm: NpmConfig,
    pub(crate) pypi: PypiConfig,
    /// Container image upstreams, tag freshness and the private registry.
    pub(crate) docker: DockerConfig,
    /// Maven repositories (proxy, hosted, group), metadata freshness and limits.
    pub(crate) maven: MavenConfig,
    /// Users, tokens and who may read or write what.
    pub(crate) auth: AccessPolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("registry-mirror-data"),
            public_url: None,
            negative_ttl: Duration::from_secs(60),
            log_format: LogFormat::Text,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            memory_cache_bytes: 32 * 1024 * 1024,
            npm: NpmConfig::default(),
            pypi: PypiConfig::default(),
            docker: DockerConfig::default(),
            maven: MavenConfig::default(),
            auth: AccessPolicy::default(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid access rule in {path}: {reason}")]
    Rules { path: PathBuf, reason: String },
    #[error("public_url {url:?} is not usable: {reason}")]
    PublicUrl { url: String, reason: &'static str },
}

impl Config {
    /// Reads a TOML file, or the defaults when no file is given.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if let Some(url) = &config.public_url {
            check_public_url(url)?;
        }
        config
            .auth
            .validate()
            .map_err(|reason| ConfigError::Rules {
                path: path.to_owned(),
                reason,
            })?;
        Ok(config)
    }

    /// The base URL clients are told to use: `public_url`, else the listen address, with
    /// this machine's host name for a wildcard address (`0.0.0.0`, `::`), which no client
    /// can connect to.
    pub(crate) fn client_base_url(&self) -> String {
        let base = match &self.public_url {
            Some(url) => url.clone(),
            None if self.listen.ip().is_unspecified() => {
                format!("http://{}:{}", host_name(), self.listen.port())
            }
            None => format!("http://{}", self.listen),
        };
        base.trim_end_matches('/').to_owned()
    }

    /// The npm configuration with the server-wide public URL applied to its mount.
    pub(crate) fn npm(&self) -> NpmConfig {
        let mut npm = self.npm.clone();
        npm.mount_path = "/npm".to_owned();
        if npm.public_url.is_none() {
            npm.public_url = self
                .public_url
                .as_ref()
                .map(|url| format!("{}/npm", url.trim_end_matches('/')));
        }
        npm
    }

    /// The container registry configuration with the server-wide public URL, which its
    /// authentication challenges name as the token endpoint's host.
    pub(crate) fn docker(&self) -> DockerConfig {
        let mut docker = self.docker.clone();
        if docker.public_url.is_none() {
            docker.public_url = self.public_url.clone();
        }
        docker
    }

    /// The PyPI configuration with the server-wide public URL applied to its mount.
    pub(crate) fn pypi(&self) -> PypiConfig {
        let mut pypi = self.pypi.clone();
        pypi.mount_path = "/pypi".to_owned();
        if pypi.public_url.is_none() {
            pypi.public_url = self
                .public_url
                .as_ref()
                .map(|url| format!("{}/pypi", url.trim_end_matches('/')));
        }
        if pypi.spool_dir.is_none() {
            pypi.spool_dir = Some(self.data_dir.join("spool"));
        }
        pypi
    }
}

/// Refuses a public URL that clients could not use as the base of every link the mirror
/// writes: it must be absolute http(s) with a host, and carry no query or fragment.
pub(crate) fn check_public_url(url: &str) -> Result<(), ConfigError> {
    let refuse = |reason| ConfigError::PublicUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|_| refuse("not an absolute URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(refuse("it has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(refuse("it must not have a query or fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("it must not carry credentials"));
    }
    Ok(())
}

/// This machine's host name as the kernel reports it, or `localhost` when unknown.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_embedded_default() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.listen, Config::default().listen);
        assert_eq!(config.npm.upstream, "https://registry.npmjs.org/");
    }

    #[test]
    fn parses_the_documented_keys() {
        let config: Config = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            data_dir = "/var/lib/mirror"
            public_url = "https://mirror.example.com/"
            negative_ttl = "30s"
            header_read_timeout = "3s"
            body_read_timeout = "7s"
            max_connections = 50
            [npm]
            upstream = "http://127.0.0.1:4873/"
            metadata_ttl = "5m"
            upstream_read_timeout = "2s"
            [pypi]
            upstream_read_timeout = "3s"
            [docker]
            upstream_read_timeout = "4s"
            "#,
        )
        .unwrap();
        assert_eq!(config.npm.metadata_ttl, Duration::from_secs(300));
        assert_eq!(config.header_read_timeout, Duration::from_secs(3));
        assert_eq!(config.body_read_timeout, Duration::from_secs(7));
        assert_eq!(config.max_connections, 50);
        assert_eq!(config.npm.upstream_read_timeout, Duration::from_secs(2));
        assert_eq!(config.pypi.upstream_read_timeout, Duration::from_secs(3));
        assert_eq!(config.docker.upstream_read_timeout, Duration::from_secs(4));
        let defaults = Config::default();
        assert_eq!(defaults.npm.upstream_read_timeout, Duration::from_secs(30));
        assert_eq!(defaults.body_read_timeout, Duration::from_secs(60));
        assert_eq!(
            config.npm().public_url.as_deref(),
            Some("https://mirror.example.com/npm")
        );
        assert_eq!(config.negative_ttl, Duration::from_secs(30));
    }

    #[test]
    fn clients_are_never_told_a_wildcard_address() {
        let mut config = Config {
            listen: "127.0.0.1:8080".parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(config.client_base_url(), "http://127.0.0.1:8080");
        for wildcard in ["0.0.0.0:9000", "[::]:9000"] {
            config.listen = wildcard.parse().unwrap();
            let base = config.client_base_url();
            assert_eq!(base, format!("http://{}:9000", host_name()));
            assert!(
                !base.contains("0.0.0.0") && !base.contains("[::]"),
                "{base}"
            );
        }
        config.public_url = Some("https://mirror.example.com/".to_owned());
        assert_eq!(config.client_base_url(), "https://mirror.example.com");
    }

    #[test]
    fn parses_access_rules() {
        let config: Config = toml::from_str(
            r#"
            [auth]
            anonymous_read = false
            [[auth.rules]]
            ecosystem = "npm"
            pattern = "@acme/*"
            write = ["alice"]
            publish_over_upstream = true
            "#,
        )
        .unwrap();
        assert!(!config.auth.anonymous_read);
        assert!(config.auth.may_publish_over_upstream("npm", "@acme/x"));
    }

    #[test]
    fn parses_the_pypi_keys() {
        let config: Config = toml::from_str(
            r#"
            public_url = "https://mirror.example.com"
            [pypi]
            upstream = "http://127.0.0.1:3141/root/pypi/+simple/"
            files_upstream = ""
            index_ttl = "2m"
            root_ttl = "1d"
            max_file_bytes = 1000
            "#,
        )
        .unwrap();
        let pypi = config.pypi();
        assert_eq!(pypi.upstream, "http://127.0.0.1:3141/root/pypi/+simple/");
        assert_eq!(pypi.files_upstream, "");
        assert_eq!(pypi.index_ttl, Duration::from_secs(120));
        assert_eq!(pypi.root_ttl, Duration::from_secs(86400));
        assert_eq!(pypi.max_file_bytes, 1000);
        assert_eq!(
            pypi.public_url.as_deref(),
            Some("https://mirror.example.com/pypi")
        );
        let defaults = Config::default().pypi();
        assert_eq!(defaults.upstream, "https://pypi.org/simple/");
        assert_eq!(defaults.files_upstream, "https://files.pythonhosted.org/");
        assert_eq!(defaults.index_ttl, Duration::from_secs(600));
    }

    #[test]
    fn parses_the_docker_keys() {
        let config: Config = toml::from_str(
            r#"
            [docker]
            tag_ttl = "1s"
            [docker.upstreams."upstream.test"]
            url = "http://127.0.0.1:5000"
            username = "u"
            password = "p"
            "#,
        )
        .unwrap();
        assert_eq!(config.docker.tag_ttl, Duration::from_secs(1));
        assert_eq!(config.docker.default_upstream, "docker.io");
        assert!(config.docker.upstreams.contains_key("docker.io"));
        let upstream = &config.docker.upstreams["upstream.test"];
        assert_eq!(upstream.url, "http://127.0.0.1:5000");
        assert_eq!(upstream.username.as_deref(), Some("u"));
        assert!(toml::from_str::<Config>("[docker]\ntag_tll = \"1s\"").is_err());
    }

    #[test]
    fn parses_the_maven_keys() {
        let config: Config = toml::from_str(
            r#"
            [maven]
            metadata_ttl = "1m"
            [maven.repositories.central]
            kind = "proxy"
            url = "http://127.0.0.1:8081/maven2/"
            username = "reader"
            password = "pw"
            [maven.repositories.team]
            kind = "hosted"
            versions = "snapshot"
            [maven.repositories.public]
            kind = "group"
            members = ["team", "releases", "central"]
            "#,
        )
        .unwrap();
        let maven = &config.maven;
        assert_eq!(maven.metadata_ttl, Duration::from_secs(60));
        let central = mirror_maven::RepositoryConfig::Proxy {
            url: "http://127.0.0.1:8081/maven2/".to_owned(),
            username: Some("reader".to_owned()),
            password: Some(mirror_maven::Password("pw".to_owned())),
        };
        assert_eq!(maven.repositories["central"], central);
        assert!(
            maven.repositories.contains_key("snapshots"),
            "defaults kept"
        );
        assert!(matches!(
            &maven.repositories["public"],
            mirror_maven::RepositoryConfig::Group { members } if members[0] == "team"
        ));
        assert!(
            !format!("{central:?}").contains("pw"),
            "passwords stay out of logs"
        );
        let defaults = Config::default().maven;
        assert_eq!(defaults.repositories.len(), 4);
        assert!(toml::from_str::<Config>("[maven.repositories.x]\nkind = \"mirror\"").is_err());
        assert!(toml::from_str::<Config>(
            "[maven.repositories.x]\nkind = \"hosted\"\nurl = \"http://x/\""
        )
        .is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[npm]\nupstrem = \"x\"").is_err());
    }

    #[test]
    fn public_url_must_be_an_http_base() {
        for good in [
            "http://127.0.0.1:8080",
            "https://mirror.example.com/",
            "http://h/sub/",
        ] {
            assert!(check_public_url(good).is_ok(), "{good}");
        }
        for bad in [
            "mirror.example.com",
            "ftp://mirror.example.com",
            "http://mirror.example.com/?x=1",
            "http://mirror.example.com/#top",
            "http://user:pw@mirror.example.com",
            "/npm",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
        let path = std::env::temp_dir().join(format!("rm-config-{}.toml", std::process::id()));
        std::fs::write(&path, "public_url = \"localhost:8080\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(err.to_string().contains("public_url"), "{err}");
    }

    #[test]
    fn private_registry_keys() {
        let config: Config = toml::from_str(
            "public_url = \"https://reg.example\"\n[docker]\n\
             private_repositories = [\"team/*\"]\nallow_delete = false\n\
             upload_timeout = \"10m\"\ntoken_ttl = \"1m\"\nmax_uploads = 3\n",
        )
        .unwrap();
        let docker = config.docker();
        assert!(docker.is_private("team/app") && !docker.is_private("private/app"));
        assert!(!docker.allow_delete);
        assert_eq!(docker.upload_timeout, Duration::from_secs(600));
        assert_eq!(docker.token_ttl, Duration::from_secs(60));
        assert_eq!(docker.max_uploads, 3);
        assert_eq!(docker.public_url.as_deref(), Some("https://reg.example"));

        let defaults = Config::default().docker();
        assert!(defaults.is_private("private/app") && defaults.allow_delete);
        assert!(!defaults.is_private("library/alpine"));
    }
}
