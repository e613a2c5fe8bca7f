#!/usr/bin/env bash
# Runs every test of the project, installing what they need first:
#   1. lints (rustfmt, clippy with warnings as errors) unless LAKEHOUSE_SKIP_LINT=1
#   2. Rust unit and end-to-end tests (the real binary, arrow-rs FlightSqlServiceClient)
#   3. the Python suite (ADBC Flight SQL driver, pyarrow.flight, pandas, polars) in a venv
#
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: ./target)
#   LAKEHOUSE_VENV    the Python virtual environment (default: ./.venv)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found: install Python 3.10+" >&2; exit 1; }

if [[ "${LAKEHOUSE_SKIP_LINT:-0}" != 1 ]]; then
  step "lint: cargo fmt --check, cargo clippy -D warnings"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

step "build (debug, whole workspace)"
cargo build --workspace --all-targets --quiet

step "Rust tests"
cargo test --workspace --quiet

step "Python client environment"
venv="${LAKEHOUSE_VENV:-.venv}"
requirements=tests/python/requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

step "Python tests (ADBC, pyarrow.flight, pandas, polars)"
"$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
