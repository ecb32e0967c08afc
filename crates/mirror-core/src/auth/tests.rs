use std::time::Duration;

use http::HeaderValue;

use super::*;
use crate::storage::MemoryMetadataStore;

fn auth() -> Auth {
    Auth::new(
        Arc::new(MemoryMetadataStore::new()),
        AccessPolicy::default(),
    )
}

fn headers(authorization: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(authorization).unwrap(),
    );
    map
}

fn basic(user: &str, secret: &str) -> HeaderMap {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    headers(&format!("Basic {encoded}"))
}

#[tokio::test]
async fn passwords_are_hashed_and_checked() {
    let auth = auth();
    auth.add_user("alice", Some("s3cret"), false).await.unwrap();
    let stored = auth
        .inner
        .store
        .get("auth/users/alice")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored.value).contains("s3cret"),
        "never plain text"
    );

    assert_eq!(
        auth.login("alice", "s3cret").await.unwrap().unwrap().user,
        "alice"
    );
    assert!(auth.login("alice", "wrong").await.unwrap().is_none());
    assert!(auth.login("nobody", "s3cret").await.unwrap().is_none());
    assert!(matches!(
        auth.add_user("alice", Some("x"), false).await,
        Err(Error::Conflict { .. })
    ));
    assert!(auth.add_user("Bad Name", Some("x"), false).await.is_err());

    let identity = auth
        .authenticate(&basic("alice", "s3cret"))
        .await
        .unwrap()
        .unwrap();
    assert!(identity.can_write && !identity.admin);
    assert_eq!(
        auth.authenticate(&basic("alice", "nope")).await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(auth.failed_logins(), 1);

    auth.set_password("alice", "n3w").await.unwrap();
    assert_eq!(
        auth.authenticate(&basic("alice", "s3cret")).await,
        Err(AuthError::InvalidCredentials)
    );
    assert!(auth
        .authenticate(&basic("alice", "n3w"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn tokens_are_shown_once_and_checked_by_hash() {
    let auth = auth();
    auth.add_user("bob", None, false).await.unwrap();
    let (info, token) = auth
        .create_token("bob", TokenAccess::ReadOnly, None, Some("ci".into()))
        .await
        .unwrap();
    let stored = auth
        .inner
        .store
        .get(&format!("auth/tokens/{}", info.id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored.value).contains(&token[17..]),
        "secret never stored"
    );

    let identity = auth
        .authenticate(&headers(&format!("Bearer {token}")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((identity.user.as_str(), identity.can_write), ("bob", false));
    assert!(auth
        .authenticate(&basic("__token__", &token))
        .await
        .unwrap()
        .is_some());
    assert!(auth
        .authenticate(&basic("bob", &token))
        .await
        .unwrap()
        .is_some());
    assert!(
        auth.authenticate(&basic("carol", &token)).await.is_err(),
        "someone else's token"
    );

    let flipped = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{flipped}", &token[..token.len() - 1]);
    assert!(auth
        .authenticate(&headers(&format!("Bearer {forged}")))
        .await
        .is_err());
    assert!(auth
        .authenticate(&headers("Bearer rmt_zz_zz"))
        .await
        .is_err());
    assert!(auth.authenticate(&headers("Digest x")).await.is_err());

    auth.revoke_token(&info.id).await.unwrap();
    assert!(auth
        .authenticate(&headers(&format!("Bearer {token}")))
        .await
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn expired_tokens_are_refused() {
    let auth = auth();
    auth.add_user("bob", None, true).await.unwrap();
    let ttl = Some(Duration::from_secs(60));
    let (_, token) = auth
        .create_token("bob", TokenAccess::ReadWrite, ttl, None)
        .await
        .unwrap();
    let bearer = headers(&format!("Bearer {token}"));
    assert!(auth.authenticate(&bearer).await.unwrap().unwrap().admin);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(auth.authenticate(&bearer).await.is_err());
}

#[tokio::test]
async fn removing_a_user_revokes_their_tokens() {
    let auth = auth();
    auth.add_user("dave", Some("pw"), false).await.unwrap();
    let (_, token) = auth
        .create_token("dave", TokenAccess::ReadWrite, None, None)
        .await
        .unwrap();
    assert_eq!(auth.list_tokens(Some("dave")).await.unwrap().len(), 1);
    auth.remove_user("dave").await.unwrap();
    assert!(auth
        .authenticate(&headers(&format!("Bearer {token}")))
        .await
        .is_err());
    assert!(auth.list_tokens(None).await.unwrap().is_empty());
    assert!(!auth.has_users().await.unwrap());
}
