//! Turning an upstream packument into the documents the mirror serves.
//!
//! The upstream document is transformed once per change, not once per request: the full
//! and abbreviated forms are written with every `dist.tarball` pointing at
//! [`BASE_SENTINEL`], and only that sentinel is replaced by the request's base URL while the
//! stored bytes stream out. Parsing goes one version at a time over borrowed raw JSON, so a
//! packument of tens of megabytes is held a few times over at most, never as a whole tree
//! of `serde_json::Value`s; the work runs on the blocking pool so other requests never wait
//! behind it.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use url::Url;

use crate::path::{valid_tarball_file, PackageName};

/// Stands for the mirror's base URL inside stored documents.
pub(crate) const BASE_SENTINEL: &str = "@@REGISTRY_MIRROR_BASE_URL@@";

/// Fields of a version that installs need, per the npm registry's abbreviated format.
const ABBREVIATED_VERSION_FIELDS: &[&str] = &[
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "_hasShrinkwrap",
    "hasInstallScript",
    "cpu",
    "os",
    "libc",
    "funding",
    "license",
];

/// Where upstream keeps one tarball and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TarballInfo {
    /// The upstream request target: an absolute URL on the upstream's origin or a path.
    pub(crate) target: String,
    /// `dist.integrity`, an SRI string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) integrity: Option<String>,
    /// `dist.shasum`, sha1 hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) shasum: Option<String>,
}

/// The documents derived from one upstream packument.
#[derive(Debug)]
pub(crate) struct Derived {
    pub(crate) full: Vec<u8>,
    pub(crate) abbreviated: Vec<u8>,
    pub(crate) tarballs: BTreeMap<String, TarballInfo>,
}

/// Derives the served documents; the error says what was wrong with upstream's document.
pub(crate) fn derive(raw: &[u8], name: &PackageName, upstream: &Url) -> Result<Derived, String> {
    let top: IndexMap<String, &RawValue> = serde_json::from_slice(raw)
        .map_err(|err| format!("packument is not a JSON object: {err}"))?;
    let versions: IndexMap<String, &RawValue> = match top.get("versions") {
        Some(raw) => {
            serde_json::from_str(raw.get()).map_err(|err| format!("bad versions: {err}"))?
        }
        None => IndexMap::new(),
    };

    let mut tarballs = BTreeMap::new();
    let mut abbreviated_versions = IndexMap::with_capacity(versions.len());
    let mut full = Vec::with_capacity(raw.len() + raw.len() / 8);
    let mut rewrite = |doc: &mut Value, version: &str| -> Result<(), String> {
        if let Some((file, info)) = rewrite_tarball(doc, name, version, upstream) {
            tarballs.insert(file, info);
        }
        abbreviated_versions.insert(version.to_owned(), to_raw(&abbreviate_version(doc))?);
        Ok(())
    };
    write_full(&mut full, &top, &versions, &mut rewrite)?;
    let abbreviated = write_abbreviated(&top, &abbreviated_versions)?;
    Ok(Derived {
        full,
        abbreviated,
        tarballs,
    })
}

fn to_raw(value: &Value) -> Result<Box<RawValue>, String> {
    serde_json::value::to_raw_value(value).map_err(|err| err.to_string())
}

/// Points `dist.tarball` at the mirror and returns what the mirror needs to fetch it.
fn rewrite_tarball(
    doc: &mut Value,
    name: &PackageName,
    version: &str,
    upstream: &Url,
) -> Option<(String, TarballInfo)> {
    let dist = doc.get_mut("dist")?.as_object_mut()?;
    let url = dist.get("tarball")?.as_str()?.to_owned();
    let file = tarball_file(&url, name, version);
    let text = |key: &str| dist.get(key).and_then(Value::as_str).map(str::to_owned);
    let info = TarballInfo {
        target: upstream_target(&url, name, &file, upstream),
        integrity: text("integrity"),
        shasum: text("shasum"),
    };
    let mirrored = format!("{BASE_SENTINEL}/{}/-/{file}", name.as_str());
    dist.insert("tarball".to_owned(), Value::String(mirrored));
    Some((file, info))
}

/// The file name a tarball gets on the mirror: upstream's, when it is a safe file name.
fn tarball_file(url: &str, name: &PackageName, version: &str) -> String {
    let last = url.rsplit('/').next().unwrap_or_default();
    let last = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    if valid_tarball_file(&last) {
        return last.into_owned();
    }
    let fallback = format!("{}-{version}.tgz", name.bare());
    if valid_tarball_file(&fallback) {
        fallback
    } else {
        "package.tgz".to_owned()
    }
}

