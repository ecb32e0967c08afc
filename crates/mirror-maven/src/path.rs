//! Request paths: `/<repository>/<path in the Maven 2 layout>`.
//!
//! A path is checked segment by segment before it names a cache key, a metadata key or an
//! upstream URL: nothing that could climb out of a repository (`..`, `.`, empty segments,
//! backslashes, a percent-encoded slash) or smuggle control characters gets through, and a
//! path is never longer than a real Maven path needs to be. Percent-escapes are decoded
//! once; the decoded segments are what every key and upstream URL is built from.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::error::MavenError;

/// Longest request path accepted, in bytes.
pub(crate) const MAX_PATH_LEN: usize = 1024;
/// Longest single segment accepted, in bytes.
const MAX_SEGMENT_LEN: usize = 255;
/// The file name of version listings.
pub(crate) const METADATA_FILE: &str = "maven-metadata.xml";

/// A checksum algorithm Maven clients ask for, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChecksumKind {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl ChecksumKind {
    const ALL: [ChecksumKind; 4] = [Self::Md5, Self::Sha1, Self::Sha256, Self::Sha512];

    pub(crate) fn extension(self) -> &'static str {
        match self {
            ChecksumKind::Md5 => "md5",
            ChecksumKind::Sha1 => "sha1",
            ChecksumKind::Sha256 => "sha256",
            ChecksumKind::Sha512 => "sha512",
        }
    }

    /// Length of the digest in hex digits.
    pub(crate) fn hex_len(self) -> usize {
        match self {
            ChecksumKind::Md5 => 32,
            ChecksumKind::Sha1 => 40,
            ChecksumKind::Sha256 => 64,
            ChecksumKind::Sha512 => 128,
        }
    }
}

/// What a file in a repository is, which decides how it is cached and deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// `maven-metadata.xml`: changes with every deploy.
    Metadata,
    /// A checksum of another file (`base`).
    Checksum { base: String, kind: ChecksumKind },
    /// A jar, pom, signature or any other artifact file.
    Artifact,
}

/// A checked request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MavenPath {
    /// The repository name (first segment).
    pub(crate) repository: String,
    /// The file's path inside the repository, decoded, segments joined with `/`.
    pub(crate) path: String,
    pub(crate) kind: FileKind,
    /// True when the file lies under a `-SNAPSHOT` version directory.
    pub(crate) snapshot: bool,
}

impl MavenPath {
    /// The version directory the file lies in, if the path is deep enough to have one.
    pub(crate) fn version(&self) -> Option<&str> {
        let target = match &self.kind {
            FileKind::Checksum { base, .. } => base.as_str(),
            FileKind::Metadata | FileKind::Artifact => self.path.as_str(),
        };
        let mut segments = target.rsplit('/');
        segments.next();
        let version = segments.next()?;
        // group / artifact / version / file: a version needs two segments above it.
        (segments.count() >= 2).then_some(version)
    }

    /// The path of a checksum of this file.
    pub(crate) fn checksum_path(&self, kind: ChecksumKind) -> String {
        format!("{}.{}", self.path, kind.extension())
    }
}

/// What is escaped again in a segment sent upstream: anything a URL would read as a
/// delimiter (`?`, `#`, `%`, `:`) or that is not allowed in a path as it is.
const SEGMENT_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A decoded repository path as a relative URL path for an upstream, every segment escaped
/// so that none can turn into a query, a fragment or a scheme.
pub(crate) fn upstream_target(path: &str) -> String {
    let segments: Vec<String> = path
        .split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT_ESCAPES).to_string())
        .collect();
    segments.join("/")
}

/// Parses a request path relative to the mount, such as `/central/org/x/x/1/x-1.jar`.
pub(crate) fn parse(raw: &str) -> Result<MavenPath, MavenError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(MavenError::InvalidPath("the path is too long"));
    }
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    // The mount itself, or a directory: no listings are served.
    if raw.is_empty() || raw.ends_with('/') {
        return Err(MavenError::NotFound);
    }
    let mut segments = Vec::new();
    for segment in raw.split('/') {
        segments.push(segment_of(segment)?);
    }
    let (repository, rest) = segments
        .split_first()
        .ok_or(MavenError::InvalidPath("empty path"))?;
    if rest.is_empty() {
        return Err(MavenError::NotFound);
    }
    let path = rest.join("/");
    let kind = kind_of(&path);
    let snapshot = rest.iter().any(|s| s.ends_with("-SNAPSHOT"));
    Ok(MavenPath {
        repository: repository.clone(),
        path,
        kind,
        snapshot,
    })
}

