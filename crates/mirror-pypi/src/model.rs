//! The mirror's own model of an index page, whichever format upstream used.
//!
//! Upstream pages come as PEP 503 HTML or PEP 691 JSON; both are read into a [`ProjectPage`]
//! (or a [`RootIndex`]), and every page the mirror serves is rendered from that model. So
//! what a client sees does not depend on what upstream spoke, and anything a page could
//! smuggle (markup, scripts, links to other hosts) is dropped on the way in rather than
//! escaped on the way out. Pages of hosted projects are rendered from the same model.

use std::collections::BTreeMap;

use mirror_core::{Algorithm, Digest, Expected};
use serde::{Deserialize, Serialize};

/// Hash name to lowercase hex value, as PEP 691's `hashes` has them.
pub(crate) type Hashes = BTreeMap<String, String>;

/// One project's files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProjectPage {
    /// The normalized project name.
    pub(crate) name: String,
    pub(crate) files: Vec<DistFile>,
    /// Every version upstream knows of (PEP 700), when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) versions: Option<Vec<String>>,
}

/// One distribution file (wheel, sdist, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DistFile {
    /// A plain file name, checked by [`crate::name::is_valid_file_name`].
    pub(crate) filename: String,
    /// Where upstream keeps it: an absolute http(s) URL without fragment, on an origin the
    /// mirror may dial; empty for a hosted file, which is in the blob store.
    pub(crate) url: String,
    pub(crate) hashes: Hashes,
    /// `Requires-Python` as upstream wrote it (PEP 345 specifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) requires_python: Option<String>,
    /// `Some(reason)` when yanked (PEP 592), with an empty reason when none was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) yanked: Option<String>,
    /// `Some(hashes)` when upstream serves the file's core metadata at `<url>.metadata`
    /// (PEP 658 / 714); the hashes may be empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) core_metadata: Option<Hashes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<u64>,
    /// ISO 8601 upload time (PEP 700).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upload_time: Option<String>,
}

impl DistFile {
    /// The PEP 658 metadata file's upstream URL: the file's path with `.metadata` appended.
    pub(crate) fn metadata_url(&self) -> String {
        match self.url.split_once('?') {
            Some((path, query)) => format!("{path}.metadata?{query}"),
            None => format!("{}.metadata", self.url),
        }
    }
}

/// The root listing: every project's name as upstream spells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RootIndex {
    pub(crate) projects: Vec<String>,
}

/// Reads one hash of a page, keeping it only if it is well formed: a short lowercase name
/// and a hex value (of the right length for the algorithms the mirror can check).
pub(crate) fn clean_hash(name: &str, value: &str) -> Option<(String, String)> {
    let name = name.trim().to_ascii_lowercase();
    let value = value.trim().to_ascii_lowercase();
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let value_ok = !value.is_empty()
        && value.len() <= 256
        && value.len().is_multiple_of(2)
        && value.bytes().all(|b| b.is_ascii_hexdigit());
    let length_ok = algorithm(&name).is_none_or(|a| Digest::from_hex(a, &value).is_ok());
    (name_ok && value_ok && length_ok).then_some((name, value))
}

fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "sha256" => Some(Algorithm::Sha256),
        "sha512" => Some(Algorithm::Sha512),
        "sha1" => Some(Algorithm::Sha1),
        _ => None,
    }
}

/// What a download must hash to: every hash the page gave that the mirror can check
/// (md5 and blake2 are not among them; the public index always gives sha256).
pub(crate) fn expectation(hashes: &Hashes, max_size: u64) -> Expected {
    let digests = hashes
        .iter()
        .filter_map(|(name, value)| Digest::from_hex(algorithm(name)?, value).ok())
        .collect();
    Expected {
        digests,
        size: None,
        max_size: Some(max_size),
    }
}

/// The hash written into a link's fragment: sha256 when given, else the first other one.
pub(crate) fn fragment_hash(hashes: &Hashes) -> Option<(&str, &str)> {
    hashes
        .get_key_value("sha256")
        .or_else(|| hashes.iter().next())
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_well_formed_hashes_only() {
        let sha256 = "ab".repeat(32);
        assert_eq!(
            clean_hash("SHA256", &sha256.to_ascii_uppercase()),
            Some(("sha256".into(), sha256.clone()))
        );
        assert!(clean_hash("md5", &"0f".repeat(16)).is_some());
        assert!(clean_hash("sha256", "abcd").is_none(), "wrong length");
        assert!(clean_hash("sha256", &"zz".repeat(32)).is_none());
        assert!(clean_hash("sha 256", &sha256).is_none());
        assert!(clean_hash("x\"><script>", "00").is_none());
    }

    #[test]
    fn expects_the_digests_it_can_check() {
        let mut hashes = Hashes::new();
        hashes.insert("md5".into(), "0f".repeat(16));
        assert!(expectation(&hashes, 10).digests.is_empty());
        hashes.insert("sha256".into(), "ab".repeat(32));
        let expected = expectation(&hashes, 10);
        assert_eq!(expected.digests.len(), 1);
        assert_eq!(expected.max_size, Some(10));
        assert_eq!(fragment_hash(&hashes), Some(("sha256", &*"ab".repeat(32))));
    }

    #[test]
    fn metadata_url_appends_to_the_path() {
        let file = |url: &str| DistFile {
            url: url.into(),
            ..DistFile::default()
        };
        assert_eq!(
            file("https://f.test/a/x.whl").metadata_url(),
            "https://f.test/a/x.whl.metadata"
        );
        assert_eq!(
            file("https://f.test/x.whl?sig=1").metadata_url(),
            "https://f.test/x.whl.metadata?sig=1"
        );
    }
}
