//! Manifest media types and content negotiation.

use http::{header, HeaderMap, HeaderValue};
use serde::Deserialize;

/// Docker image manifest, schema 2.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-architecture).
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-architecture, and the referrers response).
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every manifest type this mirror asks upstream for, so that upstream sends what it has
/// (an index stays an index) instead of converting to an older format.
pub(crate) const MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// The `Accept` header of every manifest request upstream.
pub(crate) fn accept_manifests() -> HeaderValue {
    HeaderValue::from_static(
        "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.list.v2+json, \
         application/vnd.docker.distribution.manifest.v2+json",
    )
}

/// The media type part of a `Content-Type`, without parameters.
pub(crate) fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// True when a `Content-Type` says nothing about which manifest it is.
pub(crate) fn is_generic(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        matches!(
            essence(ct),
            "" | "application/json" | "text/plain" | "application/octet-stream"
        )
    })
}

/// The media type a manifest declares in its body, or the one its shape implies.
pub(crate) fn sniff(manifest: &[u8]) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(manifest).ok()?;
    if let Some(declared) = shape.media_type {
        return MANIFEST_TYPES.into_iter().find(|known| *known == declared);
    }
    match (shape.manifests.is_some(), shape.layers.is_some()) {
        (true, false) => Some(OCI_INDEX),
        (false, true) => Some(OCI_MANIFEST),
        _ => None,
    }
}

/// Whether a client's `Accept` allows `media_type`. A client that lists no manifest type at
/// all (or none of its headers) takes whatever there is; one that lists some gets only those.
pub(crate) fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let listed: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|item| !item.split(';').any(|p| p.replace(' ', "") == "q=0"))
        .map(essence)
        .collect();
    let names_manifests = listed.iter().any(|t| MANIFEST_TYPES.contains(t));
    !names_manifests || listed.iter().any(|t| *t == media_type || *t == "*/*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_manifest_types() {
        assert_eq!(
            sniff(br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#),
            Some(OCI_INDEX)
        );
        assert_eq!(
            sniff(br#"{"schemaVersion":2,"manifests":[]}"#),
            Some(OCI_INDEX)
        );
        assert_eq!(
            sniff(br#"{"schemaVersion":2,"config":{},"layers":[]}"#),
            Some(OCI_MANIFEST)
        );
        assert_eq!(sniff(b"not json"), None);
    }

    #[test]
    fn negotiates_on_accept() {
        let mut headers = HeaderMap::new();
        assert!(accepts(&headers, OCI_INDEX), "no Accept takes anything");
        headers.insert(header::ACCEPT, HeaderValue::from_static(DOCKER_MANIFEST));
        assert!(!accepts(&headers, OCI_INDEX));
        assert!(accepts(&headers, DOCKER_MANIFEST));
        headers.append(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&headers, OCI_INDEX));
        let mut json_only = HeaderMap::new();
        json_only.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(accepts(&json_only, OCI_MANIFEST));
    }
}
