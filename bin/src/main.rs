//! `registry-mirror`: one binary that mirrors and hosts package registries.

mod admin;
mod config;
mod docker_help;
mod listener;
mod server;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Config, LogFormat};

/// A pull-through cache and private registry for npm, PyPI, Maven and container images.
#[derive(Debug, Parser)]
#[command(name = "registry-mirror", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default configuration needs no file).
    Serve(ServeArgs),
    /// Manage users.
    User {
        #[command(subcommand)]
        command: admin::UserCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: admin::TokenCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Client configuration for npm.
    #[command(
        disable_help_subcommand = true,
        override_usage = "registry-mirror npm help [OPTIONS]"
    )]
    Npm {
        #[command(subcommand)]
        command: HelpCommand,
        #[command(flatten)]
        args: HelpArgs,
    },
    /// Client configuration for pip and uv.
    #[command(
        disable_help_subcommand = true,
        override_usage = "registry-mirror pypi help [OPTIONS]"
    )]
    Pypi {
        #[command(subcommand)]
        command: HelpCommand,
        #[command(flatten)]
        args: HelpArgs,
    },
    /// Client configuration for mvn (settings.xml).
    #[command(
        disable_help_subcommand = true,
        override_usage = "registry-mirror maven help [OPTIONS]"
    )]
    Maven {
        #[command(subcommand)]
        command: HelpCommand,
        #[command(flatten)]
        args: HelpArgs,
    },
    /// Client configuration for Docker and containerd.
    #[command(
        disable_help_subcommand = true,
        override_usage = "registry-mirror docker help [OPTIONS]"
    )]
    Docker {
        #[command(subcommand)]
        command: HelpCommand,
        #[command(flatten)]
        args: HelpArgs,
    },
}

/// What the `help` commands read: the server's configuration and, like `serve`, the
/// address it listens on (the URL they print when no public URL is set).
#[derive(Debug, Args)]
pub(crate) struct HelpArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The address the server listens on, as given to `serve --listen`.
    #[arg(long, global = true, env = "REGISTRY_MIRROR_LISTEN")]
    listen: Option<SocketAddr>,
}

impl HelpArgs {
    /// The base URL clients should be given.
    pub(crate) fn base_url(&self) -> Result<String, config::ConfigError> {
        let mut config = self.common.config()?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        Ok(config.client_base_url())
    }
}

#[derive(Debug, Subcommand)]
enum HelpCommand {
    /// Print the lines to paste into the client's configuration.
    Help,
}

/// Options every subcommand that touches configuration or data takes.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "REGISTRY_MIRROR_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for cached and hosted data.
    #[arg(long, global = true, env = "REGISTRY_MIRROR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// URL clients use to reach this server.
    #[arg(long, global = true, env = "REGISTRY_MIRROR_PUBLIC_URL")]
    public_url: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on, such as 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, env = "REGISTRY_MIRROR_LISTEN")]
    listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, env = "REGISTRY_MIRROR_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

impl CommonArgs {
    pub(crate) fn config(&self) -> Result<Config, config::ConfigError> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        if let Some(url) = &self.public_url {
            config::check_public_url(url)?;
            config.public_url = Some(url.clone());
        }
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::User { command, common } => admin::user(command, &common),
        Command::Token { command, common } => admin::token(command, &common),
        Command::Npm {
            command: HelpCommand::Help,
            args,
        } => npm_help(&args),
        Command::Pypi {
            command: HelpCommand::Help,
            args,
        } => pypi_help(&args),
        Command::Maven {
            command: HelpCommand::Help,
            args,
        } => maven_help(&args),
        Command::Docker {
            command: HelpCommand::Help,
            args,
        } => docker_help::print(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`registry-mirror docker help | head`) is not an error.
        Err(err) if is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut message = format!("registry-mirror: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|err| err.kind() == std::io::ErrorKind::BrokenPipe)
}

fn serve(args: &ServeArgs) -> Result<(), BoxError> {
    let mut config = args.common.config()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> Result<(), BoxError> {
    raise_open_file_limit(config.max_connections);
    let (router, app) = server::build(&config)?;
    admin::bootstrap(&app.auth, &config.data_dir).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| server::StartError::Listen(config.listen, err))?;
    let addr = listener.local_addr()?;
    announce(addr)?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "serving");
    let limits = listener::Limits {
        header_read_timeout: config.header_read_timeout,
        // One key for both: an idle keep-alive connection is one waiting for headers.
        idle_timeout: config.header_read_timeout,
        body_read_timeout: config.body_read_timeout,
        max_connections: config.max_connections.max(1),
        ..listener::Limits::default()
    };
    listener::serve(listener, router, limits, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: each client connection takes a
/// descriptor, and the usual soft default (1024) would refuse connections long before
/// `max_connections`, while the hard limit is what the operator actually allows.
fn raise_open_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < max_connections as u64 => tracing::warn!(
            limit,
            max_connections,
            "the open-file limit is below max_connections; raise the hard limit (ulimit -Hn)"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit"),
    }
}

/// The one line scripts and tests read to learn the address (port 0 picks one).
fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down, finishing in-flight responses");
}

