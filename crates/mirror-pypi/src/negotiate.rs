//! Content negotiation between the simple API's formats (PEP 691).
//!
//! pip and uv say which format they prefer with q-values
//! (`application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1,
//! text/html;q=0.01`), browsers and old clients send `text/html` or nothing. The highest
//! q-value wins; between equal q-values the more specific media range wins, and between
//! equally specific ones plain HTML, the format every client understands.

use http::{header, HeaderMap};

/// A format a simple-API page can be served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// PEP 503 HTML as `text/html`.
    Html,
    /// PEP 503 HTML as `application/vnd.pypi.simple.v1+html`.
    HtmlV1,
    /// PEP 691 JSON.
    JsonV1,
}

/// The media type of the PEP 691 JSON form.
pub(crate) const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
/// The media type of the versioned HTML form.
pub(crate) const HTML_V1: &str = "application/vnd.pypi.simple.v1+html";

impl Format {
    /// In the order that breaks ties.
    const ALL: [Format; 3] = [Format::Html, Format::HtmlV1, Format::JsonV1];

    /// The `Content-Type` of a response in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::HtmlV1 => HTML_V1,
            Format::JsonV1 => JSON_V1,
        }
    }

    pub(crate) fn is_json(self) -> bool {
        self == Format::JsonV1
    }

    /// The exact media types naming this format (`latest` is PEP 691's alias for the newest
    /// version, which v1 is).
    fn media_types(self) -> &'static [&'static str] {
        match self {
            Format::Html => &["text/html"],
            Format::HtmlV1 => &[HTML_V1, "application/vnd.pypi.simple.latest+html"],
            Format::JsonV1 => &[JSON_V1, "application/vnd.pypi.simple.latest+json"],
        }
    }

    fn main_type(self) -> &'static str {
        match self {
            Format::Html => "text",
            Format::HtmlV1 | Format::JsonV1 => "application",
        }
    }
}

/// One media range of an `Accept` header.
#[derive(Debug)]
struct Range<'a> {
    media: &'a str,
    /// The q-value in thousandths.
    quality: u16,
}

impl Range<'_> {
    /// How specifically this range names `format` (2 exact, 1 `type/*`, 0 `*/*`), or `None`
    /// when it does not match.
    fn specificity(&self, format: Format) -> Option<u8> {
        if format
            .media_types()
            .iter()
            .any(|m| m.eq_ignore_ascii_case(self.media))
        {
            return Some(2);
        }
        match self.media.split_once('/') {
            Some(("*", "*")) => Some(0),
            Some((main, "*")) if main.eq_ignore_ascii_case(format.main_type()) => Some(1),
            _ => None,
        }
    }
}

/// The format to answer in; `None` when the client accepts none (a 406).
pub(crate) fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let ranges: Vec<Range<'_>> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(parse_range)
        .collect();
    if ranges.is_empty() {
        return Some(Format::Html);
    }
    let mut best: Option<(u16, u8, Format)> = None;
    for format in Format::ALL {
        let Some((quality, specificity)) = ranges
            .iter()
            .filter_map(|r| r.specificity(format).map(|s| (r.quality, s)))
            .max_by_key(|(_, s)| *s)
        else {
            continue;
        };
        let better = best.is_none_or(|(q, s, _)| (quality, specificity) > (q, s));
        if quality > 0 && better {
            best = Some((quality, specificity, format));
        }
    }
    best.map(|(_, _, format)| format)
}

fn parse_range(item: &str) -> Option<Range<'_>> {
    let mut parts = item.split(';').map(str::trim);
    let media = parts.next().filter(|m| m.contains('/'))?;
    let mut quality = 1000;
    for param in parts {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("q") {
            quality = parse_quality(value.trim())?;
        }
    }
    Some(Range { media, quality })
}

/// `0`, `0.5`, `1.000` and the like, in thousandths; `None` for anything else.
fn parse_quality(text: &str) -> Option<u16> {
    let value: f32 = text.parse().ok()?;
    if !(0.0..=1.0).contains(&value) || text.len() > 5 {
        return None;
    }
    Some((value * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn pick(accept: &[&'static str]) -> Option<Format> {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(header::ACCEPT, HeaderValue::from_static(value));
        }
        negotiate(&headers)
    }

    #[test]
    fn follows_q_values() {
        let pip = "application/vnd.pypi.simple.v1+json, \
                   application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(pick(&[pip]), Some(Format::JsonV1));
        let html_first = "application/vnd.pypi.simple.v1+json;q=0.5, text/html";
        assert_eq!(pick(&[html_first]), Some(Format::Html));
        assert_eq!(
            pick(&[
                "text/html;q=0.2",
                "application/vnd.pypi.simple.v1+html;q=0.3"
            ]),
            Some(Format::HtmlV1)
        );
        assert_eq!(
            pick(&["application/vnd.pypi.simple.latest+json"]),
            Some(Format::JsonV1)
        );
        assert_eq!(
            pick(&["APPLICATION/VND.PYPI.SIMPLE.V1+JSON"]),
            Some(Format::JsonV1)
        );
    }

    #[test]
    fn defaults_and_wildcards() {
        assert_eq!(pick(&[]), Some(Format::Html));
        assert_eq!(pick(&["*/*"]), Some(Format::Html));
        assert_eq!(pick(&["application/*"]), Some(Format::HtmlV1));
        assert_eq!(
            pick(&["application/vnd.pypi.simple.v1+json, */*;q=0.8"]),
            Some(Format::JsonV1)
        );
        assert_eq!(
            pick(&["text/html,application/xhtml+xml,*/*;q=0.8"]),
            Some(Format::Html)
        );
    }

    #[test]
    fn refusals_and_nonsense() {
        assert_eq!(pick(&["text/plain"]), None);
        assert_eq!(pick(&["text/html;q=0"]), None);
        assert_eq!(pick(&["*/*;q=0.5, text/html;q=0"]), Some(Format::HtmlV1));
        assert_eq!(pick(&["application/json"]), None);
        assert_eq!(
            pick(&["text/html;q=2"]),
            Some(Format::Html),
            "a bad range is skipped"
        );
        assert_eq!(pick(&["garbage"]), Some(Format::Html));
    }
}
