//! Upstream simple-index pages, HTML (PEP 503, html5ever) or JSON (PEP 691), for a project
//! or the root listing, as `PypiMirror` reads and re-renders them: the scripted index
//! answers every page request with the fuzzed bytes and content type.
//!
//! Invariants: 200 or 502, never another 5xx; a served page is in the format asked for,
//! without the internal base-URL placeholder; every file it lists is a link into the
//! mirror's own `/files/<project>/` with a plain file name, whatever the upstream page
//! pointed at; every project in a root listing has a valid name.
#![no_main]

use http::{header, HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use mirror_fuzz::{block_on, request, send, Answer, Reply, Scripted, Stores};
use mirror_pypi::{fuzzing, PypiConfig, PypiMirror};
use serde_json::Value;

struct Input {
    content_type: Option<&'static str>,
    json_client: bool,
    root: bool,
    page: Vec<u8>,
}

/// What upstream may call its page; `None` sends no `Content-Type`, so the body decides.
const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("text/html; charset=utf-8"),
    Some("application/vnd.pypi.simple.v1+json"),
    Some("application/json"),
    Some("application/vnd.pypi.simple.v1+html"),
    Some("text/plain"),
];

const FILES: &str = "http://mirror.test/pypi/files/demo/";

// The first byte chooses: bit 0 a JSON client, bit 1 the root listing, the bits above it
// upstream's content type; the rest is upstream's page.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, page)) = data.split_first() else {
        return;
    };
    block_on(check(Input {
        content_type: CONTENT_TYPES[usize::from(mode >> 2) % CONTENT_TYPES.len()],
        json_client: mode & 1 != 0,
        root: mode & 2 != 0,
        page: page.to_vec(),
    }));
});

async fn check(input: Input) {
    let content_type = input.content_type;
    let page = bytes::Bytes::from(input.page);
    let index = Scripted::new(move |_| {
        let answer = Answer::new(StatusCode::OK, page.clone());
        match content_type {
            Some(value) => answer.header(header::CONTENT_TYPE, value),
            None => answer,
        }
    });
    let mut config = PypiConfig::default();
    config.upstream = "http://index.test/simple/".to_owned();
    config.files_upstream = "http://files.test/".to_owned();
    let stores = Stores::new();
    let pypi = PypiMirror::with_upstreams(stores.cache.clone(), config, index, Scripted::empty())
        .expect("pypi mirror");
    let path = if input.root {
        "/simple/"
    } else {
        "/simple/demo/"
    };
    let mut req = request(Method::GET, path, bytes::Bytes::new()).expect("path");
    let accept = if input.json_client {
        "application/vnd.pypi.simple.v1+json"
    } else {
        "text/html"
    };
    req.headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static(accept));

    let reply = send(pypi, req).await;
    assert!(
        reply.status == StatusCode::OK || reply.status == StatusCode::BAD_GATEWAY,
        "{reply:?}"
    );
    if reply.status != StatusCode::OK {
        return;
    }
    assert!(!reply.body_failed);
    let text = std::str::from_utf8(&reply.body).expect("served page is UTF-8");
    assert!(
        !text.contains("@@REGISTRY_MIRROR_BASE_URL@@"),
        "placeholder leaked"
    );
    match (input.json_client, input.root) {
        (true, false) => check_json_project(&reply),
        (true, true) => check_json_root(&reply),
        (false, false) => check_html_project(text),
        (false, true) => assert!(text.contains("<html") || text.contains("<!DOCTYPE")),
    }
}

fn check_json_project(reply: &Reply) {
    let doc: Value = serde_json::from_slice(&reply.body).expect("served page is JSON");
    assert_eq!(doc["name"], "demo");
    for file in doc["files"].as_array().expect("files") {
        let url = file["url"].as_str().expect("url");
        let filename = file["filename"].as_str().expect("filename");
        assert!(fuzzing::is_valid_file_name(filename), "{filename:?}");
        assert_eq!(url, format!("{FILES}{filename}"));
    }
}

fn check_json_root(reply: &Reply) {
    let doc: Value = serde_json::from_slice(&reply.body).expect("served root is JSON");
    for project in doc["projects"].as_array().expect("projects") {
        let name = project["name"].as_str().expect("name");
        assert!(fuzzing::project_name(name).is_some(), "{name:?}");
    }
}

/// Every link in the rendered page goes to the mirror's files of this project. Only `<a`
/// tags count: upstream text quoted in attribute values (a yanked reason) may say `href="`,
/// but its `<` is escaped.
fn check_html_project(text: &str) {
    const LINK: &str = "<a href=\"";
    for (at, _) in text.match_indices(LINK) {
        let rest = &text[at + LINK.len()..];
        let href = &rest[..rest.find('"').expect("closed href")];
        let file = href
            .strip_prefix(FILES)
            .unwrap_or_else(|| panic!("{href:?}"));
        let file = file.split('#').next().unwrap_or_default();
        assert!(fuzzing::is_valid_file_name(file), "{href:?}");
    }
}
