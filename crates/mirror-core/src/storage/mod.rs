//! Where the mirror keeps what it fetched and what was published to it.
//!
//! Storage has two halves with different needs. Artifacts are large, immutable and named by
//! their content, so the [`BlobStore`] is content-addressed by sha256 and only ever makes a
//! blob visible after it was written in full and its digest checked. Everything else (cache
//! entries, tags, users) is small, keyed and mutable, so the [`MetadataStore`] offers
//! versioned records with compare-and-swap, the one primitive several replicas sharing one
//! store need to update a record safely.
//!
//! Neither trait mentions a local path: an object-store backend can implement both.

mod fs;
mod hot;
mod memory;
mod redb_store;

use std::fmt::Debug;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::digest::Digest;
use crate::error::Result;

pub use self::fs::FsBlobStore;
pub use self::hot::HotBlobs;
pub use self::memory::{MemoryBlobStore, MemoryMetadataStore};
pub use self::redb_store::RedbMetadataStore;

/// What a blob must turn out to be for a write to commit.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Digests the content must match, in any supported algorithm.
    pub digests: Vec<Digest>,
    /// Exact length, when known in advance.
    pub size: Option<u64>,
    /// Refuse bodies longer than this many bytes.
    pub max_size: Option<u64>,
}

impl Expected {
    /// Nothing expected beyond what the store computes itself.
    pub fn none() -> Self {
        Self::default()
    }

    /// Expects one digest.
    pub fn digest(digest: Digest) -> Self {
        Expected {
            digests: vec![digest],
            ..Self::default()
        }
    }
}

/// A committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The content address.
    pub digest: Digest,
    /// Length in bytes.
    pub size: u64,
}

/// A stream of blob bytes, or of an error that aborts the read.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// An open blob, ready to stream.
pub struct BlobRead {
    /// The whole blob's size, whatever range was asked for.
    pub size: u64,
    /// The byte range the stream yields.
    pub range: Range<u64>,
    /// The bytes of `range`.
    pub stream: ByteStream,
}

impl Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish()
    }
}

/// Content-addressed storage for artifacts.
///
/// Implementations must guarantee that a blob readable under a digest holds exactly the bytes
/// of that digest: writes go to a temporary place and become visible atomically on
/// [`BlobWriter::commit`], and a writer dropped without commit leaves nothing behind.
#[async_trait]
pub trait BlobStore: Send + Sync + Debug + 'static {
    /// Starts a write whose content must satisfy `expected` to commit.
    async fn writer(&self, expected: Expected) -> Result<Box<dyn BlobWriter>>;

    /// Opens a blob for reading, optionally a byte range of it (end exclusive).
    ///
    /// Fails with [`Error::NotFound`](crate::Error::NotFound) for an unknown digest and
    /// [`Error::RangeNotSatisfiable`](crate::Error::RangeNotSatisfiable) for a range
    /// beyond the end.
    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobRead>;

    /// The size of a blob, or `None` when it is not stored.
    async fn size(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Removes a blob; removing a missing blob is not an error.
    async fn delete(&self, digest: &Digest) -> Result<()>;
}

/// A blob being written. Dropping it without [`commit`](BlobWriter::commit) discards it.
#[async_trait]
pub trait BlobWriter: Send + Debug {
    /// Appends bytes.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Checks the written bytes against what was expected and, if they match, makes the blob
    /// visible under its sha256.
    async fn commit(self: Box<Self>) -> Result<BlobInfo>;
}

/// Writes a whole buffer as one verified blob.
pub async fn put_bytes(
    store: &dyn BlobStore,
    bytes: Bytes,
    expected: Expected,
) -> Result<BlobInfo> {
    let mut writer = store.writer(expected).await?;
    writer.write(bytes).await?;
    writer.commit().await
}

/// Reads a whole blob into memory; meant for small documents, never for artifacts.
pub async fn read_to_bytes(store: &dyn BlobStore, digest: &Digest) -> Result<Bytes> {
    use futures_util::TryStreamExt;
    let read = store.read(digest, None).await?;
    let capacity = usize::try_from(read.size).unwrap_or(0);
    let buf = bytes::BytesMut::with_capacity(capacity);
    let buf = read.stream.try_fold(buf, |mut buf, chunk| async move {
        buf.extend_from_slice(&chunk);
        Ok(buf)
    });
    Ok(buf.await?.freeze())
}

/// A stored record and the version a compare-and-swap must name to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The stored bytes.
    pub value: Bytes,
    /// Increases on every write of the key.
    pub version: u64,
}

/// The condition a metadata write must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Precondition {
    /// Write whatever is there.
    None,
    /// Write only if the key does not exist.
    Absent,
    /// Write only if the key is at exactly this version.
    Version(u64),
}

/// Small keyed records with compare-and-swap.
///
/// Keys are UTF-8 strings; by convention they are namespaced with `/` (for example
/// `npm/cache/packument/react`) so that [`list`](MetadataStore::list) can scan one
/// namespace in key order.
#[async_trait]
pub trait MetadataStore: Send + Sync + Debug + 'static {
    /// Reads a record.
    async fn get(&self, key: &str) -> Result<Option<Record>>;

    /// Writes a record if `precondition` holds, returning the new version; fails with
    /// [`Error::Conflict`](crate::Error::Conflict) otherwise.
    async fn put(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<u64>;

    /// Deletes a record if `precondition` holds; deleting a missing key is not an error
    /// unless a version was required.
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<()>;

    /// Lists up to `limit` records whose keys start with `prefix`, in key order, starting
    /// after `start_after` when given.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>>;
}

/// Checks a precondition against the current version of a key, for implementations.
pub fn check_precondition(
    key: &str,
    current: Option<u64>,
    precondition: Precondition,
) -> Result<()> {
    let holds = match precondition {
        Precondition::None => true,
        Precondition::Absent => current.is_none(),
        Precondition::Version(want) => current == Some(want),
    };
    if holds {
        Ok(())
    } else {
        Err(crate::Error::Conflict {
            key: key.to_owned(),
        })
    }
}

#[cfg(test)]
pub(crate) mod conformance;

/// Hashes a blob as it is written and checks it against [`Expected`]; the shared part of
/// every [`BlobWriter`] implementation.
#[derive(Debug)]
pub struct WriteVerifier {
    hasher: crate::digest::MultiHasher,
    expected: Expected,
}

impl WriteVerifier {
    /// A verifier for `expected`.
    pub fn new(expected: Expected) -> Self {
        let algorithms = expected.digests.iter().map(Digest::algorithm);
        WriteVerifier {
            hasher: crate::digest::MultiHasher::new(algorithms),
            expected,
        }
    }

    /// Feeds a chunk, failing as soon as the body grows past its size or limit.
    pub fn update(&mut self, chunk: &[u8]) -> Result<()> {
        let len = self.hasher.len() + chunk.len() as u64;
        if let Some(limit) = self.expected.max_size.filter(|limit| len > *limit) {
            return Err(crate::Error::TooLarge { limit });
        }
        if let Some(size) = self.expected.size.filter(|size| len > *size) {
            return Err(crate::Error::LengthMismatch {
                expected: size,
                actual: len,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// Checks length and digests, returning what the blob is.
    pub fn finish(self) -> Result<BlobInfo> {
        let digests = self.hasher.finish();
        if let Some(size) = self.expected.size.filter(|size| *size != digests.len) {
            return Err(crate::Error::LengthMismatch {
                expected: size,
                actual: digests.len,
            });
        }
        digests.verify(&self.expected.digests)?;
        Ok(BlobInfo {
            digest: digests.sha256,
            size: digests.len,
        })
    }
}
