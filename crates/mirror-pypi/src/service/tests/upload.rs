//! Uploads through the legacy API, driven with `oneshot` against the same in-process
//! upstream as the mirror tests, on which the project `demo` exists.

use std::io::{Cursor, Write as _};

use base64::Engine as _;
use mirror_core::auth::{AccessPolicy, Auth, TokenAccess};
use zip::write::SimpleFileOptions;
use zip::ZipWriter;

use super::*;

const BOUNDARY: &str = "----registry-mirror-test";
const PASSWORD: &str = "correct horse";
const PRIVATE_METADATA: &str =
    "Metadata-Version: 2.1\nName: Private_Pkg\nVersion: 1.0\nRequires-Python: >=3.8\n";

/// A mirror with auth: `alice` (password [`PASSWORD`]) may upload anything the rules let
/// any signed-in user write.
struct Hosting {
    index: Arc<Site>,
    pypi: PypiMirror,
    auth: Auth,
}

async fn hosting_with(rules: Value, config: PypiConfig) -> Hosting {
    let Setup { index, files, .. } = setup();
    let pypi = mirror(&index, &files, config);
    let policy: AccessPolicy = serde_json::from_value(json!({ "rules": rules })).unwrap();
    let auth = Auth::new(Arc::clone(pypi.inner.cache.metadata()), policy);
    auth.add_user("alice", Some(PASSWORD), false).await.unwrap();
    auth.add_user("bob", Some(PASSWORD), false).await.unwrap();
    let pypi = pypi.with_auth(auth.clone());
    Hosting { index, pypi, auth }
}

