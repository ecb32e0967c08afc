//! Requests whose client gives up half-way through the body.

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
    let mut stream = TcpStream::connect(address)
        .await
        .expect("connect to the mirror");
    let mut head = format!(
        "{request_line}\r\nHost: {address}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the request head");
    stream
        .write_all(&body[..sent])
        .await
        .expect("send part of the body");
    stream.shutdown().await.expect("close the sending side");

    let mut answer = Vec::new();
    // A reset instead of an orderly close also ends the exchange.
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}
