//! The Maven repository layout as a tower `Service`.

mod group;
mod hosted;
mod proxy;
mod respond;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use mirror_core::auth::{Access, Action, Auth, AuthError, Identity};
use mirror_core::memo::{BytesCache, Recent};
use mirror_core::{
    Body, BoxError, Cache, CacheStatus, Credentials, Digest, HttpUpstream, Upstream,
    CACHE_STATUS_HEADER,
};

use self::hosted::HostedFile;
use self::respond::{respond, set, Answer};
use crate::config::{MavenConfig, RepositoryConfig, VersionPolicy};
use crate::error::MavenError;
use crate::path::{self, MavenPath};

type Result<T, E = MavenError> = std::result::Result<T, E>;

/// The ecosystem name access rules use for this service.
const ECOSYSTEM: &str = "maven";
/// What a 401 asks for.
const CREDENTIALS_NEEDED: &str =
    "authentication required: a user name and password (or API token) in settings.xml <server>";

/// A Maven repository manager: proxy repositories cached through the shared [`Cache`],
/// hosted repositories that `mvn deploy` uploads to, and groups that serve several of them
/// behind one URL.
///
/// The service sees paths relative to where it is mounted: `/<repository>/<path>`, such as
/// `/public/org/slf4j/slf4j-api/2.0.9/slf4j-api-2.0.9.jar`.
#[derive(Debug, Clone)]
pub struct MavenMirror {
    inner: Arc<Inner>,
}

/// How long a read of a hosted file's record is reused (see `Inner::load_hosted`): how
/// late a deploy through another replica sharing the metadata store can be seen.
const HOSTED_READ_HOLD: Duration = Duration::from_secs(1);
/// Hosted records kept in memory.
const MEMO_CAPACITY: usize = 8192;
/// Bytes of merged group listings kept in memory.
const MERGED_LISTINGS_BUDGET: u64 = 16 << 20;

#[derive(Debug)]
struct Inner {
    cache: Cache,
    config: MavenConfig,
    repositories: BTreeMap<String, Repository>,
    auth: Option<Auth>,
    /// Recent reads of hosted records by key; `None` when the file is not deployed.
    hosted_reads: Recent<Option<Arc<HostedFile>>>,
    /// Merged group listings by members and path and the digests of the member listings
    /// merged: a listing changed upstream or deployed anew is merged again.
    merged_listings: BytesCache<(String, Vec<Digest>)>,
}

impl Inner {
    fn new(
        cache: Cache,
        config: MavenConfig,
        repositories: BTreeMap<String, Repository>,
        auth: Option<Auth>,
    ) -> Self {
        Inner {
            cache,
            config,
            repositories,
            auth,
            hosted_reads: Recent::new(MEMO_CAPACITY, HOSTED_READ_HOLD),
            merged_listings: BytesCache::new(MERGED_LISTINGS_BUDGET),
        }
    }
}

/// A configured repository, ready to answer.
#[derive(Debug, Clone)]
enum Repository {
    Proxy(Arc<dyn Upstream>),
    Hosted(VersionPolicy),
    Group(Vec<String>),
}

impl MavenMirror {
    /// A mirror of the configured repositories; proxies reach their upstreams over HTTP.
    pub fn new(cache: Cache, config: MavenConfig) -> Result<Self> {
        let mut upstreams = BTreeMap::new();
        for (name, repository) in &config.repositories {
            if let RepositoryConfig::Proxy { .. } = repository {
                upstreams.insert(name.clone(), http_upstream(name, repository, &config)?);
            }
        }
        Self::with_upstreams(cache, config, upstreams)
    }

