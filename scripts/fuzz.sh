#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (the targets in fuzz/fuzz_targets/) for a bounded
# time, or replays the committed seed corpora as a quick regression check.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   fuzz (default 60 s each, all targets)
#   scripts/fuzz.sh --replay [TARGET...]               run each target once over its seeds
#
# Fuzzing needs cargo-fuzz (installed here if missing) and nightly-only compiler flags,
# which the stable toolchain accepts with RUSTC_BOOTSTRAP=1. AddressSanitizer is used unless
# FUZZ_SANITIZER=none. New corpus entries go to fuzz/.work/corpus/<target>/ (kept between
# runs, never committed); a crash leaves its input in fuzz/artifacts/<target>/, printed at
# the end with the command that reproduces it, and the script exits 1.
#
# The replay builds the targets without instrumentation into the main target directory
# (reusing what `cargo test` built) and runs each over fuzz/corpus/<target>/: no cargo-fuzz,
# no sanitizer, a minute or two. scripts/check.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# libfuzzer-sys compiles libFuzzer (C++) from source.
ensure_cxx() {
    if ! command -v c++ >/dev/null 2>&1; then
        echo "==> installing g++ (libFuzzer is built from source)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
    fi
}

all_targets() {
    find fuzz/fuzz_targets -name '*.rs' -printf '%f\n' | sed 's/\.rs$//' | sort
}

replay() {
    local targets=("$@") failed=()
    [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(all_targets)
    ensure_cxx
    local target_dir="$PWD/target"
    echo "==> building fuzz targets for replay"
    CARGO_TARGET_DIR="$target_dir" cargo build --quiet --manifest-path fuzz/Cargo.toml --bins
    for target in "${targets[@]}"; do
        local seeds=(fuzz/corpus/"$target"/*)
        if [ ! -e "${seeds[0]}" ]; then
            echo "==> $target: no seeds"
            continue
        fi
        if "$target_dir/debug/$target" "${seeds[@]}" >"target/fuzz-replay-$target.log" 2>&1; then
            echo "==> $target: ${#seeds[@]} seeds ok"
        else
            echo "==> $target: FAILED (log: target/fuzz-replay-$target.log)"
            tail -n 30 "target/fuzz-replay-$target.log"
            failed+=("$target")
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz replay failed: ${failed[*]}"
        exit 1
    fi
}

fuzz() {
    local seconds="$1"
    shift
    local targets=("$@") crashed=()
    [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(all_targets)
    ensure_cxx
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "==> installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
    export RUSTC_BOOTSTRAP=1
    local sanitizer="${FUZZ_SANITIZER:-address}"
    echo "==> building the fuzz targets (sanitizer: $sanitizer)"
    (cd fuzz && cargo fuzz build --sanitizer "$sanitizer")
    mkdir -p fuzz/.work/logs
    for target in "${targets[@]}"; do
        local work="fuzz/.work/corpus/$target" log="fuzz/.work/logs/$target.log"
        mkdir -p "$work" "fuzz/corpus/$target" "fuzz/artifacts/$target"
        echo "==> $target: fuzzing for ${seconds}s"
        # The first corpus directory receives new inputs; the committed seeds stay as they are.
        if (cd fuzz && cargo fuzz run --sanitizer "$sanitizer" "$target" \
            ".work/corpus/$target" "corpus/$target" -- \
            -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1) \
            >"$log" 2>&1; then
            grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 | sed "s/^/    /"
        else
            echo "    CRASH (log: $log)"
            grep -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" | head -n 3 | sed "s/^/    /"
            crashed+=("$target")
        fi
    done
    if [ ${#crashed[@]} -gt 0 ]; then
        echo "crashes found:"
        for target in "${crashed[@]}"; do
            for artifact in fuzz/artifacts/"$target"/*; do
                [ -e "$artifact" ] || continue
                echo "  $artifact"
                echo "    reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target ${artifact#fuzz/})"
            done
        done
        exit 1
    fi
}

case "${1:-}" in
    --replay)
        shift
        replay "$@"
        ;;
    -h | --help)
        sed -n '2,17p' "$0"
        ;;
    '' | *[!0-9]*)
        fuzz 60 "$@"
        ;;
    *)
        seconds="$1"
        shift
        fuzz "$seconds" "$@"
        ;;
esac