/// Decodes and checks one segment.
fn segment_of(raw: &str) -> Result<String, MavenError> {
    if raw.is_empty() {
        return Err(MavenError::InvalidPath("empty path segment"));
    }
    let lowered = raw.to_ascii_lowercase();
    if lowered.contains("%2f") || lowered.contains("%5c") || lowered.contains("%00") {
        return Err(MavenError::InvalidPath(
            "encoded slash, backslash or NUL in the path",
        ));
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| MavenError::InvalidPath("the path is not UTF-8"))?;
    check_segment(&decoded)?;
    Ok(decoded.into_owned())
}

fn check_segment(segment: &str) -> Result<(), MavenError> {
    if segment == "." || segment == ".." {
        return Err(MavenError::InvalidPath("relative segment (. or ..)"));
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(MavenError::InvalidPath("path segment too long"));
    }
    if segment
        .chars()
        .any(|c| c.is_control() || c == '\\' || c == '/')
    {
        return Err(MavenError::InvalidPath("control character or backslash"));
    }
    Ok(())
}

fn kind_of(path: &str) -> FileKind {
    let file = path.rsplit('/').next().unwrap_or(path);
    if file == METADATA_FILE {
        return FileKind::Metadata;
    }
    for kind in ChecksumKind::ALL {
        if let Some(base) = path.strip_suffix(&format!(".{}", kind.extension())) {
            if !base.ends_with('/') && !base.is_empty() {
                return FileKind::Checksum {
                    base: base.to_owned(),
                    kind,
                };
            }
        }
    }
    FileKind::Artifact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_maven_layout() {
        let jar = parse("/central/org/acme/lib/1.0/lib-1.0.jar").unwrap();
        assert_eq!(jar.repository, "central");
        assert_eq!(jar.path, "org/acme/lib/1.0/lib-1.0.jar");
        assert_eq!(jar.kind, FileKind::Artifact);
        assert_eq!(jar.version(), Some("1.0"));
        assert!(!jar.snapshot);

        let sha1 = parse("/central/org/acme/lib/1.0/lib-1.0.jar.sha1").unwrap();
        let base = "org/acme/lib/1.0/lib-1.0.jar".to_owned();
        let kind = ChecksumKind::Sha1;
        assert_eq!(sha1.kind, FileKind::Checksum { base, kind });
        assert_eq!(sha1.version(), Some("1.0"));

        let metadata = parse("/public/org/acme/lib/maven-metadata.xml").unwrap();
        assert_eq!(metadata.kind, FileKind::Metadata);
        let snapshot = parse("/snapshots/org/acme/lib/1.1-SNAPSHOT/maven-metadata.xml").unwrap();
        assert!(snapshot.snapshot);
        assert_eq!(snapshot.version(), Some("1.1-SNAPSHOT"));
    }

    #[test]
    fn refuses_what_could_leave_the_repository() {
        for bad in [
            "/central/org/../../etc/passwd",
            "/central/./org/x.jar",
            "/central/org//x.jar",
            "/central/org/x%2f..%2fy.jar",
            "/central/org/x%2F..%2Fy.jar",
            "/central/org\\x.jar",
            "/central/org/%5c/x.jar",
            "/central/org/x%00.jar",
            "/central/org/x%0a.jar",
            "/central/org/%2e%2e/x.jar",
            "/central/org/x.jar%ff",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, MavenError::InvalidPath(_)), "{bad}: {err:?}");
        }
        let long = format!("/central/{}", "a/".repeat(MAX_PATH_LEN));
        assert!(parse(&long).is_err());
        for listing in ["/central", "/", "", "/central/org/x/"] {
            assert!(
                matches!(parse(listing), Err(MavenError::NotFound)),
                "{listing}"
            );
        }
    }

    #[test]
    fn upstream_targets_escape_delimiters_again() {
        let path = parse("/central/org/a%3Fb/c%23d/x%20y%25.jar").unwrap();
        assert_eq!(path.path, "org/a?b/c#d/x y%.jar");
        assert_eq!(upstream_target(&path.path), "org/a%3Fb/c%23d/x%20y%25.jar");
        assert_eq!(upstream_target("http:/x/y.jar"), "http%3A/x/y.jar");
    }
}
