#!/usr/bin/env bash
# Installs Faiss (headers, static library) and the BLAS/LAPACK it links against, for the
# Faiss worker (workers/faiss). Debian/Ubuntu packages; elsewhere install Faiss yourself
# and point FAISS_DIR at its prefix. Without Faiss the worker still builds, and refuses
# index calls with an error that says how to install it.
set -euo pipefail

if [[ -n "${FAISS_DIR:-}" && -f "$FAISS_DIR/include/faiss/index_factory.h" ]]; then
  exit 0
fi
if [[ -f /usr/include/faiss/index_factory.h ]] && compgen -G "/usr/lib/*/libfaiss.*" >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "Faiss not found and apt-get is not available: install Faiss (with its C++ headers)" \
    "and set FAISS_DIR to its prefix; the Faiss worker is built without it until then" >&2
  exit 1
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || { echo "installing libfaiss-dev needs root (or sudo)" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing libfaiss-dev and libopenblas-dev (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q libfaiss-dev libopenblas-dev liblapack-dev >/dev/null \
  || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q libfaiss-dev libopenblas-dev liblapack-dev >/dev/null; }
