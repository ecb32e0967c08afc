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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::body::TimedBody;

/// The requests in flight on one connection.
///
/// Starting and ending a request only touches two atomics: the watcher ([`idle_for`])
/// is not woken by them, it looks at them when its deadline comes and sleeps again
/// until the deadline the last change implies. A busy connection costs nothing per
/// request beyond reading the clock.
///
/// [`idle_for`]: Activity::idle_for
#[derive(Debug, Clone)]
pub(super) struct Activity {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    /// What `last_change` counts from.
    since: Instant,
    in_flight: AtomicUsize,
    /// When a request last started or ended, in nanoseconds after `since`.
    last_change: AtomicU64,
}

impl State {
    fn touch(&self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_change.fetch_max(nanos, Ordering::Relaxed);
    }

    fn last_change(&self) -> Instant {
        self.since + Duration::from_nanos(self.last_change.load(Ordering::Relaxed))
    }
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            state: Arc::new(State {
                since: Instant::now(),
                in_flight: AtomicUsize::new(0),
                last_change: AtomicU64::new(0),
            }),
        }
    }

    fn start_request(&self) -> InFlight {
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        self.state.touch();
        InFlight {
            state: Arc::clone(&self.state),
        }
    }

    /// Resolves once the connection has had no request in flight for `timeout`; the clock
    /// starts again whenever a request starts or ends.
    pub(super) async fn idle_for(&self, timeout: Duration) {
        let mut deadline = self.state.last_change() + timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            let now = Instant::now();
            if self.state.in_flight.load(Ordering::Acquire) > 0 {
                // Busy: once it is not, the next look finds when it stopped.
                deadline = now + timeout;
                continue;
            }
            deadline = self.state.last_change() + timeout;
            if deadline <= now {
                return;
            }
        }
    }
}

/// One request's place in the count, given back when dropped.
#[derive(Debug)]
struct InFlight {
    state: Arc<State>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Touched first: a watcher that sees the count at zero sees this end with it.
        self.state.touch();
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
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
