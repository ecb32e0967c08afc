//! What the data directory holds, checked from outside the server: every blob is whole and
//! named by its own digest, and no temporary file outlives a failed write.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// Asserts that every blob's content hashes to its name, and that no temporary file is
/// left in the blob store or the spool once the server settles.
pub(crate) async fn assert_consistent(data_dir: &Path) {
    for name in blob_names(data_dir) {
        let path = data_dir.join("blobs/sha256").join(&name[..2]).join(&name);
        let bytes = std::fs::read(&path).expect("read a stored blob");
        let actual = hex::encode(Sha256::digest(&bytes));
        assert_eq!(
            actual,
            name,
            "blob {} holds other bytes than its name says",
            path.display()
        );
    }

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
