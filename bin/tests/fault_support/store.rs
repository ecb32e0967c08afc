//! What the data directory holds, checked from outside the server: every blob is whole and
//! named by its own digest, every cache record points at a whole blob, and no temporary
//! file outlives a failed write.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use mirror_core::{MetadataStore as _, RedbMetadataStore};
use sha2::{Digest as _, Sha256};

/// How long a server may take to clean up after a failed download.
const CLEANUP: Duration = Duration::from_secs(10);

/// The sha256 hex names of the blobs stored under `data_dir`.
pub(crate) fn blob_names(data_dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Ok(prefixes) = std::fs::read_dir(data_dir.join("blobs/sha256")) else {
        return names;
    };
    for prefix in prefixes {
        let prefix = prefix.expect("list a blob prefix directory");
        for blob in std::fs::read_dir(prefix.path()).expect("list blobs") {
            let blob = blob.expect("a blob entry");
            names.insert(blob.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

/// Asserts that every blob's content hashes to its name, that every cache record names a
/// stored blob of the recorded size, and that no temporary file is left in the blob store
/// or the spool once the server settles.
pub(crate) async fn assert_consistent(data_dir: &Path) {
    for name in blob_names(data_dir) {
        let path = blob_path(data_dir, &name);
        let bytes = std::fs::read(&path).expect("read a stored blob");
        let actual = hex::encode(Sha256::digest(&bytes));
        let shown = path.display();
        assert_eq!(
            actual, name,
            "blob {shown} holds other bytes than its name says"
        );
    }
    assert_records_name_whole_blobs(data_dir).await;

    let deadline = Instant::now() + CLEANUP;
    loop {
        let leftovers = leftovers(data_dir);
        if leftovers.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "temporary files outlived the failed writes: {leftovers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn leftovers(data_dir: &Path) -> Vec<String> {
    ["blobs/tmp", "spool"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(data_dir.join(dir)).ok())
        .flatten()
        .map(|entry| {
            entry
                .expect("a directory entry")
                .path()
                .display()
                .to_string()
        })
        .collect()
}

fn blob_path(data_dir: &Path, hex: &str) -> std::path::PathBuf {
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Reads the cache records beside the running server (the store allows several processes)
/// and checks that each names a blob stored whole.
async fn assert_records_name_whole_blobs(data_dir: &Path) {
    let metadata = RedbMetadataStore::open(data_dir.join("metadata.redb"))
        .expect("open the metadata store beside the server");
    let records = metadata
        .list("cache/", None, usize::MAX)
        .await
        .expect("list the cache records");
    for (key, record) in records {
        let record: serde_json::Value =
            serde_json::from_slice(&record.value).expect("a cache record is JSON");
        if record["kind"] != "entry" {
            continue;
        }
        let digest = record["digest"]
            .as_str()
            .expect("an entry names its digest");
        let hex = digest
            .strip_prefix("sha256:")
            .expect("blobs are named by sha256");
        let size = std::fs::metadata(blob_path(data_dir, hex)).map(|meta| meta.len());
        assert_eq!(
            size.ok(),
            record["size"].as_u64(),
            "{key} names {digest}, which is not stored whole"
        );
    }
}
