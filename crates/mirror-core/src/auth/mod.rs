//! Users, API tokens and access rules, shared by every ecosystem.
//!
//! Passwords are stored only as argon2 hashes. A token is shown once, when it is created;
//! the store keeps its sha256, looked up by a short public id embedded in the token
//! (`rmt_<id>_<secret>`), so checking a token is one record read and a constant-time
//! comparison, never a scan. Everything lives in the [`MetadataStore`], so a CLI process
//! that adds a user or revokes a token changes what a running server accepts at once.

mod policy;
mod records;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use self::records::{TokenRecord, UserRecord};
use crate::clock::Clock;
use crate::digest::sha256_of;
use crate::error::{Error, Result};
use crate::storage::{MetadataStore, Precondition};

pub use self::policy::{glob_match, Access, AccessPolicy, AccessRule, Action};
pub use self::records::{TokenAccess, TokenInfo, UserInfo};

const USERS: &str = "auth/users/";
const TOKENS: &str = "auth/tokens/";
const TOKEN_PREFIX: &str = "rmt_";

/// Who a request comes from, once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// Admins may read and write everything.
    pub admin: bool,
    /// False for read-only tokens.
    pub can_write: bool,
    /// The token used, when the credential was a token.
    pub token_id: Option<String>,
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown user, wrong password, or an unknown, revoked or expired token.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// An `Authorization` header in a form this server does not accept.
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
}

/// Users, tokens and the access policy.
#[derive(Debug, Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn MetadataStore>,
    policy: AccessPolicy,
    clock: Clock,
    failed_logins: AtomicU64,
    /// sha256(user, password) → the password hash it was checked against, so a client that
    /// sends its password on every request costs one argon2 run, not one per request. Keyed
    /// on the stored hash, so a changed password or removed user takes effect at once.
    verified: Mutex<HashMap<[u8; 32], String>>,
}

