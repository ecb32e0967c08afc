//! Entry points for the fuzz targets in `fuzz/`, compiled only with the `fuzzing` feature.
//!
//! The `WWW-Authenticate` and token-response parsers sit behind the registry token flow,
//! which dials the realm a challenge names: a fuzz target driving them through
//! [`RegistryUpstream`](crate::RegistryUpstream) would make network requests. The path and
//! media-type parsers are cheaper to reach directly too. Each wrapper hands back plain
//! values so that no private type leaks out. Not part of the public API.

use http::HeaderMap;

use crate::challenge::{challenges, Challenge};

/// One challenge as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedChallenge {
    /// `Bearer realm=..., service=..., scope=..., error=...`.
    Bearer {
        /// Where tokens come from.
        realm: String,
        /// The `service` parameter.
        service: Option<String>,
        /// The `scope` parameter.
        scope: Option<String>,
        /// The `error` parameter.
        error: Option<String>,
    },
    /// `Basic ...`.
    Basic,
}

/// Every challenge in `WWW-Authenticate` headers, in order.
pub fn parse_challenges(headers: &HeaderMap) -> Vec<ParsedChallenge> {
    challenges(headers)
        .into_iter()
        .map(|challenge| match challenge {
            Challenge::Bearer {
                realm,
                service,
                scope,
                error,
            } => ParsedChallenge::Bearer {
                realm,
                service,
                scope,
                error,
            },
            Challenge::Basic => ParsedChallenge::Basic,
        })
        .collect()
}

/// The token a token endpoint's answer carries, when it carries one.
pub fn parse_token(body: &[u8]) -> Option<String> {
    crate::upstream::token_of(body)
}

/// A request path read as the service reads it: the endpoint's kind, the repository name
/// and the reference (tag or digest), or `None` for a path that names no endpoint.
pub fn route(path: &str) -> Option<(&'static str, Option<String>, Option<String>)> {
    use crate::path::Route;

    let named = |name: &crate::path::RepoName| Some(name.as_str().to_owned());
    Some(match crate::path::route(path).ok()? {
        Route::Base => ("base", None, None),
        Route::Catalog => ("catalog", None, None),
        Route::Manifest(name, reference) => ("manifest", named(&name), Some(reference.to_string())),
        Route::Blob(name, digest) => ("blob", named(&name), Some(digest.to_string())),
        Route::Upload(name, upload) => (
            "upload",
            named(&name),
            upload.map(|id| id.as_str().to_owned()),
        ),
        Route::Token => ("token", None, None),
        Route::Tags(name) => ("tags", named(&name), None),
        Route::Referrers(name, digest) => ("referrers", named(&name), Some(digest.to_string())),
    })
}

/// The manifest media type a body declares or implies.
pub fn sniff(manifest: &[u8]) -> Option<&'static str> {
    crate::media::sniff(manifest)
}

/// Whether a client's `Accept` takes `media_type`.
pub fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    crate::media::accepts(headers, media_type)
}
