#!/usr/bin/env bash
# Builds (release) and runs the server on the embedded default: a local data
# folder, the TPC-H demo tables, loopback only. Extra arguments go to
# `lakehouse serve` (see `--help`), e.g. scripts/serve.sh --listen 0.0.0.0:50051
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
# Faiss for the "faiss" index backend (Debian packages); the server runs without it.
scripts/install-faiss.sh || echo "Faiss is not installed: the faiss index backend will be unavailable" >&2
target="${CARGO_TARGET_DIR:-target}"
if [[ ! -x "$target/release/lakehouse" ]]; then
  echo "==> first release build of the server: 20-30 minutes on a 2-core machine (later starts" \
       "take seconds); cargo's progress follows" >&2
fi
# Not --quiet: cargo's progress bar shows what is being compiled.
cargo build --release --workspace
# The Lance worker, its own Cargo workspace, for the "lance" index backend; the server
# runs without it.
scripts/build-lance-worker.sh || echo "the Lance worker did not build: the lance index backend will be unavailable" >&2
scripts/fetch-model.sh   # the built-in embedding model, once
exec "$target/release/lakehouse" serve --demo "$@"
