#!/usr/bin/env bash
# Builds the Lance worker (workers/lance: a Cargo workspace of its own, since Lance pins
# another Arrow and DataFusion than the server) and puts `lakehouse-lance-worker`
# beside the server's binaries, where `lakehouse serve` looks for it by default.
#
#   scripts/build-lance-worker.sh           optimised build (the worker is always
#                                           optimised: index builds at opt-level 0
#                                           are too slow to use)
#
# Environment:
#   CARGO_TARGET_DIR            the server's target folder (default ./target); the
#                               binary is copied into its debug/ and release/
#   LAKEHOUSE_LANCE_TARGET_DIR  the worker's own target folder
#                               (default: $CARGO_TARGET_DIR/lance-worker)
#
# Needs protoc with the well-known protobuf includes for Lance's own build scripts:
# Debian's protobuf-compiler and libprotobuf-dev, installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

server_target="${CARGO_TARGET_DIR:-$PWD/target}"
lance_target="${LAKEHOUSE_LANCE_TARGET_DIR:-$server_target/lance-worker}"

have_protoc() {
  command -v protoc >/dev/null && [[ -f /usr/include/google/protobuf/timestamp.proto || -n "${PROTOC_INCLUDE:-}" ]]
}
if [[ -z "${PROTOC:-}" ]] && ! have_protoc; then
  if command -v apt-get >/dev/null; then
    sudo=""
    if [[ "$(id -u)" != 0 ]]; then
      command -v sudo >/dev/null || { echo "installing protobuf-compiler needs root (or sudo)" >&2; exit 1; }
      sudo="sudo"
    fi
    echo "installing protobuf-compiler and libprotobuf-dev (Debian packages) for Lance's build"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q protobuf-compiler libprotobuf-dev >/dev/null \
      || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q protobuf-compiler libprotobuf-dev >/dev/null; }
  else
    echo "protoc not found: install the protobuf compiler with its well-known includes" \
      "(or set PROTOC and PROTOC_INCLUDE) to build the Lance worker" >&2
    exit 1
  fi
fi

echo "building the Lance worker (workers/lance, target $lance_target)"
CARGO_TARGET_DIR="$lance_target" cargo build --quiet --release --locked \
  --manifest-path workers/lance/Cargo.toml
built="$lance_target/release/lakehouse-lance-worker"
for profile in debug release; do
  mkdir -p "$server_target/$profile"
  # Copied whole, then renamed: a running server never sees half a binary.
  cp "$built" "$server_target/$profile/.lakehouse-lance-worker.partial"
  mv -f "$server_target/$profile/.lakehouse-lance-worker.partial" "$server_target/$profile/lakehouse-lance-worker"
done
echo "lakehouse-lance-worker: $server_target/debug/ and $server_target/release/"
