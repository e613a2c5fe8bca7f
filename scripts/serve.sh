#!/usr/bin/env bash
# Builds (release) and runs the server on the embedded default: a local data
# folder, the TPC-H demo tables, loopback only. Extra arguments go to
# `lakehouse serve` (see `--help`), e.g. scripts/serve.sh --listen 0.0.0.0:50051
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
# Faiss for the "faiss" index backend (Debian packages); the server runs without it.
scripts/install-faiss.sh || echo "Faiss is not installed: the faiss index backend will be unavailable" >&2
cargo build --release --workspace --quiet
scripts/fetch-model.sh   # the built-in embedding model, once
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/lakehouse" serve --demo "$@"
