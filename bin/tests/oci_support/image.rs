//! Container images built in memory and written as OCI image layouts for skopeo to push.

use std::io::Write as _;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Content with its media type and digest.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub(crate) media_type: &'static str,
    pub(crate) bytes: Vec<u8>,
    /// `sha256:<hex>`.
    pub(crate) digest: String,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        Blob {
            media_type,
            bytes,
            digest,
        }
    }

    /// The digest without its algorithm, as skopeo's `dir:` transport names files.
    pub(crate) fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// A single-platform image: one gzip'd tar layer, a config, a manifest.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) arch: String,
    pub(crate) config: Blob,
    pub(crate) layer: Blob,
    pub(crate) manifest: Blob,
}

impl Image {
    /// An image whose layer holds `files`.
    pub(crate) fn new(arch: &str, files: &[(&str, &[u8])]) -> Self {
        let tar = tar_of(files);
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
        let layer = Blob::new(OCI_LAYER_GZIP, gzip(&tar));
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        let config = Blob::new(OCI_CONFIG, config.to_string().into_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        let manifest = Blob::new(OCI_MANIFEST, manifest.to_string().into_bytes());
        Image {
            arch: arch.to_owned(),
            config,
            layer,
            manifest,
        }
    }

    /// Writes the image as an OCI layout whose index names it `tag`.
    pub(crate) fn write_layout(&self, dir: &Path, tag: &str) {
        write_layout(dir, tag, &self.manifest, [&self.config, &self.layer]);
    }
}

/// A multi-platform image: an OCI index of several images.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    pub(crate) images: Vec<Image>,
    pub(crate) index: Blob,
}

impl Index {
    pub(crate) fn new(images: Vec<Image>) -> Self {
        let manifests: Vec<Value> = images
            .iter()
            .map(|image| {
                let mut descriptor = image.manifest.descriptor();
                descriptor["platform"] = json!({"architecture": image.arch, "os": "linux"});
                descriptor
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let index = Blob::new(OCI_INDEX, index.to_string().into_bytes());
        Index { images, index }
    }

    /// Writes the index and every image as an OCI layout whose index names it `tag`.
    pub(crate) fn write_layout(&self, dir: &Path, tag: &str) {
        let blobs = self
            .images
            .iter()
            .flat_map(|image| [&image.manifest, &image.config, &image.layer]);
        write_layout(dir, tag, &self.index, blobs);
    }
}

fn write_layout<'a>(
    dir: &Path,
    tag: &str,
    top: &'a Blob,
    blobs: impl IntoIterator<Item = &'a Blob>,
) {
    let blob_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir).expect("create the layout's blob directory");
    for blob in blobs.into_iter().chain([top]) {
        std::fs::write(blob_dir.join(blob.hex()), &blob.bytes).expect("write a layout blob");
    }
    let mut descriptor = top.descriptor();
    descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index = json!({"schemaVersion": 2, "manifests": [descriptor]});
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, name, *content)
            .expect("append a file to the layer");
    }
    builder.into_inner().expect("finish the layer tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("compress the layer");
    encoder.finish().expect("finish the gzip stream")
}

/// `len` bytes that do not compress, different for each `seed`.
pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}
