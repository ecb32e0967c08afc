//! Small HTTP helpers every ecosystem service needs: the public base URL of a request,
//! byte ranges, conditional requests and client cache directives.

use std::ops::Range;

use http::{header, HeaderMap, Uri};

/// The URL clients should use to reach a mount point: the configured public URL when there
/// is one, else rebuilt from `X-Forwarded-Proto` / `X-Forwarded-Host` / `Host`.
///
/// Header values are attacker-controlled and end up inside documents served to other
/// clients, so a host that is not a plain `name[:port]` (or `[v6]:port`) is ignored and
/// `fallback_host` is used instead. The result never ends with `/`.
pub fn base_url(
    public_url: Option<&str>,
    headers: &HeaderMap,
    uri: &Uri,
    mount_path: &str,
) -> String {
    if let Some(url) = public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let forwarded = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let first = |value: &str| value.split(',').next().unwrap_or("").trim().to_owned();
    let proto = forwarded("x-forwarded-proto")
        .map(first)
        .filter(|p| p == "http" || p == "https")
        .or_else(|| uri.scheme_str().map(str::to_owned))
        .unwrap_or_else(|| "http".to_owned());
    let host = forwarded("x-forwarded-host")
        .map(first)
        .or_else(|| forwarded(header::HOST.as_str()).map(str::to_owned))
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .filter(|h| is_safe_host(h))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{proto}://{host}{}", mount_path.trim_end_matches('/'))
}

/// True for `name`, `name:port`, `1.2.3.4:port` and `[v6]:port` made of safe characters.
pub fn is_safe_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// Parses a single `Range: bytes=...` header against a body of `size` bytes.
///
/// Returns `Ok(None)` when there is no usable range (absent, several ranges, or not in
/// bytes: the whole body is then served), and `Err(())` when the range cannot be
/// satisfied, which deserves a 416.
#[allow(clippy::result_unit_err)]
pub fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| ())?;
        if suffix == 0 {
            return Err(());
        }
        size.saturating_sub(suffix)..size
    } else {
        let start: u64 = start.parse().map_err(|_| ())?;
        let end = if end.is_empty() {
            size
        } else {
            end.parse::<u64>().map_err(|_| ())?.saturating_add(1)
        };
        start..end.min(size)
    };
    if range.start >= range.end {
        return Err(());
    }
    Ok(Some(range))
}

/// The `Content-Range` value for a range of a body of `size` bytes.
pub fn content_range(range: &Range<u64>, size: u64) -> String {
    format!(
        "bytes {}-{}/{size}",
        range.start,
        range.end.saturating_sub(1)
    )
}

/// True when the request's `If-None-Match` lists `etag` (or `*`), so a 304 answers it.
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == "*" || bare(tag) == want)
        })
}

/// True when the client asked to bypass cached copies (`Cache-Control: no-cache`,
/// `max-age=0`, or `Pragma: no-cache`).
pub fn wants_revalidation(headers: &HeaderMap) -> bool {
    let directives = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .chain(headers.get_all(header::PRAGMA).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    directives
        .iter()
        .any(|d| d == "no-cache" || d == "max-age=0")
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn base_url_prefers_configuration_then_forwarded_headers() {
        let uri: Uri = "/npm/react".parse().unwrap();
        let h = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(
            base_url(Some("https://m.example/npm/"), &h, &uri, "/npm"),
            "https://m.example/npm"
        );
        assert_eq!(
            base_url(None, &h, &uri, "/npm"),
            "http://127.0.0.1:8080/npm"
        );
        let h = headers(&[
            ("host", "x"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "m.example, p"),
        ]);
        assert_eq!(base_url(None, &h, &uri, "/npm/"), "https://m.example/npm");
    }

    #[test]
    fn base_url_ignores_hostile_hosts() {
        let uri: Uri = "/".parse().unwrap();
        let h = headers(&[("host", "evil\"/><script>")]);
        assert_eq!(base_url(None, &h, &uri, ""), "http://localhost");
        let h = headers(&[("host", "ok"), ("x-forwarded-proto", "javascript")]);
        assert_eq!(base_url(None, &h, &uri, ""), "http://ok");
    }

    #[test]
    fn parses_ranges() {
        let range = |v: &'static str| parse_range(&headers(&[("range", v)]), 100);
        assert_eq!(range("bytes=0-9"), Ok(Some(0..10)));
        assert_eq!(range("bytes=90-"), Ok(Some(90..100)));
        assert_eq!(range("bytes=-10"), Ok(Some(90..100)));
        assert_eq!(range("bytes=50-1000"), Ok(Some(50..100)));
        assert_eq!(range("bytes=100-"), Err(()));
        assert_eq!(range("bytes=abc"), Err(()));
        assert_eq!(range("bytes=0-1,5-6"), Ok(None));
        assert_eq!(range("items=0-1"), Ok(None));
        assert_eq!(parse_range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(content_range(&(0..10), 100), "bytes 0-9/100");
    }

    #[test]
    fn conditional_and_cache_directives() {
        assert!(if_none_match(
            &headers(&[("if-none-match", "\"a\", W/\"b\"")]),
            "\"b\""
        ));
        assert!(!if_none_match(
            &headers(&[("if-none-match", "\"a\"")]),
            "\"b\""
        ));
        assert!(wants_revalidation(&headers(&[(
            "cache-control",
            "max-age=0"
        )])));
        assert!(wants_revalidation(&headers(&[("pragma", "no-cache")])));
        assert!(!wants_revalidation(&headers(&[(
            "cache-control",
            "max-age=300"
        )])));
    }
}