async fn hosting() -> Hosting {
    hosting_with(json!([]), PypiConfig::default()).await
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn alice() -> String {
    basic("alice", PASSWORD)
}

/// A `multipart/form-data` body, written the way twine's encoder writes it.
#[derive(Default)]
struct Form {
    body: Vec<u8>,
}

impl Form {
    fn field(mut self, name: &str, value: &str) -> Self {
        self.part(name, None, value.as_bytes());
        self
    }

    fn file(mut self, filename: &str, bytes: &[u8]) -> Self {
        self.part("content", Some(filename), bytes);
        self
    }

    fn part(&mut self, name: &str, filename: Option<&str>, value: &[u8]) {
        let filename = filename.map_or_else(String::new, |f| format!("; filename=\"{f}\""));
        self.body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n"
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(value);
        self.body.extend_from_slice(b"\r\n");
    }

    fn finish(mut self) -> Vec<u8> {
        self.body
            .extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.body
    }
}

/// The fields twine sends for a file, with its true sha256 and blake2b-256.
fn twine_form(name: &str, version: &str, filetype: &str) -> Form {
    Form::default()
        .field("name", name)
        .field("version", version)
        .field("filetype", filetype)
        .field(
            "pyversion",
            if filetype == "sdist" { "source" } else { "py3" },
        )
        .field("metadata_version", "2.1")
        .field("summary", "a private package")
        .field("description", "long\r\ndescription")
        .field("classifiers", "Programming Language :: Python :: 3")
        .field("classifiers", "License :: OSI Approved :: MIT License")
        .field("requires_python", ">=3.8")
        .field(":action", "file_upload")
        .field("protocol_version", "1")
}

fn with_digests(form: Form, bytes: &[u8]) -> Form {
    let blake2 = {
        use blake2::Digest as _;
        hex::encode(blake2::Blake2b::<blake2::digest::consts::U32>::digest(
            bytes,
        ))
    };
    form.field("sha256_digest", &sha256(bytes))
        .field("blake2_256_digest", &blake2)
}

fn wheel_with(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(data.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn private_wheel() -> Vec<u8> {
    wheel_with(&[
        ("private_pkg/__init__.py", "VERSION = '1.0'\n"),
        ("private_pkg-1.0.dist-info/METADATA", PRIVATE_METADATA),
        ("private_pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n"),
        ("private_pkg-1.0.dist-info/RECORD", ""),
    ])
}

const WHEEL_NAME: &str = "private_pkg-1.0-py3-none-any.whl";
const SDIST_NAME: &str = "private_pkg-1.0.tar.gz";
const SDIST_BYTES: &[u8] = b"\x1f\x8b pretend this is a tarball";

fn wheel_upload() -> Vec<u8> {
    let wheel = private_wheel();
    with_digests(twine_form("Private_Pkg", "1.0", "bdist_wheel"), &wheel)
        .file(WHEEL_NAME, &wheel)
        .finish()
}

fn sdist_upload() -> Vec<u8> {
    with_digests(twine_form("private-pkg", "1.0", "sdist"), SDIST_BYTES)
        .file(SDIST_NAME, SDIST_BYTES)
        .finish()
}

async fn post(pypi: &PypiMirror, path: &str, authorization: Option<&str>, body: Vec<u8>) -> Answer {
    let mut request = Request::post(path)
        .header(header::HOST, "mirror.test:8080")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header(header::CONTENT_LENGTH, body.len());
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    send_body(pypi, request.body(mirror_core::body::full(body)).unwrap()).await
}

async fn upload(hosting: &Hosting, body: Vec<u8>) -> Answer {
    post(&hosting.pypi, "/", Some(&alice()), body).await
}

fn assert_refused(answer: &Answer, status: StatusCode, message: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert!(
        answer.text().contains(message),
        "{message:?} in {}",
        answer.text()
    );
    assert_eq!(
        answer.header(header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
}

async fn hosted_record(pypi: &PypiMirror, name: &str) -> Option<mirror_core::Record> {
    let key = format!("pypi/hosted/{name}");
    pypi.inner.cache.metadata().get(&key).await.unwrap()
}

async fn blob_stored(pypi: &PypiMirror, bytes: &[u8]) -> bool {
    let digest = mirror_core::digest::sha256_of(bytes);
    pypi.inner
        .cache
        .blobs()
        .size(&digest)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn uploaded_files_are_listed_and_served_from_the_private_store() {
    let hosting = hosting().await;
    let pypi = &hosting.pypi;

    let wheel = upload(&hosting, wheel_upload()).await;
    assert_eq!(wheel.status, StatusCode::OK, "{}", wheel.text());
    let sdist = post(pypi, "/legacy/", Some(&alice()), sdist_upload()).await;
    assert_eq!(sdist.status, StatusCode::OK, "{}", sdist.text());
    assert_eq!(
        hosting.index.calls_to("private-pkg/"),
        1,
        "one upstream check"
    );

    let page = get(pypi, "/simple/private-pkg/", Some(PIP_ACCEPT)).await;
    assert_eq!(page.header(CACHE_STATUS_HEADER), "HIT");
    assert_eq!(page.header(header::CONTENT_TYPE), JSON_V1_TYPE);
    let doc = page.json();
    assert_eq!(doc["meta"]["api-version"], "1.1");
    assert_eq!(doc["versions"], json!(["1.0"]));
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{doc}");
    assert_eq!(files[0]["filename"], WHEEL_NAME);
    assert_eq!(
        files[0]["url"],
        format!("{MIRROR}/files/private-pkg/{WHEEL_NAME}")
    );
    assert_eq!(files[0]["hashes"]["sha256"], sha256(&private_wheel()));
    assert_eq!(files[0]["requires-python"], ">=3.8");
    let metadata_sha = sha256(PRIVATE_METADATA.as_bytes());
    assert_eq!(files[0]["core-metadata"]["sha256"], metadata_sha);
    assert_eq!(files[0]["dist-info-metadata"]["sha256"], metadata_sha);
    assert_eq!(files[0]["size"], private_wheel().len());
    assert!(files[0]["upload-time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(files[1]["filename"], SDIST_NAME);
    assert!(files[1].get("core-metadata").is_none());

    let html = get(pypi, "/simple/private-pkg/", None).await.text();
    let href = format!(
        "href=\"{MIRROR}/files/private-pkg/{WHEEL_NAME}#sha256={}\" \
         data-requires-python=\"&gt;=3.8\" data-dist-info-metadata=\"sha256={metadata_sha}\"",
        sha256(&private_wheel())
    );
    assert!(html.contains(&href), "{html}");

    let file = get(pypi, &format!("/files/private-pkg/{WHEEL_NAME}"), None).await;
    assert_eq!(
        (file.status, &file.body[..]),
        (StatusCode::OK, &private_wheel()[..])
    );
    assert_eq!(file.header(CACHE_STATUS_HEADER), "HIT");
    let ranged = Request::get(format!("/files/private-pkg/{SDIST_NAME}"))
        .header(header::RANGE, "bytes=1-3")
        .body(())
        .unwrap();
    let ranged = send(pypi, ranged).await;
    assert_eq!(
        (ranged.status, &ranged.body[..]),
        (StatusCode::PARTIAL_CONTENT, &SDIST_BYTES[1..4])
    );
    let metadata = get(
        pypi,
        &format!("/files/private-pkg/{WHEEL_NAME}.metadata"),
        None,
    )
    .await;
    assert_eq!(&metadata.body[..], PRIVATE_METADATA.as_bytes());
    let none = get(
        pypi,
        &format!("/files/private-pkg/{SDIST_NAME}.metadata"),
        None,
    )
    .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(hosting.index.total_calls(), 1, "reads never reach upstream");
}

#[tokio::test]
async fn a_wrong_sha256_is_refused_and_nothing_is_stored() {
    let hosting = hosting().await;
    let wheel = private_wheel();
    let form = twine_form("private-pkg", "1.0", "bdist_wheel")
        .field("sha256_digest", &sha256(b"something else"))
        .file(WHEEL_NAME, &wheel)
        .finish();

    let answer = upload(&hosting, form).await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "sha256_digest does not match",
    );
    assert!(hosted_record(&hosting.pypi, "private-pkg").await.is_none());
    assert!(!blob_stored(&hosting.pypi, &wheel).await);
    let page = get(&hosting.pypi, "/simple/private-pkg/", None).await;
    assert_eq!(
        page.status,
        StatusCode::NOT_FOUND,
        "not hosted, and not upstream"
    );
}

#[tokio::test]
async fn file_names_must_match_the_form_and_be_plain_names() {
    let hosting = hosting().await;
    for (filename, message) in [
        ("other_pkg-1.0.tar.gz", "does not match project private-pkg"),
        (
            "private_pkg-1.1.tar.gz",
            "does not match project private-pkg version 1.0",
        ),
        ("private_pkg-1.0-py3-none-any.whl", "is not an sdist"),
        ("../../private_pkg-1.0.tar.gz", "invalid file name"),
        ("..\\private_pkg-1.0.tar.gz", "invalid file name"),
        ("sub/private_pkg-1.0.tar.gz", "invalid file name"),
    ] {
        let form = with_digests(twine_form("private-pkg", "1.0", "sdist"), SDIST_BYTES)
            .file(filename, SDIST_BYTES)
            .finish();
        let answer = upload(&hosting, form).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, message);
    }
    assert!(hosted_record(&hosting.pypi, "private-pkg").await.is_none());
    assert!(!blob_stored(&hosting.pypi, SDIST_BYTES).await);
}

#[tokio::test]
async fn re_uploading_a_file_is_refused_as_pypi_does() {
    let hosting = hosting().await;
    assert_eq!(
        upload(&hosting, sdist_upload()).await.status,
        StatusCode::OK
    );
    let before = hosted_record(&hosting.pypi, "private-pkg").await.unwrap();

    let again = upload(&hosting, sdist_upload()).await;
    assert_refused(&again, StatusCode::BAD_REQUEST, "File already exists");
    assert!(again.text().contains(SDIST_NAME));
    let after = hosted_record(&hosting.pypi, "private-pkg").await.unwrap();
    assert_eq!(before, after, "the record is untouched");

    let response = hosting
        .pypi
        .clone()
        .oneshot(
            Request::post("/")
                .header(header::AUTHORIZATION, alice())
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(mirror_core::body::full(sdist_upload()))
                .unwrap(),
        )
        .await
        .unwrap();
    let reason = response.extensions().get::<hyper::ext::ReasonPhrase>();
    let reason = reason.map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
    assert!(
        reason.is_some_and(|r| r.starts_with("File already exists")),
        "twine shows the reason phrase"
    );
}

#[tokio::test]
async fn uploads_need_a_credential_allowed_to_write() {
    let hosting = hosting_with(
        json!([{ "ecosystem": "pypi", "pattern": "bobs-*", "write": ["bob"] }]),
        PypiConfig::default(),
    )
    .await;
    let pypi = &hosting.pypi;

    let anonymous = post(pypi, "/", None, sdist_upload()).await;
    assert_refused(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        "authentication required",
    );
    assert_eq!(
        anonymous.header(header::WWW_AUTHENTICATE),
        "Basic realm=\"registry-mirror\""
    );
    let wrong = post(pypi, "/", Some(&basic("alice", "wrong")), sdist_upload()).await;
    assert_refused(&wrong, StatusCode::UNAUTHORIZED, "invalid credentials");

    let (_, read_only) = hosting
        .auth
        .create_token("alice", TokenAccess::ReadOnly, None, None)
        .await
        .unwrap();
    let token = basic("__token__", &read_only);
    let refused = post(pypi, "/", Some(&token), sdist_upload()).await;
    assert_refused(&refused, StatusCode::FORBIDDEN, "read-only");

    let bobs = with_digests(twine_form("bobs-pkg", "1.0", "sdist"), SDIST_BYTES)
        .file("bobs_pkg-1.0.tar.gz", SDIST_BYTES)
        .finish();
    let not_hers = post(pypi, "/", Some(&alice()), bobs.clone()).await;
    assert_refused(
        &not_hers,
        StatusCode::FORBIDDEN,
        "alice may not upload to bobs-pkg",
    );
    let his = post(pypi, "/", Some(&basic("bob", PASSWORD)), bobs).await;
    assert_eq!(his.status, StatusCode::OK, "{}", his.text());

    let (_, read_write) = hosting
        .auth
        .create_token("alice", TokenAccess::ReadWrite, None, None)
        .await
        .unwrap();
    let token = basic("__token__", &read_write);
    let with_token = post(pypi, "/", Some(&token), sdist_upload()).await;
    assert_eq!(with_token.status, StatusCode::OK, "{}", with_token.text());
    assert!(hosted_record(pypi, "private-pkg").await.is_some());
}

#[tokio::test]
async fn reads_of_private_projects_follow_the_read_rules() {
    let hosting = hosting_with(
        json!([{ "ecosystem": "pypi", "pattern": "private-*", "read": ["alice"] }]),
        PypiConfig::default(),
    )
    .await;
    assert_eq!(
        upload(&hosting, sdist_upload()).await.status,
        StatusCode::OK
    );

    let anonymous = get(&hosting.pypi, "/simple/private-pkg/", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let file = get(
        &hosting.pypi,
        &format!("/files/private-pkg/{SDIST_NAME}"),
        None,
    )
    .await;
    assert_eq!(file.status, StatusCode::UNAUTHORIZED);
    let page = Request::get("/simple/private-pkg/")
        .header(header::AUTHORIZATION, alice())
        .body(())
        .unwrap();
    let page = send(&hosting.pypi, page).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header(header::CACHE_CONTROL), "private, no-cache");
    let bob = Request::get("/simple/private-pkg/")
        .header(header::AUTHORIZATION, basic("bob", PASSWORD))
        .body(())
        .unwrap();
    assert_eq!(send(&hosting.pypi, bob).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_oversized_upload_is_a_413_and_nothing_is_stored() {
    let config = PypiConfig {
        max_upload_bytes: 4096,
        ..PypiConfig::default()
    };
    let hosting = hosting_with(json!([]), config).await;
    let big = vec![7u8; 8192];
    let form = with_digests(twine_form("private-pkg", "1.0", "sdist"), &big)
        .file(SDIST_NAME, &big)
        .finish();

    let declared = upload(&hosting, form.clone()).await;
    assert_refused(
        &declared,
        StatusCode::PAYLOAD_TOO_LARGE,
        "exceeds 4096 bytes",
    );
    // Without a Content-Length, the limit is enforced as the body streams in.
    let chunks: Vec<mirror_core::Result<Bytes>> = form
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let streamed = Request::post("/")
        .header(header::AUTHORIZATION, alice())
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(mirror_core::body::from_stream(futures_util::stream::iter(
            chunks,
        )))
        .unwrap();
    let streamed = send_body(&hosting.pypi, streamed).await;
    assert_refused(
        &streamed,
        StatusCode::PAYLOAD_TOO_LARGE,
        "exceeds 4096 bytes",
    );
    assert!(hosted_record(&hosting.pypi, "private-pkg").await.is_none());
    assert!(!blob_stored(&hosting.pypi, &big).await);
}

#[tokio::test]
async fn corrupt_wheels_and_truncated_forms_are_refused() {
    let hosting = hosting().await;
    let not_a_zip = b"PK\x03\x04 this is not a zip at all".to_vec();
    let no_metadata = wheel_with(&[("private_pkg/__init__.py", "")]);
    let wrong_metadata = wheel_with(&[
        (
            "private_pkg-1.0.dist-info/METADATA",
            "Name: other\nVersion: 1.0\n",
        ),
        ("private_pkg-1.0.dist-info/WHEEL", ""),
    ]);
    for (wheel, message) in [
        (not_a_zip, "is not a valid zip"),
        (no_metadata, "has no private_pkg-1.0.dist-info/METADATA"),
        (wrong_metadata, "names project \"other\""),
    ] {
        let form = with_digests(twine_form("private-pkg", "1.0", "bdist_wheel"), &wheel)
            .file(WHEEL_NAME, &wheel)
            .finish();
        let answer = upload(&hosting, form).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, message);
        assert!(!blob_stored(&hosting.pypi, &wheel).await);
    }

    let whole = wheel_upload();
    let truncated = whole[..whole.len() - 200].to_vec();
    let answer = upload(&hosting, truncated).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "truncated");
    let no_content = twine_form("private-pkg", "1.0", "sdist").finish();
    let answer = upload(&hosting, no_content).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "missing content");
    let not_multipart = Request::post("/")
        .header(header::AUTHORIZATION, alice())
        .header(header::CONTENT_TYPE, "application/json")
        .body(mirror_core::body::full("{}"))
        .unwrap();
    let answer = send_body(&hosting.pypi, not_multipart).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "multipart/form-data");
    assert!(hosted_record(&hosting.pypi, "private-pkg").await.is_none());
    assert_eq!(
        hosting.index.total_calls(),
        0,
        "refused before the upstream check"
    );
}

#[tokio::test]
async fn a_name_on_the_upstream_index_is_refused_unless_a_rule_allows_it() {
    let demo = |bytes: &[u8]| {
        with_digests(twine_form("demo", "9.0", "sdist"), bytes)
            .file("demo-9.0.tar.gz", bytes)
            .finish()
    };
    let guarded = hosting().await;
    let refused = upload(&guarded, demo(b"private demo")).await;
    assert_refused(
        &refused,
        StatusCode::FORBIDDEN,
        "exists on the upstream index",
    );
    assert!(hosted_record(&guarded.pypi, "demo").await.is_none());

    let allowed = hosting_with(
        json!([{ "ecosystem": "pypi", "pattern": "demo", "publish_over_upstream": true }]),
        PypiConfig::default(),
    )
    .await;
    let pypi = &allowed.pypi;
    assert_eq!(
        get(pypi, "/simple/demo/", None).await.status,
        StatusCode::OK
    );
    let uploaded = upload(&allowed, demo(b"private demo")).await;
    assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());

    let doc = get(pypi, "/simple/demo/", Some(PIP_ACCEPT)).await.json();
    let names: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["filename"].as_str())
        .collect();
    assert_eq!(
        names,
        ["demo-9.0.tar.gz"],
        "the upstream's files are not merged in"
    );
    let upstream_file = get(pypi, "/files/demo/demo-1.0.tar.gz", None).await;
    assert_eq!(upstream_file.status, StatusCode::NOT_FOUND);
    let private = get(pypi, "/files/demo/demo-9.0.tar.gz", None).await;
    assert_eq!(&private.body[..], b"private demo");
    assert_eq!(allowed.index.calls_to("/packages/demo-1.0.tar.gz"), 0);
}

#[tokio::test]
async fn without_auth_uploads_are_not_offered() {
    let Setup { pypi, .. } = setup();
    let answer = post(&pypi, "/", Some(&alice()), sdist_upload()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(hosted_record(&pypi, "private-pkg").await.is_none());
}

/// An upstream that never answers in time.
#[derive(Debug)]
struct Down;

#[async_trait]
impl Upstream for Down {
    async fn send(&self, _request: UpstreamRequest) -> mirror_core::Result<UpstreamResponse> {
        Err(mirror_core::Error::UpstreamTimeout)
    }

    fn name(&self) -> &str {
        "down"
    }
}

#[tokio::test]
async fn a_new_name_is_refused_while_upstream_cannot_say_whether_it_has_it() {
    let metadata = Arc::new(MemoryMetadataStore::new());
    let cache = Cache::builder(Arc::new(MemoryBlobStore::new()), metadata.clone()).build();
    let config = PypiConfig {
        upstream: "http://index.test/simple/".into(),
        files_upstream: String::new(),
        ..PypiConfig::default()
    };
    let auth = Auth::new(metadata, AccessPolicy::default());
    auth.add_user("alice", Some(PASSWORD), false).await.unwrap();
    let pypi = PypiMirror::with_upstreams(cache, config, Arc::new(Down), Arc::new(Down))
        .unwrap()
        .with_auth(auth);

    let answer = post(&pypi, "/", Some(&alice()), sdist_upload()).await;
    assert_refused(
        &answer,
        StatusCode::BAD_GATEWAY,
        "cannot check whether the project exists on the upstream index",
    );
    assert!(hosted_record(&pypi, "private-pkg").await.is_none());
    assert!(!blob_stored(&pypi, SDIST_BYTES).await);
}
