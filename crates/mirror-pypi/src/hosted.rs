//! Private projects: the record each one is kept in, and the page it is served as.
//!
//! A hosted project is one metadata record listing its files; each file's bytes (and a
//! wheel's core metadata) are blobs. An upload is applied here as a pure function from the
//! old record to the new one, and the service writes the result back with a
//! compare-and-swap, so two concurrent uploads can never lose one another, and the checks
//! that refuse a re-upload run again against whatever record the swap replaces.
//!
//! A project with a record is private: its page lists the record's files only, never the
//! upstream's, so a public project of the same name cannot slip files into a private one
//! (dependency confusion).

use mirror_core::Digest;
use serde::{Deserialize, Serialize};

use crate::model::{DistFile, Hashes, ProjectPage};
use crate::name::ProjectName;
use crate::version::Version;

/// A hosted project as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostedProject {
    /// The normalized project name.
    pub(crate) name: String,
    /// In upload order.
    pub(crate) files: Vec<HostedFile>,
}

/// One uploaded distribution file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostedFile {
    pub(crate) filename: String,
    /// The version in PEP 440 normal form.
    pub(crate) version: String,
    pub(crate) kind: DistKind,
    /// The sha256 of the file, which is its blob's address.
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) requires_python: Option<String>,
    /// A wheel's `METADATA`, served as the PEP 658 `.metadata` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) core_metadata: Option<StoredBlob>,
    /// ISO 8601, as PEP 700's `upload-time`.
    pub(crate) uploaded_at: String,
    pub(crate) uploaded_by: String,
}

/// A blob and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredBlob {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

/// The kinds of distribution accepted, by the upload form's `filetype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DistKind {
    BdistWheel,
    Sdist,
}

/// Why an upload cannot be added to a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The file, or its exact content, is already there.
    Exists(String),
    /// Something else about the project forbids it.
    Invalid(String),
}

/// Checks that `file` may join `project`: a file name is taken once, and so is a content
/// (PyPI refuses both, so that a name or hash once seen never means other bytes), and a
/// release has at most one sdist.
pub(crate) fn check_new_file(project: &HostedProject, file: &HostedFile) -> Result<(), Refusal> {
    if project.files.iter().any(|f| f.filename == file.filename) {
        return Err(Refusal::Exists(file.filename.clone()));
    }
    if let Some(twin) = project.files.iter().find(|f| f.digest == file.digest) {
        return Err(Refusal::Exists(format!(
            "{}, whose content {} already has",
            file.filename, twin.filename
        )));
    }
    let release = canonical_version(&file.version);
    let other_sdist = project
        .files
        .iter()
        .find(|f| f.kind == DistKind::Sdist && canonical_version(&f.version) == release);
    match other_sdist {
        Some(sdist) if file.kind == DistKind::Sdist => Err(Refusal::Invalid(format!(
            "only one sdist may be uploaded per release; {} is already there",
            sdist.filename
        ))),
        _ => Ok(()),
    }
}

fn canonical_version(version: &str) -> String {
    Version::parse(version).map_or_else(|| version.to_owned(), |v| v.canonical())
}

/// Adds an uploaded file to a project, new or existing.
pub(crate) fn apply_upload(
    existing: Option<HostedProject>,
    name: &ProjectName,
    file: HostedFile,
) -> Result<HostedProject, Refusal> {
    let mut project = existing.unwrap_or_else(|| HostedProject {
        name: name.as_str().to_owned(),
        files: Vec::new(),
    });
    check_new_file(&project, &file)?;
    project.files.push(file);
    Ok(project)
}

impl HostedProject {
    /// The file of that name, if uploaded.
    pub(crate) fn file(&self, filename: &str) -> Option<&HostedFile> {
        self.files.iter().find(|f| f.filename == filename)
    }

