"""Static upstream fixtures for the benchmark: an npm registry and a PEP 503 / 691 index.

Everything is generated here, deterministically, so the benchmark needs no network. The
layout under ROOT is what the upstream nginx serves:

    npm/<name>.json                   the packument, served at /npm/<name>
    npm/<name>/-/<name>-<ver>.tgz     tarballs
    simple/index.html|index.v1json    the root listing, served at /simple/
    simple/<project>/index.html|...   project pages (HTML or JSON by Accept)
    files/<project>/<file>            distribution files, linked relatively from the pages
    maven/<group path>/<artifact>/... a Maven 2 layout: listings, jars and poms, each with
                                      the .sha1 that Maven Central publishes beside it

The large artifacts (1 GiB, 200 MiB) are opaque random bytes, generated once into a cache
directory and hard-linked into ROOT; no client ever unpacks them, and every mirror only
checks their digests. The small ones (the npm ci project's ~300 tarballs, the pip
project's wheels) are real, installable packages.
"""

import base64
import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import zipfile

MIB = 1024 * 1024
GIB = 1024 * MIB

# Sizes the scenarios are named after.
MEDIUM_PACKUMENT_BYTES = 500 * 1000
LARGE_PACKUMENT_BYTES = 10 * 1000 * 1000
ARTIFACT_BYTES = 25 * 1000
HUGE_BYTES = 1 * GIB
COLD_BYTES = 200 * MIB

NPM_CLIENT_PACKAGES = 300
NPM_CLIENT_TOP_LEVEL = 30
PIP_CLIENT_PROJECTS = 30
SIMPLE_PAGE_RELEASES = 200
MAVEN_LISTED_VERSIONS = 200

REGISTRY_PLACEHOLDER = "@@REGISTRY@@"
EPOCH = "2024-01-02T03:04:05.000Z"


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as out:
        out.write(data)


def _sri_sha512(data):
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _digests_of_file(path):
    sha1, sha256, sha512 = hashlib.sha1(), hashlib.sha256(), hashlib.sha512()
    with open(path, "rb") as src:
        while chunk := src.read(8 * MIB):
            sha1.update(chunk)
            sha256.update(chunk)
            sha512.update(chunk)
    return {
        "sha1": sha1.hexdigest(),
        "sha256": sha256.hexdigest(),
        "sri": "sha512-" + base64.b64encode(sha512.digest()).decode(),
    }


