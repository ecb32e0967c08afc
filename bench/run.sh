#!/usr/bin/env bash
# The benchmark: this project against nginx (the ceiling), Verdaccio, devpi-server and
# Debian's docker-registry in proxy mode, on loopback, over the same generated fixtures.
# Installs what it needs when missing (Debian: nginx-light, nghttp2-client for h2load,
# curl, nodejs/npm, python3-venv, docker-registry, skopeo; Verdaccio from the npm registry
# and devpi-server from PyPI into $BENCH_TOOLS), builds the release binary, then runs
# bench/run.py, which prints the table and writes bench/results/latest.md. Extra arguments
# go to run.py (see `bench/run.py --help`); `--only GROUPS` (npm, pypi, maven, containers,
# comma-separated) runs some scenario groups and installs only what they need.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_TOOLS=${BENCH_TOOLS:-$PWD/bench/.tools}
VERDACCIO_VERSION=6.8.0   # the newest that runs on Debian's Node 20
DEVPI_SERVER_VERSION=6.20.3

die() {
    echo "bench: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

apt_updated=""
# need TOOL PACKAGE: installs the Debian package when the tool is missing.
need() {
    local tool=$1 package=$2
    command -v "$tool" >/dev/null 2>&1 && return 0
    echo "==> installing $package (for $tool)" >&2
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq || die "missing tool: $tool (apt-get update failed; install Debian's $package)"
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null \
        || die "missing tool: $tool (could not install Debian's $package)"
    command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool (Debian's $package installed no $tool)"
}

# Which scenario groups run (run.py checks the names): --only GROUPS or --only=GROUPS.
only=npm,pypi,maven,containers
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
        --only) only=${args[i + 1]:-} ;;
        --only=*) only=${args[i]#--only=} ;;
    esac
done
packages=""
containers=""
case ",$only," in *,npm,* | *,pypi,* | *,maven,*) packages=1 ;; esac
case ",$only," in *,containers,*) containers=1 ;; esac

need nginx nginx-light
need h2load nghttp2-client
need curl curl
need python3 python3
if [ -n "$packages" ]; then
    need node nodejs
    need npm npm
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_venv=1
    if [ -n "${need_venv:-}" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
            || die "missing tool: python3 venv (install Debian's python3-venv)"
    fi
fi
if [ -n "$containers" ]; then
    need docker-registry docker-registry
    need skopeo skopeo
fi

# One run at a time: runs share bench/.work and would measure each other.
mkdir -p bench/.work
exec 9>bench/.work/lock
flock -n 9 || die "another benchmark run is in progress (bench/.work/lock)"

package_args=()
if [ -n "$packages" ]; then
    mkdir -p "$BENCH_TOOLS"
    verdaccio_js=$BENCH_TOOLS/verdaccio/node_modules/verdaccio/bin/verdaccio
    if [ ! -f "$verdaccio_js" ]; then
        echo "==> installing verdaccio@$VERDACCIO_VERSION into $BENCH_TOOLS/verdaccio" >&2
        npm install --prefix "$BENCH_TOOLS/verdaccio" --no-audit --no-fund --loglevel=error \
            "verdaccio@$VERDACCIO_VERSION" >&2 || die "missing tool: verdaccio (npm install failed)"
    fi
    [ -f "$verdaccio_js" ] || die "missing tool: verdaccio ($verdaccio_js not found)"

    devpi_venv=$BENCH_TOOLS/devpi
    if [ ! -x "$devpi_venv/bin/devpi-server" ] || [ ! -x "$devpi_venv/bin/devpi-init" ]; then
        echo "==> installing devpi-server==$DEVPI_SERVER_VERSION into $devpi_venv" >&2
        rm -rf "$devpi_venv"
        python3 -m venv "$devpi_venv" || die "missing tool: python3 venv"
        PIP_CONFIG_FILE=/dev/null "$devpi_venv/bin/python" -m pip install --quiet \
            --disable-pip-version-check "devpi-server==$DEVPI_SERVER_VERSION" >&2 \
            || die "missing tool: devpi-server (pip install failed)"
    fi
    [ -x "$devpi_venv/bin/devpi-init" ] || die "missing tool: devpi-init (in $devpi_venv/bin)"

    # The pip that the real-client scenario runs: a venv of its own, nothing installed in it.
    pip_venv=$BENCH_TOOLS/pip-client
    if [ ! -x "$pip_venv/bin/python" ]; then
        echo "==> creating the pip client's venv in $pip_venv" >&2
        python3 -m venv "$pip_venv" || die "missing tool: python3 venv"
    fi
    package_args=(
        --verdaccio "$verdaccio_js" --verdaccio-version "$VERDACCIO_VERSION"
        --devpi-bin "$devpi_venv/bin" --devpi-version "$DEVPI_SERVER_VERSION"
        --pip-python "$pip_venv/bin/python"
    )
fi

echo "==> cargo build --release -p registry-mirror" >&2
cargo build --release -p registry-mirror >&2 || die "the release build failed"
# A private copy, so that a rebuild during the run does not change what is measured.
cp target/release/registry-mirror bench/.work/registry-mirror.new
mv -f bench/.work/registry-mirror.new bench/.work/registry-mirror

revision=$(git describe --always --dirty 2>/dev/null || echo unknown)
exec python3 bench/run.py \
    --binary bench/.work/registry-mirror --revision "$revision" "${package_args[@]}" "$@"
