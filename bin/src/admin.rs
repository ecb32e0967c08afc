//! `registry-mirror user ...` and `registry-mirror token ...`: account management that works
//! against the same data directory as a running server, which sees each change at once.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::{Args, Subcommand};
use mirror_core::auth::{Auth, TokenAccess, TokenInfo};

use crate::{BoxError, CommonArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Admins may read and write everything.
        #[arg(long)]
        admin: bool,
    },
    /// Remove a user and revoke their tokens.
    Remove { name: String },
    /// List users.
    List,
    /// Set a user's password.
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PasswordArgs {
    /// The password; without it, the first line of standard input is read.
    #[arg(long, env = "REGISTRY_MIRROR_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an API token and print it (it is shown only this once).
    Create {
        /// The token's owner.
        #[arg(long)]
        user: String,
        /// A token that can read but never publish.
        #[arg(long)]
        read_only: bool,
        /// Lifetime, such as `30d` or `12h`; without it the token does not expire.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
        /// A note to recognise the token by.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by the id `token list` shows.
    Revoke { id: String },
}

pub(crate) fn user(command: UserCommand, common: &CommonArgs) -> Result<(), BoxError> {
    let auth = open(common)?;
    block_on(async move {
        let mut out = std::io::stdout().lock();
        match command {
            UserCommand::Add {
                name,
                password,
                admin,
            } => {
                let password = password.read()?;
                auth.add_user(&name, Some(&password), admin)
                    .await
                    .map_err(|err| match err {
                        mirror_core::Error::Conflict { .. } => BoxError::from(format!(
                            "user {name} already exists (registry-mirror user passwd {name} \
                             changes the password)"
                        )),
                        other => other.into(),
                    })?;
                writeln!(
                    out,
                    "created user {name}{}",
                    if admin { " (admin)" } else { "" }
                )?;
            }
            UserCommand::Remove { name } => {
                auth.remove_user(&name).await.map_err(|err| match err {
                    mirror_core::Error::NotFound => BoxError::from(format!("no user {name}")),
                    other => other.into(),
                })?;
                writeln!(out, "removed user {name} and revoked their tokens")?;
            }
            UserCommand::List => {
                for user in auth.list_users().await? {
                    let role = if user.admin { "admin" } else { "user" };
                    writeln!(
                        out,
                        "{}\t{role}\t{}",
                        user.name,
                        if user.has_password {
                            "password"
                        } else {
                            "token only"
                        }
                    )?;
                }
            }
            UserCommand::Passwd { name, password } => {
                auth.set_password(&name, &password.read()?).await?;
                writeln!(out, "password of {name} changed")?;
            }
        }
        Ok(())
    })
}

pub(crate) fn token(command: TokenCommand, common: &CommonArgs) -> Result<(), BoxError> {
    let auth = open(common)?;
    block_on(async move {
        let mut out = std::io::stdout().lock();
        match command {
            TokenCommand::Create {
                user,
                read_only,
                expires_in,
                label,
            } => {
                let access = if read_only {
                    TokenAccess::ReadOnly
                } else {
                    TokenAccess::ReadWrite
                };
                let (info, secret) = auth
                    .create_token(&user, access, expires_in, label)
                    .await
                    .map_err(|err| match err {
                        mirror_core::Error::NotFound => BoxError::from(format!(
                            "no user {user} (registry-mirror user list shows them)"
                        )),
                        other => other.into(),
                    })?;
                writeln!(out, "{secret}")?;
                let mut err = std::io::stderr().lock();
                writeln!(
                    err,
                    "token {} for {user} created; it is shown only this once",
                    info.id
                )?;
            }
            TokenCommand::List { user } => {
                for token in auth.list_tokens(user.as_deref()).await? {
                    writeln!(out, "{}", describe(&token))?;
                }
            }
            TokenCommand::Revoke { id } => {
                auth.revoke_token(&id).await.map_err(|err| match err {
                    mirror_core::Error::NotFound => BoxError::from(format!(
                        "no token with id {id} (registry-mirror token list shows the ids)"
                    )),
                    other => other.into(),
                })?;
                writeln!(out, "revoked token {id}")?;
            }
        }
        Ok(())
    })
}

/// On the very first start (no user at all), creates an `admin` user and prints one admin
/// token, so a fresh install can publish without reading any documentation first.
pub(crate) async fn bootstrap(auth: &Auth, data_dir: &std::path::Path) -> Result<(), BoxError> {
    if auth.has_users().await? {
        return Ok(());
    }
    auth.add_user("admin", None, true).await?;
    let label = Some("created on first start".to_owned());
    let (_, token) = auth
        .create_token("admin", TokenAccess::ReadWrite, None, label)
        .await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "created user admin with this admin token (shown only once, keep it safe):"
    )?;
    writeln!(out, "  {token}")?;
    writeln!(
        out,
        "more users and tokens: registry-mirror user add NAME --data-dir {0}; registry-mirror token create --user NAME --data-dir {0}",
        data_dir.display()
    )?;
    out.flush()?;
    Ok(())
}

fn describe(token: &TokenInfo) -> String {
    let access = match token.access {
        TokenAccess::ReadOnly => "read-only",
        TokenAccess::ReadWrite => "read-write",
    };
    let expires = token.expires_at.map_or("never".to_owned(), |at| {
        let time = std::time::UNIX_EPOCH + Duration::from_millis(at);
        humantime::format_rfc3339_seconds(time).to_string()
    });
    let label = token.label.as_deref().unwrap_or("");
    format!(
        "{}\t{}\t{access}\texpires {expires}\t{label}",
        token.id, token.user
    )
}

impl PasswordArgs {
    fn read(self) -> Result<String, BoxError> {
        if let Some(password) = self.password {
            return Ok(password);
        }
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprint!("password: ");
        }
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            return Err("no password given (use --password or pass it on standard input)".into());
        }
        Ok(password)
    }
}

/// Opens the accounts of an existing data directory. A directory that holds no data yet
/// is almost always a mistyped or relative path: creating users there would leave the
/// running server without them, so it is refused with a hint.
fn open(common: &CommonArgs) -> Result<Auth, BoxError> {
    let config = common.config()?;
    let database = config.data_dir.join("metadata.redb");
    if !database.exists() {
        let dir = config.data_dir.display();
        return Err(format!(
            "no registry data in {dir} (start `registry-mirror serve --data-dir {dir}` once, \
             or pass the --data-dir the server uses)"
        )
        .into());
    }
    Ok(crate::server::open_auth(&config)?)
}

fn block_on<F: std::future::Future<Output = Result<(), BoxError>>>(
    work: F,
) -> Result<(), BoxError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}
