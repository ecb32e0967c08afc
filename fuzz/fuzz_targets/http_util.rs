//! mirror-core's header parsers: `Range`, `If-None-Match`, `Cache-Control` / `Pragma`, and
//! the base URL rebuilt from `Host` / `X-Forwarded-*`.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mirror_core::http_util::{
    base_url, content_range, if_none_match, is_safe_host, parse_range, wants_revalidation,
};

#[derive(Debug, Arbitrary)]
struct Input {
    range: String,
    size: u64,
    etag: String,
    if_none_match: String,
    cache_control: String,
    host: String,
    forwarded_host: String,
    forwarded_proto: String,
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.append(name, value);
    }
}

fuzz_target!(|input: Input| {
    let mut headers = HeaderMap::new();
    insert(&mut headers, "range", &input.range);
    insert(&mut headers, "if-none-match", &input.if_none_match);
    insert(&mut headers, "cache-control", &input.cache_control);
    insert(&mut headers, "host", &input.host);
    insert(&mut headers, "x-forwarded-host", &input.forwarded_host);
    insert(&mut headers, "x-forwarded-proto", &input.forwarded_proto);

    check_range(&headers, input.size);
    check_etag(&input.etag);
    let _ = if_none_match(&headers, &input.etag);
    let _ = wants_revalidation(&headers);
    check_base_url(&headers);
});

/// A satisfiable range lies inside the body and is not empty; `Content-Range` states it.
fn check_range(headers: &HeaderMap, size: u64) {
    let Ok(Some(range)) = parse_range(headers, size) else {
        return;
    };
    assert!(range.start < range.end, "{range:?}");
    assert!(range.end <= size, "{range:?} beyond {size}");
    let expected = format!("bytes {}-{}/{size}", range.start, range.end - 1);
    assert_eq!(content_range(&range, size), expected);
}

/// A tag always matches itself, weak or strong, and `*` matches anything.
fn check_etag(etag: &str) {
    if !etag.is_ascii() || etag.contains(',') {
        return;
    }
    let Ok(value) = HeaderValue::from_str(etag) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("if-none-match", value);
    assert!(
        if_none_match(&headers, etag),
        "{etag:?} does not match itself"
    );
    headers.insert("if-none-match", HeaderValue::from_static("*"));
    assert!(if_none_match(&headers, etag));
}

/// Header values end up in documents served to other clients: whatever they say, the base
/// URL is `http(s)://<safe host>/mount`.
fn check_base_url(headers: &HeaderMap) {
    let uri = http::Uri::from_static("/npm/x");
    let url = base_url(None, headers, &uri, "/npm/");
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("{url:?} has another scheme"));
    let host = rest
        .strip_suffix("/npm")
        .unwrap_or_else(|| panic!("{url:?} lost its mount"));
    assert!(is_safe_host(host), "{url:?}");
}
