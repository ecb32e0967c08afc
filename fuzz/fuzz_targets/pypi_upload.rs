//! The PyPI legacy upload form (`POST /`, multipart, what twine sends), through
//! `PypiMirror` with a signed-in writer: multer's multipart parsing, the kept fields, the
//! spooled file and its digests, and the checks of name, version (PEP 440), file type, file
//! name and, for wheels, the zip's METADATA. Most inputs are forms built from fuzzed
//! parts with the right digests, so accepted uploads happen; the rest are raw bodies.
//!
//! Invariants: no 5xx; an accepted upload is served back byte for byte and listed on its
//! project page; a refused one stored no blob and no record.
#![no_main]

use blake2::Digest as _;
use http::{header, HeaderValue, Method, StatusCode};
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mirror_fuzz::{block_on, request, send, writer, Scripted, Stores};
use mirror_pypi::{fuzzing, PypiConfig, PypiMirror};

const BOUNDARY: &str = "fuzzboundary";

#[derive(Debug, Arbitrary)]
struct Built {
    name: Name,
    version: String,
    wheel: bool,
    /// A file name of its own instead of the one name, version and type imply.
    filename: Option<String>,
    content: Vec<u8>,
    sha256: Check,
    blake2: Check,
    extra: Vec<(String, String)>,
}

#[derive(Debug, Arbitrary)]
enum Name {
    Demo,
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum Check {
    Right,
    Wrong,
    Absent,
}

// The first byte chooses a raw body (even: the rest of the input, a multipart body with
// boundary `fuzzboundary`) or a form built from fuzzed parts (odd).
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (body, content) = if mode & 1 == 0 {
        (rest.to_vec(), None)
    } else {
        let Ok(built) = Built::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        let content = built.content.clone();
        (build(built), Some(content))
    };
    block_on(check(body, content));
});

fn build(input: Built) -> Vec<u8> {
    let name = match input.name {
        Name::Demo => "Demo_Pkg".to_owned(),
        Name::Text(text) => text,
    };
    let filename = input.filename.unwrap_or_else(|| {
        if input.wheel {
            format!(
                "{}-{}-py3-none-any.whl",
                name.replace('-', "_"),
                input.version
            )
        } else {
            format!("{name}-{}.tar.gz", input.version)
        }
    });
    let mut fields = vec![
        (":action".to_owned(), "file_upload".to_owned()),
        ("protocol_version".to_owned(), "1".to_owned()),
        ("name".to_owned(), name),
        ("version".to_owned(), input.version),
        (
            "filetype".to_owned(),
            if input.wheel { "bdist_wheel" } else { "sdist" }.to_owned(),
        ),
    ];
    let sha256 = hex::encode(sha2::Sha256::digest(&input.content));
    let blake2 = hex::encode(blake2::Blake2b::<blake2::digest::consts::U32>::digest(
        &input.content,
    ));
    for (field, check, right) in [
        ("sha256_digest", input.sha256, sha256),
        ("blake2_256_digest", input.blake2, blake2),
    ] {
        match check {
            Check::Right => fields.push((field.to_owned(), right)),
            Check::Wrong => fields.push((field.to_owned(), "0".repeat(64))),
            Check::Absent => {}
        }
    }
    fields.extend(input.extra);

    let mut body = Vec::new();
    for (name, value) in &fields {
        part(&mut body, name, None, value.as_bytes());
    }
    part(&mut body, "content", Some(&filename), &input.content);
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn part(body: &mut Vec<u8>, name: &str, filename: Option<&str>, value: &[u8]) {
    let filename = filename.map_or_else(String::new, |f| format!("; filename=\"{f}\""));
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n"
    );
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(value);
    body.extend_from_slice(b"\r\n");
}

async fn check(body: Vec<u8>, content: Option<Vec<u8>>) {
    let stores = Stores::new();
    let (auth, authorization) = writer();
    let pypi = PypiMirror::with_upstreams(
        stores.cache.clone(),
        PypiConfig::default(),
        Scripted::empty(),
        Scripted::empty(),
    )
    .expect("pypi mirror")
    .with_auth(auth.clone());
    let mut req = request(Method::POST, "/", body).expect("path");
    let headers = req.headers_mut();
    let form = format!("multipart/form-data; boundary={BOUNDARY}");
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&form).expect("header"),
    );
    headers.insert(
        header::AUTHORIZATION,
        authorization.parse().expect("header"),
    );

    let reply = send(pypi.clone(), req).await;
    assert!(!reply.status.is_server_error(), "{reply:?}");
    if reply.status != StatusCode::OK {
        assert!(
            stores.blobs.is_empty(),
            "a refused upload stored a blob: {reply:?}"
        );
        assert!(
            stores.keys("pypi/hosted/").await.is_empty(),
            "a refused upload left a record"
        );
        return;
    }
    check_accepted(&pypi, &stores, content).await;
}

/// The page lists the one file uploaded, and the file is served back with the bytes sent
/// (for a raw body, unknown here, with the bytes whose sha256 the page gives).
async fn check_accepted(pypi: &PypiMirror, stores: &Stores, content: Option<Vec<u8>>) {
    let keys = stores.keys("pypi/hosted/").await;
    let [key] = keys.as_slice() else {
        panic!("an accepted upload made records {keys:?}");
    };
    let project = key.trim_start_matches("pypi/hosted/");
    assert_eq!(fuzzing::project_name(project).as_deref(), Some(project));
    let page = format!("/simple/{project}/");
    let mut req = request(Method::GET, &page, bytes::Bytes::new()).expect("page path");
    let json = HeaderValue::from_static("application/vnd.pypi.simple.v1+json");
    req.headers_mut().insert(header::ACCEPT, json);
    let listed = send(pypi.clone(), req).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    let doc: serde_json::Value = serde_json::from_slice(&listed.body).expect("page is JSON");
    let files = doc["files"].as_array().expect("files");
    let [file] = files.as_slice() else {
        panic!("one upload, files {files:?}");
    };
    let filename = file["filename"].as_str().expect("filename");
    let sha256 = file["hashes"]["sha256"].as_str().expect("sha256");

    let path = format!("/files/{project}/{filename}");
    let req = request(Method::GET, &path, bytes::Bytes::new()).expect("file path");
    let served = send(pypi.clone(), req).await;
    assert_eq!(served.status, StatusCode::OK, "{served:?}");
    assert_eq!(hex::encode(sha2::Sha256::digest(&served.body)), sha256);
    if let Some(content) = content {
        assert!(
            served.body == content,
            "{filename} is served with other bytes"
        );
    }
}
