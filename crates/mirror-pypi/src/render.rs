//! Rendering the model as the pages the mirror serves: PEP 503 HTML and PEP 691 JSON.
//!
//! A page is rendered once per upstream change, not once per request: every file URL is
//! written as [`BASE_SENTINEL`]`/files/<project>/<file>`, and only the sentinel is replaced
//! by the request's base URL while the stored page streams out (see
//! [`mirror_core::body::replace_all`]).
//! The sentinel needs no escaping in either format; the base URL replacing it is escaped
//! for the format it lands in.

use serde::Serialize;

use crate::model::{fragment_hash, DistFile, Hashes, ProjectPage, RootIndex};
use crate::name::normalize;

/// Stands for the mirror's base URL inside stored pages.
pub(crate) const BASE_SENTINEL: &str = "@@REGISTRY_MIRROR_BASE_URL@@";

/// The API version a page declares: 1.1 (PEP 700) needs every file's size and the version
/// list, which only a JSON upstream provides.
fn api_version(page: &ProjectPage) -> &'static str {
    let sizes = page.files.iter().all(|f| f.size.is_some());
    if page.versions.is_some() && sizes {
        "1.1"
    } else {
        "1.0"
    }
}

/// A file's URL on the mirror, with the sentinel standing for the base.
fn mirror_url(project: &str, file: &DistFile) -> String {
    format!("{BASE_SENTINEL}/files/{project}/{}", file.filename)
}

/// The project page as PEP 503 HTML, with PEP 592, 629, 658 and 714 attributes.
pub(crate) fn project_html(page: &ProjectPage) -> Vec<u8> {
    let name = escape(&page.name);
    let mut out = head(&format!("Links for {name}"), api_version(page));
    out.push_str(&format!("    <h1>Links for {name}</h1>\n"));
    for file in &page.files {
        out.push_str(&anchor(&page.name, file));
    }
    out.push_str("  </body>\n</html>\n");
    out.into_bytes()
}

fn anchor(project: &str, file: &DistFile) -> String {
    let mut href = mirror_url(project, file);
    if let Some((name, value)) = fragment_hash(&file.hashes) {
        href.push_str(&format!("#{name}={value}"));
    }
    let mut attrs = format!("href=\"{}\"", escape(&href));
    if let Some(requires) = &file.requires_python {
        attrs.push_str(&format!(" data-requires-python=\"{}\"", escape(requires)));
    }
    if let Some(reason) = &file.yanked {
        attrs.push_str(&format!(" data-yanked=\"{}\"", escape(reason)));
    }
    if let Some(hashes) = &file.core_metadata {
        let value = escape(&metadata_attr(hashes));
        attrs.push_str(&format!(
            " data-dist-info-metadata=\"{value}\" data-core-metadata=\"{value}\""
        ));
    }
    format!("    <a {attrs}>{}</a><br />\n", escape(&file.filename))
}

fn metadata_attr(hashes: &Hashes) -> String {
    match fragment_hash(hashes) {
        Some((name, value)) => format!("{name}={value}"),
        None => "true".to_owned(),
    }
}

/// `meta` of a PEP 691 page.
#[derive(Serialize)]
struct Meta {
    #[serde(rename = "api-version")]
    api_version: &'static str,
}

#[derive(Serialize)]
struct ProjectDoc<'a> {
    meta: Meta,
    name: &'a str,
    files: Vec<FileDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    versions: Option<&'a [String]>,
}

/// One file as PEP 691 writes it, with PEP 592, 658 / 714 and 700 fields.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct FileDoc<'a> {
    filename: &'a str,
    url: String,
    hashes: &'a Hashes,
    #[serde(skip_serializing_if = "Option::is_none")]
    requires_python: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    core_metadata: Option<TrueOr<&'a Hashes>>,
    /// The PEP 658 name of `core-metadata`, still read by older clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    dist_info_metadata: Option<TrueOr<&'a Hashes>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    yanked: Option<TrueOr<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_time: Option<&'a str>,
}

/// `true`, or a value saying more (a yank reason, metadata hashes).
#[derive(Clone, Copy, Serialize)]
#[serde(untagged)]
enum TrueOr<T> {
    True(bool),
    Value(T),
}

impl<'a> FileDoc<'a> {
    fn new(project: &str, file: &'a DistFile) -> Self {
        let metadata = file.core_metadata.as_ref().map(|hashes| {
            if hashes.is_empty() {
                TrueOr::True(true)
            } else {
                TrueOr::Value(hashes)
            }
        });
        let yanked = file.yanked.as_deref().map(|reason| {
            if reason.is_empty() {
                TrueOr::True(true)
            } else {
                TrueOr::Value(reason)
            }
        });
        FileDoc {
            filename: &file.filename,
            url: mirror_url(project, file),
            hashes: &file.hashes,
            requires_python: file.requires_python.as_deref(),
            core_metadata: metadata,
            dist_info_metadata: metadata,
            yanked,
            size: file.size,
            upload_time: file.upload_time.as_deref(),
        }
    }
}

