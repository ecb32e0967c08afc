#!/usr/bin/env bash
# The one entry point for every check: installs what the tests drive, then runs
# formatting, lints, docs and the whole test suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Real clients the integration tests run against the binary; `script` gives npm login the
# terminal it insists on.
if ! command -v script >/dev/null 2>&1; then
    echo "==> installing bsdutils (script)"
    apt_install bsdutils
fi
# The disk-full fault test mounts a small tmpfs in a mount namespace of its own.
if ! command -v unshare >/dev/null 2>&1 || ! command -v mount >/dev/null 2>&1; then
    echo "==> installing util-linux and mount (unshare, mount)"
    apt_install util-linux mount
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "==> installing node and npm"
    apt_install nodejs npm
fi
# The container image tests: the distribution registry as the upstream, skopeo as the
# client, htpasswd for the upstream that wants credentials.
if [ ! -x /usr/bin/docker-registry ] || ! command -v skopeo >/dev/null 2>&1 \
    || ! command -v htpasswd >/dev/null 2>&1; then
    echo "==> installing docker-registry, skopeo and apache2-utils"
    apt_install docker-registry skopeo apache2-utils
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "==> installing python3"
    apt_install python3 python3-venv python3-pip
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "==> installing python3-venv"
    apt_install python3-venv
fi
if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
    echo "==> installing uv"
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    pip_quiet=(--quiet --disable-pip-version-check --root-user-action=ignore)
    python3 -m pip install "${pip_quiet[@]}" uv \
        || python3 -m pip install "${pip_quiet[@]}" --break-system-packages uv
fi
if ! python3 -m twine --version >/dev/null 2>&1; then
    echo "==> installing twine"
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    pip_quiet=(--quiet --disable-pip-version-check --root-user-action=ignore)
    python3 -m pip install "${pip_quiet[@]}" twine \
        || python3 -m pip install "${pip_quiet[@]}" --break-system-packages twine
fi
# The Maven tests: mvn, a JDK (the tests compile small projects), and the plugins it runs, from Debian's packages; the
# tests serve them to mvn through the mirror, since they must not reach Maven Central.
maven_plugins=/usr/share/maven-repo/org/apache/maven/plugins
if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1 \
    || [ ! -d "$maven_plugins/maven-deploy-plugin/3.0.0" ] \
    || [ ! -d "$maven_plugins/maven-dependency-plugin/3.5.0" ] \
    || [ ! -d "$maven_plugins/maven-compiler-plugin/3.10.1" ]; then
    echo "==> installing maven and its packaged plugins"
    apt_install maven default-jdk-headless libmaven-deploy-plugin-java libmaven-dependency-plugin-java \
        libmaven-install-plugin-java libmaven-resources-plugin-java libmaven-jar-plugin-java \
        libmaven-compiler-plugin-java libsurefire-java
fi

for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done

echo "==> cargo fmt"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "==> cargo test"
cargo test --workspace
echo "==> fuzz corpus replay"
./scripts/fuzz.sh --replay