impl Auth {
    /// Auth over a metadata store, with an access policy.
    pub fn new(store: Arc<dyn MetadataStore>, policy: AccessPolicy) -> Self {
        Auth {
            inner: Arc::new(Inner {
                store,
                policy,
                clock: Clock::new(),
                failed_logins: AtomicU64::new(0),
                verified: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The access policy.
    pub fn policy(&self) -> &AccessPolicy {
        &self.inner.policy
    }

    /// Credentials refused since start, for metrics.
    pub fn failed_logins(&self) -> u64 {
        self.inner.failed_logins.load(Ordering::Relaxed)
    }

    /// Decides whether `identity` may do `action` on `name` in `ecosystem`.
    pub fn check(
        &self,
        identity: Option<&Identity>,
        ecosystem: &str,
        name: &str,
        action: Action,
    ) -> Access {
        self.inner.policy.check(identity, ecosystem, name, action)
    }

    /// Creates a user; fails with [`Error::Conflict`] if the name is taken.
    pub async fn add_user(
        &self,
        name: &str,
        password: Option<&str>,
        admin: bool,
    ) -> Result<UserInfo> {
        validate_user_name(name)?;
        let password_hash = match password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let record = UserRecord {
            name: name.to_owned(),
            password_hash,
            admin,
            created_at: self.now(),
        };
        self.put(&user_key(name), &record, Precondition::Absent)
            .await?;
        Ok(record.info())
    }

    /// Sets a user's password.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let (mut record, version) = self.user_record(name).await?.ok_or(Error::NotFound)?;
        record.password_hash = Some(hash_password(password).await?);
        self.put(&user_key(name), &record, Precondition::Version(version))
            .await
    }

    /// Removes a user and revokes every token they hold.
    pub async fn remove_user(&self, name: &str) -> Result<()> {
        self.user_record(name).await?.ok_or(Error::NotFound)?;
        for token in self.list_tokens(Some(name)).await? {
            self.revoke_token(&token.id).await?;
        }
        self.inner
            .store
            .delete(&user_key(name), Precondition::None)
            .await
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        let records = self.inner.store.list(USERS, None, usize::MAX).await?;
        let users = records
            .iter()
            .filter_map(|(_, r)| serde_json::from_slice::<UserRecord>(&r.value).ok());
        Ok(users.map(|user| user.info()).collect())
    }

    /// True when at least one user exists.
    pub async fn has_users(&self) -> Result<bool> {
        Ok(!self.inner.store.list(USERS, None, 1).await?.is_empty())
    }

    /// Checks a user's password; `None` when the user or password is wrong.
    pub async fn login(&self, name: &str, password: &str) -> Result<Option<Identity>> {
        let Some((user, _)) = self.user_record(name).await? else {
            return Ok(None);
        };
        let Some(hash) = &user.password_hash else {
            return Ok(None);
        };
        let verified = self.password_matches(name, password, hash).await?;
        Ok(verified.then_some(Identity {
            user: user.name,
            admin: user.admin,
            can_write: true,
            token_id: None,
        }))
    }

    /// Creates a token for a user; the secret is in the returned string and nowhere else.
    pub async fn create_token(
        &self,
        user: &str,
        access: TokenAccess,
        expires_in: Option<std::time::Duration>,
        label: Option<String>,
    ) -> Result<(TokenInfo, String)> {
        self.user_record(user).await?.ok_or(Error::NotFound)?;
        let id = hex::encode(random_bytes::<6>()?);
        let secret = hex::encode(random_bytes::<32>()?);
        let now = self.now();
        let expires_at = expires_in
            .map(|d| now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
        let record = TokenRecord {
            id: id.clone(),
            user: user.to_owned(),
            secret_sha256: sha256_of(secret.as_bytes()).hex(),
            access,
            created_at: now,
            expires_at,
            label,
        };
        self.put(&token_key(&id), &record, Precondition::Absent)
            .await?;
        Ok((record.info(), format!("{TOKEN_PREFIX}{id}_{secret}")))
    }

    /// Tokens, of one user or of everyone.
    pub async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        let records = self.inner.store.list(TOKENS, None, usize::MAX).await?;
        let tokens = records
            .iter()
            .filter_map(|(_, r)| serde_json::from_slice::<TokenRecord>(&r.value).ok());
        Ok(tokens
            .filter(|t| user.is_none_or(|u| t.user == u))
            .map(|t| t.info())
            .collect())
    }

    /// Revokes a token by its public id.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let key = token_key(id);
        self.inner.store.get(&key).await?.ok_or(Error::NotFound)?;
        self.inner.store.delete(&key, Precondition::None).await
    }

    /// Identifies the sender of a request from its `Authorization` header: `Ok(None)` when
    /// there is none, an error when it is present but wrong.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Identity>, AuthError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| AuthError::UnsupportedScheme)?;
        let result = self.identify(value).await;
        if result.is_err() {
            self.inner.failed_logins.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("refused credentials");
        }
        result.map(Some)
    }

    async fn identify(&self, value: &str) -> Result<Identity, AuthError> {
        let (scheme, rest) = value
            .trim()
            .split_once(' ')
            .ok_or(AuthError::UnsupportedScheme)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.token_identity(rest, None).await;
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthError::UnsupportedScheme);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthError::InvalidCredentials)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::InvalidCredentials)?;
        let (user, secret) = decoded
            .split_once(':')
            .ok_or(AuthError::InvalidCredentials)?;
        if secret.starts_with(TOKEN_PREFIX) {
            let user = (user != "__token__" && !user.is_empty()).then_some(user);
            return self.token_identity(secret, user).await;
        }
        match self.login(user, secret).await {
            Ok(Some(identity)) => Ok(identity),
            Ok(None) | Err(_) => Err(AuthError::InvalidCredentials),
        }
    }

    /// Checks a token; when `user` is given (basic auth), the token must belong to them.
    async fn token_identity(&self, token: &str, user: Option<&str>) -> Result<Identity, AuthError> {
        let rest = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(AuthError::InvalidCredentials)?;
        let (id, secret) = rest.split_once('_').ok_or(AuthError::InvalidCredentials)?;
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::InvalidCredentials);
        }
        let record = self
            .token_record(id)
            .await
            .ok()
            .flatten()
            .ok_or(AuthError::InvalidCredentials)?;
        let presented = sha256_of(secret.as_bytes()).hex();
        let matches: bool = presented
            .as_bytes()
            .ct_eq(record.secret_sha256.as_bytes())
            .into();
        let expired = record.expires_at.is_some_and(|at| at <= self.now());
        if !matches || expired || user.is_some_and(|u| u != record.user) {
            return Err(AuthError::InvalidCredentials);
        }
        let owner = self
            .user_record(&record.user)
            .await
            .ok()
            .flatten()
            .ok_or(AuthError::InvalidCredentials)?;
        Ok(Identity {
            user: record.user,
            admin: owner.0.admin,
            can_write: record.access == TokenAccess::ReadWrite,
            token_id: Some(record.id),
        })
    }

    async fn password_matches(&self, user: &str, password: &str, hash: &str) -> Result<bool> {
        let mut key_input = Vec::with_capacity(user.len() + password.len() + 1);
        key_input.extend_from_slice(user.as_bytes());
        key_input.push(0);
        key_input.extend_from_slice(password.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(sha256_of(&key_input).as_bytes());
        if self
            .inner
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .is_some_and(|h| h == hash)
        {
            return Ok(true);
        }
        let (password, stored) = (password.to_owned(), hash.to_owned());
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
            .await
            .map_err(Error::storage)?;
        if ok {
            let mut verified = self
                .inner
                .verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if verified.len() > 10_000 {
                verified.clear();
            }
            verified.insert(key, hash.to_owned());
        }
        Ok(ok)
    }

    async fn user_record(&self, name: &str) -> Result<Option<(UserRecord, u64)>> {
        let Some(record) = self.inner.store.get(&user_key(name)).await? else {
            return Ok(None);
        };
        let user = serde_json::from_slice(&record.value).map_err(Error::storage)?;
        Ok(Some((user, record.version)))
    }

    async fn token_record(&self, id: &str) -> Result<Option<TokenRecord>> {
        let Some(record) = self.inner.store.get(&token_key(id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&record.value)
            .map(Some)
            .map_err(Error::storage)
    }

    async fn put<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
        precondition: Precondition,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(Error::storage)?;
        self.inner
            .store
            .put(key, Bytes::from(bytes), precondition)
            .await
            .map(|_| ())
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_millis()
    }
}

fn user_key(name: &str) -> String {
    format!("{USERS}{name}")
}

fn token_key(id: &str) -> String {
    format!("{TOKENS}{id}")
}

/// User names: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
fn validate_user_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid user name {name:?}: use 1-64 of a-z 0-9 . _ -"
        )))
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|err| Error::storage(err.to_string()))?;
    Ok(bytes)
}

async fn hash_password(password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(Error::Invalid("empty password".into()));
    }
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| Error::storage(e.to_string()))?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| Error::storage(err.to_string()))
    })
    .await
    .map_err(Error::storage)?
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests;