/// Logs to stderr, filtered by `RUST_LOG` as a list of `target=level` directives and a
/// default level (`info` when unset). tracing-subscriber's `EnvFilter` also matches spans
/// and fields, but compiles regular expressions at every start for it, which costs the
/// idle process memory for a feature a mirror's operators rarely need.
fn init_logging(format: LogFormat) {
    let info = || Targets::new().with_default(LevelFilter::INFO);
    let (filter, refused) = match std::env::var("RUST_LOG") {
        Ok(spec) if spec.contains(['[', '{']) => {
            let why = "span and field filters are not supported".to_owned();
            (info(), Some((spec, why)))
        }
        Ok(spec) => match spec.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(err) => (info(), Some((spec, err.to_string()))),
        },
        Err(_) => (info(), None),
    };
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    if let Some((spec, err)) = refused {
        tracing::warn!(rust_log = %spec, error = %err, "RUST_LOG not understood, logging at info");
    }
}

fn npm_help(args: &HelpArgs) -> Result<(), BoxError> {
    let base = args.base_url()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "# ~/.npmrc or the project's .npmrc")?;
    writeln!(out, "registry={base}/npm/")?;
    writeln!(out)?;
    writeln!(out, "# or for one command:")?;
    writeln!(out, "#   npm install --registry {base}/npm/")?;
    Ok(())
}

fn pypi_help(args: &HelpArgs) -> Result<(), BoxError> {
    let base = args.base_url()?;
    let index = format!("{base}/pypi/simple/");
    let trusted = untrusted_http_host(&index).map_or_else(String::new, |host| {
        format!("# pip refuses plain http off loopback unless trusted:\ntrusted-host = {host}\n")
    });
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "# pip: ~/.config/pip/pip.conf, /etc/pip.conf or $VIRTUAL_ENV/pip.conf
[global]
index-url = {index}
{trusted}
# or for one shell:
#   export PIP_INDEX_URL={index}
# or for one command:
#   pip install --index-url {index} requests

# uv: uv.toml, or as [[tool.uv.index]] in pyproject.toml
[[index]]
url = \"{index}\"
default = true

# or for one shell (UV_INDEX_URL with uv before 0.4.23):
#   export UV_DEFAULT_INDEX={index}
# or for one command:
#   uv pip install --index-url {index} requests
"
    )?;
    Ok(())
}

fn maven_help(args: &HelpArgs) -> Result<(), BoxError> {
    let base = args.base_url()?;
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "<!-- ~/.m2/settings.xml: every repository through the mirror's public group
     (hosted releases and snapshots first, then the Maven Central proxy) -->
<settings>
  <mirrors>
    <mirror>
      <id>registry-mirror</id>
      <mirrorOf>*</mirrorOf>
      <url>{base}/maven/public/</url>
    </mirror>
  </mirrors>
  <!-- for mvn deploy: a user's password, or an API token (registry-mirror token create) -->
  <servers>
    <server>
      <id>registry-mirror-releases</id>
      <username>USER</username>
      <password>PASSWORD_OR_TOKEN</password>
    </server>
    <server>
      <id>registry-mirror-snapshots</id>
      <username>USER</username>
      <password>PASSWORD_OR_TOKEN</password>
    </server>
  </servers>
  <!-- lets the mirror serve -SNAPSHOT versions too (Central's definition forbids them) -->
  <profiles>
    <profile>
      <id>registry-mirror</id>
      <repositories>
        <repository>
          <id>central</id>
          <url>http://central</url>
          <releases><enabled>true</enabled></releases>
          <snapshots><enabled>true</enabled></snapshots>
        </repository>
      </repositories>
      <pluginRepositories>
        <pluginRepository>
          <id>central</id>
          <url>http://central</url>
          <releases><enabled>true</enabled></releases>
          <snapshots><enabled>true</enabled></snapshots>
        </pluginRepository>
      </pluginRepositories>
    </profile>
  </profiles>
  <activeProfiles>
    <activeProfile>registry-mirror</activeProfile>
  </activeProfiles>
</settings>

<!-- pom.xml: where mvn deploy uploads -->
<distributionManagement>
  <repository>
    <id>registry-mirror-releases</id>
    <url>{base}/maven/releases/</url>
  </repository>
  <snapshotRepository>
    <id>registry-mirror-snapshots</id>
    <url>{base}/maven/snapshots/</url>
  </snapshotRepository>
</distributionManagement>

<!-- or for one command, without a pom change (maven-deploy-plugin 3; 2.x wants
  registry-mirror-releases::default::{base}/maven/releases/):
  mvn deploy -DaltDeploymentRepository=registry-mirror-releases::{base}/maven/releases/ -->
"
    )?;
    Ok(())
}

/// The `host[:port]` pip must be told to trust: a plain-http index off loopback.
fn untrusted_http_host(index: &str) -> Option<String> {
    let url = url::Url::parse(index).ok()?;
    let loopback = match url.host()? {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    if url.scheme() != "http" || loopback {
        return None;
    }
    let port = url
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    Some(format!("{}{port}", url.host_str()?))
}
