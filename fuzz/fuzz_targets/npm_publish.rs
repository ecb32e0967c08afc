//! npm publish bodies (`PUT /<name>`), through `NpmMirror` with a signed-in writer: the
//! JSON document, its version manifest, the base64 attachment and its `integrity` /
//! `shasum`, dist-tags. Half the inputs are well-formed publishes built from fuzzed parts,
//! so the checks after a successful publish are reached, not only the refusals.
//!
//! Invariants: no 5xx; a publish that succeeded serves back the exact tarball and a
//! packument listing the version; one that was refused left no blob and no record.
#![no_main]

use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, StatusCode};
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mirror_fuzz::{block_on, request, send, writer, Reply, Scripted, Stores};
use mirror_npm::{NpmConfig, NpmMirror};
use serde_json::{json, Value};
use sha1::Digest as _;

#[derive(Debug, Arbitrary)]
struct Built {
    scoped: bool,
    version: String,
    tarball: Vec<u8>,
    tag: Option<String>,
    integrity: Check,
    shasum: Check,
    /// Added to the declared attachment length.
    length_offset: Option<i8>,
    manifest_extra: Option<(String, String)>,
}

#[derive(Debug, Arbitrary)]
enum Check {
    Right,
    Wrong,
    Absent,
    Text(String),
}

fn name(scoped: bool) -> (&'static str, &'static str) {
    if scoped {
        ("@fuzz/pkg", "/@fuzz%2fpkg")
    } else {
        ("fuzz-pkg", "/fuzz-pkg")
    }
}

// The first byte chooses: bit 0 a raw body (the rest of the input) or one built from
// fuzzed parts, bit 1 a scoped name for a raw body. A plain byte, not an `Arbitrary` enum,
// so that seeds are easy to write by hand: `\x00` then a JSON document.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (scoped, body) = if mode & 1 == 0 {
        (mode & 2 != 0, rest.to_vec())
    } else {
        let Ok(built) = Built::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        (built.scoped, build(built))
    };
    block_on(check(scoped, body));
});

fn build(input: Built) -> Vec<u8> {
    let (name, _) = name(input.scoped);
    let sha512 = sha2::Sha512::digest(&input.tarball);
    let sha1 = sha1::Sha1::digest(&input.tarball);
    let mut dist = serde_json::Map::new();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match input.integrity {
        Check::Right => drop(dist.insert(
            "integrity".into(),
            json!(format!("sha512-{}", b64(&sha512))),
        )),
        Check::Wrong => drop(dist.insert(
            "integrity".into(),
            json!(format!("sha512-{}", b64(&[7; 64]))),
        )),
        Check::Absent => {}
        Check::Text(text) => drop(dist.insert("integrity".into(), json!(text))),
    }
    match input.shasum {
        Check::Right => drop(dist.insert("shasum".into(), json!(hex::encode(sha1)))),
        Check::Wrong => drop(dist.insert("shasum".into(), json!("00".repeat(20)))),
        Check::Absent => {}
        Check::Text(text) => drop(dist.insert("shasum".into(), json!(text))),
    }
    dist.insert("tarball".into(), json!("http://elsewhere.test/x.tgz"));
    let mut manifest = json!({"name": name, "version": input.version, "dist": dist});
    if let Some((key, value)) = input.manifest_extra {
        manifest[key] = json!(value);
    }
    let length = input.tarball.len() as i64 + i64::from(input.length_offset.unwrap_or(0));
    let mut doc = json!({
        "_id": name,
        "name": name,
        "versions": {input.version.clone(): manifest},
        "_attachments": {
            format!("{name}-{}.tgz", input.version): {
                "content_type": "application/octet-stream",
                "data": b64(&input.tarball),
                "length": length,
            }
        }
    });
    if let Some(tag) = input.tag {
        doc["dist-tags"] = json!({tag: input.version});
    }
    serde_json::to_vec(&doc).expect("json")
}

async fn check(scoped: bool, body: Vec<u8>) {
    let (name, path) = name(scoped);
    let stores = Stores::new();
    let (auth, authorization) = writer();
    let npm = NpmMirror::with_upstream(
        stores.cache.clone(),
        NpmConfig::default(),
        Scripted::empty(),
    )
    .expect("npm mirror")
    .with_auth(auth.clone());
    let call = |method: Method, path: String, body: Bytes| {
        let mut req = request(method, &path, body).expect("a valid path");
        let value = authorization.parse().expect("header");
        req.headers_mut().insert(header::AUTHORIZATION, value);
        send(npm.clone(), req)
    };

    let reply = call(Method::PUT, path.to_owned(), body.clone().into()).await;
    assert!(!reply.status.is_server_error(), "{reply:?}");
    if !reply.status.is_success() {
        assert!(
            stores.blobs.is_empty(),
            "a refused publish stored a blob: {reply:?}"
        );
        assert!(
            stores.keys("npm/hosted/").await.is_empty(),
            "a refused publish left a record"
        );
        return;
    }
    assert_eq!(reply.status, StatusCode::CREATED);

    let doc: Value = serde_json::from_slice(&body).expect("an accepted body is JSON");
    let (version, _) = doc["versions"]
        .as_object()
        .and_then(|v| v.iter().next())
        .expect("a version");
    let bare = name.rsplit('/').next().unwrap_or(name);
    let file = format!("{bare}-{version}.tgz");
    let served = call(Method::GET, format!("{path}/-/{file}"), Bytes::new()).await;
    assert_eq!(
        served.status,
        StatusCode::OK,
        "published {file} is not served: {served:?}"
    );
    assert_eq!(
        served.body,
        attachment(&doc),
        "{file} is served with other bytes"
    );

    let packument = call(Method::GET, path.to_owned(), Bytes::new()).await;
    assert_eq!(packument.status, StatusCode::OK, "{packument:?}");
    let packument: Value = serde_json::from_slice(&packument.body).expect("packument is JSON");
    let tarball = packument["versions"][version]["dist"]["tarball"]
        .as_str()
        .unwrap_or_default();
    assert!(
        tarball.starts_with("http://mirror.test/npm/") && tarball.ends_with(&file),
        "{tarball:?}"
    );
    check_served_version(&call, path, version).await;
}

async fn check_served_version<F, Fut>(call: &F, path: &str, version: &str)
where
    F: Fn(Method, String, Bytes) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let Ok(encoded) = http::Uri::try_from(format!("{path}/{version}")) else {
        return;
    };
    let reply = call(Method::GET, encoded.to_string(), Bytes::new()).await;
    assert!(!reply.status.is_server_error(), "{reply:?}");
}

fn attachment(doc: &Value) -> Bytes {
    let attachments = doc["_attachments"].as_object().expect("attachments");
    let data = attachments
        .values()
        .next()
        .and_then(|a| a["data"].as_str())
        .expect("data");
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64")
        .into()
}
