//! Private packages: validating publishes and keeping each hosted packument.
//!
//! A hosted package is one metadata record holding its packument and the blob of each
//! tarball. Every change (publish, deprecate, unpublish, dist-tag) is computed here as a
//! pure function from the old record to the new one, and the service writes it back with a
//! compare-and-swap, so two concurrent publishes can never lose one another. A publish body
//! is checked in full (name, version, attachment length, sha512 and sha1) before anything
//! is stored.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use mirror_core::digest::digests_of;
use mirror_core::{Algorithm, Digest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::packument::{abbreviate_version, BASE_SENTINEL};
use crate::path::{valid_tarball_file, PackageName};

/// A hosted package as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostedPackage {
    /// The packument, with tarball URLs under [`BASE_SENTINEL`] and without `_rev`.
    pub(crate) doc: Map<String, Value>,
    /// Tarball file name → where its bytes are.
    pub(crate) files: BTreeMap<String, HostedFile>,
}

/// One stored tarball.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostedFile {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) version: String,
}

/// A validated publish request.
#[derive(Debug)]
pub(crate) struct Publish {
    pub(crate) version: String,
    manifest: Map<String, Value>,
    tags: Vec<String>,
    pub(crate) file: String,
    pub(crate) tarball: Bytes,
}

/// Why a write was refused; each becomes a 4xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Malformed or inconsistent input: 400.
    Invalid(String),
    /// Would overwrite something immutable: 409.
    Conflict(String),
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::Invalid(message.into())
}

/// True when the body is a publish (it carries a tarball), false for metadata updates.
pub(crate) fn is_publish(doc: &Map<String, Value>) -> bool {
    doc.get("_attachments")
        .and_then(Value::as_object)
        .is_some_and(|a| !a.is_empty())
}

/// Validates a publish body for `name`.
pub(crate) fn parse_publish(
    doc: &Map<String, Value>,
    name: &PackageName,
) -> Result<Publish, Refusal> {
    check_name(doc, name)?;
    let versions = doc
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("missing versions"))?;
    let [(version, manifest)] = versions.iter().collect::<Vec<_>>()[..] else {
        return Err(invalid("a publish must contain exactly one version"));
    };
    if !valid_version(version) {
        return Err(invalid(format!("invalid version {version:?}")));
    }
    let manifest = manifest
        .as_object()
        .ok_or_else(|| invalid("version is not an object"))?;
    if manifest.get("name").and_then(Value::as_str) != Some(name.as_str())
        || manifest.get("version").and_then(Value::as_str) != Some(version.as_str())
    {
        return Err(invalid(
            "version manifest does not match the package name and version",
        ));
    }
    // The tarball is served at `/<name>/-/<file>`, and the router refuses a file name
    // longer than file systems allow: a long name plus a long version (semver allows 256
    // characters) would publish a version whose tarball no client could download.
    let file = format!("{}-{version}.tgz", name.bare());
    if !valid_tarball_file(&file) {
        return Err(invalid(format!(
            "the tarball name {file:?} would be too long; use a shorter version"
        )));
    }
    let tarball = attachment(doc)?;
    check_dist(manifest, &tarball)?;
    Ok(Publish {
        version: version.clone(),
        manifest: manifest.clone(),
        tags: tags_for(doc, version)?,
        file,
        tarball,
    })
}

fn check_name(doc: &Map<String, Value>, name: &PackageName) -> Result<(), Refusal> {
    let named = |key| doc.get(key).and_then(Value::as_str);
    if named("name") != Some(name.as_str()) || named("_id").is_some_and(|id| id != name.as_str()) {
        return Err(invalid("the document's name does not match the URL"));
    }
    Ok(())
}

