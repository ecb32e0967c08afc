//! Replaces the base-URL sentinel in a stored page while it streams out.
//!
//! Pages of popular projects run to megabytes, so they are never read whole to be served:
//! each chunk is passed on as soon as it is known not to end in the first bytes of a
//! sentinel; only such a partial sentinel waits for the next chunk.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use memchr::memmem;
use mirror_core::ByteStream;

use crate::render::BASE_SENTINEL;

/// Streams `input` with every [`BASE_SENTINEL`] replaced by `base`.
pub(crate) fn splice_base(input: ByteStream, base: Bytes) -> ByteStream {
    Splice {
        input,
        base,
        pending: BytesMut::new(),
        finished: false,
    }
    .boxed()
}

/// How many sentinels a stored page holds.
pub(crate) fn count_sentinels(page: &[u8]) -> u64 {
    memmem::find_iter(page, BASE_SENTINEL.as_bytes()).count() as u64
}

/// The length of a stored page once its sentinels are replaced by `base_len` bytes each.
pub(crate) fn spliced_len(stored: u64, sentinels: u64, base_len: usize) -> u64 {
    let removed = sentinels * BASE_SENTINEL.len() as u64;
    (stored + sentinels * base_len as u64).saturating_sub(removed)
}

struct Splice {
    input: ByteStream,
    base: Bytes,
    pending: BytesMut,
    finished: bool,
}

impl Splice {
    /// Everything of `pending` that can go out now, with sentinels replaced.
    fn take_ready(&mut self, at_end: bool) -> Bytes {
        let sentinel = BASE_SENTINEL.as_bytes();
        let mut out = BytesMut::with_capacity(self.pending.len());
        let mut start = 0;
        for at in memmem::find_iter(&self.pending, sentinel) {
            out.extend_from_slice(&self.pending[start..at]);
            out.extend_from_slice(&self.base);
            start = at + sentinel.len();
        }
        let rest = &self.pending[start..];
        let held = if at_end {
            0
        } else {
            partial_sentinel_at_end(rest)
        };
        out.extend_from_slice(&rest[..rest.len() - held]);
        let _sent = self.pending.split_to(self.pending.len() - held);
        out.freeze()
    }
}

/// Length of the longest end of `bytes` that is a proper beginning of the sentinel.
fn partial_sentinel_at_end(bytes: &[u8]) -> usize {
    let sentinel = BASE_SENTINEL.as_bytes();
    (1..sentinel.len().min(bytes.len() + 1))
        .rev()
        .find(|len| bytes.ends_with(&sentinel[..*len]))
        .unwrap_or(0)
}

impl Stream for Splice {
    type Item = mirror_core::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.finished {
            let (out, at_end) = match ready!(this.input.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => {
                    this.pending.extend_from_slice(&chunk);
                    (this.take_ready(false), false)
                }
                Some(Err(err)) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(err)));
                }
                None => {
                    this.finished = true;
                    (this.take_ready(true), true)
                }
            };
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out)));
            }
            if at_end {
                break;
            }
        }
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{stream, TryStreamExt};

    use super::*;

    async fn run(chunks: &[&[u8]], base: &'static [u8]) -> Vec<u8> {
        let items: Vec<mirror_core::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let out: Vec<Bytes> = splice_base(stream::iter(items).boxed(), Bytes::from_static(base))
            .try_collect()
            .await
            .unwrap();
        out.concat()
    }

    #[tokio::test]
    async fn replaces_sentinels_wherever_chunks_split_them() {
        let page = format!("<a href=\"{BASE_SENTINEL}/f/a\">@@</a>{BASE_SENTINEL}{BASE_SENTINEL}@");
        let want = "<a href=\"http://m/pypi/f/a\">@@</a>http://m/pypihttp://m/pypi@";
        for split in 0..=page.len() {
            let (left, right) = page.as_bytes().split_at(split);
            assert_eq!(run(&[left, right], b"http://m/pypi").await, want.as_bytes());
        }
        let bytes: Vec<&[u8]> = page.as_bytes().chunks(1).collect();
        assert_eq!(run(&bytes, b"http://m/pypi").await, want.as_bytes());
        let sentinels = count_sentinels(page.as_bytes());
        assert_eq!(sentinels, 3);
        assert_eq!(
            spliced_len(page.len() as u64, sentinels, 13),
            want.len() as u64
        );
    }

    #[tokio::test]
    async fn a_partial_sentinel_at_the_end_is_kept() {
        let tail = &BASE_SENTINEL.as_bytes()[..5];
        assert_eq!(run(&[b"x", tail], b"B").await, [b"x", tail].concat());
        assert_eq!(run(&[], b"B").await, b"");
    }
}
