//! The accept loop: HTTP/1.1 and HTTP/2 on one port, with the limits a public-facing
//! server needs and a graceful stop.
//!
//! `axum::serve` would do for a trusted network, but it offers no timeout for reading
//! request headers, so one client trickling bytes (slowloris) could hold connections open
//! forever. hyper's own builder has that timeout; this loop adds a cap on open connections
//! and waits for in-flight responses when asked to stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits on client connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Time allowed to send a request's headers.
    pub(crate) header_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub(crate) max_connections: usize,
    /// How long a stop waits for in-flight responses before giving up on them.
    pub(crate) shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
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
    let graceful = GracefulShutdown::new();
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
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "in-flight responses outlived the grace period");
    }
}
