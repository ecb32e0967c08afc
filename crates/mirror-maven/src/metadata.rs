//! `maven-metadata.xml`: reading, merging (for groups) and writing.
//!
//! A group serves one listing made from its members' listings, so the documents are read
//! into a small model rather than passed through. The reader is deliberately narrow: it
//! takes UTF-8 only, refuses a DOCTYPE (so no entity of the document's own making is ever
//! expanded), resolves only XML's predefined and character references, and bounds depth,
//! text length and list lengths, so a hostile upstream costs at most the size limit the
//! caller already applied to the bytes. Elements it does not know are skipped.

use std::cmp::Ordering;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Reader;

/// Deepest element nesting read (real documents have 5 levels).
const MAX_DEPTH: usize = 16;
/// Longest text of one element, in bytes.
const MAX_TEXT: usize = 1024;
/// Most entries (versions, snapshot versions, plugins) read from one document.
const MAX_ENTRIES: usize = 100_000;

/// The parts of a `maven-metadata.xml` that Maven clients read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub(crate) group_id: Option<String>,
    pub(crate) artifact_id: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) latest: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) versions: Vec<String>,
    pub(crate) last_updated: Option<String>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) snapshot_versions: Vec<SnapshotVersion>,
    pub(crate) plugins: Vec<Plugin>,
}

/// `<snapshot>`: the newest build of a `-SNAPSHOT` version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) timestamp: Option<String>,
    pub(crate) build_number: Option<String>,
    pub(crate) local_copy: Option<String>,
}

/// `<snapshotVersion>`: which timestamped file stands for one classifier and extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SnapshotVersion {
    pub(crate) classifier: Option<String>,
    pub(crate) extension: Option<String>,
    pub(crate) value: Option<String>,
    pub(crate) updated: Option<String>,
}

/// `<plugin>` of a group-level listing: a plugin prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plugin {
    pub(crate) name: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) artifact_id: Option<String>,
}

/// Reads a document; the error says what is wrong with it.
pub(crate) fn parse(bytes: &[u8]) -> Result<Metadata, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut parser = Parser::default();
    loop {
        let event = reader.read_event().map_err(|err| err.to_string())?;
        match event {
            Event::Start(start) => parser.open(&start)?,
            Event::Empty(start) => {
                parser.open(&start)?;
                parser.close()?;
            }
            Event::End(_) => parser.close()?,
            Event::Text(text) => parser.text(&text.decode().map_err(|e| e.to_string())?)?,
            Event::CData(data) => parser.text(&data.decode().map_err(|e| e.to_string())?)?,
            Event::GeneralRef(reference) => parser.text(&resolve(&reference)?)?,
            Event::DocType(_) => return Err("a DOCTYPE is not allowed".to_owned()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    parser.finish()
}

fn resolve(reference: &quick_xml::events::BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    let name = reference.decode().map_err(|e| e.to_string())?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| format!("unknown entity &{name};"))
}

/// The element path read so far and the document built from it.
#[derive(Debug, Default)]
struct Parser {
    stack: Vec<String>,
    text: String,
    doc: Metadata,
    snapshot_version: SnapshotVersion,
    plugin: Plugin,
    entries: usize,
    saw_root: bool,
}

impl Parser {
    fn open(&mut self, start: &BytesStart<'_>) -> Result<(), String> {
        let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        if self.stack.is_empty() {
            if name != "metadata" || self.saw_root {
                return Err(format!("unexpected root element <{name}>"));
            }
            self.saw_root = true;
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err("elements nested too deep".to_owned());
        }
        self.stack.push(name);
        self.text.clear();
        Ok(())
    }

    fn text(&mut self, text: &str) -> Result<(), String> {
        if self.stack.is_empty() {
            return Err("text outside the root element".to_owned());
        }
        if self.text.len() + text.len() > MAX_TEXT {
            return Err("element text too long".to_owned());
        }
        self.text.push_str(text);
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        let text = std::mem::take(&mut self.text).trim().to_owned();
        let stack = std::mem::take(&mut self.stack);
        let path: Vec<&str> = stack.iter().map(String::as_str).collect();
        let value = (!text.is_empty()).then_some(text);
        let entry = self.assign(&path, value);
        self.stack = stack;
        if entry {
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err("too many entries".to_owned());
            }
        }
        self.stack.pop().ok_or("unbalanced end tag")?;
        Ok(())
    }

    /// Stores a closed element's text where it belongs; true when it completed an entry.
    fn assign(&mut self, path: &[&str], value: Option<String>) -> bool {
        let doc = &mut self.doc;
        match path {
            ["metadata", "groupId"] => doc.group_id = value,
            ["metadata", "artifactId"] => doc.artifact_id = value,
            ["metadata", "version"] => doc.version = value,
            ["metadata", "versioning", "latest"] => doc.latest = value,
            ["metadata", "versioning", "release"] => doc.release = value,
            ["metadata", "versioning", "lastUpdated"] => doc.last_updated = value,
            ["metadata", "versioning", "versions", "version"] => {
                doc.versions.extend(value);
                return true;
            }
            ["metadata", "versioning", "snapshot", field] => {
                let snapshot = doc.snapshot.get_or_insert_with(Snapshot::default);
                match *field {
                    "timestamp" => snapshot.timestamp = value,
                    "buildNumber" => snapshot.build_number = value,
                    "localCopy" => snapshot.local_copy = value,
                    _ => {}
                }
            }
            ["metadata", "versioning", "snapshotVersions", "snapshotVersion", field] => {
                let entry = &mut self.snapshot_version;
                match *field {
                    "classifier" => entry.classifier = value,
                    "extension" => entry.extension = value,
                    "value" => entry.value = value,
                    "updated" => entry.updated = value,
                    _ => {}
                }
            }
            ["metadata", "versioning", "snapshotVersions", "snapshotVersion"] => {
                let entry = std::mem::take(&mut self.snapshot_version);
                doc.snapshot_versions.push(entry);
                return true;
            }
            ["metadata", "plugins", "plugin", field] => match *field {
                "name" => self.plugin.name = value,
                "prefix" => self.plugin.prefix = value,
                "artifactId" => self.plugin.artifact_id = value,
                _ => {}
            },
            ["metadata", "plugins", "plugin"] => {
                doc.plugins.push(std::mem::take(&mut self.plugin));
                return true;
            }
            _ => {}
        }
        false
    }

    fn finish(self) -> Result<Metadata, String> {
        if !self.saw_root {
            return Err("no <metadata> element".to_owned());
        }
        if !self.stack.is_empty() {
            return Err("the document ends inside an element".to_owned());
        }
        Ok(self.doc)
    }
}

