//! An HTTP/2 client speaking to the mirror with prior knowledge (h2c: no TLS, no upgrade),
//! on one connection whose end the test can watch.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// One HTTP/2 connection, kept open by the client for as long as this lives.
#[derive(Debug)]
pub(crate) struct H2cConnection {
    authority: String,
    sender: SendRequest<Empty<Bytes>>,
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
        let request = Request::get(format!("http://{}{path}", self.authority))
            .body(Empty::new())
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

    /// Waits for the server to close the connection: how long that took from now, or
    /// `None` when it was still open after `give_up`.
    pub(crate) async fn closed_within(&mut self, give_up: Duration) -> Option<Duration> {
        let waiting = Instant::now();
        let closed = tokio::time::timeout(give_up, &mut self.driver).await;
        closed.is_ok().then(|| waiting.elapsed())
    }
}
