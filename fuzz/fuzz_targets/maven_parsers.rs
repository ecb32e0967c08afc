//! mirror-maven's readers of untrusted input (through its `fuzzing` feature): request
//! paths, `maven-metadata.xml` documents from upstreams and deploys, the merge a group
//! serves, and the version order it sorts by.
//!
//! The input is a request path, a newline, then up to two listings separated by a NUL byte.
//!
//! Invariants: an accepted path names a repository and a path with no empty, `.` or `..`
//! segment, no backslash and no control character; a document that reads is written out
//! well-formed, and written again it is the same bytes (a fixed point); a merge of
//! documents that read is itself readable; the version order is antisymmetric.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror_maven::fuzzing::{compare_versions, merge_metadata, parse_metadata, parse_path};

fuzz_target!(|input: &[u8]| {
    let (path, documents) = match input.iter().position(|b| *b == b'\n') {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &[][..]),
    };
    if let Ok(path) = std::str::from_utf8(path) {
        check_path(path);
    }
    let mut documents = documents.splitn(2, |b| *b == 0);
    let first = documents.next().unwrap_or_default();
    let second = documents.next().unwrap_or_default();
    check_document(first);
    check_document(second);
    if let Some(merged) = merge_metadata(&[first, second]) {
        assert!(parse_metadata(&merged).is_ok(), "a merge reads back");
    }
});

fn check_path(raw: &str) {
    let Ok((repository, path)) = parse_path(raw) else {
        return;
    };
    assert!(!repository.is_empty());
    for segment in repository.split('/').chain(path.split('/')) {
        assert!(!segment.is_empty(), "{raw:?}");
        assert!(segment != "." && segment != "..", "{raw:?}");
        assert!(
            !segment.chars().any(|c| c.is_control() || c == '\\'),
            "{raw:?}"
        );
    }
    let (a, b) = (repository.as_str(), path.as_str());
    let order = compare_versions(a, b);
    assert_eq!(order, compare_versions(b, a).reverse(), "{a:?} {b:?}");
}

fn check_document(bytes: &[u8]) {
    let Ok(written) = parse_metadata(bytes) else {
        return;
    };
    let again = parse_metadata(&written).expect("a written document reads back");
    assert_eq!(again, written, "writing is a fixed point");
}
