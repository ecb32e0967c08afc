//! Small, recently read blobs kept in memory in front of any [`BlobStore`].
//!
//! A cached hit on a small artifact or a package document otherwise costs a `stat`, an
//! `open` and a `read` on the backing store for every request. Blobs are immutable and named
//! by their digest, so a copy held in memory can never disagree with the store: the only
//! change a blob sees is its deletion, which goes through this wrapper too.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{BlobRead, BlobStore, BlobWriter, Expected};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::memo::BytesCache;

/// A [`BlobStore`] that keeps blobs of up to `max_entry` bytes in memory after their first whole
/// read, within a total of `budget` bytes, evicting the least recently used first (a
/// second-chance queue). Larger blobs stream from the inner store as before.
#[derive(Debug)]
pub struct HotBlobs {
    inner: Arc<dyn BlobStore>,
    max_entry: u64,
    held: BytesCache<Digest>,
}

impl HotBlobs {
    /// Wraps `inner`, keeping blobs of at most `max_entry` bytes, `budget` bytes in all.
    pub fn new(inner: Arc<dyn BlobStore>, budget: u64, max_entry: u64) -> Self {
        HotBlobs {
            inner,
            max_entry: max_entry.min(budget),
            held: BytesCache::new(budget),
        }
    }

    /// Bytes held in memory now.
    pub fn held_bytes(&self) -> u64 {
        self.held.held_bytes()
    }

    fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.held.get(digest)
    }
}

/// The part `range` asks for of a blob held whole.
fn slice(bytes: &Bytes, range: Option<Range<u64>>) -> Result<BlobRead> {
    let size = bytes.len() as u64;
    let range = range.unwrap_or(0..size);
    if range.start > range.end || range.end > size {
        return Err(Error::RangeNotSatisfiable { size });
    }
    // Both ends are within `bytes.len()`, a usize.
    let part = bytes.slice(range.start as usize..range.end as usize);
    Ok(BlobRead {
        size,
        range,
        stream: futures_util::stream::once(async move { Ok(part) }).boxed(),
    })
}

#[async_trait]
impl BlobStore for HotBlobs {
    async fn writer(&self, expected: Expected) -> Result<Box<dyn BlobWriter>> {
        self.inner.writer(expected).await
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobRead> {
        if let Some(bytes) = self.get(digest) {
            return slice(&bytes, range);
        }
        if range.is_some() {
            // A part of a blob not held: read just that part; whole reads fill the memory.
            return self.inner.read(digest, range).await;
        }
        let whole = self.inner.read(digest, None).await?;
        if whole.size > self.max_entry {
            return Ok(whole);
        }
        let mut buf = BytesMut::with_capacity(whole.size as usize);
        let mut stream = whole.stream;
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        if buf.len() as u64 != whole.size {
            return Err(Error::storage(format!(
                "blob {digest} read {} bytes of {}",
                buf.len(),
                whole.size
            )));
        }
        let bytes = buf.freeze();
        self.held.insert(digest.clone(), bytes.clone());
        slice(&bytes, None)
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        if let Some(bytes) = self.get(digest) {
            return Ok(Some(bytes.len() as u64));
        }
        self.inner.size(digest).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.held.remove(digest);
        self.inner.delete(digest).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{put_bytes, read_to_bytes, MemoryBlobStore};

    fn store(budget: u64, max_entry: u64) -> (Arc<MemoryBlobStore>, HotBlobs) {
        let inner = Arc::new(MemoryBlobStore::new());
        let hot = HotBlobs::new(Arc::clone(&inner) as Arc<dyn BlobStore>, budget, max_entry);
        (inner, hot)
    }

    #[tokio::test]
    async fn hot_blobs_conform() {
        let (_, hot) = store(1 << 20, 1 << 16);
        super::super::conformance::blob_store(&hot).await;
    }

    #[tokio::test]
    async fn small_blobs_are_served_from_memory_after_one_read() {
        let (inner, hot) = store(1000, 100);
        let info = put_bytes(&hot, Bytes::from_static(b"hello world"), Expected::none())
            .await
            .unwrap();
        assert_eq!(hot.held_bytes(), 0, "writes are not cached, reads are");
        assert_eq!(
            &read_to_bytes(&hot, &info.digest).await.unwrap()[..],
            b"hello world"
        );
        assert_eq!(hot.held_bytes(), 11);
        // Gone from the inner store, still whole from memory: blobs never change.
        inner.delete(&info.digest).await.unwrap();
        let part = hot.read(&info.digest, Some(6..11)).await.unwrap();
        assert_eq!(part.size, 11);
        let mut stream = part.stream;
        assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"world");
        assert!(matches!(
            hot.read(&info.digest, Some(5..12)).await,
            Err(Error::RangeNotSatisfiable { size: 11 })
        ));
        assert_eq!(hot.size(&info.digest).await.unwrap(), Some(11));
    }

    #[tokio::test]
    async fn large_blobs_and_deleted_blobs_are_not_held() {
        let (_, hot) = store(1000, 10);
        let big = put_bytes(&hot, Bytes::from(vec![1u8; 50]), Expected::none())
            .await
            .unwrap();
        let read = hot.read(&big.digest, Some(10..20)).await.unwrap();
        assert_eq!(read.range, 10..20);
        assert_eq!(hot.held_bytes(), 0);
        let small = put_bytes(&hot, Bytes::from_static(b"tiny"), Expected::none())
            .await
            .unwrap();
        read_to_bytes(&hot, &small.digest).await.unwrap();
        hot.delete(&small.digest).await.unwrap();
        assert_eq!(hot.held_bytes(), 0);
        assert!(matches!(
            hot.read(&small.digest, None).await,
            Err(Error::NotFound)
        ));
    }

    #[tokio::test]
    async fn the_budget_evicts_blobs_not_read_since() {
        let (_, hot) = store(30, 10);
        let mut digests = Vec::new();
        for i in 0..3u8 {
            let info = put_bytes(&hot, Bytes::from(vec![i; 10]), Expected::none())
                .await
                .unwrap();
            read_to_bytes(&hot, &info.digest).await.unwrap();
            digests.push(info.digest);
        }
        assert_eq!(hot.held_bytes(), 30);
        // The first blob is read again, so the second one goes when a fourth arrives.
        read_to_bytes(&hot, &digests[0]).await.unwrap();
        let fourth = put_bytes(&hot, Bytes::from(vec![9u8; 10]), Expected::none())
            .await
            .unwrap();
        read_to_bytes(&hot, &fourth.digest).await.unwrap();
        assert_eq!(hot.held_bytes(), 30);
        let held: Vec<bool> = digests.iter().map(|d| hot.get(d).is_some()).collect();
        assert_eq!(held, vec![true, false, true]);
    }
}
