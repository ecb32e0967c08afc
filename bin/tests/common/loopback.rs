//! The HTTP/1.1 server on 127.0.0.1 behind every fixture upstream the tests start (the npm
//! registry, the PyPI index and file hosts, the Maven repository): bound to a free port,
//! serving each request with the fixture's own handler, and stoppable, so that a test can
//! take its upstream away and have new connections refused and open ones closed.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// A listener on 127.0.0.1:0, bound but not serving yet, so that the fixture can learn its
/// address (which its documents name) before it starts answering.
#[derive(Debug)]
pub(crate) struct Bound {
    listener: TcpListener,
    address: SocketAddr,
}

/// Binds 127.0.0.1:0.
pub(crate) async fn bind() -> Bound {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind a fixture server on loopback");
    let address = listener.local_addr().expect("fixture server address");
    Bound { listener, address }
}

impl Bound {
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves every request with `respond`, on the current tokio runtime.
    pub(crate) fn serve<R, F, B>(self, respond: R) -> LoopbackServer
    where
        R: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(self.listener, respond, stopped));
        LoopbackServer {
            running: Some((stop, task)),
        }
    }
}

/// A serving fixture server. Stops when dropped.
#[derive(Debug)]
pub(crate) struct LoopbackServer {
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl LoopbackServer {
    /// Stops listening and closes every open connection; new connections are refused.
    pub(crate) async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.await.expect("fixture server task");
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.take() {
            task.abort();
        }
    }
}

async fn accept_loop<R, F, B>(listener: TcpListener, respond: R, mut stop: oneshot::Receiver<()>)
where
    R: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let respond = respond.clone();
                    let service = service_fn(move |request| {
                        let answer = respond(request);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    // A client hanging up mid-response is not the fixture's problem.
                    connections.spawn(async move {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}