/// Fetch the tarball where upstream said when that is on upstream's own origin; otherwise
/// ask upstream at the conventional path, never dialling a host from a document.
fn upstream_target(url: &str, name: &PackageName, file: &str, upstream: &Url) -> String {
    match Url::parse(url) {
        Ok(parsed) if parsed.origin() == upstream.origin() => parsed.to_string(),
        _ => format!("{}/-/{file}", name.upstream_path()),
    }
}

pub(crate) fn abbreviate_version(doc: &Value) -> Value {
    let Some(fields) = doc.as_object() else {
        return doc.clone();
    };
    let mut out = Map::new();
    for key in ABBREVIATED_VERSION_FIELDS {
        if let Some(value) = fields.get(*key) {
            out.insert((*key).to_owned(), value.clone());
        }
    }
    if !out.contains_key("hasInstallScript") && has_install_script(fields) {
        out.insert("hasInstallScript".to_owned(), Value::Bool(true));
    }
    Value::Object(out)
}

fn has_install_script(fields: &Map<String, Value>) -> bool {
    let Some(scripts) = fields.get("scripts").and_then(Value::as_object) else {
        return false;
    };
    ["preinstall", "install", "postinstall"]
        .iter()
        .any(|s| scripts.contains_key(*s))
}

#[derive(Serialize)]
#[serde(untagged)]
enum Field<'a> {
    Raw(&'a RawValue),
    Versions(&'a IndexMap<String, Box<RawValue>>),
}

/// Writes the full document version by version, so the rewritten versions are never all
/// held apart from the output.
fn write_full(
    out: &mut Vec<u8>,
    top: &IndexMap<String, &RawValue>,
    versions: &IndexMap<String, &RawValue>,
    rewrite: &mut dyn FnMut(&mut Value, &str) -> Result<(), String>,
) -> Result<(), String> {
    out.push(b'{');
    for (i, (key, value)) in top.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(out, key.as_str())?;
        out.push(b':');
        if key != "versions" {
            out.extend_from_slice(value.get().as_bytes());
            continue;
        }
        out.push(b'{');
        for (j, (version, raw)) in versions.iter().enumerate() {
            let mut doc: Value =
                serde_json::from_str(raw.get()).map_err(|err| format!("{version}: {err}"))?;
            rewrite(&mut doc, version)?;
            if j > 0 {
                out.push(b',');
            }
            write_json(out, version.as_str())?;
            out.push(b':');
            write_json(out, &doc)?;
        }
        out.push(b'}');
    }
    out.push(b'}');
    Ok(())
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), String> {
    serde_json::to_writer(out, value).map_err(|err| err.to_string())
}

fn write_abbreviated(
    top: &IndexMap<String, &RawValue>,
    versions: &IndexMap<String, Box<RawValue>>,
) -> Result<Vec<u8>, String> {
    let mut out: IndexMap<&str, Field<'_>> = IndexMap::new();
    for key in ["name", "dist-tags"] {
        if let Some(value) = top.get(key) {
            out.insert(key, Field::Raw(value));
        }
    }
    let modified = modified_of(top);
    if let Some(modified) = &modified {
        out.insert("modified", Field::Raw(modified));
    }
    out.insert("versions", Field::Versions(versions));
    serde_json::to_vec(&out).map_err(|err| err.to_string())
}

