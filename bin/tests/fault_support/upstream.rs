//! An upstream registry on loopback that misbehaves on demand.
//!
//! It speaks HTTP/1.1 by hand over tokio sockets rather than through hyper: a well-behaved
//! server library refuses to do what these tests need, such as announcing one length and
//! sending another, or closing a response half-way. Each path is given a [`Behaviour`],
//! which a test can change at any time; each response closes its connection, so a change
//! applies to the very next request.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Longest request head the fixture reads.
const MAX_HEAD: usize = 64 * 1024;
/// How long a stalled response holds its connection open: far longer than any test.
const STALL: Duration = Duration::from_secs(300);

/// What the fixture answers on one path.
#[derive(Debug, Clone)]
pub(crate) enum Behaviour {
    /// 200 with the body and its true length; with an ETag, a matching `If-None-Match`
    /// gets a 304.
    Serve {
        body: Bytes,
        content_type: &'static str,
        etag: Option<String>,
    },
    /// Announces the whole body's length, sends its first `sent` bytes, then closes.
    CloseMidBody { body: Bytes, sent: usize },
    /// Announces `claimed` bytes and sends the whole body (shorter or longer), then closes.
    WrongLength { body: Bytes, claimed: u64 },
    /// Reads the request and never answers.
    StallBeforeHead,
    /// Announces the whole body's length, sends its first `sent` bytes, then goes silent
    /// with the connection open.
    StallMidBody { body: Bytes, sent: usize },
    /// Answers this status with a short body (500, 429, ...).
    Status(u16),
    /// 200 with an OCI manifest and its `Docker-Content-Digest`; a HEAD gets the head alone.
    Manifest { body: Bytes, digest: String },
}

impl Behaviour {
    /// A 200 of `body` as `application/octet-stream`, with no ETag.
    pub(crate) fn serve(body: &Bytes) -> Self {
        Behaviour::Serve {
            body: body.clone(),
            content_type: "application/octet-stream",
            etag: None,
        }
    }

    /// A 200 of a document with an ETag derived from its bytes.
    pub(crate) fn document(body: &Bytes, content_type: &'static str) -> Self {
        let etag = format!("\"{}-{:x}\"", body.len(), crc(body));
        Behaviour::Serve {
            body: body.clone(),
            content_type,
            etag: Some(etag),
        }
    }
}

/// A cheap fingerprint for ETags; no security rests on it.
fn crc(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The running fixture; stops (closing stalled connections too) when dropped.
#[derive(Debug)]
pub(crate) struct FaultyUpstream {
    url: String,
    state: Arc<State>,
    tasks: JoinSet<()>,
}

#[derive(Debug, Default)]
struct State {
    routes: Mutex<HashMap<String, Behaviour>>,
    requests: Mutex<HashMap<String, usize>>,
}

impl FaultyUpstream {
    /// Binds 127.0.0.1:0 and serves on the current runtime; every path is a 404 until set.
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the faulty upstream on loopback");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let state = Arc::new(State::default());
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(listener, Arc::clone(&state)));
        Self { url, state, tasks }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Sets what `path` answers from now on.
    pub(crate) fn set(&self, path: &str, behaviour: Behaviour) {
        let mut routes = self.state.routes.lock().expect("routes lock");
        routes.insert(path.to_owned(), behaviour);
    }

    /// How many requests reached `path` so far.
    pub(crate) fn requests(&self, path: &str) -> usize {
        let requests = self.state.requests.lock().expect("requests lock");
        requests.get(path).copied().unwrap_or(0)
    }
}

impl Drop for FaultyUpstream {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Connection tasks live in this set, so aborting the loop closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(answer(stream, Arc::clone(&state)));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The parts of a request the fixture looks at.
struct Head {
    method: String,
    path: String,
    if_none_match: Option<String>,
}

async fn answer(mut stream: TcpStream, state: Arc<State>) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    *state
        .requests
        .lock()
        .expect("requests lock")
        .entry(head.path.clone())
        .or_default() += 1;
    let behaviour = state
        .routes
        .lock()
        .expect("routes lock")
        .get(&head.path)
        .cloned();
    // A mirror hanging up mid-response is part of what these tests provoke.
    let _ = respond(&mut stream, &head, behaviour).await;
}

async fn respond(
    stream: &mut TcpStream,
    head: &Head,
    behaviour: Option<Behaviour>,
) -> std::io::Result<()> {
    match behaviour {
        None => write_status(stream, 404).await,
        Some(Behaviour::Serve {
            body,
            content_type,
            etag,
        }) => {
            let unchanged = etag.is_some() && head.if_none_match == etag;
            let etag = etag
                .map(|etag| format!("ETag: {etag}\r\n"))
                .unwrap_or_default();
            if unchanged {
                let head = format!("HTTP/1.1 304 Not Modified\r\n{etag}Connection: close\r\n\r\n");
                return stream.write_all(head.as_bytes()).await;
            }
            let extra = format!("Content-Type: {content_type}\r\n{etag}");
            write_head(stream, 200, body.len() as u64, &extra).await?;
            stream.write_all(&body).await
        }
        Some(Behaviour::CloseMidBody { body, sent }) => {
            write_head(stream, 200, body.len() as u64, "").await?;
            stream.write_all(&body[..sent]).await?;
            stream.shutdown().await
        }
        Some(Behaviour::WrongLength { body, claimed }) => {
            write_head(stream, 200, claimed, "").await?;
            stream.write_all(&body).await?;
            stream.shutdown().await
        }
        Some(Behaviour::StallBeforeHead) => {
            tokio::time::sleep(STALL).await;
            Ok(())
        }
        Some(Behaviour::StallMidBody { body, sent }) => {
            write_head(stream, 200, body.len() as u64, "").await?;
            stream.write_all(&body[..sent]).await?;
            stream.flush().await?;
            tokio::time::sleep(STALL).await;
            Ok(())
        }
        Some(Behaviour::Status(status)) => write_status(stream, status).await,
        Some(Behaviour::Manifest { body, digest }) => {
            let extra = format!(
                "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                 Docker-Content-Digest: {digest}\r\n"
            );
            write_head(stream, 200, body.len() as u64, &extra).await?;
            if head.method == "HEAD" {
                return Ok(());
            }
            stream.write_all(&body).await
        }
    }
}

async fn write_head(
    stream: &mut TcpStream,
    status: u16,
    length: u64,
    extra: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} Fixture\r\nContent-Length: {length}\r\n{extra}Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await
}

async fn write_status(stream: &mut TcpStream, status: u16) -> std::io::Result<()> {
    let body = format!("{{\"error\":\"fixture answers {status}\"}}");
    let extra = "Content-Type: application/json\r\nRetry-After: 1\r\n";
    write_head(stream, status, body.len() as u64, extra).await?;
    stream.write_all(body.as_bytes()).await
}

/// Reads up to the end of the request head; `None` if the peer left first.
async fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 || buf.len() > MAX_HEAD {
            return None;
        }
        buf.extend_from_slice(&chunk[..read]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let if_none_match = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("if-none-match")
            .then(|| value.trim().to_owned())
    });
    Some(Head {
        method,
        path,
        if_none_match,
    })
}