/// The one attachment, decoded, with its declared length checked.
fn attachment(doc: &Map<String, Value>) -> Result<Bytes, Refusal> {
    let attachments = doc.get("_attachments").and_then(Value::as_object);
    let attachments = attachments.ok_or_else(|| invalid("missing _attachments"))?;
    let [(_, attachment)] = attachments.iter().collect::<Vec<_>>()[..] else {
        return Err(invalid("a publish must contain exactly one attachment"));
    };
    let data = attachment
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("attachment has no data"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| invalid("attachment data is not base64"))?;
    if let Some(length) = attachment.get("length") {
        if length.as_u64() != Some(bytes.len() as u64) {
            return Err(invalid("attachment length does not match its data"));
        }
    }
    if bytes.is_empty() {
        return Err(invalid("empty attachment"));
    }
    Ok(bytes.into())
}

/// The tarball must match `dist.integrity` and `dist.shasum`, and at least one must be given.
fn check_dist(manifest: &Map<String, Value>, tarball: &[u8]) -> Result<(), Refusal> {
    let dist = manifest
        .get("dist")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("missing dist"))?;
    let mut expected = Vec::new();
    if let Some(sri) = dist.get("integrity").and_then(Value::as_str) {
        expected.push(Digest::from_sri(sri).map_err(|_| invalid("unreadable dist.integrity"))?);
    }
    if let Some(hex) = dist.get("shasum").and_then(Value::as_str) {
        expected.push(
            Digest::from_hex(Algorithm::Sha1, hex)
                .map_err(|_| invalid("unreadable dist.shasum"))?,
        );
    }
    if expected.is_empty() {
        return Err(invalid("dist must carry integrity or shasum"));
    }
    let digests = digests_of(tarball, expected.iter().map(Digest::algorithm));
    digests
        .verify(&expected)
        .map_err(|_| invalid("attachment does not match dist.integrity / dist.shasum"))
}

fn tags_for(doc: &Map<String, Value>, version: &str) -> Result<Vec<String>, Refusal> {
    let Some(tags) = doc.get("dist-tags").and_then(Value::as_object) else {
        return Ok(vec!["latest".to_owned()]);
    };
    let mut names = Vec::new();
    for (tag, target) in tags {
        if target.as_str() != Some(version) || !valid_tag(tag) {
            return Err(invalid(format!(
                "dist-tag {tag:?} must name the published version"
            )));
        }
        names.push(tag.clone());
    }
    Ok(names)
}

/// Adds a published version to a package (new or existing).
pub(crate) fn apply_publish(
    existing: Option<HostedPackage>,
    name: &PackageName,
    publish: Publish,
    file: HostedFile,
    now: &str,
) -> Result<HostedPackage, Refusal> {
    let mut package = existing.unwrap_or_else(|| new_package(name, now));
    let used = package
        .doc
        .get("time")
        .and_then(|t| t.get(&publish.version))
        .is_some();
    if used || versions(&package.doc).is_some_and(|v| v.contains_key(&publish.version)) {
        return Err(Refusal::Conflict(format!(
            "cannot publish over the previously published version {}",
            publish.version
        )));
    }
    let mut manifest = publish.manifest;
    set_tarball(&mut manifest, name, &publish.file);
    copy_top_level_fields(&mut package.doc, &manifest);
    versions_mut(&mut package.doc).insert(publish.version.clone(), Value::Object(manifest));
    let tags = tags_mut(&mut package.doc);
    for tag in publish.tags {
        tags.insert(tag, Value::String(publish.version.clone()));
    }
    tags.entry("latest")
        .or_insert_with(|| Value::String(publish.version.clone()));
    touch(&mut package.doc, Some(&publish.version), now);
    package.files.insert(publish.file, file);
    Ok(package)
}

fn new_package(name: &PackageName, now: &str) -> HostedPackage {
    let mut doc = Map::new();
    doc.insert("_id".into(), name.as_str().into());
    doc.insert("name".into(), name.as_str().into());
    doc.insert("dist-tags".into(), Value::Object(Map::new()));
    doc.insert("versions".into(), Value::Object(Map::new()));
    doc.insert("time".into(), serde_json::json!({ "created": now }));
    HostedPackage {
        doc,
        files: BTreeMap::new(),
    }
}

