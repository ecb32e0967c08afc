//! The stored forms of users and tokens, and what of them may be shown.

use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenAccess {
    /// Read only: installs, pulls.
    ReadOnly,
    /// Read and publish.
    ReadWrite,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub(crate) name: String,
    /// argon2 PHC string; `None` for a user who can only use tokens.
    pub(crate) password_hash: Option<String>,
    pub(crate) admin: bool,
    pub(crate) created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) secret_sha256: String,
    pub(crate) access: TokenAccess,
    pub(crate) created_at: u64,
    pub(crate) expires_at: Option<u64>,
    pub(crate) label: Option<String>,
}

/// A user, without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Whether the user is an admin.
    pub admin: bool,
    /// Whether a password is set.
    pub has_password: bool,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
}

/// A token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// Public id, used to revoke it.
    pub id: String,
    /// Owner.
    pub user: String,
    /// What it may do.
    pub access: TokenAccess,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Expiry, ms since the Unix epoch.
    pub expires_at: Option<u64>,
    /// Free text given at creation.
    pub label: Option<String>,
}

impl UserRecord {
    pub(crate) fn info(&self) -> UserInfo {
        UserInfo {
            name: self.name.clone(),
            admin: self.admin,
            has_password: self.password_hash.is_some(),
            created_at: self.created_at,
        }
    }
}

impl TokenRecord {
    pub(crate) fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            user: self.user.clone(),
            access: self.access,
            created_at: self.created_at,
            expires_at: self.expires_at,
            label: self.label.clone(),
        }
    }
}
