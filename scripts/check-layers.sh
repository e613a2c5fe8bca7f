#!/usr/bin/env bash
# The server's layers point one way (docs/architecture.md, "Layers"):
#   flight -> (query | ingest | vector | profiles | ...) -> catalog -> storage
# Each rule below lists imports a lower layer must not make. Prints every
# offending line and exits 1 if there is any.
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
rule() {
  local what="$1" pattern="$2"
  shift 2
  local hits
  hits=$(grep -rnE "$pattern" "$@" 2>/dev/null)
  if [[ -n "$hits" ]]; then
    echo "layer check failed: $what" >&2
    echo "$hits" >&2
    status=1
  fi
}

src=server/src
# The issue's check: the lower layers never name the subsystems above them.
rule "catalog, query, storage, observe and config must not import profiles, workers, vector, ingest or flight" \
  'crate::(profiles|workers|vector|ingest|flight)' \
  $src/catalog $src/query $src/storage $src/observe $src/config
# Storage is the floor.
rule "storage imports nothing above it" \
  'crate::(catalog|query|jobs|lineage|pii|events|services|server|ops)\b' $src/storage
rule "catalog imports nothing above it (services, query, server)" \
  'crate::(query|jobs|lineage|pii|events|services|server|ops)\b' $src/catalog
# Leaves.
rule "observe is a leaf" 'crate::[a-z_]+' $src/observe
rule "workers depend on nothing of the server" 'crate::[a-z_]+' $src/workers
rule "config imports only names and secrets" \
  'crate::(catalog|query|storage|jobs|lineage|pii|events|services|server|ops|observe)\b' $src/config
rule "the CLI speaks the protocol, not server internals" \
  'crate::(catalog|query|storage|vector|ingest|flight|jobs|lineage|pii|profiles|workers|services)\b' $src/cli
# Below the protocol, errors speak the domain: gRPC statuses are made in flight/
# (flight/status.rs); the worker clients (workers/, vector/faiss.rs, vector/lance.rs,
# vector/remote.rs) speak Flight to their processes and are the exception.
rule "below flight, errors are domain errors, not gRPC statuses" \
  'tonic::(Status|Code)|use tonic' \
  $src/catalog $src/storage $src/query $src/jobs $src/lineage $src/pii $src/events \
  $src/ingest $src/profiles $src/vector --exclude=faiss.rs --exclude=lance.rs \
  --exclude=remote.rs --exclude=tests.rs

if [[ $status -eq 0 ]]; then
  echo "layers point one way"
fi
exit $status
