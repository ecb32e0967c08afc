//! Thin wrappers that let the fuzz targets in `fuzz/` reach private parsers. Not an API.

/// Parses a request path; `Ok` with the repository and the decoded path inside it.
pub fn parse_path(raw: &str) -> Result<(String, String), String> {
    crate::path::parse(raw)
        .map(|path| (path.repository, path.path))
        .map_err(|err| err.to_string())
}

/// Parses `maven-metadata.xml`, and when it reads, writes it back.
pub fn parse_metadata(bytes: &[u8]) -> Result<Vec<u8>, String> {
    crate::metadata::parse(bytes).map(|doc| crate::metadata::write(&doc))
}

/// Merges documents and writes the result; `None` when any does not parse.
pub fn merge_metadata(documents: &[&[u8]]) -> Option<Vec<u8>> {
    let parsed: Result<Vec<_>, _> = documents
        .iter()
        .map(|d| crate::metadata::parse(d))
        .collect();
    Some(crate::metadata::write(&crate::metadata::merge(
        &parsed.ok()?,
    )))
}

/// Compares two versions the way listings are ordered.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    crate::metadata::compare_versions(a, b)
}