/// `time.modified`, as the abbreviated form's `modified`.
fn modified_of(top: &IndexMap<String, &RawValue>) -> Option<Box<RawValue>> {
    let time: Map<String, Value> = serde_json::from_str(top.get("time")?.get()).ok()?;
    to_raw(time.get("modified")?).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn upstream() -> Url {
        Url::parse("http://up.test/").unwrap()
    }

    fn doc() -> Value {
        serde_json::json!({
            "_id": "@a/b",
            "name": "@a/b",
            "dist-tags": {"latest": "1.0.0"},
            "versions": {
                "1.0.0": {
                    "name": "@a/b", "version": "1.0.0", "readme": "long text",
                    "scripts": {"postinstall": "node x.js"},
                    "dependencies": {"c": "^1"},
                    "dist": {
                        "tarball": "http://up.test/@a/b/-/b-1.0.0.tgz",
                        "integrity": "sha512-AAAA", "shasum": "abcd"
                    }
                },
                "2.0.0": {
                    "name": "@a/b", "version": "2.0.0",
                    "dist": {"tarball": "http://elsewhere.test/x/../evil name.tgz"}
                }
            },
            "time": {"modified": "2026-01-01T00:00:00.000Z"},
            "custom": [1, 2, 3]
        })
    }

    fn derived() -> Derived {
        let raw = serde_json::to_vec(&doc()).unwrap();
        derive(&raw, &PackageName::parse("@a/b").unwrap(), &upstream()).unwrap()
    }

    #[test]
    fn full_form_keeps_everything_but_points_tarballs_at_the_mirror() {
        let full: Value = serde_json::from_slice(&derived().full).unwrap();
        let v1 = &full["versions"]["1.0.0"];
        assert_eq!(
            v1["dist"]["tarball"],
            format!("{BASE_SENTINEL}/@a/b/-/b-1.0.0.tgz")
        );
        assert_eq!(v1["readme"], "long text");
        assert_eq!(full["custom"], serde_json::json!([1, 2, 3]));
        assert_eq!(
            full["versions"]["2.0.0"]["dist"]["tarball"],
            format!("{BASE_SENTINEL}/@a/b/-/b-2.0.0.tgz")
        );
    }

    #[test]
    fn abbreviated_form_has_install_fields_only() {
        let abbreviated: Value = serde_json::from_slice(&derived().abbreviated).unwrap();
        assert_eq!(abbreviated["modified"], "2026-01-01T00:00:00.000Z");
        assert_eq!(abbreviated["dist-tags"]["latest"], "1.0.0");
        assert!(abbreviated.get("custom").is_none());
        let v1 = &abbreviated["versions"]["1.0.0"];
        assert!(v1.get("readme").is_none());
        assert_eq!(v1["hasInstallScript"], true);
        assert_eq!(v1["dependencies"]["c"], "^1");
        assert_eq!(v1["dist"]["integrity"], "sha512-AAAA");
    }

    #[test]
    fn tarball_index_never_names_a_foreign_host() {
        let tarballs = derived().tarballs;
        let v1 = &tarballs["b-1.0.0.tgz"];
        assert_eq!(v1.target, "http://up.test/@a/b/-/b-1.0.0.tgz");
        assert_eq!(v1.integrity.as_deref(), Some("sha512-AAAA"));
        assert_eq!(tarballs["b-2.0.0.tgz"].target, "@a%2fb/-/b-2.0.0.tgz");
    }

    #[test]
    fn thousands_of_versions_keep_order_and_content() {
        let mut versions = serde_json::Map::new();
        for i in 0..3000 {
            let v = format!("1.{}.{}", i / 100, i % 100);
            let dist =
                json!({"tarball": format!("http://up.test/big/-/big-{v}.tgz"), "shasum": "ab"});
            versions.insert(
                v.clone(),
                json!({"name": "big", "version": v, "dist": dist, "x": i}),
            );
        }
        let doc = json!({"name": "big", "versions": versions, "after": true});
        let raw = serde_json::to_vec(&doc).unwrap();
        let derived = derive(&raw, &PackageName::parse("big").unwrap(), &upstream()).unwrap();

        assert_eq!(derived.tarballs.len(), 3000);
        let full: Value = serde_json::from_slice(&derived.full).unwrap();
        let keys: Vec<&String> = full["versions"].as_object().unwrap().keys().collect();
        let expected: Vec<&String> = versions.keys().collect();
        assert_eq!(keys, expected, "version order is kept");
        assert_eq!(full["versions"]["1.29.99"]["x"], 2999);
        assert_eq!(full["after"], true);
        let mut restored = full.clone();
        for (v, manifest) in restored["versions"].as_object_mut().unwrap() {
            manifest["dist"]["tarball"] = json!(format!("http://up.test/big/-/big-{v}.tgz"));
        }
        assert_eq!(restored, doc, "nothing but tarball URLs changes");
    }

    #[test]
    fn malformed_documents_are_errors() {
        let name = PackageName::parse("x").unwrap();
        assert!(derive(b"[1,2]", &name, &upstream()).is_err());
        assert!(derive(b"{\"versions\": 5}", &name, &upstream()).is_err());
        assert!(derive(b"{\"versions\": {\"1\": ", &name, &upstream()).is_err());
        assert!(derive(b"{\"name\": \"x\"}", &name, &upstream()).is_ok());
    }
}
