//! A PEP 503 / PEP 691 index on loopback, serving the catalogue, standing in for the public
//! one.
//!
//! Like the public index it splits in two: an index host with the simple pages and a file
//! host. In [`Mode::Html`] it writes PEP 503 HTML with links relative to the page, to files
//! on the index host itself, and marks metadata with the older `data-dist-info-metadata`;
//! in [`Mode::Json`] it writes PEP 691 JSON with absolute links to the file host and the
//! newer `core-metadata`. Each host serves only what its mode links to, so an install that
//! succeeds shows that the links were followed to the right host. Pages carry an ETag and
//! answer `If-None-Match` with 304. Every request is counted, with its `User-Agent`, so
//! tests can see what reached upstream and who asked.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, ETAG, IF_NONE_MATCH, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::dists::{catalogue, projects, Dist};
use super::loopback::{self, LoopbackServer};

type FixtureBody = BoxBody<Bytes, Infallible>;

/// Which format the index speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Html,
    Json,
}

/// Which of the two hosts a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    Index,
    Files,
}

/// The running fixture index. Stops when dropped.
#[derive(Debug)]
pub(crate) struct FixtureIndex {
    index_url: String,
    files_url: String,
    state: Arc<State>,
    servers: Vec<LoopbackServer>,
}

impl FixtureIndex {
    /// Binds two listeners on 127.0.0.1:0 and serves on the current tokio runtime.
    pub(crate) async fn start(mode: Mode) -> Self {
        let index = loopback::bind().await;
        let files = loopback::bind().await;
        let index_url = format!("http://{}", index.address());
        let files_url = format!("http://{}", files.address());
        let state = Arc::new(State {
            mode,
            files_url: files_url.clone(),
            corrupt: AtomicBool::new(true),
            requests: Mutex::default(),
            user_agents: Mutex::default(),
        });
        let serve = |bound: loopback::Bound, host| {
            let state = Arc::clone(&state);
            bound.serve(move |request| std::future::ready(state.respond(host, &request)))
        };
        let servers = vec![serve(index, Host::Index), serve(files, Host::Files)];
        Self {
            index_url,
            files_url,
            state,
            servers,
        }
    }

    /// The index URL clients (or the mirror) configure: `http://127.0.0.1:PORT/simple/`.
    pub(crate) fn simple_url(&self) -> String {
        format!("{}/simple/", self.index_url)
    }

    /// The file host's root URL, with a trailing slash.
    pub(crate) fn files_url(&self) -> String {
        format!("{}/", self.files_url)
    }

    /// How many requests reached `path` on either host.
    pub(crate) fn requests(&self, path: &str) -> usize {
        let counts = self.state.requests.lock().expect("request counts lock");
        counts.get(path).copied().unwrap_or(0)
    }

    /// How many requests reached a file's download path.
    pub(crate) fn downloads(&self, filename: &str) -> usize {
        self.requests(&format!("/packages/{filename}"))
    }

    /// Every distinct `User-Agent` that asked anything.
    pub(crate) fn user_agents(&self) -> Vec<String> {
        let agents = self.state.user_agents.lock().expect("user agents lock");
        agents.clone()
    }

    /// Switches between serving tampered bytes for the corrupt wheel (the initial state) and
    /// the bytes its sha256 describes.
    pub(crate) fn set_corruption(&self, corrupt: bool) {
        self.state.corrupt.store(corrupt, Ordering::SeqCst);
    }

    /// Stops both hosts and closes their connections; new connections are refused.
    pub(crate) async fn stop(&mut self) {
        for server in &mut self.servers {
            server.stop().await;
        }
    }
}

#[derive(Debug)]
struct State {
    mode: Mode,
    files_url: String,
    corrupt: AtomicBool,
    requests: Mutex<HashMap<String, usize>>,
    user_agents: Mutex<Vec<String>>,
}

