//! A time limit on the client's pauses while the server reads a request body.
//!
//! A whole-body deadline would cut off a large upload on a slow but steady link, so the
//! limit applies to each wait instead: the clock runs only while the handler asks for the
//! next bytes and the client has none ready, and stops once bytes arrive. Time the handler
//! spends on bytes it already has (hashing, writing to disk) is not the client's and does
//! not count. One timer per body, made on the first wait and reset on later ones.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client sent no body bytes for the read timeout while the server waited for them.
#[derive(Debug, thiserror::Error)]
#[error("no request body bytes arrived for {0:?}")]
pub(crate) struct BodyReadTimeout(Duration);

/// A request body that fails with [`BodyReadTimeout`] when the client pauses too long.
#[derive(Debug)]
pub(crate) struct TimedBody<B> {
    body: B,
    timeout: Duration,
    /// Made on the first wait: a body never waited for (most GETs) costs no timer.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `deadline` is running for the current wait.
    waiting: bool,
}

impl<B> TimedBody<B> {
    pub(crate) fn new(body: B, timeout: Duration) -> Self {
        TimedBody {
            body,
            timeout,
            deadline: None,
            waiting: false,
        }
    }

    /// Starts the clock if this wait is a new one; ready once it has run out.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<BodyReadTimeout> {
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !self.waiting {
            deadline.as_mut().reset(Instant::now() + timeout);
            self.waiting = true;
        }

        ready!(deadline.as_mut().poll(cx));
        tracing::debug!(timeout = ?self.timeout, "request body read timed out");
        Poll::Ready(BodyReadTimeout(self.timeout))
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => this
                .poll_deadline(cx)
                .map(|timed_out| Some(Err(timed_out.into()))),
        }
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

    use http_body_util::{BodyExt as _, StreamBody};
    use tokio::sync::mpsc;

    type Sent = Result<Frame<Bytes>, std::io::Error>;

    /// A body fed by the test through the returned sender.
    fn channel_body(
        timeout: Duration,
    ) -> (
        mpsc::Sender<Sent>,
        impl Body<Data = Bytes, Error = BoxError>,
    ) {
        let (sender, receiver) = mpsc::channel(4);
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|frame| (frame, receiver))
        });
        (
            sender,
            TimedBody::new(StreamBody::new(Box::pin(stream)), timeout),
        )
    }

    fn chunk(bytes: &'static [u8]) -> Sent {
        Ok(Frame::data(Bytes::from_static(bytes)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_keeps_sending_is_never_cut_off() {
        let timeout = Duration::from_secs(10);
        let (sender, body) = channel_body(timeout);
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(timeout - Duration::from_secs(1)).await;
                sender.send(chunk(b"part")).await.unwrap();
            }
        });

        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 20 * 4, "all parts, over twenty pauses");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_timeout_fails_the_body() {
        let timeout = Duration::from_secs(10);
        let (sender, mut body) = channel_body(timeout);
        sender.send(chunk(b"first")).await.unwrap();
        let started = Instant::now();

        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(error.is::<BodyReadTimeout>(), "{error}");
        assert_eq!(started.elapsed(), timeout);
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_handler_spends_between_reads_is_not_counted() {
        let timeout = Duration::from_secs(10);
        let (sender, mut body) = channel_body(timeout);
        sender.send(chunk(b"first")).await.unwrap();
        body.frame().await.unwrap().unwrap();

        // The handler works on the first part for longer than the timeout, then reads on.
        tokio::time::sleep(timeout * 3).await;
        tokio::spawn(async move {
            tokio::time::sleep(timeout / 2).await;
            sender.send(chunk(b"second")).await.unwrap();
        });
        let second = body.frame().await.unwrap().unwrap();
        assert_eq!(second.into_data().unwrap(), "second");
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_the_body_is_passed_on() {
        let (sender, body) = channel_body(Duration::from_secs(1));
        sender.send(chunk(b"all")).await.unwrap();
        drop(sender);

        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "all");
    }
}