/// Merges the listings of a group's members, the first member ranking highest: versions
/// and plugins are united, `latest` and `release` are the highest any member names,
/// `lastUpdated` the newest, and a snapshot listing is the newest member's whole.
pub(crate) fn merge(documents: &[Metadata]) -> Metadata {
    let mut merged = Metadata::default();
    for doc in documents {
        merged.group_id = merged.group_id.or_else(|| doc.group_id.clone());
        merged.artifact_id = merged.artifact_id.or_else(|| doc.artifact_id.clone());
        merged.version = merged.version.or_else(|| doc.version.clone());
        merged.versions.extend(doc.versions.iter().cloned());
        merged.latest = highest(merged.latest, doc.latest.as_ref());
        merged.release = highest(merged.release, doc.release.as_ref());
        for plugin in &doc.plugins {
            if !merged.plugins.iter().any(|p| p.prefix == plugin.prefix) {
                merged.plugins.push(plugin.clone());
            }
        }
    }
    merged.versions.sort_by(|a, b| compare_versions(a, b));
    merged.versions.dedup();
    merged.last_updated = documents
        .iter()
        .filter_map(|d| d.last_updated.clone())
        .max();
    if let Some(newest) = documents
        .iter()
        .filter(|d| d.snapshot.is_some() || !d.snapshot_versions.is_empty())
        .max_by_key(|d| d.last_updated.clone())
    {
        merged.snapshot.clone_from(&newest.snapshot);
        merged
            .snapshot_versions
            .clone_from(&newest.snapshot_versions);
    }
    merged
}

fn highest(current: Option<String>, other: Option<&String>) -> Option<String> {
    match (current, other) {
        (Some(a), Some(b)) if compare_versions(b, &a) == Ordering::Greater => Some(b.clone()),
        (Some(a), _) => Some(a),
        (None, b) => b.cloned(),
    }
}