    /// A mirror whose proxy repositories reach upstream through the given [`Upstream`]s,
    /// by repository name; every proxy repository of `config` needs one.
    pub fn with_upstreams(
        cache: Cache,
        config: MavenConfig,
        mut upstreams: BTreeMap<String, Arc<dyn Upstream>>,
    ) -> Result<Self> {
        let mut repositories = BTreeMap::new();
        for (name, repository) in &config.repositories {
            check_name(name)?;
            let ready = match repository {
                RepositoryConfig::Proxy { .. } => {
                    let upstream = upstreams.remove(name).ok_or_else(|| {
                        MavenError::Config(format!("no upstream for proxy repository {name}"))
                    })?;
                    Repository::Proxy(upstream)
                }
                RepositoryConfig::Hosted { versions } => Repository::Hosted(*versions),
                RepositoryConfig::Group { members } => {
                    check_members(name, members, &config)?;
                    Repository::Group(members.clone())
                }
            };
            repositories.insert(name.clone(), ready);
        }
        let inner = Inner::new(cache, config, repositories, None);
        Ok(MavenMirror {
            inner: Arc::new(inner),
        })
    }

    /// Enables deploys to hosted repositories (with a user's password or an API token) and
    /// applies the access rules of `auth` (ecosystem `maven`, names `<repository>/<path>`)
    /// to every read and write. Without it the service is a read-only mirror open to all.
    pub fn with_auth(self, auth: Auth) -> Self {
        let inner = Inner::new(
            self.inner.cache.clone(),
            self.inner.config.clone(),
            self.inner.repositories.clone(),
            Some(auth),
        );
        MavenMirror {
            inner: Arc::new(inner),
        }
    }

    /// Answers one request; never fails, errors become plain-text responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let result = self.inner.dispatch(&parts, body).await;
        result.unwrap_or_else(|err| {
            let mut response = err.into_response();
            // Nothing cached answered this request, so it counts as a miss.
            let miss = CacheStatus::Miss.as_str();
            set(response.headers_mut(), CACHE_STATUS_HEADER, miss);
            response
        })
    }
}

fn http_upstream(
    name: &str,
    repository: &RepositoryConfig,
    config: &MavenConfig,
) -> Result<Arc<dyn Upstream>> {
    let RepositoryConfig::Proxy {
        url,
        username,
        password,
    } = repository
    else {
        return Err(MavenError::Config(format!("repository {name} is no proxy")));
    };
    let parsed = url::Url::parse(url)
        .map_err(|err| MavenError::Config(format!("repository {name}: url: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        let message = format!("repository {name}: the url must be http(s)");
        return Err(MavenError::Config(message));
    }
    let base = if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    };
    let mut builder = HttpUpstream::builder(&base)?.read_timeout(config.upstream_read_timeout);
    if let Some(username) = username {
        let password = password.as_ref().map(|p| p.0.clone()).unwrap_or_default();
        let username = username.clone();
        builder = builder.credentials(Credentials::Basic { username, password });
    }
    Ok(Arc::new(builder.build()?))
}

/// Repository names are URL segments and key prefixes: short, lowercase, no separators.
fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !name.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(MavenError::Config(format!(
            "repository name {name:?}: use 1-64 of a-z 0-9 . _ -"
        )))
    }
}

/// A group's members must exist and must not be groups themselves (no cycles to follow).
fn check_members(name: &str, members: &[String], config: &MavenConfig) -> Result<()> {
    for member in members {
        match config.repositories.get(member) {
            Some(RepositoryConfig::Group { .. }) => {
                let message = format!("group {name}: member {member} is a group");
                return Err(MavenError::Config(message));
            }
            Some(_) => {}
            None => {
                let message = format!("group {name}: no repository named {member}");
                return Err(MavenError::Config(message));
            }
        }
    }
    Ok(())
}

mirror_core::impl_mirror_service!(MavenMirror);

/// Who asked, and how.
struct Ask<'a> {
    headers: &'a HeaderMap,
    identity: Option<Identity>,
}

