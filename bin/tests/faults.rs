//! Faults end to end, against the real binary: an upstream that breaks off, lies about
//! lengths, sends wrong bytes, stalls or refuses; a disk that fills up mid-download; a
//! publish cut off or stalled mid-upload; thousands of idle and trickling connections, idle
//! HTTP/2 connections. Each test
//! asserts what the client sees (a clear error or a cut body, never a complete wrong
//! artifact) and that nothing wrong is kept: once the fault is gone, the same request
//! fetches afresh and serves the true bytes, and every stored blob matches its digest.

#![allow(
    clippy::expect_used,
    reason = "a test fails loudly on whatever it did not expect"
)]

mod fault_support;

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;

use fault_support::fetch::{assert_refused, assert_served, attempt, client, get, Answer};
use fault_support::registry::{
    every_kind, mirror_config, npm_package, pypi_project, tampered, Artifact, BIG, SMALL,
};
use fault_support::server::{Disk, Server};
use fault_support::store;
use fault_support::upstream::{Behaviour, FaultyUpstream};

/// The upstream read timeout the mirror is configured with.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT_TOML: &str = "2s";

/// A fault to inflict on every kind of artifact: a name for its artifacts, what upstream
/// does instead of serving them, and the statuses the mirror may answer with.
struct Fault {
    case: &'static str,
    behaviour: fn(&Artifact) -> Behaviour,
    statuses: &'static [StatusCode],
}

/// Requests every artifact of every fault while upstream misbehaves, then with upstream
/// repaired; returns what the client saw during the fault.
async fn refused_then_fetched_afresh(faults: &[Fault]) -> Vec<(Artifact, Result<Answer, String>)> {
    let upstream = FaultyUpstream::start().await;
    let server = Server::start(
        &mirror_config(&upstream, READ_TIMEOUT_TOML),
        Disk::Unlimited,
    )
    .await;
    let mut cases = Vec::new();
    for fault in faults {
        for artifact in every_kind(&upstream, fault.case) {
            upstream.set(&artifact.upstream_path, (fault.behaviour)(&artifact));
            cases.push((artifact, fault.statuses));
        }
    }

    let answers = assert_all_refused(&upstream, &server, &cases).await;
    for (artifact, _) in &cases {
        upstream.set(&artifact.upstream_path, Behaviour::serve(&artifact.bytes));
        assert_fetched_afresh(&upstream, &server, artifact).await;
    }
    store::assert_consistent(&server.data_dir()).await;

    let artifacts = cases.into_iter().map(|(artifact, _)| artifact);
    artifacts.zip(answers).collect()
}

/// Asks for every artifact at once; each must be refused, and nothing wrong kept.
async fn assert_all_refused(
    upstream: &FaultyUpstream,
    server: &Server,
    cases: &[(Artifact, &[StatusCode])],
) -> Vec<Result<Answer, String>> {
    let client = client();
    let requests = cases
        .iter()
        .map(|(artifact, _)| attempt(&client, server, &artifact.mirror_path, &[]));
    let answers = join_all(requests).await;

    for ((artifact, statuses), answer) in cases.iter().zip(&answers) {
        assert_refused(answer, artifact, statuses);
        assert!(
            upstream.requests(&artifact.upstream_path) > 0,
            "{}: the fault was never reached",
            artifact.label
        );
    }
    store::assert_consistent(&server.data_dir()).await;
    answers
}

/// With upstream repaired, the artifact is fetched afresh (a MISS that reaches upstream),
/// served whole and right, and then served from the cache.
async fn assert_fetched_afresh(upstream: &FaultyUpstream, server: &Server, artifact: &Artifact) {
    let client = client();
    let before = upstream.requests(&artifact.upstream_path);
    let fresh = get(&client, server, &artifact.mirror_path, &[]).await;
    assert_served(&fresh, artifact, "MISS");
    assert_eq!(
        upstream.requests(&artifact.upstream_path),
        before + 1,
        "{}: the failed fetch must not count as cached",
        artifact.label
    );

    let cached = get(&client, server, &artifact.mirror_path, &[]).await;
    assert_served(&cached, artifact, "HIT");
}

const BAD_GATEWAY: &[StatusCode] = &[StatusCode::BAD_GATEWAY];