fn set_tarball(manifest: &mut Map<String, Value>, name: &PackageName, file: &str) {
    let url = format!("{BASE_SENTINEL}/{}/-/{file}", name.as_str());
    if let Some(dist) = manifest.get_mut("dist").and_then(Value::as_object_mut) {
        dist.insert("tarball".into(), Value::String(url));
    }
    manifest.insert(
        "_id".into(),
        format!("{}@{}", name.as_str(), manifest_version(manifest)).into(),
    );
}

fn manifest_version(manifest: &Map<String, Value>) -> String {
    manifest
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The packument's summary fields follow the newest publish.
fn copy_top_level_fields(doc: &mut Map<String, Value>, manifest: &Map<String, Value>) {
    for key in [
        "description",
        "readme",
        "license",
        "keywords",
        "homepage",
        "repository",
        "author",
    ] {
        if let Some(value) = manifest.get(key) {
            doc.insert(key.to_owned(), value.clone());
        }
    }
}

/// Applies an update sent as a whole packument (deprecate, or unpublish of a version).
///
/// Only two things may change: a version may disappear, and a version's `deprecated` may be
/// set or cleared; dist-tags follow. Anything else is ignored, so an update can never alter
/// a published manifest or tarball.
pub(crate) fn apply_update(
    mut package: HostedPackage,
    incoming: &Map<String, Value>,
    now: &str,
) -> Result<HostedPackage, Refusal> {
    let new_versions = incoming
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("missing versions"))?;
    if let Some(extra) = new_versions
        .keys()
        .find(|v| !versions(&package.doc).is_some_and(|old| old.contains_key(*v)))
    {
        return Err(invalid(format!(
            "version {extra} is not published; publish it instead"
        )));
    }
    let versions = versions_mut(&mut package.doc);
    versions.retain(|version, _| new_versions.contains_key(version));
    for (version, manifest) in versions.iter_mut() {
        let deprecated = new_versions
            .get(version)
            .and_then(|m| m.get("deprecated"))
            .cloned();
        if let Some(manifest) = manifest.as_object_mut() {
            match deprecated {
                Some(Value::String(text)) if !text.is_empty() => {
                    manifest.insert("deprecated".into(), Value::String(text));
                }
                _ => {
                    manifest.remove("deprecated");
                }
            }
        }
    }
    let remaining: Vec<String> = versions.keys().cloned().collect();
    package
        .files
        .retain(|_, file| remaining.contains(&file.version));
    if let Some(tags) = incoming.get("dist-tags").and_then(Value::as_object) {
        let kept = tags.iter().filter(|(tag, v)| {
            valid_tag(tag) && v.as_str().is_some_and(|v| remaining.iter().any(|r| r == v))
        });
        let kept: Map<String, Value> = kept.map(|(k, v)| (k.clone(), v.clone())).collect();
        package.doc.insert("dist-tags".into(), Value::Object(kept));
    }
    retarget_tags(&mut package.doc);
    touch(&mut package.doc, None, now);
    Ok(package)
}

/// Sets a dist-tag to a published version.
pub(crate) fn set_tag(
    mut package: HostedPackage,
    tag: &str,
    version: &str,
    now: &str,
) -> Result<HostedPackage, Refusal> {
    if !valid_tag(tag) || valid_version(tag) {
        return Err(invalid(format!("invalid dist-tag {tag:?}")));
    }
    if !versions(&package.doc).is_some_and(|v| v.contains_key(version)) {
        return Err(invalid(format!("version {version} is not published")));
    }
    tags_mut(&mut package.doc).insert(tag.to_owned(), Value::String(version.to_owned()));
    touch(&mut package.doc, None, now);
    Ok(package)
}

