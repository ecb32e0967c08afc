//! The accept loop: HTTP/1.1 and HTTP/2 on one port, with the limits a public-facing
//! server needs and a graceful stop.
//!
//! `axum::serve` would do for a trusted network, but it offers no timeout for reading
//! request headers, so one client trickling bytes (slowloris) could hold connections open
//! forever. hyper's own builder has that timeout; this loop adds a cap on open connections,
//! an idle timeout for HTTP/2, a limit on pauses in request bodies, and waits for in-flight
//! responses when asked to stop.
//!
//! hyper's timeout starts only once hyper knows the protocol, and the auto builder learns it
//! from the first bytes: a client that connects and sends nothing would hold its connection
//! slot forever, and a few thousand such clients would lock everyone out once the cap is
//! reached. So each connection must send its first byte within the same header timeout
//! before hyper sees it.
//!
//! hyper has no idle timeout for HTTP/2 servers, so each connection counts its requests in
//! flight (`activity`) and is asked to close once it has had none for the idle timeout,
//! whatever its protocol. That also ends an HTTP/2 connection that never completes its
//! preface or its first request.

mod activity;
mod body;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use activity::{Activity, ConnectionService};

/// Limits on client connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Time allowed to send a request's headers.
    pub(crate) header_read_timeout: Duration,
    /// How long a connection with no request in flight is kept open.
    pub(crate) idle_timeout: Duration,
    /// Longest pause allowed while a request body is being read.
    pub(crate) body_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub(crate) max_connections: usize,
    /// How long a stop waits for in-flight responses before giving up on them.
    pub(crate) shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

/// Serves `router` on `listener` until `stop` resolves, then lets in-flight connections
/// finish (up to the grace period).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Tells every connection task that the server is stopping; each holds a receiver until
    // it ends, so the sender sees them all gone once every connection has finished.
    let (stopping, stop_signal) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(stop);

    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit,
            () = &mut stop => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Running out of file descriptors must not end the server; back off briefly.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small responses go out as a head and a body; without this, Nagle's algorithm
        // meets the client's delayed ACK and each such response waits ~40 ms.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let connection = Connection {
            peer,
            builder: builder.clone(),
            router: router.clone(),
            limits,
            stop_signal: stop_signal.clone(),
        };
        tokio::spawn(async move {
            connection.serve(stream).await;
            drop(permit);
        });
    }

    drop(listener);
    drop(stop_signal);
    stopping.send_replace(true);
    if tokio::time::timeout(limits.shutdown_grace, stopping.closed())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "in-flight responses outlived the grace period");
    }
}

/// What one connection task needs to serve its client.
struct Connection {
    peer: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    limits: Limits,
    stop_signal: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream) {
        let peer = self.peer;
        let spoke = tokio::select! {
            spoke = first_byte_within(&stream, self.limits.header_read_timeout) => spoke,
            _ = self.stop_signal.wait_for(|stopping| *stopping) => false,
        };
        if spoke {
            self.serve_http(stream).await;
        } else {
            tracing::debug!(%peer, "connection closed: nothing sent in time");
        }
    }

    /// Serves requests until the client closes, the connection has been idle too long, or
    /// the server stops; the last two ask hyper to finish what is in flight and close.
    async fn serve_http(mut self, stream: TcpStream) {
        let (peer, idle_timeout) = (self.peer, self.limits.idle_timeout);
        let activity = Activity::new();
        let service = ConnectionService {
            router: self.router,
            activity: activity.clone(),
            body_read_timeout: self.limits.body_read_timeout,
        };
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(connection);

        tokio::select! {
            ended = connection.as_mut() => return report_end(peer, ended),
            () = activity.idle_for(idle_timeout) => tracing::debug!(%peer, "closing an idle connection"),
            _ = self.stop_signal.wait_for(|stopping| *stopping) => {}
        }
        connection.as_mut().graceful_shutdown();

        // An HTTP/2 client must acknowledge the GOAWAY's PING before hyper closes; one that
        // stays idle and silent for another timeout is dropped.
        tokio::select! {
            ended = connection.as_mut() => report_end(peer, ended),
            () = activity.idle_for(idle_timeout) => {
                tracing::debug!(%peer, "connection dropped: idle after being asked to close");
            }
        }
    }
}

fn report_end(peer: SocketAddr, ended: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(err) = ended {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// Waits until the client has sent something (or closed), for at most `timeout`; false when
/// nothing came in time or the connection ended.
async fn first_byte_within(stream: &TcpStream, timeout: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.peek(&mut first)).await,
        Ok(Ok(1))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_silent_connection_is_given_up_after_the_timeout() {
        let (_client, server) = pair().await;
        assert!(!first_byte_within(&server, Duration::from_millis(50)).await);
    }

    #[tokio::test]
    async fn the_first_byte_is_left_for_hyper_to_read() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"G").await.unwrap();
        assert!(first_byte_within(&server, Duration::from_secs(5)).await);
        let mut read = [0u8; 1];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"G");
    }

    #[tokio::test]
    async fn a_stop_does_not_wait_for_silent_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let limits = Limits {
            header_read_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Router::new(), limits, async {
            let _ = stopped.await;
        }));
        let _silent = TcpStream::connect(address).await.unwrap();
        // Accepted in order: once a later connection is answered, the silent one is in.
        let mut later = TcpStream::connect(address).await.unwrap();
        later
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        later.read_to_end(&mut Vec::new()).await.unwrap();

        stop.send(()).unwrap();
        let finished = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(
            finished.is_ok(),
            "the stop waited for a connection that sent nothing"
        );
    }

    #[tokio::test]
    async fn a_connection_closed_before_sending_is_not_served() {
        let (client, server) = pair().await;
        drop(client);
        assert!(!first_byte_within(&server, Duration::from_secs(5)).await);
    }
}