/// Writes a document, always well-formed whatever its text holds.
pub(crate) fn write(doc: &Metadata) -> Vec<u8> {
    let mut out = Out::default();
    out.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let mut root = BytesStart::new("metadata");
    root.push_attribute(("modelVersion", "1.1.0"));
    out.event(Event::Start(root));
    out.field("groupId", doc.group_id.as_deref());
    out.field("artifactId", doc.artifact_id.as_deref());
    out.field("version", doc.version.as_deref());
    if has_versioning(doc) {
        out.open("versioning");
        out.field("latest", doc.latest.as_deref());
        out.field("release", doc.release.as_deref());
        write_snapshot(&mut out, doc);
        if !doc.versions.is_empty() {
            out.open("versions");
            for version in &doc.versions {
                out.field("version", Some(version));
            }
            out.close("versions");
        }
        out.field("lastUpdated", doc.last_updated.as_deref());
        out.close("versioning");
    }
    write_plugins(&mut out, &doc.plugins);
    out.close("metadata");
    out.finish()
}

fn has_versioning(doc: &Metadata) -> bool {
    doc.latest.is_some()
        || doc.release.is_some()
        || doc.last_updated.is_some()
        || doc.snapshot.is_some()
        || !doc.versions.is_empty()
        || !doc.snapshot_versions.is_empty()
}

fn write_snapshot(out: &mut Out, doc: &Metadata) {
    if let Some(snapshot) = &doc.snapshot {
        out.open("snapshot");
        out.field("timestamp", snapshot.timestamp.as_deref());
        out.field("buildNumber", snapshot.build_number.as_deref());
        out.field("localCopy", snapshot.local_copy.as_deref());
        out.close("snapshot");
    }
    if doc.snapshot_versions.is_empty() {
        return;
    }
    out.open("snapshotVersions");
    for entry in &doc.snapshot_versions {
        out.open("snapshotVersion");
        out.field("classifier", entry.classifier.as_deref());
        out.field("extension", entry.extension.as_deref());
        out.field("value", entry.value.as_deref());
        out.field("updated", entry.updated.as_deref());
        out.close("snapshotVersion");
    }
    out.close("snapshotVersions");
}

fn write_plugins(out: &mut Out, plugins: &[Plugin]) {
    if plugins.is_empty() {
        return;
    }
    out.open("plugins");
    for plugin in plugins {
        out.open("plugin");
        out.field("name", plugin.name.as_deref());
        out.field("prefix", plugin.prefix.as_deref());
        out.field("artifactId", plugin.artifact_id.as_deref());
        out.close("plugin");
    }
    out.close("plugins");
}

/// An indenting XML writer into memory, which cannot fail.
struct Out {
    writer: quick_xml::Writer<Vec<u8>>,
}

impl Default for Out {
    fn default() -> Self {
        Out {
            writer: quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2),
        }
    }
}

impl Out {
    fn event(&mut self, event: Event<'_>) {
        // Writing into a Vec has no I/O to fail.
        let _ = self.writer.write_event(event);
    }

    fn open(&mut self, name: &str) {
        self.event(Event::Start(BytesStart::new(name)));
    }

    fn close(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    fn field(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.open(name);
            self.event(Event::Text(BytesText::new(value)));
            self.close(name);
        }
    }

    fn finish(self) -> Vec<u8> {
        let mut bytes = self.writer.into_inner();
        bytes.push(b'\n');
        bytes
    }
}

