//! Which distribution API endpoint a request path names.
//!
//! A repository name may itself contain `/`, so a path is read from its end: the last
//! `manifests`, `blobs`, `tags` or `referrers` segment decides the endpoint and everything
//! before it is the name. Names, tags and digests are validated against the distribution
//! specification's grammar before they become storage keys or upstream paths, which is what
//! makes path traversal impossible: no accepted component can be `..`, empty or contain a
//! percent sign.

use std::fmt;

use mirror_core::{Algorithm, Digest};

use crate::error::DockerError;

/// Longest repository name accepted, registry host included, as clients limit it.
const MAX_NAME_LEN: usize = 255;
/// Longest tag the specification allows.
const MAX_TAG_LEN: usize = 128;

/// The path segment after `/v2/` where the token endpoint answers; a leading `_` keeps it
/// apart from every valid repository name.
pub(crate) const TOKEN_SEGMENT: &str = "_token";

/// The id of an upload in progress: what this registry hands out, 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UploadId(String);

impl UploadId {
    pub(crate) fn new(random: [u8; 16]) -> Self {
        UploadId(hex::encode(random))
    }

    /// Any other text names no upload this registry could have started.
    fn parse(text: &str) -> Result<Self, DockerError> {
        let valid = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(UploadId(text.to_owned()))
        } else {
            Err(DockerError::BlobUploadUnknown)
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/` (start an upload) or `.../uploads/<id>` (one in progress).
    Upload(RepoName, Option<UploadId>),
    /// `/v2/_token`: the registry's own token endpoint, named in its challenges.
    Token,
    /// `/v2/<name>/tags/list`.
    Tags(RepoName),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(RepoName, Digest),
}

/// A repository name valid under the distribution specification, such as `library/nginx`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RepoName(String);

impl RepoName {
    /// Validates a name: `/`-separated components of lowercase letters and digits, joined
    /// inside a component by `.`, `_`, `__` or a run of `-`.
    pub(crate) fn parse(name: &str) -> Result<Self, DockerError> {
        let valid =
            !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(valid_component);
        if valid {
            Ok(RepoName(name.to_owned()))
        } else {
            Err(DockerError::NameInvalid(format!(
                "invalid repository name {:?}",
                truncate(name)
            )))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The first component and the rest, when there are at least two components.
    pub(crate) fn split_first(&self) -> Option<(&str, RepoName)> {
        let (first, rest) = self.0.split_once('/')?;
        Some((first, RepoName(rest.to_owned())))
    }

    /// True for a one-component name such as `nginx`.
    pub(crate) fn is_single(&self) -> bool {
        !self.0.contains('/')
    }

    /// The name with `prefix/` in front; still valid, since `prefix` is a valid component.
    pub(crate) fn prefixed(&self, prefix: &str) -> RepoName {
        RepoName(format!("{prefix}/{}", self.0))
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between letters and digits, each run of other characters must be one separator.
    component
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .all(|run| run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-'))
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference {
    /// A tag such as `latest`.
    Tag(String),
    /// A content digest.
    Digest(Digest),
}

impl Reference {
    /// A digest when the text has the `algorithm:encoded` shape, else a tag.
    pub(crate) fn parse(text: &str) -> Result<Self, DockerError> {
        if text.contains(':') {
            return parse_digest(text).map(Reference::Digest);
        }
        let bytes = text.as_bytes();
        let tag_char = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        let valid = bytes.len() <= MAX_TAG_LEN
            && bytes
                .first()
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
            && bytes.iter().all(tag_char);
        if valid {
            Ok(Reference::Tag(text.to_owned()))
        } else {
            Err(DockerError::TagInvalid(truncate(text)))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => f.write_str(tag),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

/// Parses an OCI digest, accepting only the registered algorithms this mirror can verify
/// (sha256 and sha512, lowercase hex of the right length).
pub(crate) fn parse_digest(text: &str) -> Result<Digest, DockerError> {
    let invalid = |why: &str| DockerError::DigestInvalid(format!("{why}: {:?}", truncate(text)));
    let (algorithm, encoded) = text
        .split_once(':')
        .ok_or_else(|| invalid("digest lacks an algorithm"))?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    if !algorithm_ok || !encoded_ok {
        return Err(invalid("malformed digest"));
    }
    let algorithm = match algorithm {
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        _ => return Err(invalid("unsupported digest algorithm")),
    };
    let hex_ok = encoded
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex_ok {
        return Err(invalid("digest is not lowercase hex"));
    }
    Digest::from_hex(algorithm, encoded).map_err(|_| invalid("digest of the wrong length"))
}

/// Parses the path of a request; the service sees the whole path, `/v2` included.
pub(crate) fn route(path: &str) -> Result<Route, DockerError> {
    let rest = path.strip_prefix("/v2").ok_or_else(no_endpoint)?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or_else(no_endpoint)?;
    match rest {
        "_catalog" => return Ok(Route::Catalog),
        TOKEN_SEGMENT => return Ok(Route::Token),
        _ => {}
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        [name @ .., "blobs", "uploads", ""] | [name @ .., "blobs", "uploads"]
            if !name.is_empty() =>
        {
            Ok(Route::Upload(repo(name)?, None))
        }
        [name @ .., "blobs", "uploads", id] if !name.is_empty() => {
            let name = repo(name)?;
            Ok(Route::Upload(name, Some(UploadId::parse(id)?)))
        }
        [name @ .., "manifests", reference] if !name.is_empty() => {
            let name = repo(name)?;
            Ok(Route::Manifest(name, Reference::parse(reference)?))
        }
        [name @ .., "blobs", digest] if !name.is_empty() => {
            let name = repo(name)?;
            Ok(Route::Blob(name, parse_digest(digest)?))
        }
        [name @ .., "tags", "list"] if !name.is_empty() => Ok(Route::Tags(repo(name)?)),
        [name @ .., "referrers", digest] if !name.is_empty() => {
            let name = repo(name)?;
            Ok(Route::Referrers(name, parse_digest(digest)?))
        }
        _ => Err(no_endpoint()),
    }
}

fn no_endpoint() -> DockerError {
    DockerError::NotServed("no such endpoint in the distribution API")
}

fn repo(segments: &[&str]) -> Result<RepoName, DockerError> {
    RepoName::parse(&segments.join("/"))
}

/// Client input quoted in an error message, cut to a readable length.
fn truncate(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn code(result: Result<Route, DockerError>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn routes_each_endpoint() {
        assert_eq!(route("/v2/").unwrap(), Route::Base);
        assert_eq!(route("/v2").unwrap(), Route::Base);
        assert_eq!(route("/v2/_catalog").unwrap(), Route::Catalog);
        let name = RepoName::parse("library/nginx").unwrap();
        assert_eq!(
            route("/v2/library/nginx/manifests/1.25-alpine").unwrap(),
            Route::Manifest(name.clone(), Reference::Tag("1.25-alpine".into()))
        );
        let digest: Digest = SHA256.parse().unwrap();
        assert_eq!(
            route(&format!("/v2/library/nginx/manifests/{SHA256}")).unwrap(),
            Route::Manifest(name.clone(), Reference::Digest(digest.clone()))
        );
        assert_eq!(
            route(&format!("/v2/library/nginx/blobs/{SHA256}")).unwrap(),
            Route::Blob(name.clone(), digest.clone())
        );
        assert_eq!(
            route("/v2/library/nginx/tags/list").unwrap(),
            Route::Tags(name.clone())
        );
        assert_eq!(
            route(&format!("/v2/library/nginx/referrers/{SHA256}")).unwrap(),
            Route::Referrers(name.clone(), digest)
        );
        assert_eq!(
            route("/v2/library/nginx/blobs/uploads/").unwrap(),
            Route::Upload(name.clone(), None)
        );
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            route(&format!("/v2/library/nginx/blobs/uploads/{id}")).unwrap(),
            Route::Upload(name, Some(UploadId(id.into())))
        );
        assert_eq!(route("/v2/_token").unwrap(), Route::Token);
    }

    #[test]
    fn refuses_foreign_upload_ids() {
        for id in ["..", "abc", "0123456789ABCDEF0123456789ABCDEF", "%2e%2e"] {
            let path = format!("/v2/a/blobs/uploads/{id}");
            assert_eq!(code(route(&path)), "BLOB_UPLOAD_UNKNOWN", "{id}");
        }
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        let route = route("/v2/a/manifests/blobs/manifests/v1").unwrap();
        let name = RepoName::parse("a/manifests/blobs").unwrap();
        assert_eq!(route, Route::Manifest(name, Reference::Tag("v1".into())));
    }

    #[test]
    fn refuses_invalid_names() {
        for path in [
            "/v2/Library/nginx/manifests/latest",
            "/v2/../etc/manifests/latest",
            "/v2/a/../b/manifests/latest",
            "/v2/a//b/manifests/latest",
            "/v2/a%2fb/manifests/latest",
            "/v2/-a/manifests/latest",
            "/v2/a_/manifests/latest",
            "/v2/a___b/manifests/latest",
            "/v2/a..b/manifests/latest",
            "/v2/127.0.0.1:5000/a/manifests/latest",
        ] {
            assert_eq!(code(route(path)), "NAME_INVALID", "{path}");
        }
        for name in [
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "ghcr.io/org/app",
            "0/1/2",
        ] {
            assert!(RepoName::parse(name).is_ok(), "{name}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn refuses_invalid_references() {
        assert_eq!(code(route("/v2/a/manifests/.hidden")), "MANIFEST_UNKNOWN");
        assert_eq!(code(route("/v2/a/manifests/1.0+build")), "MANIFEST_UNKNOWN");
        let long = "t".repeat(129);
        assert_eq!(
            code(route(&format!("/v2/a/manifests/{long}"))),
            "MANIFEST_UNKNOWN"
        );
        for digest in [
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "sha256:abc",
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
            ":abc",
            "sha256:",
        ] {
            assert_eq!(
                code(route(&format!("/v2/a/blobs/{digest}"))),
                "DIGEST_INVALID",
                "{digest}"
            );
            assert_eq!(
                code(route(&format!("/v2/a/manifests/{digest}"))),
                "DIGEST_INVALID"
            );
        }
        assert!(route("/v2/a/blobs/sha256:../../etc/passwd").is_err());
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        assert!(route(&format!("/v2/a/blobs/{sha512}")).is_ok());
    }

    #[test]
    fn unknown_endpoints() {
        for path in ["/v2/a", "/v2/a/tags", "/v2/manifests/x", "/v3/", "/v2x"] {
            assert_eq!(code(route(path)), "UNSUPPORTED", "{path}");
        }
    }
}
