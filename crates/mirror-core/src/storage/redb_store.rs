//! Metadata records in a redb database file.
//!
//! redb is opened in its multi-writer mode, so the CLI can add a user or token while the
//! server runs on the same data directory and both see each other's commits at once. Every
//! call is a short transaction run on tokio's blocking pool, since redb's API is synchronous
//! and a commit waits for the disk.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{check_precondition, MetadataStore, Precondition, Record};
use crate::error::{Error, Result};

/// key → (version, value)
const RECORDS: TableDefinition<'_, &str, (u64, &[u8])> = TableDefinition::new("records");

/// A [`MetadataStore`] in one redb file.
#[derive(Clone)]
pub struct RedbMetadataStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for RedbMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbMetadataStore").finish_non_exhaustive()
    }
}

impl RedbMetadataStore {
    /// Opens or creates the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .create(path.as_ref())
            .map_err(Error::storage)?;
        let txn = db.begin_write().map_err(Error::storage)?;
        txn.open_table(RECORDS).map_err(Error::storage)?;
        txn.commit().map_err(Error::storage)?;
        Ok(RedbMetadataStore { db: Arc::new(db) })
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(Error::storage)?
    }
}

fn read_version(
    table: &impl ReadableTable<&'static str, (u64, &'static [u8])>,
    key: &str,
) -> Result<Option<u64>> {
    Ok(table
        .get(key)
        .map_err(Error::storage)?
        .map(|guard| guard.value().0))
}

#[async_trait]
impl MetadataStore for RedbMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<Record>> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(Error::storage)?;
            let table = txn.open_table(RECORDS).map_err(Error::storage)?;
            let found = table.get(key.as_str()).map_err(Error::storage)?;
            Ok(found.map(|guard| {
                let (version, value) = guard.value();
                Record {
                    value: Bytes::copy_from_slice(value),
                    version,
                }
            }))
        })
        .await
    }

    async fn put(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<u64> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(Error::storage)?;
            let version = {
                let mut table = txn.open_table(RECORDS).map_err(Error::storage)?;
                let current = read_version(&table, &key)?;
                check_precondition(&key, current, precondition)?;
                let version = current.map_or(1, |v| v + 1);
                table
                    .insert(key.as_str(), (version, value.as_ref()))
                    .map_err(Error::storage)?;
                version
            };
            txn.commit().map_err(Error::storage)?;
            Ok(version)
        })
        .await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<()> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(Error::storage)?;
            {
                let mut table = txn.open_table(RECORDS).map_err(Error::storage)?;
                let current = read_version(&table, &key)?;
                check_precondition(&key, current, precondition)?;
                table.remove(key.as_str()).map_err(Error::storage)?;
            }
            txn.commit().map_err(Error::storage)
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>> {
        let prefix = prefix.to_owned();
        let start = start_after.unwrap_or(&prefix).to_owned();
        let skip_start = start_after.is_some();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(Error::storage)?;
            let table = txn.open_table(RECORDS).map_err(Error::storage)?;
            let mut listed = Vec::new();
            for item in table.range(start.as_str()..).map_err(Error::storage)? {
                let (key, value) = item.map_err(Error::storage)?;
                let key = key.value();
                if skip_start && key == start {
                    continue;
                }
                if !key.starts_with(&prefix) || listed.len() >= limit {
                    break;
                }
                let (version, bytes) = value.value();
                listed.push((
                    key.to_owned(),
                    Record {
                        value: Bytes::copy_from_slice(bytes),
                        version,
                    },
                ));
            }
            Ok(listed)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn redb_metadata_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbMetadataStore::open(dir.path().join("meta.redb")).unwrap();
        super::super::conformance::metadata_store(&store).await;
    }

    #[tokio::test]
    async fn two_handles_on_one_file_see_each_others_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let first = RedbMetadataStore::open(&path).unwrap();
        let second = RedbMetadataStore::open(&path).unwrap();
        first
            .put(
                "users/alice",
                Bytes::from_static(b"a"),
                Precondition::Absent,
            )
            .await
            .unwrap();
        let seen = second.get("users/alice").await.unwrap().unwrap();
        assert_eq!(seen.value, Bytes::from_static(b"a"));
    }
}
