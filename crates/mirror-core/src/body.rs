//! The response body type every mirror service returns.

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body::Frame;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full, StreamBody};

use crate::error::BoxError;

/// A streaming response body: bytes or a boxed error that aborts the response.
///
/// An error mid-body makes the server reset the stream instead of finishing it, so a client
/// never mistakes a truncated artifact for a complete one.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding one buffer.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with no bytes.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body read from a stream of chunks.
pub fn from_stream<S, E>(stream: S) -> Body
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let frames = stream.map_ok(Frame::data).map_err(Into::into);
    StreamBody::new(frames).boxed_unsync()
}
