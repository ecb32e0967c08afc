//! Upstream manifests as `DockerMirror` pulls them through: the scripted registry answers
//! the tag's `HEAD` and the manifest's `GET` with fuzzed bytes, content type and
//! `Docker-Content-Digest`, and a client with a fuzzed `Accept` asks by tag or by digest.
//!
//! Invariants: never a 500; a manifest served is exactly upstream's bytes, under the
//! digest of those bytes, typed as upstream said or as a manifest type, and served the
//! same again from the cache.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{header, HeaderValue, Method, StatusCode};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mirror_core::digest::sha256_of;
use mirror_core::Upstream;
use mirror_docker::{DockerConfig, DockerMirror};
use mirror_fuzz::{block_on, request, send, Answer, Reply, Scripted, Stores};

#[derive(Debug, Arbitrary)]
struct Input {
    manifest: Vec<u8>,
    content_type: Option<String>,
    head_digest: Named,
    get_digest: Named,
    accept: Option<String>,
    by_digest: bool,
}

#[derive(Debug, Arbitrary)]
enum Named {
    Right,
    Absent,
    Other(String),
}

fn named(named: &Named, right: &str) -> Option<String> {
    match named {
        Named::Right => Some(right.to_owned()),
        Named::Absent => None,
        Named::Other(text) => Some(text.clone()),
    }
}

fuzz_target!(|input: Input| {
    block_on(check(input));
});

async fn check(input: Input) {
    let manifest = bytes::Bytes::from(input.manifest.clone());
    let digest = sha256_of(&manifest).to_string();
    let head_digest = named(&input.head_digest, &digest);
    let get_digest = named(&input.get_digest, &digest);
    let content_type = input.content_type.clone();
    let upstream = Scripted::new(move |req| {
        if !req.target.contains("/manifests/") {
            return Answer::not_found();
        }
        let (body, digest) = if req.method == Method::HEAD {
            (bytes::Bytes::new(), &head_digest)
        } else {
            (manifest.clone(), &get_digest)
        };
        let mut answer = Answer::new(StatusCode::OK, body);
        if let Some(value) = &content_type {
            answer = answer.header(header::CONTENT_TYPE, value);
        }
        if let Some(value) = digest {
            answer = answer.header(
                header::HeaderName::from_static("docker-content-digest"),
                value,
            );
        }
        answer
    });
    let stores = Stores::new();
    let upstreams = BTreeMap::from([("docker.io".to_owned(), upstream as Arc<dyn Upstream>)]);
    let docker =
        DockerMirror::with_upstreams(stores.cache.clone(), DockerConfig::default(), upstreams)
            .expect("docker mirror");
    let reference = if input.by_digest {
        digest.as_str()
    } else {
        "latest"
    };
    let path = format!("/v2/library/app/manifests/{reference}");
    let ask = || {
        let mut req = request(Method::GET, &path, bytes::Bytes::new()).expect("path");
        if let Some(accept) = input
            .accept
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            req.headers_mut().insert(header::ACCEPT, accept);
        }
        req
    };

    let first = send(docker.clone(), ask()).await;
    check_reply(&first, &input, &digest);
    let second = send(docker, ask()).await;
    check_reply(&second, &input, &digest);
    if first.status == StatusCode::OK && second.status == StatusCode::OK {
        assert_eq!(first.body, second.body);
    }
}

const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

fn check_reply(reply: &Reply, input: &Input, digest: &str) {
    assert_ne!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{reply:?}");
    if reply.status != StatusCode::OK {
        return;
    }
    assert!(!reply.body_failed, "{reply:?}");
    assert_eq!(
        &reply.body[..],
        input.manifest,
        "served bytes differ from upstream's"
    );
    assert_eq!(reply.header("docker-content-digest"), digest);
    let media_type = reply.header(header::CONTENT_TYPE);
    // Upstream's own type when it named one, else the type the body declares or implies.
    let upstream = input.content_type.as_deref().unwrap_or_default();
    let essence = upstream.split(';').next().unwrap_or_default().trim();
    assert!(
        MANIFEST_TYPES.contains(&media_type) || (!media_type.is_empty() && media_type == essence),
        "served as {media_type:?}, upstream said {upstream:?}"
    );
}
