//! Which connections are idle: each connection counts its requests in flight, so the
//! listener can close one that has had none for the idle timeout.
//!
//! hyper closes an idle HTTP/1 connection through its header read timeout, but an HTTP/2
//! server has no idle timeout at all, and its keep-alive PINGs do not help: they find peers
//! that are gone, while an idle peer that is still there answers them forever. Watching the
//! socket for traffic would not do either, since a stream waiting on a slow upstream moves
//! no bytes yet must not be cut. So the count is of requests: one is in flight from the
//! moment hyper hands it to the service until its response body is dropped, sent whole or
//! abandoned, which covers a slow upstream, a long download and a slow upload alike.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::body::TimedBody;

/// The requests in flight on one connection.
#[derive(Debug, Clone)]
pub(super) struct Activity {
    in_flight: watch::Sender<usize>,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            in_flight: watch::Sender::new(0),
        }
    }

    fn start_request(&self) -> InFlight {
        self.in_flight.send_modify(|count| *count += 1);
        InFlight {
            in_flight: self.in_flight.clone(),
        }
    }

    /// Resolves once the connection has had no request in flight for `timeout`; the clock
    /// starts again whenever a request starts or ends.
    pub(super) async fn idle_for(&self, timeout: Duration) {
        let mut in_flight = self.in_flight.subscribe();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);

        loop {
            let busy = *in_flight.borrow_and_update() > 0;
            tokio::select! {
                // Never an error: `self` holds a sender.
                _ = in_flight.changed() => deadline.as_mut().reset(Instant::now() + timeout),
                () = deadline.as_mut(), if !busy => return,
            }
        }
    }
}

/// One request's place in the count, given back when dropped.
#[derive(Debug)]
struct InFlight {
    in_flight: watch::Sender<usize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.in_flight
            .send_modify(|count| *count = count.saturating_sub(1));
    }
}

/// The service hyper drives for one connection: the router, with each request counted in
/// the connection's activity and its body read under a timeout.
#[derive(Debug, Clone)]
pub(super) struct ConnectionService {
    pub(super) router: Router,
    pub(super) activity: Activity,
    pub(super) body_read_timeout: Duration,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<InFlightBody>, Infallible>> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for ConnectionService {
    type Response = http::Response<InFlightBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.start_request();
        let timeout = self.body_read_timeout;
        let request = request.map(|body| TimedBody::new(body, timeout));
        let router = self.router.clone();

        Box::pin(async move {
            let response = router.oneshot(request).await?;
            Ok(response.map(|body| InFlightBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
#[derive(Debug)]
pub(super) struct InFlightBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// How long `idle_for` takes to resolve, with `during` run alongside from the start.
    async fn idle_after(activity: &Activity, during: impl Future<Output = ()>) -> Duration {
        let started = Instant::now();
        tokio::join!(activity.idle_for(TIMEOUT), during);
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_is_idle_after_the_timeout() {
        let activity = Activity::new();
        assert_eq!(idle_after(&activity, async {}).await, TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_holds_the_clock_until_it_ends() {
        let activity = Activity::new();
        let request = activity.start_request();
        let long_request = async move {
            tokio::time::sleep(TIMEOUT * 3).await;
            drop(request);
        };

        assert_eq!(idle_after(&activity, long_request).await, TIMEOUT * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_request_starts_the_clock_again() {
        let activity = Activity::new();
        let short_request = async {
            tokio::time::sleep(TIMEOUT / 2).await;
            drop(activity.start_request());
        };

        assert_eq!(idle_after(&activity, short_request).await, TIMEOUT * 3 / 2);
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_requests_keep_the_connection_busy() {
        let activity = Activity::new();
        let first = activity.start_request();
        let second = activity.start_request();
        let requests = async move {
            tokio::time::sleep(TIMEOUT).await;
            drop(first);
            tokio::time::sleep(TIMEOUT).await;
            drop(second);
        };

        assert_eq!(idle_after(&activity, requests).await, TIMEOUT * 3);
    }
}
