//! mirror-docker's pure parsers (through its `fuzzing` feature): `WWW-Authenticate`
//! challenges and token responses from upstream registries (reached otherwise only by the
//! token flow, which would dial the realm), request paths and manifest media types.
//!
//! Invariants: a challenge written with any quoted values reads back as exactly those
//! values; a parsed token is never empty; a routed path names a repository made of valid
//! components (nothing like `..`, `%` or an empty segment) and re-routes to itself when
//! written back; a sniffed media type is one of the four manifest types.
#![no_main]

use http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mirror_docker::fuzzing::{
    accepts, parse_challenges, parse_token, route, sniff, ParsedChallenge,
};

#[derive(Debug, Arbitrary)]
enum Input {
    Challenge(String),
    Written {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        basic_first: bool,
    },
    Token(Vec<u8>),
    Route(String),
    Manifest(Vec<u8>),
    Accept(String, String),
}

const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

fuzz_target!(|input: Input| match input {
    Input::Challenge(text) => {
        let _ = parse_challenges(&headers(header::WWW_AUTHENTICATE, &text));
    }
    Input::Written {
        realm,
        service,
        scope,
        basic_first,
    } => {
        check_written(realm, service, scope, basic_first)
    }
    Input::Token(body) => {
        if let Some(token) = parse_token(&body) {
            assert!(!token.is_empty());
        }
    }
    Input::Route(path) => check_route(&path),
    Input::Manifest(body) => {
        if let Some(media_type) = sniff(&body) {
            assert!(MANIFEST_TYPES.contains(&media_type));
        }
    }
    Input::Accept(accept, media_type) => {
        let _ = accepts(&headers(header::ACCEPT, &accept), &media_type);
    }
});

fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
    headers
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn check_written(realm: String, service: Option<String>, scope: Option<String>, basic_first: bool) {
    let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    let all = [Some(&realm), service.as_ref(), scope.as_ref()];
    if !all.into_iter().flatten().all(|s| printable(s)) {
        return;
    }
    let mut text = format!("Bearer realm={}", quoted(&realm));
    if let Some(service) = &service {
        text.push_str(&format!(",service={}", quoted(service)));
    }
    if let Some(scope) = &scope {
        text.push_str(&format!(", scope={}", quoted(scope)));
    }
    if basic_first {
        text = format!("Basic realm=\"registry\", {text}");
    }
    let found = parse_challenges(&headers(header::WWW_AUTHENTICATE, &text));
    let bearer = ParsedChallenge::Bearer {
        realm,
        service,
        scope,
        error: None,
    };
    let expected = if basic_first {
        vec![ParsedChallenge::Basic, bearer]
    } else {
        vec![bearer]
    };
    assert_eq!(found, expected, "{text}");
}

fn check_route(path: &str) {
    let Some((kind, name, reference)) = route(path) else {
        return;
    };
    let Some(name) = name else {
        return;
    };
    assert!(!name.is_empty() && name.len() <= 255, "{name:?}");
    for component in name.split('/') {
        assert!(
            !component.is_empty() && component != ".." && component != ".",
            "{name:?}"
        );
        assert!(
            component
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)),
            "{name:?}"
        );
    }
    if kind == "manifest" {
        let reference = reference.expect("a manifest route has a reference");
        let again = route(&format!("/v2/{name}/manifests/{reference}"));
        assert_eq!(again, Some((kind, Some(name), Some(reference))), "{path:?}");
    }
}
