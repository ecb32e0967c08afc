//! Upstream packuments, as `NpmMirror` transforms them into the full and abbreviated
//! documents it serves: the scripted upstream answers the packument request with the
//! fuzzed bytes.
//!
//! Invariants: the answer is the document (200) or a bad-upstream error (502), never
//! another 5xx; a served document is JSON without the internal base-URL placeholder, and
//! every `dist.tarball` it lists points at the mirror.
#![no_main]

use http::{header, HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use mirror_fuzz::{block_on, request, send, Answer, Scripted, Stores};
use mirror_npm::{NpmConfig, NpmMirror};
use serde_json::Value;

struct Input {
    scoped: bool,
    abbreviated: bool,
    packument: Vec<u8>,
}

// The first byte's bits 0 and 1 choose a scoped name and the abbreviated form; the rest is
// upstream's packument, so a seed is a byte and a JSON document.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, packument)) = data.split_first() else {
        return;
    };
    block_on(check(Input {
        scoped: mode & 1 != 0,
        abbreviated: mode & 2 != 0,
        packument: packument.to_vec(),
    }));
});

async fn check(input: Input) {
    let (name, path) = if input.scoped {
        ("@fuzz/pkg", "/@fuzz%2fpkg")
    } else {
        ("fuzz-pkg", "/fuzz-pkg")
    };
    let packument = bytes::Bytes::from(input.packument);
    let wanted = path.trim_start_matches('/').to_owned();
    let upstream = Scripted::new(move |req| {
        if req.target.trim_start_matches('/') == wanted {
            Answer::new(StatusCode::OK, packument.clone())
                .header(header::CONTENT_TYPE, "application/json")
        } else {
            Answer::not_found()
        }
    });
    let stores = Stores::new();
    let npm = NpmMirror::with_upstream(stores.cache.clone(), NpmConfig::default(), upstream)
        .expect("npm mirror");
    let mut req = request(Method::GET, path, bytes::Bytes::new()).expect("path");
    if input.abbreviated {
        let accept = HeaderValue::from_static("application/vnd.npm.install-v1+json");
        req.headers_mut().insert(header::ACCEPT, accept);
    }

    let reply = send(npm, req).await;
    assert!(
        reply.status == StatusCode::OK || reply.status == StatusCode::BAD_GATEWAY,
        "{reply:?}"
    );
    if reply.status != StatusCode::OK {
        return;
    }
    assert!(!reply.body_failed);
    let text = std::str::from_utf8(&reply.body).expect("served packument is UTF-8");
    assert!(
        !text.contains("@@REGISTRY_MIRROR_BASE_URL@@"),
        "placeholder leaked"
    );
    let doc: Value = serde_json::from_str(text).expect("served packument is JSON");
    let versions = doc.get("versions").and_then(Value::as_object);
    for (version, manifest) in versions.into_iter().flatten() {
        let Some(tarball) = manifest.get("dist").and_then(|d| d.get("tarball")) else {
            continue;
        };
        let Some(tarball) = tarball.as_str() else {
            continue;
        };
        let prefix = format!("http://mirror.test/npm/{name}/-/");
        assert!(tarball.starts_with(&prefix), "{version}: {tarball:?}");
    }
}
