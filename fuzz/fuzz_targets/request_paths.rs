//! Request paths (and the method, `Range`, `Accept` and `If-None-Match` beside them) as
//! each service routes them: npm's scoped and unscoped names, tarballs, revisions and
//! `/-/` endpoints; PyPI's `/simple/` and `/files/` with per-segment percent-decoding and
//! redirects to normalized names; the distribution API's names, tags and digests; Maven's `/<repository>/<layout path>`. Every
//! upstream has nothing, so each request ends at routing, validation or a miss.
//!
//! Invariants: no 5xx from any of the four; a PyPI redirect goes to a path under the
//! mount that itself needs no further redirect.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{header, HeaderValue, Method, StatusCode};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mirror_core::Upstream;
use mirror_docker::{DockerConfig, DockerMirror};
use mirror_fuzz::{block_on, request, send, Scripted, Stores};
use mirror_maven::{MavenConfig, MavenMirror};
use mirror_npm::{NpmConfig, NpmMirror};
use mirror_pypi::{PypiConfig, PypiMirror};

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    path: String,
    range: Option<String>,
    accept: Option<String>,
    if_none_match: Option<String>,
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::DELETE,
    Method::POST,
];

fuzz_target!(|input: Input| {
    block_on(check(input));
});

async fn check(input: Input) {
    let method = METHODS[usize::from(input.method) % METHODS.len()].clone();
    let path = format!("/{}", input.path.trim_start_matches('/'));
    let Some(mut req) = request(method.clone(), &path, bytes::Bytes::new()) else {
        return;
    };
    for (name, value) in [
        (header::RANGE, &input.range),
        (header::ACCEPT, &input.accept),
        (header::IF_NONE_MATCH, &input.if_none_match),
    ] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            req.headers_mut().insert(name, value);
        }
    }
    let (parts, _) = req.into_parts();
    let again = || {
        let mut req = http::Request::from_parts(parts.clone(), mirror_core::body::empty());
        *req.extensions_mut() = http::Extensions::new();
        req
    };

    let stores = Stores::new();
    let npm = NpmMirror::with_upstream(
        stores.cache.clone(),
        NpmConfig::default(),
        Scripted::empty(),
    )
    .expect("npm");
    let reply = send(npm, again()).await;
    assert!(
        !reply.status.is_server_error(),
        "npm {method} {path}: {reply:?}"
    );

    let pypi = PypiMirror::with_upstreams(
        stores.cache.clone(),
        PypiConfig::default(),
        Scripted::empty(),
        Scripted::empty(),
    )
    .expect("pypi");
    let reply = send(pypi.clone(), again()).await;
    assert!(
        !reply.status.is_server_error(),
        "pypi {method} {path}: {reply:?}"
    );
    if reply.status == StatusCode::MOVED_PERMANENTLY && method == Method::GET {
        check_redirect(&pypi, reply.header(header::LOCATION)).await;
    }

    let upstreams = BTreeMap::from([(
        "docker.io".to_owned(),
        Scripted::empty() as Arc<dyn Upstream>,
    )]);
    let docker =
        DockerMirror::with_upstreams(stores.cache.clone(), DockerConfig::default(), upstreams)
            .expect("docker");
    let reply = send(docker, again()).await;
    assert!(
        !reply.status.is_server_error(),
        "docker {method} {path}: {reply:?}"
    );

    let upstreams = BTreeMap::from([(
        "central".to_owned(),
        Scripted::empty() as Arc<dyn Upstream>,
    )]);
    let maven = MavenMirror::with_upstreams(stores.cache.clone(), MavenConfig::default(), upstreams)
        .expect("maven");
    let reply = send(maven, again()).await;
    assert!(
        !reply.status.is_server_error(),
        "maven {method} {path}: {reply:?}"
    );
}

/// A redirect names the canonical path, which is answered without another redirect.
async fn check_redirect(pypi: &PypiMirror, location: &str) {
    let path = location
        .strip_prefix("http://mirror.test/pypi")
        .or_else(|| location.strip_prefix("/pypi"))
        .unwrap_or_else(|| panic!("redirect off the mount: {location:?}"));
    let req = request(Method::GET, path, bytes::Bytes::new())
        .unwrap_or_else(|| panic!("redirect to an invalid path: {location:?}"));
    let reply = send(pypi.clone(), req).await;
    assert_ne!(
        reply.status,
        StatusCode::MOVED_PERMANENTLY,
        "{location:?} redirects again"
    );
}