impl State {
    fn respond(&self, host: Host, request: &Request<Incoming>) -> Response<FixtureBody> {
        let path = request.uri().path().to_owned();
        self.count(&path, request);
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let files_host = match self.mode {
            Mode::Html => Host::Index,
            Mode::Json => Host::Files,
        };
        if let Some(file) = path.strip_prefix("/packages/") {
            return if host == files_host {
                self.file(file)
            } else {
                text(StatusCode::NOT_FOUND, "files are on the other host")
            };
        }
        let page = match (host, path.strip_prefix("/simple/")) {
            (Host::Index, Some("")) => Some(self.root_page()),
            (Host::Index, Some(project)) => self.project_page(project.trim_end_matches('/')),
            _ => None,
        };
        match page {
            Some(page) => page.respond(request),
            None => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn count(&self, path: &str, request: &Request<Incoming>) {
        let mut requests = self.requests.lock().expect("request counts lock");
        *requests.entry(path.to_owned()).or_default() += 1;
        let agent = request
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned();
        let mut agents = self.user_agents.lock().expect("user agents lock");
        if !agents.contains(&agent) {
            agents.push(agent);
        }
    }

    fn file(&self, name: &str) -> Response<FixtureBody> {
        let (name, metadata) = match name.strip_suffix(".metadata") {
            Some(name) => (name, true),
            None => (name, false),
        };
        let Some(dist) = catalogue().iter().find(|d| d.filename == name) else {
            return text(StatusCode::NOT_FOUND, "no such file");
        };
        let bytes = match (&dist.metadata, &dist.tampered, metadata) {
            (Some(metadata), _, true) => metadata.clone(),
            (None, _, true) => return text(StatusCode::NOT_FOUND, "no metadata"),
            (_, Some(tampered), false) if self.corrupt.load(Ordering::SeqCst) => tampered.clone(),
            (_, _, false) => dist.bytes.clone(),
        };
        let mut response = Response::new(Full::new(bytes).boxed());
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
    }

    fn root_page(&self) -> Page {
        let names = projects();
        match self.mode {
            Mode::Html => {
                let links: String = names
                    .iter()
                    .map(|n| format!("<a href=\"/simple/{n}/\">{n}</a>\n"))
                    .collect();
                Page::html(format!(
                    "<!DOCTYPE html><html><body>\n{links}</body></html>\n"
                ))
            }
            Mode::Json => {
                let projects: Vec<_> = names.iter().map(|n| json!({ "name": n })).collect();
                Page::json(&json!({"meta": {"api-version": "1.0"}, "projects": projects}))
            }
        }
    }

    fn project_page(&self, project: &str) -> Option<Page> {
        let dists: Vec<&Dist> = catalogue()
            .iter()
            .filter(|d| d.project == project)
            .collect();
        if dists.is_empty() {
            return None;
        }
        Some(match self.mode {
            Mode::Html => Page::html(html_page(project, &dists)),
            Mode::Json => Page::json(&self.json_page(project, &dists)),
        })
    }

    fn json_page(&self, project: &str, dists: &[&Dist]) -> serde_json::Value {
        let files: Vec<_> = dists
            .iter()
            .map(|d| {
                let mut file = json!({
                    "filename": d.filename,
                    "url": format!("{}/packages/{}", self.files_url, d.filename),
                    "hashes": {"sha256": d.sha256()},
                    "size": d.bytes.len(),
                });
                if let Some(requires) = d.requires_python {
                    file["requires-python"] = json!(requires);
                }
                if let Some(reason) = d.yanked {
                    file["yanked"] = json!(reason);
                }
                if let Some(sha) = d.metadata_sha256() {
                    file["core-metadata"] = json!({ "sha256": sha });
                }
                file
            })
            .collect();
        let mut versions: Vec<&str> = dists.iter().map(|d| d.version).collect();
        versions.dedup();
        json!({
            "meta": {"api-version": "1.1"},
            "name": project,
            "files": files,
            "versions": versions,
        })
    }
}

fn html_page(project: &str, dists: &[&Dist]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" \
         content=\"1.0\"><title>Links for {project}</title></head><body>\n\
         <h1>Links for {project}</h1>\n"
    );
    for d in dists {
        let mut attrs = format!(
            "href=\"../../packages/{}#sha256={}\"",
            d.filename,
            d.sha256()
        );
        if let Some(requires) = d.requires_python {
            let escaped = requires.replace('>', "&gt;").replace('<', "&lt;");
            attrs.push_str(&format!(" data-requires-python=\"{escaped}\""));
        }
        if let Some(reason) = d.yanked {
            attrs.push_str(&format!(" data-yanked=\"{reason}\""));
        }
        if let Some(sha) = d.metadata_sha256() {
            attrs.push_str(&format!(" data-dist-info-metadata=\"sha256={sha}\""));
        }
        out.push_str(&format!("<a {attrs}>{}</a><br/>\n", d.filename));
    }
    out.push_str("</body></html>\n");
    out
}

/// A serialised page with its content type and ETag.
struct Page {
    body: Bytes,
    content_type: &'static str,
}

impl Page {
    fn html(body: String) -> Self {
        Page {
            body: body.into(),
            content_type: "text/html; charset=utf-8",
        }
    }

    fn json(doc: &serde_json::Value) -> Self {
        Page {
            body: doc.to_string().into(),
            content_type: "application/vnd.pypi.simple.v1+json",
        }
    }

    fn respond(self, request: &Request<Incoming>) -> Response<FixtureBody> {
        let etag = format!("\"{}\"", hex::encode(Sha256::digest(&self.body)));
        let unchanged = request
            .headers()
            .get(IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes());
        let mut response = if unchanged {
            let mut response = Response::new(Empty::new().boxed());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            Response::new(Full::new(self.body).boxed())
        };
        let headers = response.headers_mut();
        headers.insert(ETAG, HeaderValue::from_str(&etag).expect("hex etag"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        response
    }
}

fn text(status: StatusCode, message: &str) -> Response<FixtureBody> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
