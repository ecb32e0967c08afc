//! The response body type every mirror service returns.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body::Frame;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full, StreamBody};

use crate::digest::Digest;
use crate::error::{BoxError, Result};
use crate::memo::BytesCache;
use crate::storage::{BlobStore, ByteStream};

/// A streaming response body: bytes or a boxed error that aborts the response.
///
/// An error mid-body makes the server reset the stream instead of finishing it, so a client
/// never mistakes a truncated artifact for a complete one.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding one buffer.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with no bytes.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body read from a stream of chunks.
pub fn from_stream<S, E>(stream: S) -> Body
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let frames = stream.map_ok(Frame::data).map_err(Into::into);
    StreamBody::new(frames).boxed_unsync()
}

/// Streams `input` with every occurrence of `needle` replaced by `replacement`.
///
/// Services store documents with a placeholder where a per-request value (such as the
/// mirror's base URL, taken from the request) goes, and substitute it as the bytes stream
/// out, so a document of megabytes is never read whole to be served. Only a chunk's tail
/// that could begin a `needle` waits for the next chunk.
pub fn replace_all(input: ByteStream, needle: &'static str, replacement: Bytes) -> ByteStream {
    let state = Replacer {
        input,
        needle: needle.as_bytes(),
        replacement,
        pending: BytesMut::new(),
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            match state.input.next().await {
                Some(Ok(chunk)) => {
                    state.pending.extend_from_slice(&chunk);
                    let out = state.take_ready(false);
                    if !out.is_empty() {
                        return Some((Ok(out), Some(state)));
                    }
                }
                Some(Err(err)) => return Some((Err(err), None)),
                None => {
                    let out = state.take_ready(true);
                    return (!out.is_empty()).then_some((Ok(out), None));
                }
            }
        }
    })
    .boxed()
}

/// How many times `needle` occurs in `haystack`, for computing a replaced length up front.
pub fn count_occurrences(haystack: &[u8], needle: &str) -> u64 {
    memchr::memmem::find_iter(haystack, needle.as_bytes()).count() as u64
}

/// The length of a body of `len` bytes once `count` needles are replaced.
pub fn replaced_len(len: u64, count: u64, needle: &str, replacement_len: usize) -> u64 {
    (len + count * replacement_len as u64).saturating_sub(count * needle.len() as u64)
}

struct Replacer {
    input: ByteStream,
    needle: &'static [u8],
    replacement: Bytes,
    pending: BytesMut,
}

impl Replacer {
    /// Everything pending that can go out now, with needles replaced.
    fn take_ready(&mut self, at_end: bool) -> Bytes {
        let mut out = BytesMut::with_capacity(self.pending.len());
        let mut start = 0;
        for at in memchr::memmem::find_iter(&self.pending, self.needle) {
            out.extend_from_slice(&self.pending[start..at]);
            out.extend_from_slice(&self.replacement);
            start = at + self.needle.len();
        }
        let rest = &self.pending[start..];
        let held = if at_end {
            0
        } else {
            partial_needle_at_end(rest, self.needle)
        };
        out.extend_from_slice(&rest[..rest.len() - held]);
        let _sent = self.pending.split_to(self.pending.len() - held);
        out.freeze()
    }
}

/// Stored documents with a placeholder for the base URL, kept in memory once rendered for
/// a base URL.
///
/// [`replace_all`] streams a document out without reading it whole, but a hit then costs
/// a pass over every byte and two copies; clients of one mirror use one or two base URLs,
/// so a small document is rendered once per base and then served as one shared buffer.
#[derive(Debug)]
pub struct RenderedDocs {
    needle: &'static str,
    max_entry: u64,
    held: BytesCache<(Digest, Bytes)>,
}

impl RenderedDocs {
    /// Renders `needle` placeholders, keeping documents of up to `max_entry` stored bytes
    /// within `budget` bytes in all.
    pub fn new(needle: &'static str, budget: u64, max_entry: u64) -> Self {
        RenderedDocs {
            needle,
            max_entry,
            held: BytesCache::new(budget),
        }
    }

    /// The stored document `digest` of `size` bytes with every placeholder replaced by
    /// `base`; a document larger than `max_entry` streams.
    pub async fn body(
        &self,
        blobs: &dyn BlobStore,
        digest: &Digest,
        size: u64,
        base: Bytes,
    ) -> Result<Body> {
        let key = (digest.clone(), base);
        if let Some(rendered) = self.held.get(&key) {
            return Ok(full(rendered));
        }
        let stored = blobs.read(digest, None).await?;
        let replaced = replace_all(stored.stream, self.needle, key.1.clone());
        if size > self.max_entry {
            return Ok(from_stream(replaced));
        }
        let chunks: Vec<Bytes> = replaced.try_collect().await?;
        let rendered = match <[Bytes; 1]>::try_from(chunks) {
            Ok([one]) => one,
            Err(chunks) => Bytes::from(chunks.concat()),
        };
        self.held.insert(key, rendered.clone());
        Ok(full(rendered))
    }
}