#[tokio::test(flavor = "multi_thread")]
async fn upstream_closing_mid_body_leaves_nothing_stored() {
    refused_then_fetched_afresh(&[Fault {
        case: "cut",
        behaviour: |artifact| Behaviour::CloseMidBody {
            body: artifact.bytes.clone(),
            sent: artifact.bytes.len() / 2,
        },
        statuses: BAD_GATEWAY,
    }])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_announcing_a_wrong_length_leaves_nothing_stored() {
    refused_then_fetched_afresh(&[
        Fault {
            case: "short",
            behaviour: |artifact| Behaviour::WrongLength {
                body: artifact.bytes.clone(),
                claimed: artifact.bytes.len() as u64 - 1000,
            },
            statuses: BAD_GATEWAY,
        },
        Fault {
            case: "long",
            behaviour: |artifact| Behaviour::WrongLength {
                body: artifact.bytes.clone(),
                claimed: artifact.bytes.len() as u64 + 1000,
            },
            statuses: BAD_GATEWAY,
        },
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_sending_bytes_that_miss_the_digest_leaves_nothing_stored() {
    refused_then_fetched_afresh(&[Fault {
        case: "tampered",
        behaviour: |artifact| Behaviour::serve(&tampered(&artifact.bytes)),
        statuses: BAD_GATEWAY,
    }])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_stalling_times_out_to_a_504_within_the_read_timeout() {
    let answers = refused_then_fetched_afresh(&[
        Fault {
            case: "silent",
            behaviour: |_| Behaviour::StallBeforeHead,
            statuses: &[StatusCode::GATEWAY_TIMEOUT],
        },
        Fault {
            case: "stuck",
            behaviour: |artifact| Behaviour::StallMidBody {
                body: artifact.bytes.clone(),
                sent: artifact.bytes.len() / 2,
            },
            statuses: &[StatusCode::GATEWAY_TIMEOUT],
        },
    ])
    .await;

    // All were asked at once, so each waited one timeout, give or take the load of the
    // machine: not the 30 s default, nor an endless hang.
    for (artifact, answer) in answers {
        let answer = answer.expect("a stalled upstream still gets the client a response");
        assert!(
            answer.elapsed >= READ_TIMEOUT.mul_f32(0.9)
                && answer.elapsed < READ_TIMEOUT + Duration::from_secs(5),
            "{}: the failure took {:?} with a read timeout of {READ_TIMEOUT:?}",
            artifact.label,
            answer.elapsed
        );
    }
}

/// A document cached once, then asked for again while upstream answers `status`.
async fn stale_while_upstream_answers(status: u16) {
    let upstream = FaultyUpstream::start().await;
    let server = Server::start(
        &mirror_config(&upstream, READ_TIMEOUT_TOML),
        Disk::Unlimited,
    )
    .await;
    let client = client();
    let npm = npm_package(&upstream, "stale-doc", SMALL);
    let pypi = pypi_project(&upstream, "stale-doc", SMALL);
    let (tag, _) = fault_support::registry::oci_tag(&upstream, "stale-doc");
    let documents = [
        ("npm packument", "/stale-doc", "/npm/stale-doc"),
        ("PyPI page", "/simple/stale-doc/", "/pypi/simple/stale-doc/"),
        ("OCI tag", tag.as_str(), tag.as_str()),
    ];
    let mut cached = Vec::new();
    for (label, _, mirror_path) in documents {
        let first = get(&client, &server, mirror_path, &[]).await;
        assert_eq!(first.status, StatusCode::OK, "{label}: {}", first.text());
        assert_eq!(first.cache_status, "MISS", "{label}");
        cached.push(first.body.expect("a whole first document"));
    }

    let revalidate = [("cache-control", "no-cache")];
    for ((label, upstream_path, mirror_path), body) in documents.into_iter().zip(&cached) {
        upstream.set(upstream_path, Behaviour::Status(status));
        let stale = get(&client, &server, mirror_path, &revalidate).await;
        assert_eq!(
            stale.status,
            StatusCode::OK,
            "{label} with upstream {status}"
        );
        assert_eq!(
            stale.cache_status, "STALE",
            "{label} with upstream {status}"
        );
        assert_eq!(
            stale.body.as_ref().ok(),
            Some(body),
            "{label}: the cached copy"
        );
    }

    // Nothing cached to fall back on: a clear error, and the artifacts still unharmed.
    upstream.set("/never-cached", Behaviour::Status(status));
    let failed = get(&client, &server, "/npm/never-cached", &[]).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text());
    assert!(
        failed.text().contains(&status.to_string()),
        "the error names upstream's answer: {}",
        failed.text()
    );
    for artifact in [npm, pypi] {
        upstream.set(&artifact.upstream_path, Behaviour::serve(&artifact.bytes));
        let answer = get(&client, &server, &artifact.mirror_path, &[]).await;
        assert_served(&answer, &artifact, "MISS");
    }
    store::assert_consistent(&server.data_dir()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_answering_500_serves_the_stale_copy() {
    stale_while_upstream_answers(500).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_answering_429_serves_the_stale_copy() {
    stale_while_upstream_answers(429).await;
}

/// Fills the file system holding `path` with a file there, then frees `spare` bytes of it.
fn fill_disk(path: &std::path::Path, spare: u64) {
    use std::io::Write as _;

    let mut filler = std::fs::File::create(path).expect("create the filler file");
    let chunk = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        match filler.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(error) if error.raw_os_error() == Some(28) => break,
            Err(error) => panic!("fill the disk: {error}"),
        }
    }
    filler
        .set_len(written.saturating_sub(spare))
        .expect("free some room again");
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_mid_download_fails_clearly_and_recovers_when_space_returns() {
    let upstream = FaultyUpstream::start().await;
    let mut server = Server::start(
        &mirror_config(&upstream, READ_TIMEOUT_TOML),
        Disk::Limited(24 << 20),
    )
    .await;
    let client = client();
    let artifacts = [
        npm_package(&upstream, "roomy-small", SMALL),
        npm_package(&upstream, "roomy-big", BIG),
        pypi_project(&upstream, "roomy-big", BIG),
    ];
    for artifact in &artifacts {
        upstream.set(&artifact.upstream_path, Behaviour::serve(&artifact.bytes));
    }
    // The documents listing the artifacts are cached while there is room.
    for path in [
        "/npm/roomy-small",
        "/npm/roomy-big",
        "/pypi/simple/roomy-big/",
    ] {
        let document = get(&client, &server, path, &[]).await;
        assert_eq!(
            document.status,
            StatusCode::OK,
            "{path}: {}",
            document.text()
        );
    }
    let data_dir = server.data_dir();
    let filler = data_dir.join("filler");
    fill_disk(&filler, 16 * 1024);

    for artifact in &artifacts {
        let answer = attempt(&client, &server, &artifact.mirror_path, &[]).await;
        assert_refused(&answer, artifact, &[StatusCode::INSUFFICIENT_STORAGE]);
        if let Some(answer) = answer.ok().filter(|answer| !answer.status.is_success()) {
            assert!(
                answer.text().contains("space"),
                "{}: the error says the disk is full: {}",
                artifact.label,
                answer.text()
            );
        }
    }
    assert!(server.is_running(), "the server survives a full disk");
    let health = get(&client, &server, "/healthz", &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    store::assert_consistent(&data_dir).await;

    std::fs::remove_file(&filler).expect("free the disk");
    for artifact in &artifacts {
        assert_fetched_afresh(&upstream, &server, artifact).await;
    }
    store::assert_consistent(&data_dir).await;
}

/// An npm publish body: the manifest, and the tarball base64'd in `_attachments`.
fn npm_publish_body(name: &str, version: &str, tarball: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    use sha2::Digest as _;

    let integrity = base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(tarball));
    let body = serde_json::json!({
        "_id": name,
        "name": name,
        "dist-tags": { "latest": version },
        "versions": { version: {
            "_id": format!("{name}@{version}"),
            "name": name,
            "version": version,
            "dist": {
                "integrity": format!("sha512-{integrity}"),
                "tarball": format!("http://127.0.0.1/npm/{name}/-/{name}-{version}.tgz"),
            },
        }},
        "_attachments": { format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(tarball),
            "length": tarball.len(),
        }},
    });
    serde_json::to_vec(&body).expect("serialise a publish body")
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_publish_cut_off_mid_upload_publishes_nothing() {
    let upstream = FaultyUpstream::start().await;
    let server = Server::start(
        &mirror_config(&upstream, READ_TIMEOUT_TOML),
        Disk::Unlimited,
    )
    .await;
    let client = client();
    let bearer = format!("Bearer {}", server.admin_token());
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let tarball = fault_support::registry::noise(BIG, 99);
    let body = npm_publish_body("half-sent", "1.0.0", &tarball);
    let blobs_before = store::blob_names(&server.data_dir());

    for sent in [body.len() / 2, body.len() - 1] {
        let answer = fault_support::cut::send_cut_off(
            server.address(),
            "PUT /npm/half-sent HTTP/1.1",
            &headers,
            &body,
            sent,
        )
        .await;
        assert!(
            !answer.starts_with("HTTP/1.1 2"),
            "a publish missing its last bytes must not succeed: {answer}"
        );
        let packument = get(&client, &server, "/npm/half-sent", &[]).await;
        assert_eq!(
            packument.status,
            StatusCode::NOT_FOUND,
            "nothing of a cut-off publish may show: {}",
            packument.text()
        );
        let tarball = get(
            &client,
            &server,
            "/npm/half-sent/-/half-sent-1.0.0.tgz",
            &[],
        )
        .await;
        assert_eq!(tarball.status, StatusCode::NOT_FOUND, "{}", tarball.text());
    }
    assert_eq!(
        store::blob_names(&server.data_dir()),
        blobs_before,
        "a cut-off publish leaves no blob behind"
    );
    store::assert_consistent(&server.data_dir()).await;

    let published = fault_support::fetch::send(
        &client,
        &server,
        reqwest::Method::PUT,
        "/npm/half-sent",
        &headers,
        body,
    )
    .await
    .expect("an answer to the whole publish");
    assert!(published.status.is_success(), "{}", published.text());
    let artifact = Artifact {
        label: "the published tarball".to_owned(),
        upstream_path: String::new(),
        mirror_path: "/npm/half-sent/-/half-sent-1.0.0.tgz".to_owned(),
        bytes: tarball,
    };
    let served = get(&client, &server, &artifact.mirror_path, &[]).await;
    assert_served(&served, &artifact, "HIT");
    store::assert_consistent(&server.data_dir()).await;
}

/// A twine upload form for `dist`: the metadata fields, then the file.
fn upload_form(dist: &fault_support::dists::Dist, boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("metadata_version", "2.1"),
        ("name", dist.project),
        ("version", dist.version),
        ("filetype", "bdist_wheel"),
        ("pyversion", "py3"),
        ("sha256_digest", &dist.sha256()),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; \
             filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            dist.filename
        )
        .as_bytes(),
    );
    body.extend_from_slice(&dist.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn pypi_upload_cut_off_mid_upload_publishes_nothing() {
    use base64::Engine as _;

    let upstream = FaultyUpstream::start().await;
    let server = Server::start(
        &mirror_config(&upstream, READ_TIMEOUT_TOML),
        Disk::Unlimited,
    )
    .await;
    let client = client();
    let credentials = base64::engine::general_purpose::STANDARD
        .encode(format!("__token__:{}", server.admin_token()));
    let authorization = format!("Basic {credentials}");
    let boundary = "cut-off-upload";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let headers = [
        ("authorization", authorization.as_str()),
        ("content-type", content_type.as_str()),
    ];
    let dist = fault_support::dists::wheel("half-uploaded", "1.0.0", None, &[]);
    let form = upload_form(&dist, boundary);
    let blobs_before = store::blob_names(&server.data_dir());

    for sent in [form.len() / 2, form.len() - 1] {
        let answer = fault_support::cut::send_cut_off(
            server.address(),
            "POST /pypi/ HTTP/1.1",
            &headers,
            &form,
            sent,
        )
        .await;
        assert!(
            !answer.starts_with("HTTP/1.1 2"),
            "an upload cut after {sent} of {} bytes must not succeed: {answer}",
            form.len()
        );
        let page = get(&client, &server, "/pypi/simple/half-uploaded/", &[]).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "nothing of a cut-off upload may show: {}",
            page.text()
        );
    }
    assert_eq!(
        store::blob_names(&server.data_dir()),
        blobs_before,
        "a cut-off upload leaves no blob behind"
    );
    store::assert_consistent(&server.data_dir()).await;

    let uploaded = fault_support::fetch::send(
        &client,
        &server,
        reqwest::Method::POST,
        "/pypi/",
        &headers,
        form,
    )
    .await
    .expect("an answer to the whole upload");
    assert!(uploaded.status.is_success(), "{}", uploaded.text());
    let artifact = Artifact {
        label: "the uploaded wheel".to_owned(),
        upstream_path: String::new(),
        mirror_path: format!("/pypi/files/half-uploaded/{}", dist.filename),
        bytes: dist.bytes.clone(),
    };
    let served = get(&client, &server, &artifact.mirror_path, &[]).await;
    assert_served(&served, &artifact, "HIT");
    store::assert_consistent(&server.data_dir()).await;
}

/// The header read timeout the connection tests configure.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends `count` requests one after the other on fresh connections while a crowd holds its
/// own; each must be answered promptly. Returns the slowest answer's time.
async fn prompt_answers(server: &Server, count: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..count {
        // A new client each time: a new connection, as a new visitor would open.
        let client = client();
        let answer = get(&client, server, "/healthz", &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        slowest = slowest.max(answer.elapsed);
    }
    slowest
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_idle_and_trickling_connections_do_not_starve_others() {
    use fault_support::crowd::{allow_open_files, gather, Manner};

    const EACH: usize = 1000;
    allow_open_files(3 * EACH as u64 + 256);
    let upstream = FaultyUpstream::start().await;
    let config = format!(
        "header_read_timeout = \"{}s\"\n{}",
        HEADER_TIMEOUT.as_secs(),
        mirror_config(&upstream, READ_TIMEOUT_TOML)
    );
    let server = Server::start(&config, Disk::Unlimited).await;
    prompt_answers(&server, 5).await;
    let baseline_kib = server.rss_kib();

    let give_up = HEADER_TIMEOUT * 4;
    let trickle = Manner::Trickling {
        interval: Duration::from_millis(500),
    };
    let mut crowds = Vec::new();
    for manner in [Manner::Idle, trickle, Manner::KeptAlive] {
        let count = if manner == Manner::KeptAlive {
            10
        } else {
            EACH
        };
        crowds.push((
            manner,
            gather(server.address(), count, manner, give_up).await,
        ));
    }

    let slowest = prompt_answers(&server, 20).await;
    assert!(
        slowest < Duration::from_secs(1),
        "with {} connections held open, an ordinary request took {slowest:?}",
        2 * EACH
    );
    let peak_kib = server.rss_kib();
    eprintln!("server RSS: {baseline_kib} KiB idle, {peak_kib} KiB with the crowd connected");
    // Every held connection costs the server a task and hyper's read buffer: a few KiB
    // each. 32 MiB over the baseline allows ~16 KiB per connection, several times what
    // they should take, yet would catch buffers that grow per connection without bound.
    assert!(
        peak_kib < baseline_kib + 32 * 1024,
        "RSS grew from {baseline_kib} KiB to {peak_kib} KiB with {} connections open",
        2 * EACH
    );

    let mut latest_close = Duration::ZERO;
    for (manner, mut crowd) in crowds {
        while let Some(closed) = crowd.join_next().await {
            let closed = closed.expect("a crowd task");
            let Some(after) = closed else {
                panic!("a {manner:?} connection was still open after {give_up:?}");
            };
            assert!(
                after < HEADER_TIMEOUT + Duration::from_secs(3),
                "a {manner:?} connection was closed only after {after:?}, \
                 with a header read timeout of {HEADER_TIMEOUT:?}"
            );
            latest_close = latest_close.max(after);
        }
    }
    eprintln!("slowest answer {slowest:?}; the last held connection closed after {latest_close:?}");
    prompt_answers(&server, 5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_for_idle_ones_to_be_cut() {
    use fault_support::crowd::{allow_open_files, gather, Manner};

    const CAP: usize = 50;
    allow_open_files(4 * CAP as u64 + 256);
    let upstream = FaultyUpstream::start().await;
    let config = format!(
        "header_read_timeout = \"{}s\"\nmax_connections = {CAP}\n{}",
        HEADER_TIMEOUT.as_secs(),
        mirror_config(&upstream, READ_TIMEOUT_TOML)
    );
    let server = Server::start(&config, Disk::Unlimited).await;
    let give_up = HEADER_TIMEOUT * 4;
    let mut idle = gather(server.address(), CAP, Manner::Idle, give_up).await;

    // Every slot is taken by a connection that sends nothing: a newcomer waits in the
    // accept queue until the header read timeout frees the slots, and no longer.
    let waited = prompt_answers(&server, 1).await;
    assert!(
        waited < HEADER_TIMEOUT + Duration::from_secs(3),
        "a request beyond the connection cap waited {waited:?}"
    );
    while let Some(closed) = idle.join_next().await {
        let after = closed.expect("a crowd task");
        assert!(
            after.is_some_and(|after| after < HEADER_TIMEOUT + Duration::from_secs(3)),
            "an idle connection holding a slot was closed after {after:?}"
        );
    }
}

/// The idle timeout (`header_read_timeout`) the HTTP/2 tests configure.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// An upstream read timeout longer than the idle timeout: a request waiting on a stalled
/// upstream outlasts it.
const LONGER_READ_TIMEOUT_TOML: &str = "4s";

/// Asserts that a connection was closed about `timeout` after it fell idle: not before,
/// and not much later.
fn assert_closed_after_timeout(what: &str, closed_after: Option<Duration>, timeout: Duration) {
    let Some(after) = closed_after else {
        panic!("{what} was still open long after the {timeout:?} timeout");
    };
    assert!(
        after >= timeout.mul_f32(0.9) && after < timeout + Duration::from_secs(3),
        "{what} was closed after {after:?}, with a timeout of {timeout:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_is_closed_but_not_while_a_request_waits_on_upstream() {
    use fault_support::h2c::H2cConnection;

    let upstream = FaultyUpstream::start().await;
    let config = format!(
        "header_read_timeout = \"{}s\"\n{}",
        IDLE_TIMEOUT.as_secs(),
        mirror_config(&upstream, LONGER_READ_TIMEOUT_TOML)
    );
    let server = Server::start(&config, Disk::Unlimited).await;
    let mut connection = H2cConnection::connect(server.address()).await;
    let (status, _) = connection.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);

    // Waiting on upstream for longer than the idle timeout is not being idle.
    upstream.set("/slow-document", Behaviour::StallBeforeHead);
    let (status, waited) = connection.get("/npm/slow-document").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        waited > IDLE_TIMEOUT,
        "the stalled request took {waited:?}, not longer than the idle timeout"
    );
    let (status, _) = connection.get("/healthz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the connection outlived the long request"
    );

    let closed = connection.closed_within(IDLE_TIMEOUT * 4).await;
    assert_closed_after_timeout("an idle HTTP/2 connection", closed, IDLE_TIMEOUT);
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The preface and an empty SETTINGS frame: a complete opening, with no request after it.
const H2_PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test(flavor = "multi_thread")]
async fn http2_connections_that_never_send_a_request_are_closed() {
    use fault_support::crowd::{gather, Manner};

    let upstream = FaultyUpstream::start().await;
    let config = format!(
        "header_read_timeout = \"{}s\"\n{}",
        IDLE_TIMEOUT.as_secs(),
        mirror_config(&upstream, READ_TIMEOUT_TOML)
    );
    let server = Server::start(&config, Disk::Unlimited).await;
    let give_up = IDLE_TIMEOUT * 4;
    let openings = [
        ("half a preface", &H2_PREFACE[..10]),
        ("a preface alone", H2_PREFACE),
        ("a preface and settings", H2_PREFACE_AND_SETTINGS),
    ];

    for (what, opening) in openings {
        let mut crowd = gather(server.address(), 10, Manner::Opens(opening), give_up).await;
        while let Some(closed) = crowd.join_next().await {
            let closed = closed.expect("a crowd task");
            assert_closed_after_timeout(
                &format!("a connection sending {what}"),
                closed,
                IDLE_TIMEOUT,
            );
        }
    }
    prompt_answers(&server, 1).await;
}

/// The body read timeout the stalled-upload tests configure.
const BODY_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread")]
async fn npm_publish_stalling_mid_upload_times_out_and_publishes_nothing() {
    use fault_support::cut::{send_slowly, send_then_stall};

    let upstream = FaultyUpstream::start().await;
    let config = format!(
        "body_read_timeout = \"{}s\"\n{}",
        BODY_TIMEOUT.as_secs(),
        mirror_config(&upstream, READ_TIMEOUT_TOML)
    );
    let server = Server::start(&config, Disk::Unlimited).await;
    let client = client();
    let bearer = format!("Bearer {}", server.admin_token());
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let tarball = fault_support::registry::noise(BIG, 7);
    let body = npm_publish_body("stalled", "1.0.0", &tarball);
    let blobs_before = store::blob_names(&server.data_dir());

    let stalled = send_then_stall(
        server.address(),
        "PUT /npm/stalled HTTP/1.1",
        &headers,
        &body,
        body.len() / 2,
        BODY_TIMEOUT * 4,
    )
    .await;
    eprintln!(
        "a stalled publish was answered {:?} and closed after {:?}",
        stalled.answer.lines().next(),
        stalled.closed_after
    );
    assert_closed_after_timeout("a stalled publish", stalled.closed_after, BODY_TIMEOUT);
    assert!(
        !stalled.answer.starts_with("HTTP/1.1 2"),
        "a publish missing half its body must not succeed: {}",
        stalled.answer
    );
    for path in ["/npm/stalled", "/npm/stalled/-/stalled-1.0.0.tgz"] {
        let answer = get(&client, &server, path, &[]).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.text()
        );
    }
    assert_eq!(
        store::blob_names(&server.data_dir()),
        blobs_before,
        "a stalled publish leaves no blob behind"
    );
    store::assert_consistent(&server.data_dir()).await;

    // Slow but steady: every pause is shorter than the timeout, the whole upload longer.
    let answer = send_slowly(
        server.address(),
        "PUT /npm/stalled HTTP/1.1",
        &headers,
        &body,
        5,
        BODY_TIMEOUT / 2,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 2"), "a slow publish: {answer}");
    let artifact = Artifact {
        label: "the slowly published tarball".to_owned(),
        upstream_path: String::new(),
        mirror_path: "/npm/stalled/-/stalled-1.0.0.tgz".to_owned(),
        bytes: tarball,
    };
    let served = get(&client, &server, &artifact.mirror_path, &[]).await;
    assert_served(&served, &artifact, "HIT");
    store::assert_consistent(&server.data_dir()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_publish_over_http2_stalling_mid_upload_times_out_and_publishes_nothing() {
    use fault_support::h2c::H2cConnection;

    let upstream = FaultyUpstream::start().await;
    let config = format!(
        "body_read_timeout = \"{}s\"\n{}",
        BODY_TIMEOUT.as_secs(),
        mirror_config(&upstream, READ_TIMEOUT_TOML)
    );
    let server = Server::start(&config, Disk::Unlimited).await;
    let bearer = format!("Bearer {}", server.admin_token());
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let tarball = fault_support::registry::noise(BIG, 8);
    let body = npm_publish_body("stalled-h2", "1.0.0", &tarball);
    let blobs_before = store::blob_names(&server.data_dir());

    let mut connection = H2cConnection::connect(server.address()).await;
    let answer = connection
        .send_then_stall(
            reqwest::Method::PUT,
            "/npm/stalled-h2",
            &headers,
            &body,
            body.len() / 2,
            BODY_TIMEOUT * 4,
        )
        .await;
    let Some((status, after)) = answer else {
        panic!("a publish stalled over HTTP/2 was not answered long after the body timeout");
    };
    eprintln!("a publish stalled over HTTP/2 was answered {status:?} after {after:?}");
    assert_closed_after_timeout("a stalled HTTP/2 publish", Some(after), BODY_TIMEOUT);
    assert!(
        !status.as_ref().is_ok_and(StatusCode::is_success),
        "a publish missing half its body must not succeed: {status:?}"
    );

    let (status, _) = connection.get("/npm/stalled-h2").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing of it may show");
    assert_eq!(
        store::blob_names(&server.data_dir()),
        blobs_before,
        "a stalled publish leaves no blob behind"
    );
    store::assert_consistent(&server.data_dir()).await;
}
