//! One test per guarantee of the engine, against a scripted upstream so that each can
//! control exactly when bytes arrive; TTLs run on tokio's paused clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures_util::stream;
use tokio::sync::mpsc;

use super::*;
use crate::digest::sha256_of;
use crate::storage::{MemoryBlobStore, MemoryMetadataStore};

/// What the scripted upstream does for one request.
enum Reply {
    Body {
        status: StatusCode,
        headers: Vec<(&'static str, String)>,
        body: ByteStream,
    },
    Fail(Error),
}

fn ok(body: &'static [u8]) -> Reply {
    let stream = stream::iter([Ok(Bytes::from_static(body))]).boxed();
    Reply::Body {
        status: StatusCode::OK,
        headers: vec![],
        body: stream,
    }
}

fn ok_etag(body: &'static [u8], etag: &str) -> Reply {
    let stream = stream::iter([Ok(Bytes::from_static(body))]).boxed();
    Reply::Body {
        status: StatusCode::OK,
        headers: vec![("etag", etag.into())],
        body: stream,
    }
}

fn status(status: StatusCode) -> Reply {
    Reply::Body {
        status,
        headers: vec![],
        body: stream::empty().boxed(),
    }
}

/// A body fed by the test through the returned sender.
fn gated() -> (mpsc::Sender<Result<Bytes>>, Reply) {
    let (tx, rx) = mpsc::channel(16);
    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        tx,
        Reply::Body {
            status: StatusCode::OK,
            headers: vec![],
            body: body.boxed(),
        },
    )
}

#[derive(Default)]
struct Scripted {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<HeaderMap>>,
    calls: AtomicUsize,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

impl Scripted {
    fn new(replies: impl IntoIterator<Item = Reply>) -> Arc<Self> {
        Arc::new(Scripted {
            replies: Mutex::new(replies.into_iter().collect()),
            ..Default::default()
        })
    }

