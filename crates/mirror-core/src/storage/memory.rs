//! Stores that live in memory: for tests, and for embedders that want no disk.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{
    check_precondition, BlobInfo, BlobRead, BlobStore, BlobWriter, Expected, MetadataStore,
    Precondition, Record, WriteVerifier,
};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// A [`BlobStore`] in a hash map.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    blobs: Arc<Mutex<HashMap<Digest, Bytes>>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many blobs are stored.
    pub fn len(&self) -> usize {
        self.blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn writer(&self, expected: Expected) -> Result<Box<dyn BlobWriter>> {
        let verifier = WriteVerifier::new(expected);
        Ok(Box::new(MemoryBlobWriter {
            store: self.clone(),
            verifier,
            buf: BytesMut::new(),
        }))
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobRead> {
        let bytes = self.get(digest).ok_or(Error::NotFound)?;
        let size = bytes.len() as u64;
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(Error::RangeNotSatisfiable { size });
        }
        let slice = bytes.slice(range.start as usize..range.end as usize);
        let stream = Box::pin(futures_util::stream::once(async move { Ok(slice) }));
        Ok(BlobRead {
            size,
            range,
            stream,
        })
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.get(digest).map(|bytes| bytes.len() as u64))
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(digest);
        Ok(())
    }
}

#[derive(Debug)]
struct MemoryBlobWriter {
    store: MemoryBlobStore,
    verifier: WriteVerifier,
    buf: BytesMut,
}

#[async_trait]
impl BlobWriter for MemoryBlobWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.verifier.update(&chunk)?;
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<BlobInfo> {
        let info = self.verifier.finish()?;
        let mut blobs = self
            .store
            .blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        blobs.insert(info.digest.clone(), self.buf.freeze());
        Ok(info)
    }
}

/// A [`MetadataStore`] in an ordered map.
#[derive(Debug, Clone, Default)]
pub struct MemoryMetadataStore {
    records: Arc<Mutex<BTreeMap<String, Record>>>,
}

impl MemoryMetadataStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl MetadataStore for MemoryMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<Record>> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned())
    }

    async fn put(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<u64> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let current = records.get(key).map(|record| record.version);
        check_precondition(key, current, precondition)?;
        let version = current.map_or(1, |v| v + 1);
        records.insert(key.to_owned(), Record { value, version });
        Ok(version)
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<()> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let current = records.get(key).map(|record| record.version);
        check_precondition(key, current, precondition)?;
        records.remove(key);
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let start = start_after.unwrap_or(prefix).to_owned();
        let listed = records
            .range(start..)
            .filter(|(key, _)| Some(key.as_str()) != start_after)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, record)| (key.clone(), record.clone()))
            .collect();
        Ok(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_blob_store_conforms() {
        super::super::conformance::blob_store(&MemoryBlobStore::new()).await;
    }

    #[tokio::test]
    async fn memory_metadata_store_conforms() {
        super::super::conformance::metadata_store(&MemoryMetadataStore::new()).await;
    }
}
