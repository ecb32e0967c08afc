//! Blobs as files on local disk.
//!
//! A write lands in `tmp/` under a random name and is renamed to
//! `sha256/<first two hex digits>/<hex>` only after its digest checked out and its data
//! reached the disk. A rename within one filesystem is atomic, so a reader (or a process
//! restarted after a crash) sees either the whole blob or none of it; leftover temporary
//! files are swept when the store opens.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::{BlobInfo, BlobRead, BlobStore, BlobWriter, Expected, WriteVerifier};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};

/// Chunks smaller than this are gathered before a write reaches the file.
const WRITE_BUFFER: usize = 256 * 1024;
/// Temporary files older than this belong to a write that can no longer finish.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);
/// Read size when streaming a blob out; a blob of at most this is read in one go.
const READ_CHUNK: usize = 256 * 1024;
/// Read size for the chunks of a larger blob, one of which is read ahead while the
/// previous one is being sent.
const STREAM_CHUNK: u64 = 512 * 1024;

/// A [`BlobStore`] on a local directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    sync: bool,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store under `root`, removing temporary files that a
    /// crashed process left behind.
    ///
    /// Several processes may share one store (a server and the CLI), so only temporary files
    /// untouched for an hour are swept, never a write still in progress.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("sha256"))?;
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        sweep_stale_temp_files(&tmp)?;
        Ok(FsBlobStore { root, sync: true })
    }

    /// Whether commits wait for data to reach the disk (the default). Turning this off trades
    /// durability across power loss for speed; a process crash is safe either way.
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    fn path_of(&self, digest: &Digest) -> Result<PathBuf> {
        if digest.algorithm() != Algorithm::Sha256 {
            return Err(Error::Invalid("blobs are addressed by sha256".into()));
        }
        let hex = digest.hex();
        Ok(self.root.join("sha256").join(&hex[..2]).join(hex))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn writer(&self, expected: Expected) -> Result<Box<dyn BlobWriter>> {
        let tmp_dir = self.root.join("tmp");
        let file = tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(tmp_dir))
            .await
            .map_err(Error::storage)??;
        Ok(Box::new(FsBlobWriter {
            store: self.clone(),
            file: Some(file),
            buf: BytesMut::new(),
            verifier: WriteVerifier::new(expected),
        }))
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobRead> {
        let path = self.path_of(digest)?;
        // One trip to the blocking pool opens, measures and, for a small read, reads it all.
        let opened = tokio::task::spawn_blocking(move || open_range(&path, range))
            .await
            .map_err(Error::storage)??;
        let stream = match opened.body {
            Opened::Whole(bytes) => futures_util::stream::once(async move { Ok(bytes) }).boxed(),
            Opened::File(file) => file_stream(file, opened.range.end - opened.range.start),
        };
        Ok(BlobRead {
            size: opened.size,
            range: opened.range,
            stream,
        })
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path_of(digest)?).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        match tokio::fs::remove_file(self.path_of(digest)?).await {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
struct FsBlobWriter {
    store: FsBlobStore,
    /// `None` only while a blocking write owns it.
    file: Option<tempfile::NamedTempFile>,
    buf: BytesMut,
    verifier: WriteVerifier,
}

impl FsBlobWriter {
    async fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::storage("writer already failed"))?;
        let file = tokio::task::spawn_blocking(move || file.write_all(&chunk).map(|()| file))
            .await
            .map_err(Error::storage)??;
        self.file = Some(file);
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for FsBlobWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.verifier.update(&chunk)?;
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() >= WRITE_BUFFER {
            self.flush_buf().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<BlobInfo> {
        self.flush_buf().await?;
        let FsBlobWriter {
            store,
            file,
            verifier,
            ..
        } = *self;
        let info = verifier.finish()?;
        let file = file.ok_or_else(|| Error::storage("writer already failed"))?;
        let target = store.path_of(&info.digest)?;
        let sync = store.sync;
        tokio::task::spawn_blocking(move || persist(file, &target, sync))
            .await
            .map_err(Error::storage)??;
        Ok(info)
    }
}

/// A blob opened for reading: its size, the range to serve and how to serve it.
struct OpenedBlob {
    size: u64,
    range: Range<u64>,
    body: Opened,
}

enum Opened {
    /// A read of at most one chunk, done at once.
    Whole(Bytes),
    /// A larger read, positioned at the range's start.
    File(File),
}

fn open_range(path: &Path, range: Option<Range<u64>>) -> Result<OpenedBlob> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound),
        Err(err) => return Err(err.into()),
    };
    let size = file.metadata()?.len();
    let range = range.unwrap_or(0..size);
    if range.start > range.end || range.end > size {
        return Err(Error::RangeNotSatisfiable { size });
    }
    if range.start > 0 {
        file.seek(SeekFrom::Start(range.start))?;
    }
    let len = range.end - range.start;
    let body = if len <= READ_CHUNK as u64 {
        // At most READ_CHUNK, so it fits a usize.
        let mut buf = vec![0; len as usize];
        file.read_exact(&mut buf)?;
        Opened::Whole(Bytes::from(buf))
    } else {
        Opened::File(file)
    };
    Ok(OpenedBlob { size, range, body })
}

