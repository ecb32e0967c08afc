//! `HttpUpstream` against a real HTTP server on a loopback port.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;

type Handler = Arc<
    dyn Fn(usize, &hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>>
        + Send
        + Sync,
>;

/// Serves `handler` (given the 0-based request number) until dropped; counts requests.
struct Server {
    base: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(handler: Handler) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (handler, counter) = (Arc::clone(&handler), Arc::clone(&counter));
            let service = service_fn(move |request| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let response = handler(n, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Server { base, hits, task }
}

fn respond(status: u16, body: impl Into<Bytes>) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

fn upstream(base: &str) -> HttpUpstreamBuilder {
    HttpUpstream::builder(base)
        .unwrap()
        .retries(2, Duration::from_millis(1))
}

async fn body(response: UpstreamResponse) -> Bytes {
    let chunks: Vec<Bytes> = response.body.try_collect().await.unwrap();
    chunks.concat().into()
}

#[test]
fn resolves_paths_under_the_base_only() {
    let up = HttpUpstream::builder("http://127.0.0.1:9/registry")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        up.resolve("/react").unwrap().as_str(),
        "http://127.0.0.1:9/registry/react"
    );
    assert_eq!(
        up.resolve("@a%2fb").unwrap().as_str(),
        "http://127.0.0.1:9/registry/@a%2fb"
    );
    assert!(up.resolve("../etc/passwd").is_err());
    let doubled = up.resolve("//evil.example/x").unwrap();
    assert_eq!(
        doubled.as_str(),
        "http://127.0.0.1:9/registry/evil.example/x"
    );
    assert!(up.resolve("http://evil.example/x").is_err());
    assert!(up
        .resolve("http://127.0.0.1:9/registry/x/-/x-1.tgz")
        .is_ok());
    assert!(HttpUpstream::builder("ftp://x/").is_err());
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = serve(Arc::new(|n, _| {
        if n < 2 {
            respond(503, "busy")
        } else {
            respond(200, "ok")
        }
    }))
    .await;
    let response = upstream(&server.base)
        .build()
        .unwrap()
        .send(UpstreamRequest::get("x"))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(body(response).await, "ok");
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_stop_at_the_limit_and_client_errors_are_not_retried() {
    let server = serve(Arc::new(|_, _| respond(500, "broken"))).await;
    let response = upstream(&server.base)
        .build()
        .unwrap()
        .send(UpstreamRequest::get("x"))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        3,
        "one try and two retries"
    );

    let server = serve(Arc::new(|_, _| respond(404, "missing"))).await;
    let response = upstream(&server.base)
        .build()
        .unwrap()
        .send(UpstreamRequest::get("x"))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn credentials_are_sent() {
    let echo: Handler = Arc::new(|_, request| {
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        respond(200, auth.unwrap_or_default())
    });
    let server = serve(echo).await;
    let basic = Credentials::Basic {
        username: "u".into(),
        password: "p".into(),
    };
    let up = upstream(&server.base).credentials(basic).build().unwrap();
    assert_eq!(
        body(up.send(UpstreamRequest::get("x")).await.unwrap()).await,
        "Basic dTpw"
    );
    let up = upstream(&server.base)
        .credentials(Credentials::Bearer("tok".into()))
        .build()
        .unwrap();
    assert_eq!(
        body(up.send(UpstreamRequest::get("x")).await.unwrap()).await,
        "Bearer tok"
    );
}

#[tokio::test]
async fn redirects_are_followed() {
    let server = serve(Arc::new(|_, request| {
        if request.uri().path() == "/old" {
            let mut response = respond(302, "");
            response
                .headers_mut()
                .insert("location", "/new".parse().unwrap());
            response
        } else {
            respond(200, "moved here")
        }
    }))
    .await;
    let response = upstream(&server.base)
        .build()
        .unwrap()
        .send(UpstreamRequest::get("old"))
        .await
        .unwrap();
    assert_eq!(body(response).await, "moved here");
}

#[tokio::test]
async fn a_silent_upstream_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let _accepted = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let up = upstream(&base)
        .read_timeout(Duration::from_millis(200))
        .retries(0, Duration::ZERO)
        .build()
        .unwrap();
    let err = up.send(UpstreamRequest::get("x")).await.unwrap_err();
    assert!(err.is_upstream_timeout(), "{err:?}");
}

#[tokio::test]
async fn a_closed_port_is_an_upstream_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let err = upstream(&base)
        .build()
        .unwrap()
        .send(UpstreamRequest::get("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
}
