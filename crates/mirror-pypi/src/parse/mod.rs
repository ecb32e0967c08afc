//! Reading upstream pages, HTML or JSON, into the mirror's model.
//!
//! A page as a whole is either usable or malformed (a 502); single files are judged one by
//! one and left out, with a debug event, when they cannot be served safely: a name that is
//! not a plain file name, a hash that is not hex, a URL on a host the mirror may not dial.
//! Leaving one file out keeps the rest of a project installable.

mod html;
mod json;

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use url::{Origin, Url};

use crate::model::{clean_hash, DistFile, Hashes, ProjectPage, RootIndex};
use crate::name::{is_valid_file_name, is_valid_name};
use crate::negotiate::JSON_V1;

/// The origins file URLs may point at: the index's, and the configured file host's.
#[derive(Debug, Clone)]
pub(crate) struct AllowedOrigins(Vec<Origin>);

impl AllowedOrigins {
    pub(crate) fn new(urls: impl IntoIterator<Item = Url>) -> Self {
        AllowedOrigins(urls.into_iter().map(|u| u.origin()).collect())
    }

    pub(crate) fn allows(&self, url: &Url) -> bool {
        let origin = url.origin();
        self.0.contains(&origin)
    }
}

/// Where a page came from, for resolving its relative links.
#[derive(Debug, Clone)]
pub(crate) struct PageSource<'a> {
    /// The URL the page was asked for.
    pub(crate) url: &'a Url,
    /// The upstream's `Content-Type`.
    pub(crate) content_type: Option<&'a str>,
    pub(crate) origins: &'a AllowedOrigins,
}

/// Reads a project page.
pub(crate) fn project_page(
    raw: &[u8],
    name: &str,
    source: &PageSource<'_>,
) -> Result<ProjectPage, String> {
    let mut page = ProjectPage {
        name: name.to_owned(),
        ..ProjectPage::default()
    };
    let mut skipped = 0usize;
    let mut keep = |file: Result<DistFile, String>| match file {
        Ok(file) if page.files.iter().all(|f| f.filename != file.filename) => {
            page.files.push(file);
        }
        Ok(file) => {
            tracing::debug!(project = name, file = %file.filename, "duplicate file skipped")
        }
        Err(reason) => {
            skipped += 1;
            tracing::debug!(project = name, %reason, "file skipped");
        }
    };
    if is_json(source.content_type, raw) {
        let doc = json::project(raw)?;
        for file in &doc.files {
            keep(json_file(file, source));
        }
        page.versions = doc.versions;
    } else {
        let links = html::links(text_of(raw)?);
        let base = page_base(links.base.as_deref(), source.url);
        for anchor in &links.anchors {
            keep(html_file(anchor, &base, source.origins));
        }
    }
    tracing::debug!(
        project = name,
        files = page.files.len(),
        skipped,
        "page read"
    );
    Ok(page)
}

/// Reads the root listing.
pub(crate) fn root_index(raw: &[u8], content_type: Option<&str>) -> Result<RootIndex, String> {
    let names = if is_json(content_type, raw) {
        json::root(raw)?
    } else {
        let links = html::links(text_of(raw)?);
        links.anchors.into_iter().map(|a| a.text).collect()
    };
    let projects = names.into_iter().filter(|n| is_valid_name(n)).collect();
    Ok(RootIndex { projects })
}

fn text_of(raw: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(raw).map_err(|_| "page is not UTF-8".to_owned())
}

/// JSON when upstream says so; when it says nothing, when the body looks like it.
fn is_json(content_type: Option<&str>, raw: &[u8]) -> bool {
    match content_type {
        Some(value) => {
            let media = value.split(';').next().unwrap_or_default().trim();
            [
                JSON_V1,
                "application/vnd.pypi.simple.latest+json",
                "application/json",
            ]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
        }
        None => raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
    }
}

fn page_base(base: Option<&str>, page_url: &Url) -> Url {
    base.and_then(|b| page_url.join(b).ok())
        .unwrap_or_else(|| page_url.clone())
}

fn html_file(
    anchor: &html::Anchor,
    base: &Url,
    origins: &AllowedOrigins,
) -> Result<DistFile, String> {
    let href = anchor.attr("href").ok_or("anchor without href")?;
    let mut url = base.join(href).map_err(|err| format!("bad href: {err}"))?;
    let hashes = fragment_hashes(url.fragment())?;
    url.set_fragment(None);
    let metadata = anchor
        .attr("data-core-metadata")
        .or_else(|| anchor.attr("data-dist-info-metadata"));
    Ok(DistFile {
        filename: file_name_of(&url)?,
        url: dialable(url, origins)?,
        hashes,
        requires_python: anchor
            .attr("data-requires-python")
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        yanked: anchor.attr("data-yanked").map(str::to_owned),
        core_metadata: metadata.and_then(metadata_attr),
        ..DistFile::default()
    })
}

/// `#sha256=<hex>`; another kind of fragment (old pages have `#egg=`) carries no hash.
fn fragment_hashes(fragment: Option<&str>) -> Result<Hashes, String> {
    let Some((name, value)) = fragment.and_then(|f| f.split_once('=')) else {
        return Ok(Hashes::new());
    };
    if name == "egg" || name == "subdirectory" {
        return Ok(Hashes::new());
    }
    let (name, value) = clean_hash(name, value).ok_or("malformed hash fragment")?;
    Ok(Hashes::from([(name, value)]))
}

/// `data-core-metadata`: `true`, or `<hash name>=<hex>`.
fn metadata_attr(value: &str) -> Option<Hashes> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("true") {
        return Some(Hashes::new());
    }
    let (name, hex) = value.split_once('=')?;
    clean_hash(name, hex).map(|pair| Hashes::from([pair]))
}

fn json_file(file: &serde_json::Value, source: &PageSource<'_>) -> Result<DistFile, String> {
    let doc = json::FileDoc::deserialize(file).map_err(|err| format!("bad file entry: {err}"))?;
    if !is_valid_file_name(&doc.filename) {
        return Err(format!("unsafe file name {:?}", doc.filename));
    }
    let mut url = source
        .url
        .join(&doc.url)
        .map_err(|err| format!("bad url: {err}"))?;
    url.set_fragment(None);
    Ok(DistFile {
        hashes: doc.hashes().ok_or("malformed hashes")?,
        url: dialable(url, source.origins)?,
        requires_python: doc.requires_python.clone().filter(|r| !r.trim().is_empty()),
        yanked: doc.yanked(),
        core_metadata: doc.core_metadata(),
        size: doc.size,
        upload_time: doc.upload_time.clone(),
        filename: doc.filename,
    })
}

/// The last path segment, decoded, as pip names a linked file.
fn file_name_of(url: &Url) -> Result<String, String> {
    let last = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default();
    let name = percent_decode_str(last)
        .decode_utf8()
        .map_err(|_| "file name is not UTF-8")?;
    if is_valid_file_name(&name) {
        Ok(name.into_owned())
    } else {
        Err(format!("unsafe file name {name:?}"))
    }
}

/// The URL as text, if the mirror may fetch it.
fn dialable(url: Url, origins: &AllowedOrigins) -> Result<String, String> {
    if !matches!(url.scheme(), "http" | "https") || !origins.allows(&url) {
        return Err(format!(
            "{} is on a host the mirror does not dial",
            url.origin().ascii_serialization()
        ));
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests;