/// Streams the next `len` bytes of `file`, each chunk read on the blocking pool straight
/// into the buffer that is sent, the next one already being read while a chunk is out.
///
/// `tokio::fs::File` would read into a buffer of its own and copy from there; at gigabytes
/// per blob that copy and a pool trip per 256 KiB are most of a cached hit's cost.
fn file_stream(file: File, len: u64) -> super::ByteStream {
    let file = std::sync::Arc::new(file);
    let first = read_chunk(&file, len);
    let state = (file, len - first.0, Some(first.1));
    futures_util::stream::unfold(state, |(file, remaining, pending)| async move {
        let chunk = match pending?.await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(err)) => return Some((Err(err), (file, 0, None))),
            Err(join) => return Some((Err(Error::storage(join)), (file, 0, None))),
        };
        let next = (remaining > 0).then(|| read_chunk(&file, remaining));
        let remaining = remaining - next.as_ref().map_or(0, |(n, _)| *n);
        Some((Ok(chunk), (file, remaining, next.map(|(_, handle)| handle))))
    })
    .boxed()
}

/// Starts reading the next chunk of at most `remaining` bytes; returns its length.
fn read_chunk(file: &std::sync::Arc<File>, remaining: u64) -> (u64, JoinHandle<Result<Bytes>>) {
    let want = remaining.min(STREAM_CHUNK);
    let file = std::sync::Arc::clone(file);
    let handle = tokio::task::spawn_blocking(move || {
        // At most STREAM_CHUNK, so it fits a usize.
        let mut buf = Vec::with_capacity(want as usize);
        (&*file).take(want).read_to_end(&mut buf)?;
        if (buf.len() as u64) < want {
            return Err(Error::storage("blob file ended before its recorded size"));
        }
        Ok(Bytes::from(buf))
    });
    (want, handle)
}

fn sweep_stale_temp_files(tmp: &Path) -> Result<()> {
    for entry in std::fs::read_dir(tmp)? {
        let entry = entry?;
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if age > STALE_TEMP_AGE {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn persist(file: tempfile::NamedTempFile, target: &Path, sync: bool) -> Result<()> {
    if sync {
        file.as_file().sync_data()?;
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    file.persist(target).map_err(|err| Error::from(err.error))?;
    if sync {
        if let Some(dir) = target.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fs_blob_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        super::super::conformance::blob_store(&store).await;
    }

    #[tokio::test]
    async fn large_blobs_stream_whole_and_in_ranges_across_chunks() {
        use futures_util::TryStreamExt;

        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..1_300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let info = super::super::put_bytes(&store, Bytes::from(data.clone()), Expected::none())
            .await
            .unwrap();
        let chunk = STREAM_CHUNK;
        for range in [None, Some(100..1_200_000), Some(chunk - 1..chunk * 2 + 1)] {
            let read = store.read(&info.digest, range.clone()).await.unwrap();
            let parts: Vec<Bytes> = read.stream.try_collect().await.unwrap();
            let want = range.map_or(&data[..], |r| &data[r.start as usize..r.end as usize]);
            assert_eq!(parts.concat(), want);
            assert!(parts.iter().all(|part| part.len() as u64 <= chunk));
        }
    }

    #[tokio::test]
    async fn dropped_writer_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut writer = store.writer(Expected::none()).await.unwrap();
        writer.write(Bytes::from_static(b"partial")).await.unwrap();
        writer
            .write(Bytes::from(vec![7u8; WRITE_BUFFER]))
            .await
            .unwrap();
        drop(writer);
        let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
        assert_eq!(leftovers, 0);
    }

    #[tokio::test]
    async fn reopening_sweeps_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        FsBlobStore::open(dir.path()).unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::write(tmp.join("in-progress"), b"half").unwrap();
        let crashed = File::create(tmp.join("crashed-write")).unwrap();
        let long_ago = std::time::SystemTime::now() - 2 * STALE_TEMP_AGE;
        crashed.set_modified(long_ago).unwrap();
        FsBlobStore::open(dir.path()).unwrap();
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("in-progress")]);
    }
}