/// One piece of a version: a number or a qualifier.
#[derive(Debug, PartialEq, Eq)]
enum Item<'a> {
    Number(&'a str),
    Qualifier(&'a str),
}

/// Compares versions the way Maven orders them, closely enough to pick the latest:
/// numbers numerically, `alpha < beta < milestone < rc < snapshot < release < sp`, other
/// qualifiers after those, alphabetically; a missing part counts as `0` or a release.
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (items(a), items(b));
    let len = a.len().max(b.len());
    for i in 0..len {
        let order = compare_items(a.get(i), b.get(i));
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

fn items(version: &str) -> Vec<Item<'_>> {
    let mut items = Vec::new();
    for part in version.split(['.', '-']) {
        let mut rest = part;
        while !rest.is_empty() {
            let digits = rest.starts_with(|c: char| c.is_ascii_digit());
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (piece, tail) = rest.split_at(end);
            items.push(if digits {
                Item::Number(piece.trim_start_matches('0'))
            } else {
                Item::Qualifier(piece)
            });
            rest = tail;
        }
    }
    items
}

fn compare_items(a: Option<&Item<'_>>, b: Option<&Item<'_>>) -> Ordering {
    match (a, b) {
        (Some(Item::Number(x)), Some(Item::Number(y))) => x.len().cmp(&y.len()).then(x.cmp(y)),
        (Some(Item::Number(_)), Some(Item::Qualifier(_))) => Ordering::Greater,
        (Some(Item::Qualifier(_)), Some(Item::Number(_))) => Ordering::Less,
        (Some(Item::Qualifier(x)), Some(Item::Qualifier(y))) => compare_qualifiers(x, y),
        (Some(Item::Number(x)), None) => number_vs_nothing(x),
        (None, Some(Item::Number(y))) => number_vs_nothing(y).reverse(),
        (Some(Item::Qualifier(x)), None) => compare_qualifiers(x, ""),
        (None, Some(Item::Qualifier(y))) => compare_qualifiers("", y),
        (None, None) => Ordering::Equal,
    }
}

fn number_vs_nothing(number: &str) -> Ordering {
    if number.is_empty() {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

fn compare_qualifiers(a: &str, b: &str) -> Ordering {
    let (ra, rb) = (qualifier_rank(a), qualifier_rank(b));
    ra.cmp(&rb).then_with(|| {
        if ra == UNKNOWN_QUALIFIER {
            a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase())
        } else {
            Ordering::Equal
        }
    })
}

const UNKNOWN_QUALIFIER: u8 = 7;

fn qualifier_rank(qualifier: &str) -> u8 {
    match qualifier.to_ascii_lowercase().as_str() {
        "alpha" | "a" => 0,
        "beta" | "b" => 1,
        "milestone" | "m" => 2,
        "rc" | "cr" => 3,
        "snapshot" => 4,
        "" | "ga" | "final" | "release" => 5,
        "sp" => 6,
        _ => UNKNOWN_QUALIFIER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata>
  <groupId>org.acme</groupId>
  <artifactId>lib</artifactId>
  <versioning>
    <latest>1.2</latest>
    <release>1.2</release>
    <versions><version>1.0</version><version>1.2</version></versions>
    <lastUpdated>20240101000000</lastUpdated>
  </versioning>
</metadata>"#;

    const B: &str = r#"<metadata modelVersion="1.1.0">
  <groupId>org.acme</groupId>
  <artifactId>lib</artifactId>
  <versioning>
    <latest>1.10</latest>
    <release>1.10</release>
    <versions><version>1.1</version><version>1.10</version><version>1.0</version></versions>
    <lastUpdated>20250101000000</lastUpdated>
  </versioning>
</metadata>"#;

    #[test]
    fn merges_versions_in_maven_order() {
        let merged = merge(&[parse(A.as_bytes()).unwrap(), parse(B.as_bytes()).unwrap()]);
        assert_eq!(merged.versions, ["1.0", "1.1", "1.2", "1.10"]);
        assert_eq!(merged.latest.as_deref(), Some("1.10"));
        assert_eq!(merged.release.as_deref(), Some("1.10"));
        assert_eq!(merged.last_updated.as_deref(), Some("20250101000000"));
        let written = write(&merged);
        assert_eq!(parse(&written).unwrap(), merged);
    }

    #[test]
    fn orders_versions_like_maven() {
        let ordered = [
            "1.0-alpha-1",
            "1.0-beta",
            "1.0-rc1",
            "1.0-SNAPSHOT",
            "1.0",
            "1.0-sp",
            "1.0.1",
            "1.2",
            "1.10",
            "2",
        ];
        for pair in ordered.windows(2) {
            assert_eq!(
                compare_versions(pair[0], pair[1]),
                Ordering::Less,
                "{pair:?}"
            );
        }
        assert_eq!(compare_versions("1.0", "1"), Ordering::Equal);
    }

    #[test]
    fn escapes_what_it_writes() {
        let doc = Metadata {
            group_id: Some("a<b>&\"c".to_owned()),
            ..Metadata::default()
        };
        assert_eq!(parse(&write(&doc)).unwrap(), doc);
    }

    #[test]
    fn refuses_hostile_documents() {
        let entity = r#"<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]>
            <metadata><groupId>&a;</groupId></metadata>"#;
        assert!(parse(entity.as_bytes()).unwrap_err().contains("DOCTYPE"));
        let deep = format!("<metadata>{}", "<x>".repeat(100));
        assert!(parse(deep.as_bytes()).is_err());
        assert!(parse(b"<metadata><groupId>a</metadata>").is_err());
        assert!(parse(b"<project/>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<metadata>&bogus;</metadata>").is_err());
        let long = format!(
            "<metadata><groupId>{}</groupId></metadata>",
            "a".repeat(5000)
        );
        assert!(parse(long.as_bytes()).is_err());
    }
}