/// Removes a dist-tag; `latest` cannot be removed.
pub(crate) fn remove_tag(
    mut package: HostedPackage,
    tag: &str,
    now: &str,
) -> Result<HostedPackage, Refusal> {
    if tag == "latest" {
        return Err(invalid("the latest dist-tag cannot be removed"));
    }
    if tags_mut(&mut package.doc).remove(tag).is_none() {
        return Err(invalid(format!("no dist-tag {tag:?}")));
    }
    touch(&mut package.doc, None, now);
    Ok(package)
}

/// The package's dist-tags.
pub(crate) fn tags(package: &HostedPackage) -> Value {
    package
        .doc
        .get("dist-tags")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()))
}

/// True when no version remains.
pub(crate) fn is_empty(package: &HostedPackage) -> bool {
    versions(&package.doc).is_none_or(Map::is_empty)
}

/// Points `latest` at the highest remaining version when its version went away.
fn retarget_tags(doc: &mut Map<String, Value>) {
    let remaining: Vec<String> = versions(doc)
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    let tags = tags_mut(doc);
    tags.retain(|_, v| v.as_str().is_some_and(|v| remaining.iter().any(|r| r == v)));
    if !tags.contains_key("latest") {
        if let Some(highest) = remaining.iter().max_by(|a, b| compare_versions(a, b)) {
            tags.insert("latest".into(), Value::String(highest.clone()));
        }
    }
}

fn touch(doc: &mut Map<String, Value>, version: Option<&str>, now: &str) {
    let time = doc
        .entry("time")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(time) = time.as_object_mut() {
        time.insert("modified".into(), now.into());
        if let Some(version) = version {
            time.insert(version.to_owned(), now.into());
        }
    }
}

fn versions(doc: &Map<String, Value>) -> Option<&Map<String, Value>> {
    doc.get("versions").and_then(Value::as_object)
}

fn versions_mut(doc: &mut Map<String, Value>) -> &mut Map<String, Value> {
    object_mut(doc, "versions")
}

fn tags_mut(doc: &mut Map<String, Value>) -> &mut Map<String, Value> {
    object_mut(doc, "dist-tags")
}

fn object_mut<'a>(doc: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let value = doc.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object above"),
    }
}

/// The full packument as served, with `_rev`.
pub(crate) fn render_full(package: &HostedPackage, rev: &str) -> Value {
    let mut doc = package.doc.clone();
    doc.insert("_rev".into(), Value::String(rev.to_owned()));
    Value::Object(doc)
}

/// The abbreviated packument as served.
pub(crate) fn render_abbreviated(package: &HostedPackage) -> Value {
    let doc = &package.doc;
    let mut out = Map::new();
    for key in ["name", "dist-tags"] {
        if let Some(value) = doc.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    if let Some(modified) = doc.get("time").and_then(|t| t.get("modified")) {
        out.insert("modified".into(), modified.clone());
    }
    let abbreviated: Map<String, Value> = versions(doc)
        .into_iter()
        .flatten()
        .map(|(v, m)| (v.clone(), abbreviate_version(m)))
        .collect();
    out.insert("versions".into(), Value::Object(abbreviated));
    Value::Object(out)
}

/// `MAJOR.MINOR.PATCH` with optional `-prerelease` and `+build`, as semver defines it.
pub(crate) fn valid_version(version: &str) -> bool {
    let numeric = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
    };
    let ident = |s: &str| {
        s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    version.len() <= 256
        && numbers.len() == 3
        && numbers.iter().all(|n| numeric(n))
        && pre.is_none_or(ident)
        && build.is_none_or(ident)
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// Orders versions by their numeric core, prereleases before releases.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |v: &str| {
        let core = v.split(['-', '+']).next().unwrap_or_default();
        let numbers: Vec<u64> = core.split('.').map(|n| n.parse().unwrap_or(0)).collect();
        (numbers, !v.contains('-'))
    };
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests;
