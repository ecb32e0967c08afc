//! `WWW-Authenticate` challenges, as registries send them on a 401.
//!
//! The header is upstream-controlled text: the parser takes any input without panicking and
//! simply finds no challenge in what it cannot read.

use http::{header, HeaderMap};

/// One authentication scheme upstream offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// The registry token flow: fetch a token from `realm`, then send it as a bearer token.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        /// `invalid_token` when the token sent was refused.
        error: Option<String>,
    },
    /// HTTP basic authentication.
    Basic,
}

/// Every challenge in the response's `WWW-Authenticate` headers, in order.
pub(crate) fn challenges(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(parse)
        .collect()
}

/// Parses one header value: `Scheme k="v", k=v, ... [, Scheme2 ...]`.
fn parse(value: &str) -> Vec<Challenge> {
    let mut found = Vec::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for item in split_items(value) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match item.split_once('=') {
            // `Scheme key=value`: a new challenge starting with its first parameter.
            Some((head, _)) if head.trim().contains(' ') => {
                let (scheme, param) = item.split_once(' ').unwrap_or((item, ""));
                found.extend(current.take().and_then(build));
                current = Some((scheme.to_owned(), param_of(param).into_iter().collect()));
            }
            Some(_) => {
                if let (Some((_, params)), Some(param)) = (current.as_mut(), param_of(item)) {
                    params.push(param);
                }
            }
            None => {
                found.extend(current.take().and_then(build));
                current = Some((item.to_owned(), Vec::new()));
            }
        }
    }
    found.extend(current.and_then(build));
    found
}

/// Splits on commas outside quoted strings.
fn split_items(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut item = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                item.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                item.push(c);
                escaped = true;
            }
            '"' => {
                item.push(c);
                quoted = !quoted;
            }
            ',' if !quoted => items.push(std::mem::take(&mut item)),
            _ => item.push(c),
        }
    }
    items.push(item);
    items
}

/// `key=value` or `key="quoted \" value"`, the key lowercased.
fn param_of(text: &str) -> Option<(String, String)> {
    let (key, value) = text.split_once('=')?;
    let value = value.trim();
    let value = match value.strip_prefix('"') {
        Some(inner) => {
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if c == '\\' && !escaped {
                    escaped = true;
                } else {
                    out.push(c);
                    escaped = false;
                }
            }
            out
        }
        None => value.to_owned(),
    };
    Some((key.trim().to_ascii_lowercase(), value))
}

fn build((scheme, params): (String, Vec<(String, String)>)) -> Option<Challenge> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
            error: get("error"),
        })
    } else if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn parse_one(value: &'static str) -> Vec<Challenge> {
        let mut headers = HeaderMap::new();
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        challenges(&headers)
    }

    #[test]
    fn parses_docker_hub_challenge() {
        let found = parse_one(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push",error="invalid_token""#,
        );
        assert_eq!(
            found,
            [Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull,push".into()),
                error: Some("invalid_token".into()),
            }]
        );
    }

    #[test]
    fn parses_basic_and_several_challenges() {
        assert_eq!(
            parse_one(r#"Basic realm="Registry Realm""#),
            [Challenge::Basic]
        );
        assert_eq!(parse_one("basic"), [Challenge::Basic]);
        let both = parse_one(r#"Basic realm="a, b", Bearer realm=http://t/token, service=s"#);
        assert_eq!(both.len(), 2);
        assert!(
            matches!(&both[1], Challenge::Bearer { realm, service: Some(s), .. }
            if realm == "http://t/token" && s == "s")
        );
    }

    #[test]
    fn survives_garbage() {
        for junk in [
            "",
            ",,,",
            "Bearer",
            "Bearer realm",
            "Bearer realm=\"unterminated",
            "=\"\\",
            "Negotiate abc==",
            "Bearer service=\"x\"",
            "\"\"\"",
            "Bearer realm=\"\\\"",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(junk).unwrap(),
            );
            let found = challenges(&headers);
            assert!(
                found.iter().all(|c| match c {
                    Challenge::Bearer { realm, .. } => !realm.is_empty() || junk.contains("realm"),
                    Challenge::Basic => true,
                }),
                "{junk}: {found:?}"
            );
        }
        assert!(
            parse_one("Bearer service=\"x\"").is_empty(),
            "a bearer challenge needs a realm"
        );
    }
}
