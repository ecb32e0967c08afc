//! An HTTP/2 client speaking to the mirror with prior knowledge (h2c: no TLS, no upgrade),
//! on one connection whose end the test can watch.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::client::conn::http2::SendRequest;
use hyper::http::request::Builder as RequestBuilder;
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// One HTTP/2 connection, kept open by the client for as long as this lives.
#[derive(Debug)]
pub(crate) struct H2cConnection {
    authority: String,
    sender: SendRequest<BoxBody<Bytes, Infallible>>,
    /// Drives the connection; finishes when the server closes it.
    driver: JoinHandle<()>,
}

impl H2cConnection {
    /// Connects to `address` (`127.0.0.1:PORT`) and completes the HTTP/2 handshake.
    pub(crate) async fn connect(address: &str) -> Self {
        let stream = TcpStream::connect(address)
            .await
            .expect("connect to the mirror");
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("an HTTP/2 handshake");
        let driver = tokio::spawn(async move {
            // A reset also ends the connection; either way the server is done with it.
            let _ = connection.await;
        });
        H2cConnection {
            authority: address.to_owned(),
            sender,
            driver,
        }
    }

    /// GETs `path` and reads the whole answer: its status and how long it took.
    pub(crate) async fn get(&mut self, path: &str) -> (StatusCode, Duration) {
        let started = Instant::now();
        let request = self
            .request(Method::GET, path, &[])
            .body(Empty::new().boxed())
            .expect("a request");
        let response = self
            .sender
            .send_request(request)
            .await
            .unwrap_or_else(|error| panic!("GET {path} over HTTP/2: {error}"));
        assert_eq!(response.version(), Version::HTTP_2);
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|error| panic!("the body of GET {path}: {error}"));
        (status, started.elapsed())
    }

    /// Sends a request announcing all of `body` with the first `sent` bytes of it, then
    /// sends nothing more on that stream. Returns the status the server answered (or why
    /// it gave none) and how long that took, or `None` when nothing came within `give_up`.
    pub(crate) async fn send_then_stall(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        sent: usize,
        give_up: Duration,
    ) -> Option<(Result<StatusCode, String>, Duration)> {
        let first = Frame::data(Bytes::copy_from_slice(&body[..sent]));
        let stalling = futures_util::stream::iter([Ok::<_, Infallible>(first)])
            .chain(futures_util::stream::pending());
        let request = self
            .request(method, path, headers)
            .header("content-length", body.len())
            .body(http_body_util::BodyExt::boxed(StreamBody::new(stalling)))
            .expect("a request");

        let started = Instant::now();
        let answer = tokio::time::timeout(give_up, self.sender.send_request(request)).await;
        let answer = answer.ok()?;
        let status = answer
            .map(|response| response.status())
            .map_err(|error| error.to_string());
        Some((status, started.elapsed()))
    }

    fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> RequestBuilder {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.authority));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
    }

    /// Waits for the server to close the connection: how long that took from now, or
    /// `None` when it was still open after `give_up`.
    pub(crate) async fn closed_within(&mut self, give_up: Duration) -> Option<Duration> {
        let waiting = Instant::now();
        let closed = tokio::time::timeout(give_up, &mut self.driver).await;
        closed.is_ok().then(|| waiting.elapsed())
    }
}