impl Inner {
    async fn dispatch<B>(&self, parts: &http::request::Parts, body: B) -> Result<Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = path::parse(parts.uri.path())?;
        let repository = self
            .repositories
            .get(&path.repository)
            .ok_or_else(|| MavenError::UnknownRepository(path.repository.clone()))?;
        let ask = Ask {
            headers: &parts.headers,
            identity: self.identify(&parts.headers).await?,
        };
        let head = match parts.method {
            Method::GET => false,
            Method::HEAD => true,
            Method::PUT => return self.deploy(repository, &path, &ask, body).await,
            _ => return Err(MavenError::MethodNotAllowed(allowed(repository))),
        };
        let answer = self.read(&path.repository, repository, &path, &ask).await?;
        respond(self.cache.blobs().as_ref(), answer, &path, &ask, head).await
    }

    /// A read from one repository of any kind.
    async fn read(
        &self,
        name: &str,
        repository: &Repository,
        path: &MavenPath,
        ask: &Ask<'_>,
    ) -> Result<Answer> {
        self.authorize(ask.identity.as_ref(), name, &path.path, Action::Read)?;
        match repository {
            Repository::Proxy(upstream) => self.proxy_read(name, upstream, path).await,
            Repository::Hosted(_) => self.hosted_read(name, path).await,
            Repository::Group(members) => self.group_read(members, path, ask).await,
        }
    }

    async fn deploy<B>(
        &self,
        repository: &Repository,
        path: &MavenPath,
        ask: &Ask<'_>,
        body: B,
    ) -> Result<Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Repository::Hosted(policy) = repository else {
            return Err(MavenError::MethodNotAllowed(allowed(repository)));
        };
        if self.auth.is_none() {
            return Err(MavenError::MethodNotAllowed("GET, HEAD"));
        }
        let identity = ask
            .identity
            .as_ref()
            .ok_or_else(|| MavenError::Unauthorized(CREDENTIALS_NEEDED.into()))?;
        self.authorize(Some(identity), &path.repository, &path.path, Action::Write)?;
        self.hosted_deploy(*policy, path, ask, identity, body).await
    }

    /// The identity behind the request's credential; a wrong credential is a 401 even where
    /// anonymous access would do, so a mistyped password never silently downgrades a client.
    async fn identify(&self, headers: &HeaderMap) -> Result<Option<Identity>> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        auth.authenticate(headers).await.map_err(|err| match err {
            AuthError::InvalidCredentials => MavenError::Unauthorized("invalid credentials".into()),
            AuthError::UnsupportedScheme => {
                MavenError::Unauthorized("unsupported authorization scheme; use Basic".into())
            }
            other => MavenError::Unauthorized(other.to_string()),
        })
    }

    /// Applies the access rules to `<repository>/<path>`. Without auth, reads are open.
    fn authorize(
        &self,
        identity: Option<&Identity>,
        repository: &str,
        path: &str,
        action: Action,
    ) -> Result<()> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let name = format!("{repository}/{path}");
        match auth.check(identity, ECOSYSTEM, &name, action) {
            Access::Granted => Ok(()),
            Access::NeedsCredentials => Err(MavenError::Unauthorized(CREDENTIALS_NEEDED.into())),
            Access::Forbidden => {
                let user = identity.map_or("anonymous", |id| id.user.as_str());
                let verb = match action {
                    Action::Read => "read",
                    Action::Write => "deploy to",
                };
                Err(MavenError::Forbidden(format!(
                    "{user} may not {verb} {name}"
                )))
            }
        }
    }
}

fn allowed(repository: &Repository) -> &'static str {
    match repository {
        Repository::Hosted(_) => "GET, HEAD, PUT",
        Repository::Proxy(_) | Repository::Group(_) => "GET, HEAD",
    }
}

/// Reads a listing on the blocking pool: a large one costs milliseconds of CPU.
async fn parse_listing(bytes: Bytes) -> Result<Result<crate::metadata::Metadata, String>> {
    let parsed = tokio::task::spawn_blocking(move || crate::metadata::parse(&bytes)).await;
    Ok(parsed.map_err(mirror_core::Error::storage)?)
}

/// True for the errors that mean "not in this repository", which a group skips.
fn is_absent(err: &MavenError) -> bool {
    match err {
        MavenError::NotFound => true,
        MavenError::Core(err) => err.is_not_found(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
