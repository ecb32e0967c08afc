//! mirror-core's streaming placeholder replacement (how stored npm and PyPI documents get
//! the request's base URL): however a document arrives in chunks, the output is the same
//! as replacing in the whole buffer, and its length is the one computed up front.
#![no_main]

use bytes::Bytes;
use futures_util::StreamExt;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mirror_core::body::{count_occurrences, replace_all, replaced_len};

const NEEDLE: &str = "@@BASE@@";

#[derive(Debug, Arbitrary)]
struct Input {
    document: Vec<u8>,
    /// Chunk lengths, cycled.
    cuts: Vec<u8>,
    replacement: String,
}

fuzz_target!(|input: Input| {
    let chunks = split(&input.document, &input.cuts);
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok)).boxed();
    let replacement = Bytes::from(input.replacement.clone());
    let out: Vec<u8> = mirror_fuzz::block_on(async {
        let mut out = Vec::new();
        let mut replaced = replace_all(stream, NEEDLE, replacement);
        while let Some(chunk) = replaced.next().await {
            out.extend_from_slice(&chunk.expect("no input errors"));
        }
        out
    });

    assert_eq!(out, replace_whole(&input.document, &input.replacement));
    let count = count_occurrences(&input.document, NEEDLE);
    let len = replaced_len(
        input.document.len() as u64,
        count,
        NEEDLE,
        input.replacement.len(),
    );
    assert_eq!(out.len() as u64, len);
});

fn split(document: &[u8], cuts: &[u8]) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut rest = document;
    let mut sizes = cuts.iter().map(|c| usize::from(*c)).cycle();
    while !rest.is_empty() {
        let mut size = if cuts.is_empty() {
            rest.len()
        } else {
            sizes.next().unwrap_or(1)
        };
        if size == 0 {
            // An empty chunk is legal in a stream; it must not disturb the replacement.
            chunks.push(Bytes::new());
            size = 1;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(Bytes::copy_from_slice(chunk));
        rest = tail;
    }
    chunks
}

/// Left to right, non-overlapping, like `str::replace`.
fn replace_whole(document: &[u8], replacement: &str) -> Vec<u8> {
    let needle = NEEDLE.as_bytes();
    let mut out = Vec::with_capacity(document.len());
    let mut at = 0;
    while at < document.len() {
        if document[at..].starts_with(needle) {
            out.extend_from_slice(replacement.as_bytes());
            at += needle.len();
        } else {
            out.push(document[at]);
            at += 1;
        }
    }
    out
}