    /// The project as the simple API shows it, with every PEP 691 / 700 field it knows.
    pub(crate) fn page(&self) -> ProjectPage {
        let mut versions: Vec<String> = Vec::new();
        for file in &self.files {
            if !versions.contains(&file.version) {
                versions.push(file.version.clone());
            }
        }
        ProjectPage {
            name: self.name.clone(),
            files: self.files.iter().map(HostedFile::listing).collect(),
            versions: Some(versions),
        }
    }
}

impl HostedFile {
    fn listing(&self) -> DistFile {
        DistFile {
            filename: self.filename.clone(),
            url: String::new(),
            hashes: sha256_hash(&self.digest),
            requires_python: self.requires_python.clone(),
            yanked: None,
            core_metadata: self.core_metadata.as_ref().map(|m| sha256_hash(&m.digest)),
            size: Some(self.size),
            upload_time: Some(self.uploaded_at.clone()),
        }
    }
}

fn sha256_hash(digest: &Digest) -> Hashes {
    Hashes::from([("sha256".to_owned(), digest.hex())])
}

#[cfg(test)]
mod tests {
    use mirror_core::digest::sha256_of;

    use super::*;

    fn file(filename: &str, version: &str, kind: DistKind, content: &str) -> HostedFile {
        HostedFile {
            filename: filename.into(),
            version: version.into(),
            kind,
            digest: sha256_of(content.as_bytes()),
            size: content.len() as u64,
            requires_python: Some(">=3.8".into()),
            core_metadata: None,
            uploaded_at: "2024-01-01T00:00:00.000000Z".into(),
            uploaded_by: "alice".into(),
        }
    }

    fn name() -> ProjectName {
        ProjectName::parse("Demo_Pkg").unwrap()
    }

    #[test]
    fn uploads_accumulate_and_render_as_a_page() {
        let wheel = file(
            "demo_pkg-1.0-py3-none-any.whl",
            "1.0",
            DistKind::BdistWheel,
            "w",
        );
        let sdist = file("demo_pkg-1.0.tar.gz", "1.0", DistKind::Sdist, "s");
        let newer = file("demo_pkg-1.1.tar.gz", "1.1", DistKind::Sdist, "n");
        let mut project = apply_upload(None, &name(), wheel).unwrap();
        project = apply_upload(Some(project), &name(), sdist).unwrap();
        project = apply_upload(Some(project), &name(), newer).unwrap();

        assert_eq!(project.name, "demo-pkg");
        let page = project.page();
        assert_eq!(
            page.versions,
            Some(vec!["1.0".to_owned(), "1.1".to_owned()])
        );
        assert_eq!(page.files.len(), 3);
        assert_eq!(page.files[1].hashes["sha256"], sha256_of(b"s").hex());
        assert_eq!(page.files[1].size, Some(1));
        assert_eq!(page.files[1].requires_python.as_deref(), Some(">=3.8"));
        assert!(project.file("demo_pkg-1.1.tar.gz").is_some());
    }

    #[test]
    fn refuses_a_taken_name_a_taken_content_and_a_second_sdist() {
        let sdist = file("demo_pkg-1.0.tar.gz", "1.0", DistKind::Sdist, "s");
        let project = apply_upload(None, &name(), sdist.clone()).unwrap();

        let again = apply_upload(Some(project.clone()), &name(), sdist);
        assert_eq!(again, Err(Refusal::Exists("demo_pkg-1.0.tar.gz".into())));
        let twin = file("demo_pkg-1.0.zip", "1.0", DistKind::Sdist, "s");
        assert!(matches!(
            apply_upload(Some(project.clone()), &name(), twin),
            Err(Refusal::Exists(_))
        ));
        let second = file("demo-pkg-1.0.0.zip", "1.0.0", DistKind::Sdist, "other");
        assert!(matches!(
            apply_upload(Some(project.clone()), &name(), second),
            Err(Refusal::Invalid(message)) if message.contains("one sdist")
        ));
        let wheel = file(
            "demo_pkg-1.0-py3-none-any.whl",
            "1.0",
            DistKind::BdistWheel,
            "w",
        );
        assert!(apply_upload(Some(project), &name(), wheel).is_ok());
    }
}
