//! The short-lived bearer tokens of the registry's own token endpoint.
//!
//! Container clients only send credentials after a `401` names a token endpoint: they call
//! it with basic credentials and the scopes they want, then send the token it returns as a
//! bearer token. Rather than keep issued tokens in storage, the registry signs what a token
//! grants (who, which repositories, which actions, until when) with HMAC-SHA256 under a
//! random key kept in the metadata store: checking a token is one hash, needs no record
//! per token, and every process sharing the store (replicas, a restarted server) accepts
//! the tokens the others issued. The cost is that revoking a user takes effect for API
//! calls only when their tokens expire, which is why tokens live minutes, not days.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use mirror_core::auth::Identity;
use mirror_core::{MetadataStore, Precondition};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Where the signing key lives in the metadata store.
const KEY_RECORD: &str = "docker-private-token-key";

type HmacSha256 = Hmac<Sha256>;

/// What a token grants; signed, so a client can read it but not change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The user, or `None` for an anonymous token.
    pub(crate) sub: Option<String>,
    /// The user is an admin.
    #[serde(default)]
    pub(crate) admin: bool,
    /// Expiry, in milliseconds since the Unix epoch.
    pub(crate) exp: u64,
    /// The repositories and actions granted.
    pub(crate) access: Vec<Grant>,
}

/// The actions granted on one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grant {
    /// The repository name.
    pub(crate) name: String,
    /// May pull.
    pub(crate) pull: bool,
    /// May push (and delete, where deletes are allowed).
    pub(crate) push: bool,
}

impl Claims {
    /// The identity the token stands for: the user as signed in when it was issued.
    pub(crate) fn identity(&self) -> Option<Identity> {
        self.sub.as_ref().map(|user| Identity {
            user: user.clone(),
            admin: self.admin,
            can_write: self.access.iter().any(|grant| grant.push),
            token_id: None,
        })
    }

    /// The grant for one repository, if the token names it.
    pub(crate) fn grant(&self, name: &str) -> Option<&Grant> {
        self.access.iter().find(|grant| grant.name == name)
    }
}

/// Signs and checks tokens with one key.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner")
    }
}

impl TokenSigner {
    /// The key shared through `store`, created at random by the first process that needs
    /// one; a process that loses the race to create it reads the winner's.
    pub(crate) async fn shared(store: &dyn MetadataStore) -> mirror_core::Result<Self> {
        for _ in 0..3 {
            if let Some(record) = store.get(KEY_RECORD).await? {
                return Self::from_record(&record.value);
            }
            let mut key = [0u8; 32];
            getrandom::getrandom(&mut key)
                .map_err(|err| mirror_core::Error::storage(err.to_string()))?;
            let created = store
                .put(KEY_RECORD, hex::encode(key).into(), Precondition::Absent)
                .await;
            match created {
                Ok(_) => return Ok(TokenSigner { key }),
                Err(mirror_core::Error::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(mirror_core::Error::storage(
            "token signing key keeps changing",
        ))
    }

    fn from_record(value: &[u8]) -> mirror_core::Result<Self> {
        let key = hex::decode(value)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| mirror_core::Error::storage("unreadable token signing key"))?;
        Ok(TokenSigner { key })
    }

    /// The token: the claims as base64url JSON, a dot, and their base64url HMAC.
    pub(crate) fn sign(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claims of a token this key signed and that has not expired at `now`
    /// (milliseconds since the Unix epoch); `None` for anything else.
    pub(crate) fn verify(&self, token: &str, now: u64) -> Option<Claims> {
        let (payload, signature) = token.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(payload).verify_slice(&signature).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.exp > now).then_some(claims)
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail for a 32-byte key.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
        mac.update(payload.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use mirror_core::MemoryMetadataStore;

    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: Some("alice".into()),
            admin: false,
            exp,
            access: vec![Grant {
                name: "private/app".into(),
                pull: true,
                push: true,
            }],
        }
    }

    #[tokio::test]
    async fn signs_and_verifies_with_a_shared_key() {
        let store = MemoryMetadataStore::new();
        let signer = TokenSigner::shared(&store).await.unwrap();
        let again = TokenSigner::shared(&store).await.unwrap();
        let token = signer.sign(&claims(1_000));

        assert_eq!(again.verify(&token, 999), Some(claims(1_000)));
        assert_eq!(signer.verify(&token, 1_000), None, "expired");
        assert!(claims(1).identity().is_some_and(|id| id.can_write));
    }

    #[tokio::test]
    async fn refuses_tampered_and_foreign_tokens() {
        let signer = TokenSigner::shared(&MemoryMetadataStore::new())
            .await
            .unwrap();
        let other = TokenSigner::shared(&MemoryMetadataStore::new())
            .await
            .unwrap();
        let token = signer.sign(&claims(1_000));
        let (_, signature) = token.split_once('.').unwrap();
        let mut admin = claims(1_000);
        admin.admin = true;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).unwrap());

        assert_eq!(other.verify(&token, 0), None);
        assert_eq!(
            signer.verify(&format!("{forged_payload}.{signature}"), 0),
            None
        );
        for junk in ["", ".", "a.b", "rmt_x", "...."] {
            assert_eq!(signer.verify(junk, 0), None, "{junk}");
        }
    }
}
