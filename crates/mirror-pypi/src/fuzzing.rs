//! Entry points for the fuzz targets in `fuzz/`, compiled only with the `fuzzing` feature.
//!
//! The parsers below are private and pure; reaching them through [`PypiMirror`] would cost
//! a whole request per input for no extra coverage. Each wrapper hands back plain values so
//! that no private type leaks out. Not part of the public API: it may change at any time.
//!
//! [`PypiMirror`]: crate::PypiMirror

use http::HeaderMap;

/// PEP 503 normalization of any text, valid name or not.
pub fn normalize(name: &str) -> String {
    crate::name::normalize(name)
}

/// The normalized project name, when `raw` is a valid one.
pub fn project_name(raw: &str) -> Option<String> {
    crate::name::ProjectName::parse(raw).map(|name| name.as_str().to_owned())
}

/// Whether `file` is accepted as a distribution file name.
pub fn is_valid_file_name(file: &str) -> bool {
    crate::name::is_valid_file_name(file)
}

/// A PEP 440 version's normal form and canonical (trailing zeros dropped) form.
pub fn version(raw: &str) -> Option<(String, String)> {
    crate::version::Version::parse(raw).map(|v| (v.normalized(), v.canonical()))
}

/// Whether two spellings name one version.
pub fn same_version(a: &str, b: &str) -> bool {
    crate::version::same_version(a, b)
}

/// The answer format an `Accept` header picks: `Some(true)` for JSON, `Some(false)` for
/// HTML, `None` for neither (a 406).
pub fn negotiate(headers: &HeaderMap) -> Option<bool> {
    crate::negotiate::negotiate(headers).map(|format| format.is_json())
}