/// Length of the longest end of `bytes` that is a proper beginning of `needle`.
fn partial_needle_at_end(bytes: &[u8], needle: &[u8]) -> usize {
    (1..needle.len().min(bytes.len() + 1))
        .rev()
        .find(|len| bytes.ends_with(&needle[..*len]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    const NEEDLE: &str = "@@BASE@@";

    async fn run(chunks: Vec<&[u8]>) -> Vec<u8> {
        let items: Vec<crate::Result<Bytes>> = chunks
            .into_iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures_util::stream::iter(items).boxed();
        let out: Vec<Bytes> = replace_all(stream, NEEDLE, Bytes::from_static(b"http://m"))
            .try_collect()
            .await
            .unwrap();
        out.concat()
    }

    #[tokio::test]
    async fn replaces_needles_split_anywhere() {
        let doc = format!("{{\"a\":\"{NEEDLE}/x\",\"b\":\"@@B{NEEDLE}/y@@\"}}");
        let expected = "{\"a\":\"http://m/x\",\"b\":\"@@Bhttp://m/y@@\"}";
        for split in 0..doc.len() {
            let (left, right) = doc.as_bytes().split_at(split);
            assert_eq!(
                run(vec![left, right]).await,
                expected.as_bytes(),
                "split at {split}"
            );
        }
        assert_eq!(
            run(doc.as_bytes().chunks(1).collect()).await,
            expected.as_bytes()
        );
        let count = count_occurrences(doc.as_bytes(), NEEDLE);
        assert_eq!(
            replaced_len(doc.len() as u64, count, NEEDLE, 8),
            expected.len() as u64
        );
    }

    #[tokio::test]
    async fn rendered_docs_are_kept_per_base_and_digest() {
        use crate::storage::{put_bytes, Expected, MemoryBlobStore};

        let blobs = MemoryBlobStore::new();
        let doc = format!("[\"{NEEDLE}/a\",\"{NEEDLE}/b\"]");
        let info = put_bytes(&blobs, Bytes::from(doc), Expected::none())
            .await
            .unwrap();
        let docs = RenderedDocs::new(NEEDLE, 1 << 20, 1 << 10);
        let render = |base: &'static str| {
            docs.body(
                &blobs,
                &info.digest,
                info.size,
                Bytes::from_static(base.as_bytes()),
            )
        };
        let one = render("http://one").await.unwrap().collect().await.unwrap();
        let one = one.to_bytes();
        assert_eq!(one, "[\"http://one/a\",\"http://one/b\"]");
        let two = render("https://two")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let two = two.to_bytes();
        assert_eq!(two, "[\"https://two/a\",\"https://two/b\"]");
        // Both renderings are now served from memory, even with the blob gone.
        blobs.delete(&info.digest).await.unwrap();
        let again = render("http://one").await.unwrap().collect().await.unwrap();
        assert_eq!(again.to_bytes(), "[\"http://one/a\",\"http://one/b\"]");
        assert_eq!(docs.held.held_bytes(), (one.len() + two.len()) as u64);
        // A document over the entry limit streams and is not kept.
        let small = RenderedDocs::new(NEEDLE, 1 << 20, 4);
        let big = put_bytes(&blobs, Bytes::from_static(b"0123456789"), Expected::none())
            .await
            .unwrap();
        let body = small.body(&blobs, &big.digest, big.size, Bytes::new());
        assert_eq!(
            body.await.unwrap().collect().await.unwrap().to_bytes(),
            "0123456789"
        );
        assert_eq!(small.held.held_bytes(), 0);
    }

    #[tokio::test]
    async fn errors_end_the_stream() {
        let items: Vec<crate::Result<Bytes>> =
            vec![Ok(Bytes::from_static(b"ab")), Err(crate::Error::NotFound)];
        let mut stream = replace_all(
            futures_util::stream::iter(items).boxed(),
            NEEDLE,
            Bytes::new(),
        );
        assert_eq!(stream.next().await.unwrap().unwrap(), "ab");
        assert!(stream.next().await.unwrap().is_err());
        assert!(stream.next().await.is_none());
    }
}