    fn push(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn last_headers(&self) -> HeaderMap {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl Upstream for Scripted {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(request.headers);
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .expect("unscripted upstream call");
        match reply {
            Reply::Fail(err) => Err(err),
            Reply::Body {
                status,
                headers,
                body,
            } => {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    map.insert(name, HeaderValue::from_str(&value).unwrap());
                }
                Ok(UpstreamResponse {
                    status,
                    headers: map,
                    body,
                })
            }
        }
    }

    fn name(&self) -> &str {
        "scripted"
    }
}

fn cache() -> Cache {
    Cache::builder(
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    )
    .build()
}

fn spec(key: &str, upstream: &Arc<Scripted>) -> FetchSpec {
    let upstream: Arc<dyn Upstream> = Arc::clone(upstream) as Arc<dyn Upstream>;
    FetchSpec::new(key, upstream, UpstreamRequest::get(key))
}

const TTL: Duration = Duration::from_secs(300);

async fn body_of(fetched: Fetched) -> Result<Bytes> {
    fetched.bytes().await
}

/// Gets a key and reads its body to the end, so the fetch has settled before the next step.
async fn status_of(cache: &Cache, spec: FetchSpec) -> CacheStatus {
    let fetched = cache.get(spec).await.unwrap();
    let status = fetched.status();
    body_of(fetched).await.unwrap();
    status
}

#[tokio::test]
async fn immutable_key_is_fetched_once() {
    let up = Scripted::new([ok(b"tarball")]);
    let cache = cache();

    let first = cache.get(spec("a", &up)).await.unwrap();
    assert_eq!(first.status(), CacheStatus::Miss);
    assert_eq!(body_of(first).await.unwrap(), "tarball");

    let second = cache.get(spec("a", &up)).await.unwrap();
    assert_eq!(second.status(), CacheStatus::Hit);
    assert_eq!(body_of(second).await.unwrap(), "tarball");
    assert_eq!(up.calls(), 1);
}

#[tokio::test]
async fn concurrent_requests_share_one_upstream_fetch() {
    let (tx, reply) = gated();
    let up = Scripted::new([reply]);
    let cache = cache();

    let waiters: Vec<_> = (0..16)
        .map(|_| {
            let (cache, spec) = (cache.clone(), spec("big", &up));
            tokio::spawn(async move { body_of(cache.get(spec).await?).await })
        })
        .collect();
    tokio::task::yield_now().await;
    for chunk in [&b"one "[..], b"two ", b"three"] {
        tx.send(Ok(Bytes::from_static(chunk))).await.unwrap();
    }
    drop(tx);

    for waiter in waiters {
        assert_eq!(waiter.await.unwrap().unwrap(), "one two three");
    }
    assert_eq!(up.calls(), 1);
}

#[tokio::test]
async fn first_bytes_reach_the_client_before_upstream_finishes() {
    let (tx, reply) = gated();
    let up = Scripted::new([reply]);
    let cache = cache();

    let fetched = cache.get(spec("slow", &up)).await.unwrap();
    tx.send(Ok(Bytes::from_static(b"first chunk")))
        .await
        .unwrap();
    tx.send(Ok(Bytes::from_static(b"..."))).await.unwrap();
    // The body opens on its first chunk while upstream has not finished (tx is alive).
    let mut stream = fetched.open(None).await.unwrap().stream;

    let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    let first = first.expect("first bytes must arrive while upstream is still sending");
    assert!(b"first chunk...".starts_with(&first.unwrap().unwrap()));

    let late = cache.get(spec("slow", &up)).await.unwrap();
    drop(tx);
    assert_eq!(
        body_of(late).await.unwrap(),
        "first chunk...",
        "late joiner starts at byte 0"
    );
    assert_eq!(up.calls(), 1);
}

#[tokio::test]
async fn body_not_matching_its_digest_is_refused_and_not_stored() {
    let up = Scripted::new([ok(b"evil bytes"), ok(b"good bytes")]);
    let cache = cache();
    let expect = || Expected::digest(sha256_of(b"good bytes"));

    let fetched = cache.get(spec("t", &up).expect(expect())).await.unwrap();
    let err = body_of(fetched).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert_eq!(cache.lookup("t").await.unwrap(), None);
    assert_eq!(
        cache.blobs().size(&sha256_of(b"evil bytes")).await.unwrap(),
        None
    );

    let fetched = cache.get(spec("t", &up).expect(expect())).await.unwrap();
    assert_eq!(
        fetched.status(),
        CacheStatus::Miss,
        "a refused body is fetched afresh"
    );
    assert_eq!(body_of(fetched).await.unwrap(), "good bytes");
}

#[tokio::test]
async fn client_never_receives_the_last_byte_of_a_bad_body() {
    let (tx, reply) = gated();
    let up = Scripted::new([reply]);
    let cache = cache();
    let expected = Expected::digest(sha256_of(b"abcdef"));

    let fetched = cache.get(spec("t", &up).expect(expected)).await.unwrap();
    tx.send(Ok(Bytes::from_static(b"abcdeX"))).await.unwrap();
    drop(tx);

    let mut received = Vec::new();
    // Either the whole fetch failed before a byte could go out, or the stream ends in an error.
    let mut failed = false;
    match fetched.open(None).await {
        Err(_) => failed = true,
        Ok(read) => {
            let mut stream = read.stream;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(bytes) => received.extend_from_slice(&bytes),
                    Err(_) => failed = true,
                }
            }
        }
    }
    assert!(failed, "the stream must end in an error");
    assert!(
        received.len() < 6,
        "the complete wrong body must never be delivered"
    );
}

