//! PEP 691 JSON pages.

use serde::Deserialize;
use serde_json::Value;

use crate::model::{clean_hash, Hashes};

/// `meta` of every PEP 691 response.
#[derive(Debug, Deserialize)]
struct Meta {
    #[serde(rename = "api-version")]
    api_version: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProjectDoc {
    meta: Meta,
    /// Kept raw so that one odd file leaves the rest of the page usable.
    pub(crate) files: Vec<Value>,
    #[serde(default)]
    pub(crate) versions: Option<Vec<String>>,
}

/// One file as PEP 691 (and PEP 700 / 714) describe it.
#[derive(Debug, Deserialize)]
pub(crate) struct FileDoc {
    pub(crate) filename: String,
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) hashes: serde_json::Map<String, Value>,
    #[serde(default, rename = "requires-python")]
    pub(crate) requires_python: Option<String>,
    #[serde(default)]
    pub(crate) yanked: Option<Value>,
    #[serde(default, rename = "core-metadata")]
    pub(crate) core_metadata: Option<Value>,
    #[serde(default, rename = "dist-info-metadata")]
    pub(crate) dist_info_metadata: Option<Value>,
    #[serde(default)]
    pub(crate) size: Option<u64>,
    #[serde(default, rename = "upload-time")]
    pub(crate) upload_time: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RootDoc {
    meta: Meta,
    projects: Vec<RootProject>,
}

#[derive(Debug, Deserialize)]
struct RootProject {
    name: String,
}

/// Parses a project page, checking that its API version is one this mirror speaks.
pub(crate) fn project(raw: &[u8]) -> Result<ProjectDoc, String> {
    let doc: ProjectDoc =
        serde_json::from_slice(raw).map_err(|err| format!("not a PEP 691 project page: {err}"))?;
    check_version(&doc.meta)?;
    Ok(doc)
}

/// The project names of a root listing.
pub(crate) fn root(raw: &[u8]) -> Result<Vec<String>, String> {
    let doc: RootDoc =
        serde_json::from_slice(raw).map_err(|err| format!("not a PEP 691 root page: {err}"))?;
    check_version(&doc.meta)?;
    Ok(doc.projects.into_iter().map(|p| p.name).collect())
}

/// PEP 691: a client must refuse a major version it does not know.
fn check_version(meta: &Meta) -> Result<(), String> {
    match meta.api_version.split('.').next() {
        Some("1") => Ok(()),
        _ => Err(format!("unsupported api-version {:?}", meta.api_version)),
    }
}

impl FileDoc {
    /// `yanked`: `true` or a reason string; `false` or absent when not yanked.
    pub(crate) fn yanked(&self) -> Option<String> {
        match &self.yanked {
            Some(Value::Bool(true)) => Some(String::new()),
            Some(Value::String(reason)) => Some(reason.clone()),
            _ => None,
        }
    }

    /// The cleaned `hashes`; `None` if any is malformed.
    pub(crate) fn hashes(&self) -> Option<Hashes> {
        hashes_of(&self.hashes)
    }

    /// `core-metadata`, else the older `dist-info-metadata`: `true` or a hash map.
    pub(crate) fn core_metadata(&self) -> Option<Hashes> {
        match self
            .core_metadata
            .as_ref()
            .or(self.dist_info_metadata.as_ref())?
        {
            Value::Bool(true) => Some(Hashes::new()),
            Value::Object(map) => hashes_of(map),
            _ => None,
        }
    }
}

fn hashes_of(map: &serde_json::Map<String, Value>) -> Option<Hashes> {
    map.iter()
        .map(|(name, value)| clean_hash(name, value.as_str()?))
        .collect()
}
