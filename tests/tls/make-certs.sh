#!/usr/bin/env bash
# Makes a throw-away CA, a server certificate for localhost/127.0.0.1 and a client
# certificate (CN=alice), all signed by that CA, in the folder given (default: .).
# Used by the TLS tests; never use these files for anything real.
#   ca.pem  server.pem server.key  client.pem client.key
set -euo pipefail
out="${1:-.}"
mkdir -p "$out"
cd "$out"
command -v openssl >/dev/null || { echo "openssl not found (apt-get install openssl)" >&2; exit 1; }
quiet() { "$@" 2>/dev/null; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.pem \
  -subj "/CN=Lakehouse test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf() { # name, CN, extended key usage, subjectAltName
  quiet openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s' \
    "$3" "$4" > "$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -out "$1.pem" -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}
leaf server localhost serverAuth "subjectAltName=DNS:localhost,IP:127.0.0.1"
leaf client alice clientAuth ""
rm -f ca.srl
