//! Replaces the base-URL sentinel in a stored document while it streams out.

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};
use memchr::memmem;
use mirror_core::ByteStream;

use crate::packument::BASE_SENTINEL;

/// Streams `input` with every [`BASE_SENTINEL`] replaced by `base`.
///
/// A sentinel may straddle two chunks, so the last `len - 1` bytes of each chunk wait for
/// the next one; nothing else is buffered.
pub(crate) fn replace_base(input: ByteStream, base: Bytes) -> ByteStream {
    let state = State {
        input,
        base,
        carry: BytesMut::new(),
        done: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if state.done {
                return None;
            }
            match state.input.next().await {
                Some(Ok(chunk)) => {
                    state.carry.extend_from_slice(&chunk);
                    let out = state.drain(false);
                    if !out.is_empty() {
                        return Some((Ok(out), state));
                    }
                }
                Some(Err(err)) => {
                    state.done = true;
                    return Some((Err(err), state));
                }
                None => {
                    state.done = true;
                    let out = state.drain(true);
                    return (!out.is_empty()).then_some((Ok(out), state));
                }
            }
        }
    })
    .boxed()
}

struct State {
    input: ByteStream,
    base: Bytes,
    carry: BytesMut,
    done: bool,
}

impl State {
    /// Emits what can no longer be part of a sentinel, replacing complete ones.
    fn drain(&mut self, at_end: bool) -> Bytes {
        let sentinel = BASE_SENTINEL.as_bytes();
        let mut out = BytesMut::with_capacity(self.carry.len());
        let mut pos = 0;
        for found in memmem::find_iter(&self.carry, sentinel) {
            out.extend_from_slice(&self.carry[pos..found]);
            out.extend_from_slice(&self.base);
            pos = found + sentinel.len();
        }
        let keep = if at_end { 0 } else { sentinel.len() - 1 };
        let safe_end = self.carry.len().saturating_sub(keep).max(pos);
        out.extend_from_slice(&self.carry[pos..safe_end]);
        let _ = self.carry.split_to(safe_end);
        out.freeze()
    }
}

/// Length of a document after replacement.
pub(crate) fn replaced_len(stored_len: u64, sentinels: u64, base_len: usize) -> u64 {
    let sentinel = BASE_SENTINEL.len() as u64;
    (stored_len + sentinels * base_len as u64).saturating_sub(sentinels * sentinel)
}

/// How many sentinels a stored document holds.
pub(crate) fn count_sentinels(doc: &[u8]) -> u64 {
    memmem::find_iter(doc, BASE_SENTINEL.as_bytes()).count() as u64
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    async fn run(chunks: Vec<&[u8]>) -> Vec<u8> {
        let items: Vec<mirror_core::Result<Bytes>> = chunks
            .into_iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let out: Vec<Bytes> =
            replace_base(stream::iter(items).boxed(), Bytes::from_static(b"http://m"))
                .try_collect()
                .await
                .unwrap();
        out.concat()
    }

    #[tokio::test]
    async fn replaces_sentinels_split_across_chunks() {
        let doc = format!("{{\"a\":\"{BASE_SENTINEL}/x\",\"b\":\"{BASE_SENTINEL}/y\"}}");
        let expected = "{\"a\":\"http://m/x\",\"b\":\"http://m/y\"}";
        for split in 0..doc.len() {
            let (left, right) = doc.as_bytes().split_at(split);
            assert_eq!(
                run(vec![left, right]).await,
                expected.as_bytes(),
                "split at {split}"
            );
        }
        let bytewise: Vec<&[u8]> = doc.as_bytes().chunks(1).collect();
        assert_eq!(run(bytewise).await, expected.as_bytes());
        assert_eq!(
            replaced_len(doc.len() as u64, count_sentinels(doc.as_bytes()), 8),
            expected.len() as u64
        );
    }
}
