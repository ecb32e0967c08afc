//! Requests whose client gives up half-way through the body, stalls there, or sends it
//! slowly.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Sends a request announcing all of `body` with the first `sent` bytes of it, then closes
/// its sending side, and returns whatever the server answered before closing the
/// connection: the server has finished with the request by then.
pub(crate) async fn send_cut_off(
    address: &str,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    sent: usize,
) -> String {
    let mut stream = send_head(address, request_line, headers, body.len()).await;
    stream
        .write_all(&body[..sent])
        .await
        .expect("send part of the body");
    stream.shutdown().await.expect("close the sending side");

    read_answer(&mut stream).await
}

/// What the server did with a request whose client stopped sending its body.
#[derive(Debug)]
pub(crate) struct Stalled {
    /// Whatever the server answered.
    pub(crate) answer: String,
    /// How long after the last body byte the server closed the connection; `None` when
    /// it was still open when the client gave up.
    pub(crate) closed_after: Option<Duration>,
}

/// Sends a request announcing all of `body` with the first `sent` bytes of it, then sends
/// nothing more while keeping the connection open, for at most `give_up`.
pub(crate) async fn send_then_stall(
    address: &str,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    sent: usize,
    give_up: Duration,
) -> Stalled {
    let mut stream = send_head(address, request_line, headers, body.len()).await;
    stream
        .write_all(&body[..sent])
        .await
        .expect("send part of the body");
    let stalled = Instant::now();

    let mut answer = Vec::new();
    // A reset instead of an orderly close also ends the exchange.
    let read = tokio::time::timeout(give_up, stream.read_to_end(&mut answer)).await;
    Stalled {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        closed_after: read.is_ok().then(|| stalled.elapsed()),
    }
}

/// Sends a request with its body in `pieces` parts, pausing `pause` before each, and
/// returns the server's answer; the request asks for the connection to close after it.
pub(crate) async fn send_slowly(
    address: &str,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    pieces: usize,
    pause: Duration,
) -> String {
    let mut headers = headers.to_vec();
    headers.push(("connection", "close"));
    let mut stream = send_head(address, request_line, &headers, body.len()).await;
    for piece in body.chunks(body.len().div_ceil(pieces)) {
        tokio::time::sleep(pause).await;
        stream
            .write_all(piece)
            .await
            .expect("send a piece of the body");
    }

    read_answer(&mut stream).await
}

/// Connects and sends a request head announcing a body of `length` bytes.
async fn send_head(
    address: &str,
    request_line: &str,
    headers: &[(&str, &str)],
    length: usize,
) -> TcpStream {
    let mut stream = TcpStream::connect(address)
        .await
        .expect("connect to the mirror");
    let mut head = format!("{request_line}\r\nHost: {address}\r\nContent-Length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the request head");
    stream
}

/// Everything the server sends until it closes the connection.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    // A reset instead of an orderly close also ends the exchange.
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}
