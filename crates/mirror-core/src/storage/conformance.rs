//! Behaviour every storage implementation must show; each backend's tests call these.

use bytes::Bytes;

use super::*;
use crate::digest::{sha256_of, Algorithm, MultiHasher};
use crate::Error;

pub(crate) async fn blob_store(store: &dyn BlobStore) {
    let body = Bytes::from(
        (0..100_000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let digest = sha256_of(&body);

    assert!(matches!(
        store.read(&digest, None).await,
        Err(Error::NotFound)
    ));
    assert_eq!(store.size(&digest).await.unwrap(), None);

    let wrong = Expected::digest(sha256_of(b"something else"));
    let err = put_bytes(store, body.clone(), wrong).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert_eq!(
        store.size(&digest).await.unwrap(),
        None,
        "a mismatched write must not land"
    );

    let short = Expected {
        size: Some(10),
        ..Expected::none()
    };
    assert!(put_bytes(store, body.clone(), short).await.is_err());
    let limited = Expected {
        max_size: Some(10),
        ..Expected::none()
    };
    assert!(matches!(
        put_bytes(store, body.clone(), limited).await,
        Err(Error::TooLarge { .. })
    ));

    let mut sha512 = MultiHasher::new([Algorithm::Sha512]);
    sha512.update(&body);
    let sha512 = sha512.finish().get(Algorithm::Sha512).unwrap().clone();
    let info = put_bytes(store, body.clone(), Expected::digest(sha512))
        .await
        .unwrap();
    assert_eq!(
        info,
        BlobInfo {
            digest: digest.clone(),
            size: body.len() as u64
        }
    );

    assert_eq!(read_to_bytes(store, &digest).await.unwrap(), body);
    let ranged = read_range(store, &digest, 10..20).await;
    assert_eq!(ranged, body.slice(10..20));
    let size = body.len() as u64;
    assert!(matches!(
        store.read(&digest, Some(0..size + 1)).await,
        Err(Error::RangeNotSatisfiable { .. })
    ));

    store.delete(&digest).await.unwrap();
    assert_eq!(store.size(&digest).await.unwrap(), None);
    store.delete(&digest).await.unwrap();
}

async fn read_range(store: &dyn BlobStore, digest: &Digest, range: Range<u64>) -> Bytes {
    use futures_util::TryStreamExt;
    let read = store.read(digest, Some(range.clone())).await.unwrap();
    assert_eq!(read.range, range);
    let chunks: Vec<Bytes> = read.stream.try_collect().await.unwrap();
    chunks.concat().into()
}

pub(crate) async fn metadata_store(store: &dyn MetadataStore) {
    assert_eq!(store.get("a/1").await.unwrap(), None);
    let v1 = store
        .put("a/1", Bytes::from_static(b"one"), Precondition::Absent)
        .await
        .unwrap();
    let again = store
        .put("a/1", Bytes::from_static(b"x"), Precondition::Absent)
        .await;
    assert!(matches!(again, Err(Error::Conflict { .. })));

    let v2 = store
        .put("a/1", Bytes::from_static(b"two"), Precondition::Version(v1))
        .await
        .unwrap();
    assert!(v2 > v1);
    let stale = store
        .put("a/1", Bytes::from_static(b"3"), Precondition::Version(v1))
        .await;
    assert!(
        matches!(stale, Err(Error::Conflict { .. })),
        "a lost race must fail"
    );
    let record = store.get("a/1").await.unwrap().unwrap();
    assert_eq!(
        (record.value, record.version),
        (Bytes::from_static(b"two"), v2)
    );

    for key in ["a/2", "a/3", "b/1", "a/0"] {
        store
            .put(key, Bytes::from(key), Precondition::None)
            .await
            .unwrap();
    }
    let keys = |list: Vec<(String, Record)>| list.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("a/", None, 10).await.unwrap()),
        ["a/0", "a/1", "a/2", "a/3"]
    );
    assert_eq!(
        keys(store.list("a/", Some("a/1"), 2).await.unwrap()),
        ["a/2", "a/3"]
    );

    assert!(store
        .delete("a/2", Precondition::Version(999))
        .await
        .is_err());
    store.delete("a/2", Precondition::None).await.unwrap();
    store.delete("missing", Precondition::None).await.unwrap();
    assert_eq!(store.get("a/2").await.unwrap(), None);
}
