//! [`Upstream`] over HTTP with reqwest.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::http::{header, StatusCode};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use tracing::Instrument;
use url::Url;

use super::{Upstream, UpstreamRequest, UpstreamResponse};
use crate::error::{Error, Result};

/// How the mirror authenticates to an upstream.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// A static bearer token.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Builds an [`HttpUpstream`].
#[derive(Debug, Clone)]
pub struct HttpUpstreamBuilder {
    base: Url,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    read_timeout: Duration,
    retries: u32,
    backoff: Duration,
    proxy: Option<String>,
}

impl HttpUpstreamBuilder {
    /// Credentials sent with every request to the base URL's origin.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Time allowed to open a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest wait for the response head or for the next body chunk (default 30 s). A
    /// whole transfer may take longer, as long as bytes keep coming.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Extra attempts after a connect error or a 5xx answer (default 2), spaced by an
    /// exponential backoff starting at `backoff` (default 200 ms).
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Sends every request through this HTTP(S) proxy; without it, the usual
    /// `HTTPS_PROXY` / `NO_PROXY` environment variables apply.
    pub fn proxy(mut self, proxy: impl Into<String>) -> Self {
        self.proxy = Some(proxy.into());
        self
    }

    /// Builds the upstream. The HTTP client itself (TLS settings, the system's root
    /// certificates) is made on the first request: a mirror configured with several
    /// upstreams, most of them idle, then holds no memory for the unused ones.
    pub fn build(self) -> Result<HttpUpstream> {
        if let Some(proxy) = &self.proxy {
            proxy_of(proxy)?;
        }
        let name = self.base.as_str().trim_end_matches('/').to_owned();
        Ok(HttpUpstream {
            client: Arc::new(OnceLock::new()),
            config: self,
            name,
        })
    }

    fn client(&self) -> Result<reqwest::Client> {
        let mut client = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .user_agent(concat!("registry-mirror/", env!("CARGO_PKG_VERSION")));
        if let Some(proxy) = &self.proxy {
            client = client.proxy(proxy_of(proxy)?);
        }
        client
            .build()
            .map_err(|err| Error::upstream("cannot build client", err))
    }
}

fn proxy_of(url: &str) -> Result<reqwest::Proxy> {
    reqwest::Proxy::all(url).map_err(|err| Error::Invalid(format!("bad proxy url: {err}")))
}

/// An upstream registry reached over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpUpstream {
    /// Made on first use and shared by the clones.
    client: Arc<OnceLock<reqwest::Client>>,
    config: HttpUpstreamBuilder,
    name: String,
}

impl HttpUpstream {
    /// Starts building an upstream rooted at `base` (a trailing `/` is added if missing).
    pub fn builder(base: &str) -> Result<HttpUpstreamBuilder> {
        let mut base = Url::parse(base).map_err(|err| Error::Invalid(format!("bad url: {err}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Invalid(format!(
                "unsupported scheme {:?}",
                base.scheme()
            )));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(HttpUpstreamBuilder {
            base,
            credentials: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(200),
            proxy: None,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.config.base
    }

    /// Resolves a request target to a URL under the base, refusing anything else.
    pub fn resolve(&self, target: &str) -> Result<Url> {
        let base = &self.config.base;
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            Url::parse(target).map_err(|err| Error::Invalid(format!("bad url: {err}")))?
        } else {
            let relative = target.trim_start_matches('/');
            if relative.starts_with('/') || relative.split(['/', '?']).any(|s| s == "..") {
                return Err(Error::Invalid(format!("unsafe upstream path {target:?}")));
            }
            base.join(relative)
                .map_err(|err| Error::Invalid(format!("bad path: {err}")))?
        };
        if url.origin() != base.origin() {
            return Err(Error::Invalid(format!(
                "{url} is not on the upstream's origin"
            )));
        }
        Ok(url)
    }

    fn client(&self) -> Result<&reqwest::Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let built = self.config.client()?;
        Ok(self.client.get_or_init(|| built))
    }

    async fn attempt(&self, request: &UpstreamRequest, url: &Url) -> Result<reqwest::Response> {
        let mut builder = self
            .client()?
            .request(request.method.clone(), url.clone())
            .headers(request.headers.clone());
        builder = match &self.config.credentials {
            Some(Credentials::Basic { username, password }) => {
                builder.basic_auth(username, Some(password))
            }
            Some(Credentials::Bearer(token)) => builder.bearer_auth(token),
            None => builder,
        };
        builder.send().await.map_err(map_reqwest_error)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(8));
        self.config
            .backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(5))
    }
}

fn retryable(result: &Result<reqwest::Response>) -> bool {
    match result {
        Ok(response) => response.status().is_server_error(),
        Err(Error::Upstream { .. }) => true,
        Err(_) => false,
    }
}

fn map_reqwest_error(err: reqwest::Error) -> Error {
    if err.is_timeout() {
        Error::UpstreamTimeout
    } else if err.is_connect() {
        Error::upstream("cannot connect", err)
    } else {
        Error::upstream("request failed", err)
    }
}

#[async_trait]
impl Upstream for HttpUpstream {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse> {
        let url = self.resolve(&request.target)?;
        let span = tracing::debug_span!("upstream", %url);
        self.send_resolved(request, url).instrument(span).await
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl HttpUpstream {
    async fn send_resolved(&self, request: UpstreamRequest, url: Url) -> Result<UpstreamResponse> {
        let mut attempt = 0;
        let response = loop {
            let result = self.attempt(&request, &url).await;
            if attempt >= self.config.retries || !retryable(&result) {
                break result?;
            }
            tracing::debug!(attempt, status = ?result.as_ref().map(|r| r.status()).ok(), "upstream retry");
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
        };
        let status = StatusCode::from_u16(response.status().as_u16())
            .map_err(|err| Error::upstream("bad status", err))?;
        let mut headers = response.headers().clone();
        drop_hop_by_hop(&mut headers);
        let body = response.bytes_stream().map_err(map_reqwest_error).boxed();
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }
}

fn drop_hop_by_hop(headers: &mut ::http::HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

#[cfg(test)]
mod tests;