/// The project page as PEP 691 JSON (with PEP 700's fields when known).
pub(crate) fn project_json(page: &ProjectPage) -> Vec<u8> {
    let doc = ProjectDoc {
        meta: Meta {
            api_version: api_version(page),
        },
        name: &page.name,
        files: page
            .files
            .iter()
            .map(|file| FileDoc::new(&page.name, file))
            .collect(),
        versions: page.versions.as_deref(),
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The root listing as HTML; links are relative, so the page holds no base URL.
pub(crate) fn root_html(root: &RootIndex) -> Vec<u8> {
    let mut out = head("Simple index", "1.0");
    for name in &root.projects {
        let href = normalize(name);
        out.push_str(&format!(
            "    <a href=\"{}/\">{}</a><br />\n",
            escape(&href),
            escape(name)
        ));
    }
    out.push_str("  </body>\n</html>\n");
    out.into_bytes()
}

/// The root listing as PEP 691 JSON; written name by name, for the public index lists
/// close to a million.
pub(crate) fn root_json(root: &RootIndex) -> Vec<u8> {
    #[derive(Serialize)]
    struct RootDoc<'a> {
        meta: Meta,
        projects: Vec<Project<'a>>,
    }
    #[derive(Serialize)]
    struct Project<'a> {
        name: &'a str,
    }
    let doc = RootDoc {
        meta: Meta { api_version: "1.0" },
        projects: root.projects.iter().map(|name| Project { name }).collect(),
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn head(title: &str, version: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    \
         <meta name=\"pypi:repository-version\" content=\"{version}\">\n    \
         <title>{title}</title>\n  </head>\n  <body>\n"
    )
}

/// Escapes text for an HTML attribute value or element content.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn page() -> ProjectPage {
        let sha = |c: char| c.to_string().repeat(64);
        ProjectPage {
            name: "demo".into(),
            files: vec![
                DistFile {
                    filename: "demo-1.0.tar.gz".into(),
                    url: "https://up.test/demo-1.0.tar.gz".into(),
                    hashes: Hashes::from([("sha256".into(), sha('a'))]),
                    requires_python: Some(">=3.8,<4\"><script>".into()),
                    ..DistFile::default()
                },
                DistFile {
                    filename: "demo-1.0-py3-none-any.whl".into(),
                    url: "https://up.test/demo-1.0-py3-none-any.whl".into(),
                    hashes: Hashes::from([("sha256".into(), sha('b'))]),
                    yanked: Some(String::new()),
                    core_metadata: Some(Hashes::from([("sha256".into(), sha('c'))])),
                    size: Some(5),
                    ..DistFile::default()
                },
            ],
            versions: None,
        }
    }

    #[test]
    fn html_escapes_what_upstream_wrote_and_links_the_mirror() {
        let html = String::from_utf8(project_html(&page())).unwrap();
        assert!(html.contains(&format!(
            "<a href=\"{BASE_SENTINEL}/files/demo/demo-1.0.tar.gz#sha256={}\" \
             data-requires-python=\"&gt;=3.8,&lt;4&quot;&gt;&lt;script&gt;\">demo-1.0.tar.gz</a>",
            "a".repeat(64)
        )));
        assert!(html.contains(&format!(
            "data-yanked=\"\" data-dist-info-metadata=\"sha256={c}\" \
             data-core-metadata=\"sha256={c}\">",
            c = "c".repeat(64)
        )));
        assert!(!html.contains("up.test"));
        assert!(html.contains("content=\"1.0\""));
    }

    #[test]
    fn json_carries_every_field() {
        let doc: Value = serde_json::from_slice(&project_json(&page())).unwrap();
        assert_eq!(doc["meta"]["api-version"], "1.0");
        let files = doc["files"].as_array().unwrap();
        assert_eq!(files[0]["requires-python"], ">=3.8,<4\"><script>");
        assert!(files[0].get("yanked").is_none());
        assert_eq!(files[1]["yanked"], true);
        assert_eq!(files[1]["core-metadata"]["sha256"], "c".repeat(64));
        assert_eq!(files[1]["dist-info-metadata"], files[1]["core-metadata"]);
        assert_eq!(files[1]["size"], 5);
        assert_eq!(
            files[1]["url"],
            format!("{BASE_SENTINEL}/files/demo/demo-1.0-py3-none-any.whl")
        );
        assert!(!doc.to_string().contains("up.test"));
    }

    #[test]
    fn api_version_follows_what_is_known() {
        let mut page = page();
        page.versions = Some(vec!["1.0".into()]);
        assert_eq!(api_version(&page), "1.0", "a file has no size");
        page.files[0].size = Some(1);
        assert_eq!(api_version(&page), "1.1");
    }

    #[test]
    fn root_links_are_relative_and_normalized() {
        let root = RootIndex {
            projects: vec!["Zope.Interface".into()],
        };
        let html = String::from_utf8(root_html(&root)).unwrap();
        assert!(html.contains("<a href=\"zope-interface/\">Zope.Interface</a>"));
        let doc: Value = serde_json::from_slice(&root_json(&root)).unwrap();
        assert_eq!(doc["projects"][0]["name"], "Zope.Interface");
    }
}
