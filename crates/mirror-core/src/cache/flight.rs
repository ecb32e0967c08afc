//! One upstream fetch shared by every request that wants the same key.
//!
//! The fetching task appends each chunk to an unlinked spool file and announces how many
//! bytes it holds through a `watch` channel. Each client reads the spool at its own pace
//! from its own offset, so a slow client never holds the others back, late joiners start
//! from byte zero, and memory stays at one read buffer per client whatever the artifact
//! size. The last byte is held back until the body has been verified and committed, so no
//! client ever receives the whole of an artifact whose digest turns out wrong.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use super::entry::{CacheEntry, CacheStatus};
use super::BodyMeta;
use crate::error::{Error, Result};
use crate::storage::ByteStream;

/// Bytes a reader takes from the spool at once.
const READ_CHUNK: usize = 128 * 1024;
/// Bytes withheld from readers until the body is verified.
const HOLDBACK: u64 = 1;

/// An unlinked temporary file: it disappears with the process, crash included.
#[derive(Debug)]
pub(crate) struct Spool {
    file: File,
}

impl Spool {
    pub(crate) fn create(dir: Option<&Path>) -> Result<Self> {
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        Ok(Spool { file })
    }

    pub(crate) async fn write_at(self: &Arc<Self>, chunk: Bytes, offset: u64) -> Result<()> {
        let spool = Arc::clone(self);
        tokio::task::spawn_blocking(move || spool.file.write_all_at(&chunk, offset))
            .await
            .map_err(Error::storage)??;
        Ok(())
    }

    async fn read_at(self: &Arc<Self>, offset: u64, len: usize) -> Result<Bytes> {
        let spool = Arc::clone(self);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; len];
            spool.file.read_exact_at(&mut buf, offset).map(|()| buf)
        });
        Ok(Bytes::from(read.await.map_err(Error::storage)??))
    }
}

/// Where a flight is.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// Deciding, or waiting for upstream's response head.
    Pending,
    /// The body is arriving; `written` bytes are in the spool.
    Streaming {
        meta: Arc<BodyMeta>,
        spool: Arc<Spool>,
        written: u64,
    },
    /// The streamed body was verified and stored.
    Committed {
        entry: CacheEntry,
        spool: Arc<Spool>,
    },
    /// Finished without a new body: a hit, a revalidation, a stale answer or a 404.
    Resolved {
        status: CacheStatus,
        entry: Option<CacheEntry>,
    },
    /// Failed; the message duplicates the error for every waiter.
    Failed(Arc<Error>),
}

/// A fetch in progress.
#[derive(Debug)]
pub(crate) struct Flight {
    phase: watch::Sender<Phase>,
}

impl Flight {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Flight {
            phase: watch::Sender::new(Phase::Pending),
        })
    }

    pub(crate) fn set(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    pub(crate) fn advance(&self, new_written: u64) {
        self.phase.send_modify(|phase| {
            if let Phase::Streaming { written, .. } = phase {
                *written = new_written;
            }
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }
}

/// Waits until the flight leaves `Pending`.
pub(crate) async fn started(rx: &mut watch::Receiver<Phase>) -> Result<Phase> {
    let phase = rx
        .wait_for(|phase| !matches!(phase, Phase::Pending))
        .await
        .map_err(|_| Error::storage("fetch task ended without an outcome"))?;
    Ok(phase.clone())
}

/// Waits until the flight has finished one way or another.
pub(crate) async fn finished(rx: &mut watch::Receiver<Phase>) -> Result<Phase> {
    let phase = rx
        .wait_for(|phase| !matches!(phase, Phase::Pending | Phase::Streaming { .. }))
        .await
        .map_err(|_| Error::storage("fetch task ended without an outcome"))?;
    Ok(phase.clone())
}

/// A client's view of the spool: bytes `start..end` (end `None` = to the end of the body).
pub(crate) fn spool_stream(rx: watch::Receiver<Phase>, start: u64, end: Option<u64>) -> ByteStream {
    let reader = SpoolReader {
        rx,
        pos: start,
        end,
    };
    stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        match reader.next_chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(reader))),
            Ok(None) => None,
            Err(err) => Some((Err(err), None)),
        }
    })
    .boxed()
}

struct SpoolReader {
    rx: watch::Receiver<Phase>,
    pos: u64,
    end: Option<u64>,
}

enum Readable {
    Upto(u64, Arc<Spool>, bool),
    Wait,
    Fail(Error),
}

impl SpoolReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.end.is_some_and(|end| self.pos >= end) {
            return Ok(None);
        }
        loop {
            let readable = readable(&self.rx.borrow_and_update());
            match readable {
                Readable::Fail(err) => return Err(err),
                Readable::Upto(limit, spool, complete) => {
                    let limit = self.end.map_or(limit, |end| end.min(limit));
                    if self.pos < limit {
                        return self.read(&spool, limit).await.map(Some);
                    }
                    if complete {
                        return Ok(None);
                    }
                }
                Readable::Wait => {}
            }
            if self.rx.changed().await.is_err() {
                return Err(Error::storage("fetch task ended mid-body"));
            }
        }
    }

    async fn read(&mut self, spool: &Arc<Spool>, limit: u64) -> Result<Bytes> {
        let len = usize::try_from(limit - self.pos)
            .unwrap_or(READ_CHUNK)
            .min(READ_CHUNK);
        let bytes = spool.read_at(self.pos, len).await?;
        self.pos += bytes.len() as u64;
        Ok(bytes)
    }
}

fn readable(phase: &Phase) -> Readable {
    match phase {
        Phase::Pending => Readable::Wait,
        Phase::Streaming { spool, written, .. } => {
            Readable::Upto(written.saturating_sub(HOLDBACK), Arc::clone(spool), false)
        }
        Phase::Committed { entry, spool } => Readable::Upto(entry.size, Arc::clone(spool), true),
        Phase::Failed(err) => Readable::Fail(duplicate(err)),
        Phase::Resolved { .. } => Readable::Fail(Error::storage("no body in flight")),
    }
}

/// Gives each waiter its own copy of a shared failure, keeping its kind.
pub(crate) fn duplicate(err: &Error) -> Error {
    match err {
        Error::NotFound => Error::NotFound,
        Error::Upstream { message, source } => Error::Upstream {
            message: message.clone(),
            source: source.as_ref().map(|s| s.to_string().into()),
        },
        Error::UpstreamTimeout => Error::UpstreamTimeout,
        Error::UpstreamStatus { status } => Error::UpstreamStatus { status: *status },
        Error::DigestMismatch { expected, actual } => Error::DigestMismatch {
            expected: expected.clone(),
            actual: actual.clone(),
        },
        Error::LengthMismatch { expected, actual } => Error::LengthMismatch {
            expected: *expected,
            actual: *actual,
        },
        Error::TooLarge { limit } => Error::TooLarge { limit: *limit },
        Error::RangeNotSatisfiable { size } => Error::RangeNotSatisfiable { size: *size },
        Error::Invalid(message) => Error::Invalid(message.clone()),
        Error::Conflict { key } => Error::Conflict { key: key.clone() },
        Error::Storage(source) => Error::Storage(source.to_string().into()),
        Error::StorageFull(io) => {
            Error::StorageFull(std::io::Error::new(io.kind(), io.to_string()))
        }
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
    }
}
