#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]    (default: 60 s, all targets)
#
# Targets: action_bodies, commands, statement_handles, flight_data (see
# fuzz/src/lib.rs for what each checks). Needs a nightly toolchain for the
# address sanitizer; with stable only, it runs uninstrumented for memory errors
# (RUSTC_BOOTSTRAP, --sanitizer none). cargo-fuzz is installed into the tools cache
# on first use. Corpora persist in $LAKEHOUSE_CACHE/fuzz-corpus, seeded by the
# `seeds` program; a crash leaves its input in fuzz/artifacts/TARGET/ and this
# script exits 1. Each crash becomes a unit test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LAKEHOUSE_CACHE:-$HOME/.cache/lakehouse}"
tools="${LAKEHOUSE_TOOLS:-$cache/tools}"
export CARGO_TARGET_DIR="$cache/fuzz-target"
corpus_root="$cache/fuzz-corpus"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(action_bodies commands statement_handles flight_data)
fi

if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
    sanitizer=address
else
    echo "no nightly toolchain: fuzzing without the address sanitizer" >&2
    export RUSTC_BOOTSTRAP=1
    toolchain=()
    sanitizer=none
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    if [ ! -x "$tools/cargo-fuzz/bin/cargo-fuzz" ]; then
        echo "==> installing cargo-fuzz into $tools/cargo-fuzz"
        cargo install cargo-fuzz --locked --root "$tools/cargo-fuzz"
    fi
    export PATH="$tools/cargo-fuzz/bin:$PATH"
fi

echo "==> seeds"
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
cargo "${toolchain[@]}" run --quiet --release --manifest-path fuzz/Cargo.toml --bin seeds -- "$seeds"

failed=()
for target in "${targets[@]}"; do
    corpus="$corpus_root/$target"
    mkdir -p "$corpus"
    cp -n "$seeds/$target"/* "$corpus"/ 2>/dev/null || true
    echo "==> $target: ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs"
    log="$(mktemp)"
    # -rss_limit_mb / -malloc_limit_mb: a small input that makes the server allocate
    # hundreds of MiB counts as a crash (a denial of service).
    if cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov: " "$log" | tail -3
    else
        grep -E "panicked at|ERROR: libFuzzer|SUMMARY|^thread" -A2 "$log" | head -30
        grep -E "Failing input:" -A2 "$log" | tail -2
        failed+=("$target")
    fi
    rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all targets ran ${seconds}s without a crash"