#[tokio::test]
async fn body_shorter_than_declared_is_refused() {
    let up = Scripted::new([ok(b"short")]);
    let cache = cache();
    let expected = Expected {
        size: Some(100),
        ..Expected::none()
    };
    let fetched = cache.get(spec("t", &up).expect(expected)).await.unwrap();
    assert!(matches!(
        body_of(fetched).await,
        Err(Error::LengthMismatch { .. })
    ));
    assert_eq!(cache.lookup("t").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn fresh_entries_are_hits_and_stale_ones_revalidate_with_etag() {
    let up = Scripted::new([ok_etag(b"doc v1", "\"v1\"")]);
    let cache = cache();
    let doc = || spec("doc", &up).revalidate_after(TTL);

    assert_eq!(status_of(&cache, doc()).await, CacheStatus::Miss);
    tokio::time::advance(TTL - Duration::from_secs(1)).await;
    assert_eq!(status_of(&cache, doc()).await, CacheStatus::Hit);
    assert_eq!(up.calls(), 1);

    tokio::time::advance(Duration::from_secs(2)).await;
    up.push(status(StatusCode::NOT_MODIFIED));
    let revalidated = cache.get(doc()).await.unwrap();
    assert_eq!(revalidated.status(), CacheStatus::Revalidated);
    assert_eq!(up.last_headers()[header::IF_NONE_MATCH], "\"v1\"");
    assert_eq!(body_of(revalidated).await.unwrap(), "doc v1");

    assert_eq!(
        status_of(&cache, doc()).await,
        CacheStatus::Hit,
        "304 renews freshness"
    );
    tokio::time::advance(TTL).await;
    up.push(ok_etag(b"doc v2", "\"v2\""));
    let changed = cache.get(doc()).await.unwrap();
    assert_eq!(changed.status(), CacheStatus::Miss);
    assert_eq!(body_of(changed).await.unwrap(), "doc v2");
}

#[tokio::test(start_paused = true)]
async fn last_modified_is_used_when_there_is_no_etag() {
    let date = "Wed, 21 Oct 2026 07:28:00 GMT";
    let body = stream::iter([Ok(Bytes::from_static(b"x"))]).boxed();
    let first = Reply::Body {
        status: StatusCode::OK,
        headers: vec![("last-modified", date.into())],
        body,
    };
    let up = Scripted::new([first, status(StatusCode::NOT_MODIFIED)]);
    let cache = cache();
    status_of(&cache, spec("d", &up).revalidate_after(TTL)).await;
    tokio::time::advance(TTL * 2).await;
    let again = cache
        .get(spec("d", &up).revalidate_after(TTL))
        .await
        .unwrap();
    assert_eq!(again.status(), CacheStatus::Revalidated);
    assert_eq!(up.last_headers()[header::IF_MODIFIED_SINCE], date);
}

#[tokio::test(start_paused = true)]
async fn client_no_cache_revalidates_at_once() {
    let up = Scripted::new([ok_etag(b"v1", "\"1\""), status(StatusCode::NOT_MODIFIED)]);
    let cache = cache();
    status_of(&cache, spec("d", &up).revalidate_after(TTL)).await;
    let forced = cache
        .get(spec("d", &up).revalidate_after(TTL).revalidate_now(true))
        .await
        .unwrap();
    assert_eq!(forced.status(), CacheStatus::Revalidated);
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn upstream_404_is_remembered_for_the_negative_ttl() {
    let up = Scripted::new([status(StatusCode::NOT_FOUND)]);
    let cache = Cache::builder(
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryMetadataStore::new()),
    )
    .negative_ttl(Duration::from_secs(60))
    .build();

    assert!(cache
        .get(spec("gone", &up))
        .await
        .unwrap_err()
        .is_not_found());
    assert!(cache
        .get(spec("gone", &up))
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(up.calls(), 1, "a remembered 404 does not reach upstream");

    tokio::time::advance(Duration::from_secs(61)).await;
    up.push(ok(b"published now"));
    let fetched = cache.get(spec("gone", &up)).await.unwrap();
    assert_eq!(body_of(fetched).await.unwrap(), "published now");
}

#[tokio::test(start_paused = true)]
async fn stale_copy_is_served_when_upstream_fails() {
    let up = Scripted::new([ok(b"cached")]);
    let cache = cache();
    let doc = || spec("d", &up).revalidate_after(TTL);
    status_of(&cache, doc()).await;

    let failures = [
        Reply::Fail(Error::UpstreamTimeout),
        Reply::Fail(Error::Upstream {
            message: "refused".into(),
            source: None,
        }),
        status(StatusCode::TOO_MANY_REQUESTS),
        status(StatusCode::INTERNAL_SERVER_ERROR),
    ];
    for failure in failures {
        tokio::time::advance(TTL * 2).await; // also past the stale grace
        up.push(failure);
        let stale = cache.get(doc()).await.unwrap();
        assert_eq!(stale.status(), CacheStatus::Stale);
        assert_eq!(body_of(stale).await.unwrap(), "cached");
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_revalidation_stale_is_served_without_asking_again() {
    let up = Scripted::new([ok(b"cached"), Reply::Fail(Error::UpstreamTimeout)]);
    let cache = cache();
    let doc = || spec("d", &up).revalidate_after(TTL);
    status_of(&cache, doc()).await;
    tokio::time::advance(TTL * 2).await;
    assert_eq!(status_of(&cache, doc()).await, CacheStatus::Stale);
    assert_eq!(status_of(&cache, doc()).await, CacheStatus::Stale);
    assert_eq!(
        up.calls(),
        2,
        "the second stale answer must not wait on upstream again"
    );

    tokio::time::advance(Duration::from_secs(31)).await;
    up.push(status(StatusCode::NOT_MODIFIED));
    assert_eq!(status_of(&cache, doc()).await, CacheStatus::Revalidated);
}

#[tokio::test]
async fn uncached_key_fails_clearly_when_upstream_fails() {
    let up = Scripted::new([
        Reply::Fail(Error::UpstreamTimeout),
        status(StatusCode::BAD_GATEWAY),
    ]);
    let cache = cache();
    assert!(cache
        .get(spec("x", &up))
        .await
        .unwrap_err()
        .is_upstream_timeout());
    let err = cache.get(spec("x", &up)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::UpstreamStatus {
                status: StatusCode::BAD_GATEWAY
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn ranges_are_served_from_stored_and_in_flight_bodies() {
    let body = stream::iter([Ok(Bytes::from_static(b"0123456789"))]).boxed();
    let headers = vec![("content-length", "10".to_owned())];
    let up = Scripted::new([Reply::Body {
        status: StatusCode::OK,
        headers,
        body,
    }]);
    let cache = cache();
    let fetched = cache.get(spec("r", &up)).await.unwrap();
    assert_eq!(fetched.status(), CacheStatus::Miss);
    let read = fetched.open(Some(2..5)).await.unwrap();
    assert_eq!(read.range, Some(2..5));
    let bytes: Vec<Bytes> = futures_util::TryStreamExt::try_collect(read.stream)
        .await
        .unwrap();
    assert_eq!(bytes.concat(), b"234");

    let hit = cache.get(spec("r", &up)).await.unwrap();
    assert!(matches!(
        hit.open(Some(5..11)).await,
        Err(Error::RangeNotSatisfiable { size: 10 })
    ));
}

#[test]
fn download_killed_midway_leaves_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let open = |dir: &std::path::Path| {
        let blobs = Arc::new(crate::FsBlobStore::open(dir.join("blobs")).unwrap());
        let meta = Arc::new(crate::RedbMetadataStore::open(dir.join("meta.redb")).unwrap());
        Cache::builder(blobs, meta).spool_dir(dir).build()
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tx, reply) = gated();
    let up = Scripted::new([reply]);
    runtime.block_on(async {
        let fetched = open(dir.path()).get(spec("big", &up)).await.unwrap();
        tx.send(Ok(Bytes::from(vec![1u8; 1 << 20]))).await.unwrap();
        tx.send(Ok(Bytes::from(vec![2u8; 1 << 20]))).await.unwrap();
        let mut stream = fetched.open(None).await.unwrap().stream;
        stream.next().await.unwrap().unwrap();
    });
    drop(runtime); // every task dies mid-download, as in a kill

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cache = open(dir.path());
        assert_eq!(cache.lookup("big").await.unwrap(), None);
        let up = Scripted::new([ok(b"whole")]);
        let fetched = cache.get(spec("big", &up)).await.unwrap();
        assert_eq!(fetched.status(), CacheStatus::Miss);
        assert_eq!(body_of(fetched).await.unwrap(), "whole");
    });
}
