"""The container images of the benchmark, written as one OCI image layout for skopeo.

An OCI image layout is a directory with `oci-layout`, `index.json` (naming each image by
a tag in its `org.opencontainers.image.ref.name` annotation) and every blob under
`blobs/sha256/<hex>`. skopeo pushes each tag from it to the fixture registry
(`skopeo copy --preserve-digests oci:DIR:TAG docker://...`), so that the registry holds
exactly these bytes under these digests.

One repository, three tags:

    1.0    a small image: a config and one ~25 KB gzip'd tar layer (the image skopeo
           copies through each server, and the 25 KB blob of the cached rows)
    huge   a config and one 1 GiB layer (the 1 GiB cached blob)
    cold   a config and one 200 MiB layer (the cold miss; nothing fetches it before)

The two large layers are the harness's cached random files (fixtures.big_file), declared
as uncompressed tar layers: no client unpacks them, and `--preserve-digests` keeps skopeo
from compressing them on the way up.
"""

import gzip
import hashlib
import io
import json
import os
import random
import tarfile

import fixtures

REPOSITORY = "bench/app"
SMALL_TAG, HUGE_TAG, COLD_TAG = "1.0", "huge", "cold"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def _sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def _put_blob(layout, data):
    """Writes `data` under blobs/sha256/ and returns its hex digest."""
    hex_digest = _sha256_hex(data)
    path = os.path.join(layout, "blobs", "sha256", hex_digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)
    return hex_digest


def _descriptor(media_type, hex_digest, size):
    return {"mediaType": media_type, "digest": "sha256:" + hex_digest, "size": size}


def _small_layer(rng):
    """A real gzip'd tar of about 25 KB, holding one file of random bytes."""
    payload = rng.randbytes(fixtures.ARTIFACT_BYTES - 600)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("bench/data.bin")
        info.size, info.mtime, info.mode = len(payload), 499162500, 0o644
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return tar_bytes, gzip.compress(tar_bytes, compresslevel=6, mtime=0)


def _image(layout, tag, layer, diff_id_hex):
    """Writes the config and manifest of a one-layer image; returns its manifest record."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": fixtures.EPOCH,
            "config": {"Cmd": ["/bench"], "Labels": {"bench.tag": tag}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id_hex]},
        },
        sort_keys=True,
    ).encode()
    config_hex = _put_blob(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config_hex, len(config)),
            "layers": [layer],
        },
    ).encode()
    manifest_hex = _put_blob(layout, manifest)
    return {
        "tag": tag,
        "manifest": manifest,
        "manifest_digest": "sha256:" + manifest_hex,
        "config_digest": "sha256:" + config_hex,
        "layer_digest": layer["digest"],
        "layer_bytes": layer["size"],
    }


def _big_layer(layout, cache_dir, name, size):
    path, digests = fixtures.big_file(cache_dir, name, size)
    fixtures._link(path, os.path.join(layout, "blobs", "sha256", digests["sha256"]))
    return _descriptor(OCI_LAYER_TAR, digests["sha256"], size), digests["sha256"]


def generate(layout, cache_dir):
    """Writes the layout (tags 1.0, huge, cold) under `layout`; returns what the container
    scenarios use: paths relative to a registry root, digests and the manifests' bytes."""
    rng = random.Random(7)
    os.makedirs(layout, exist_ok=True)
    tar_bytes, gz_bytes = _small_layer(rng)
    small_hex = _put_blob(layout, gz_bytes)
    small = _image(
        layout, SMALL_TAG, _descriptor(OCI_LAYER_GZIP, small_hex, len(gz_bytes)),
        _sha256_hex(tar_bytes),
    )  # fmt: skip
    huge = _image(layout, HUGE_TAG, *_big_layer(layout, cache_dir, "npm-huge.bin", fixtures.HUGE_BYTES))
    cold = _image(layout, COLD_TAG, *_big_layer(layout, cache_dir, "npm-cold.bin", fixtures.COLD_BYTES))
    images = (small, huge, cold)
    index = {
        "schemaVersion": 2,
        "manifests": [
            dict(
                _descriptor(OCI_MANIFEST, image["manifest_digest"][7:], len(image["manifest"])),
                annotations={"org.opencontainers.image.ref.name": image["tag"]},
            )
            for image in images
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as out:
        json.dump(index, out)
    with open(os.path.join(layout, "oci-layout"), "w") as out:
        out.write('{"imageLayoutVersion":"1.0.0"}')

    def blob_path(digest):
        return "/v2/%s/blobs/%s" % (REPOSITORY, digest)

    return {
        "repository": REPOSITORY,
        "images": {image["tag"]: image for image in images},
        "manifest_path": "/v2/%s/manifests/%s" % (REPOSITORY, SMALL_TAG),
        "small_blob": blob_path(small["layer_digest"]),
        "small_blob_bytes": small["layer_bytes"],
        "huge_blob": blob_path(huge["layer_digest"]),
        "cold_blob": blob_path(cold["layer_digest"]),
        "huge_bytes": fixtures.HUGE_BYTES,
        "cold_bytes": fixtures.COLD_BYTES,
    }