def big_file(cache_dir, name, size):
    """A file of `size` random bytes in the cache, with its digests; made once."""
    path = os.path.join(cache_dir, name)
    meta_path = path + ".digests.json"
    if os.path.exists(meta_path) and os.path.getsize(path) == size:
        with open(meta_path) as src:
            return path, json.load(src)
    os.makedirs(cache_dir, exist_ok=True)
    with open(path + ".tmp", "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * MIB))
            out.write(chunk)
            left -= len(chunk)
    os.replace(path + ".tmp", path)
    digests = _digests_of_file(path)
    _write(meta_path, json.dumps(digests))
    return path, digests


def _link(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.exists(dst):
        os.unlink(dst)
    try:
        os.link(src, dst)
    except OSError:
        os.symlink(os.path.abspath(src), dst)


# ---------------------------------------------------------------------------------------
# npm


def npm_tarball(name, version, payload, extra_files=()):
    """A real npm tarball: gzip'd tar with package/package.json and an entry point."""
    manifest = json.dumps({"name": name, "version": version, "main": "index.js"}, indent=2)
    members = [
        ("package/package.json", manifest.encode()),
        ("package/index.js", b"module.exports = %s;\n" % json.dumps(name).encode()),
        ("package/data.bin", payload),
        *extra_files,
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in members:
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 499162500, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def _npm_version(base, name, version, rng, dist, dependencies=None):
    return {
        "name": name,
        "version": version,
        "description": "Synthetic package %s for the registry-mirror benchmark" % name,
        "main": "index.js",
        "scripts": {"test": "node test.js"},
        "repository": {"type": "git", "url": "git+https://example.invalid/%s.git" % name},
        "keywords": ["bench", "fixture", "synthetic"],
        "author": {"name": "Bench Fixture", "email": "bench@example.invalid"},
        "license": "MIT",
        "dependencies": dependencies or {},
        "devDependencies": {"left-pad": "^1.%d.0" % rng.randrange(9)},
        "engines": {"node": ">=14"},
        "gitHead": "%040x" % rng.getrandbits(160),
        "_id": "%s@%s" % (name, version),
        "_nodeVersion": "20.11.0",
        "_npmVersion": "10.2.4",
        "dist": dist,
        "_npmUser": {"name": "bench", "email": "bench@example.invalid"},
        "maintainers": [{"name": "bench", "email": "bench@example.invalid"}],
        "directories": {},
        "_hasShrinkwrap": False,
    }


def _fake_dist(base, name, version, rng):
    digest = rng.getrandbits(512).to_bytes(64, "big")
    return {
        "integrity": "sha512-" + base64.b64encode(digest).decode(),
        "shasum": "%040x" % rng.getrandbits(160),
        "tarball": "%s%s/-/%s-%s.tgz" % (base, name, name, version),
        "fileCount": 3,
        "unpackedSize": 20000 + rng.randrange(50000),
    }


def _real_dist(base, name, version, tarball_bytes=None, digests=None):
    if digests is None:
        digests = {
            "sri": _sri_sha512(tarball_bytes),
            "sha1": hashlib.sha1(tarball_bytes).hexdigest(),
        }
    return {
        "integrity": digests["sri"],
        "shasum": digests["sha1"],
        "tarball": "%s%s/-/%s-%s.tgz" % (base, name, name, version),
        "fileCount": 3,
        "unpackedSize": 30000,
    }


def _packument(name, versions):
    latest = list(versions)[-1]
    times = {"created": EPOCH, "modified": EPOCH}
    times.update({v: EPOCH for v in versions})
    return {
        "_id": name,
        "name": name,
        "description": "Synthetic package %s for the registry-mirror benchmark" % name,
        "dist-tags": {"latest": latest},
        "versions": versions,
        "time": times,
        "maintainers": [{"name": "bench", "email": "bench@example.invalid"}],
        "readme": "# %s\n\nA synthetic package.\n" % name,
        "license": "MIT",
    }


def _write_packument(root, name, versions):
    _write(os.path.join(root, "npm", name + ".json"), json.dumps(_packument(name, versions)))


def _sized_packument(root, base, name, target_bytes, rng, last_tarball):
    """Adds fake versions until the packument is about `target_bytes`; the last is real."""
    versions, size, i = {}, 0, 0
    while size < target_bytes - 2500:
        version = "1.%d.%d" % (i // 10, i % 10)
        entry = _npm_version(base, name, version, rng, _fake_dist(base, name, version, rng))
        versions[version] = entry
        size += len(json.dumps(entry)) + 40
        i += 1
    version = "9.0.0"
    dist = _real_dist(base, name, version, tarball_bytes=last_tarball)
    versions[version] = _npm_version(base, name, version, rng, dist)
    _write_packument(root, name, versions)
    _write(os.path.join(root, "npm", name, "-", "%s-%s.tgz" % (name, version)), last_tarball)
    return version


def _npm_big(root, base, name, path, digests, rng):
    version = "1.0.0"
    dist = _real_dist(base, name, version, digests=digests)
    _write_packument(root, name, {version: _npm_version(base, name, version, rng, dist)})
    _link(path, os.path.join(root, "npm", name, "-", "%s-%s.tgz" % (name, version)))
    return "/npm/%s/-/%s-%s.tgz" % (name, name, version)


def _npm_client_project(root, base, rng, out_dir):
    """~300 small real packages, a project depending on 30 of them, and its lockfile."""
    names = ["bench-dep-%03d" % i for i in range(1, NPM_CLIENT_PACKAGES + 1)]
    deps = {name: {} for name in names}
    for i, name in enumerate(names[NPM_CLIENT_TOP_LEVEL:], start=NPM_CLIENT_TOP_LEVEL):
        deps[names[rng.randrange(i)]][name] = "^1.1.0"
    lock_packages = {}
    for name in names:
        payload = rng.randbytes(rng.randrange(1000, 40000))
        tarball = npm_tarball(name, "1.1.0", payload)
        older = _npm_version(base, name, "1.0.0", rng, _fake_dist(base, name, "1.0.0", rng))
        current = _npm_version(
            base, name, "1.1.0", rng, _real_dist(base, name, "1.1.0", tarball), deps[name]
        )
        _write_packument(root, name, {"1.0.0": older, "1.1.0": current})
        _write(os.path.join(root, "npm", name, "-", "%s-1.1.0.tgz" % name), tarball)
        entry = {
            "version": "1.1.0",
            "resolved": "%s%s/-/%s-1.1.0.tgz" % (REGISTRY_PLACEHOLDER, name, name),
            "integrity": _sri_sha512(tarball),
            "license": "MIT",
            "engines": {"node": ">=14"},
        }
        if deps[name]:
            entry["dependencies"] = deps[name]
        lock_packages["node_modules/" + name] = entry
    top = {name: "^1.1.0" for name in names[:NPM_CLIENT_TOP_LEVEL]}
    manifest = {"name": "bench-app", "version": "1.0.0", "private": True, "dependencies": top}
    lock = {
        "name": "bench-app",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {"": {"name": "bench-app", "version": "1.0.0", "dependencies": top}},
    }
    lock["packages"].update(lock_packages)
    _write(os.path.join(out_dir, "package.json"), json.dumps(manifest, indent=2))
    _write(os.path.join(out_dir, "package-lock.json.template"), json.dumps(lock, indent=2))


def npm_lockfile(project_dir, registry):
    """Writes package-lock.json for `registry` (ending in /) from the template."""
    with open(os.path.join(project_dir, "package-lock.json.template")) as src:
        text = src.read().replace(REGISTRY_PLACEHOLDER, registry)
    _write(os.path.join(project_dir, "package-lock.json"), text)


# ---------------------------------------------------------------------------------------
# PyPI


def normalize(name):
    return name.lower().replace("_", "-").replace(".", "-")


def wheel(project, version, payload_size, rng, requires=()):
    """A real, installable pure-Python wheel."""
    module = project.replace("-", "_")
    dist_info = "%s-%s.dist-info" % (module, version)
    body = "DATA = %r\n" % base64.b64encode(rng.randbytes(payload_size)).decode()
    metadata = "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: bench fixture\n" % (
        project,
        version,
    )
    metadata += "".join("Requires-Dist: %s\n" % r for r in requires)
    files = {
        "%s/__init__.py" % module: body.encode(),
        "%s/METADATA" % dist_info: metadata.encode(),
        "%s/WHEEL" % dist_info: b"Wheel-Version: 1.0\nGenerator: bench\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record += "%s,sha256=%s,%d\n" % (path, digest.decode(), len(data))
    record += "%s/RECORD,,\n" % dist_info
    files["%s/RECORD" % dist_info] = record.encode()
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, (2024, 1, 2, 3, 4, 6)), data)
    return "%s-%s-py3-none-any.whl" % (module, version), raw.getvalue()


def _simple_page(root, project, files):
    """files: list of (filename, sha256 hex, size). Writes the HTML and the JSON form."""
    links, entries = [], []
    for filename, sha256, size in files:
        url = "../../files/%s/%s" % (project, filename)
        links.append(
            '<a href="%s#sha256=%s" data-requires-python="&gt;=3.8">%s</a><br/>'
            % (url, sha256, filename)
        )
        entries.append(
            {
                "filename": filename,
                "url": url,
                "hashes": {"sha256": sha256},
                "requires-python": ">=3.8",
                "size": size,
            }
        )
    html = (
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
        "<title>Links for %s</title></head><body><h1>Links for %s</h1>\n%s\n</body></html>\n"
        % (project, project, "\n".join(links))
    )
    page = {"meta": {"api-version": "1.0"}, "name": project, "files": entries}
    _write(os.path.join(root, "simple", project, "index.html"), html)
    _write(os.path.join(root, "simple", project, "index.v1json"), json.dumps(page))


def _simple_root(root, projects):
    html = "<!DOCTYPE html>\n<html><body>\n%s\n</body></html>\n" % "\n".join(
        '<a href="%s/">%s</a><br/>' % (p, p) for p in projects
    )
    page = {"meta": {"api-version": "1.0"}, "projects": [{"name": p} for p in projects]}
    _write(os.path.join(root, "simple", "index.html"), html)
    _write(os.path.join(root, "simple", "index.v1json"), json.dumps(page))


def _pypi_bench_page(root, rng):
    """A popular-looking project page (600 files); one ~25 KB file is real."""
    project, module = "bench-simple", "bench_simple"
    files = []
    for i in range(SIMPLE_PAGE_RELEASES):
        version = "0.%d.%d" % (i // 10, i % 10)
        for name in (
            "%s-%s-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "%s-%s-py3-none-any.whl",
            "%s-%s.tar.gz",
        ):
            files.append((name % (module, version), "%064x" % rng.getrandbits(256), 50000))
    artifact = rng.randbytes(ARTIFACT_BYTES)
    filename = "%s-1.0.0-py3-none-any.whl" % module
    files.append((filename, hashlib.sha256(artifact).hexdigest(), len(artifact)))
    _simple_page(root, project, files)
    _write(os.path.join(root, "files", project, filename), artifact)
    return filename


def _pypi_big(root, project, path, digests, size):
    filename = "%s-1.0.0-py3-none-any.whl" % project.replace("-", "_")
    _simple_page(root, project, [(filename, digests["sha256"], size)])
    _link(path, os.path.join(root, "files", project, filename))
    return filename


def _pip_client_project(root, rng, out_dir):
    """30 projects of three releases each; the client pins the newest of all 30."""
    projects = ["bench-wheel-%02d" % i for i in range(1, PIP_CLIENT_PROJECTS + 1)]
    requires = {p: [] for p in projects}
    for i, project in enumerate(projects[10:], start=10):
        requires[projects[rng.randrange(i)]].append("%s>=1.0" % project)
    for project in projects:
        files = []
        for version in ("1.0.0", "1.5.0", "2.0.0"):
            filename, data = wheel(
                project, version, rng.randrange(3000, 60000), rng, requires[project]
            )
            _write(os.path.join(root, "files", project, filename), data)
            files.append((filename, hashlib.sha256(data).hexdigest(), len(data)))
        _simple_page(root, project, files)
    _write(
        os.path.join(out_dir, "requirements.txt"),
        "".join("%s==2.0.0\n" % p for p in projects),
    )
    return projects


# ---------------------------------------------------------------------------------------
# Maven


def _maven_file(root, rel, data=None, linked=None, sha1=None):
    """A file of the Maven layout with its .sha1, as Maven Central serves both."""
    path = os.path.join(root, "maven", rel)
    if linked is None:
        _write(path, data)
        sha1 = hashlib.sha1(data).hexdigest()
    else:
        _link(linked, path)
    _write(path + ".sha1", sha1)
    return "/maven/" + rel


def _maven_listing(group, artifact, versions):
    listed = "".join("      <version>%s</version>\n" % v for v in versions)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<metadata>\n'
        "  <groupId>%s</groupId>\n  <artifactId>%s</artifactId>\n  <versioning>\n"
        "    <latest>%s</latest>\n    <release>%s</release>\n    <versions>\n%s"
        "    </versions>\n    <lastUpdated>20240102030405</lastUpdated>\n"
        "  </versioning>\n</metadata>\n"
        % (group, artifact, versions[-1], versions[-1], listed)
    ).encode()


def _maven(root, rng, cold):
    """A library with a long version listing and a ~25 KB jar, and a 200 MiB jar."""
    group, artifact = "org.bench", "bench-lib"
    base = "org/bench/" + artifact
    versions = ["1.%d.%d" % (i // 10, i % 10) for i in range(MAVEN_LISTED_VERSIONS)]
    version = versions[-1]
    listing = _maven_file(root, base + "/maven-metadata.xml",
                          _maven_listing(group, artifact, versions))  # fmt: skip
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></project>\n"
        % (group, artifact, version)
    ).encode()
    _maven_file(root, "%s/%s/%s-%s.pom" % (base, version, artifact, version), pom)
    jar = _maven_file(root, "%s/%s/%s-%s.jar" % (base, version, artifact, version),
                      rng.randbytes(ARTIFACT_BYTES))  # fmt: skip
    path, digests = cold
    cold_jar = _maven_file(root, "org/bench/bench-cold/1.0.0/bench-cold-1.0.0.jar",
                           linked=path, sha1=digests["sha1"])  # fmt: skip
    return {"listing": listing, "jar": jar, "cold": cold_jar}


# ---------------------------------------------------------------------------------------


def generate(root, cache_dir, clients_dir, npm_base):
    """Writes the whole upstream under `root`. `npm_base` is the upstream's npm URL
    (ending in /), which packuments name in their tarball URLs. Returns a manifest of
    the paths the scenarios use."""
    rng = random.Random(6)
    os.makedirs(root, exist_ok=True)
    medium_tarball = npm_tarball("bench-medium", "9.0.0", rng.randbytes(ARTIFACT_BYTES - 800))
    medium_version = _sized_packument(
        root, npm_base, "bench-medium", MEDIUM_PACKUMENT_BYTES, rng, medium_tarball
    )
    large_version = _sized_packument(
        root,
        npm_base,
        "bench-large",
        LARGE_PACKUMENT_BYTES,
        rng,
        npm_tarball("bench-large", "9.0.0", rng.randbytes(2000)),
    )
    npm_huge = big_file(cache_dir, "npm-huge.bin", HUGE_BYTES)
    npm_cold = big_file(cache_dir, "npm-cold.bin", COLD_BYTES)
    pypi_huge = big_file(cache_dir, "pypi-huge.bin", HUGE_BYTES)
    pypi_cold = big_file(cache_dir, "pypi-cold.bin", COLD_BYTES)
    maven_cold = big_file(cache_dir, "maven-cold.bin", COLD_BYTES)
    npm_dir = os.path.join(clients_dir, "npm")
    pip_dir = os.path.join(clients_dir, "pip")
    _npm_client_project(root, npm_base, rng, npm_dir)
    pip_projects = _pip_client_project(root, rng, pip_dir)
    simple_file = _pypi_bench_page(root, rng)
    huge_file = _pypi_big(root, "bench-huge", *pypi_huge, HUGE_BYTES)
    cold_file = _pypi_big(root, "bench-cold", *pypi_cold, COLD_BYTES)
    _simple_root(root, ["bench-simple", "bench-huge", "bench-cold"] + pip_projects)

    def size(rel):
        return os.path.getsize(os.path.join(root, rel.lstrip("/")))

    tgz = "/npm/bench-medium/-/bench-medium-%s.tgz" % medium_version
    manifest = {
        "npm": {
            "medium": "bench-medium",
            "medium_bytes": size("/npm/bench-medium.json"),
            "large": "bench-large",
            "large_bytes": size("/npm/bench-large.json"),
            "large_version": large_version,
            "tarball": tgz,
            "tarball_bytes": size(tgz),
            "huge": _npm_big(root, npm_base, "bench-huge", *npm_huge, rng),
            "cold": _npm_big(root, npm_base, "bench-cold", *npm_cold, rng),
            "client_dir": npm_dir,
            "client_packages": NPM_CLIENT_PACKAGES,
        },
        "pypi": {
            "page": "bench-simple",
            "page_html_bytes": size("/simple/bench-simple/index.html"),
            "page_json_bytes": size("/simple/bench-simple/index.v1json"),
            "file": "/files/bench-simple/" + simple_file,
            "file_bytes": size("/files/bench-simple/" + simple_file),
            "huge": "/files/bench-huge/" + huge_file,
            "cold": "/files/bench-cold/" + cold_file,
            "client_dir": pip_dir,
            "client_projects": len(pip_projects),
        },
        "maven": _maven(root, rng, maven_cold),
        "huge_bytes": HUGE_BYTES,
        "cold_bytes": COLD_BYTES,
    }
    _write(os.path.join(root, "..", "manifest.json"), json.dumps(manifest, indent=2))
    return manifest
