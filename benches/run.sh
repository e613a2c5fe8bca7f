#!/usr/bin/env bash
# Runs the benchmarks and prints their figures (JSON in benches/results/):
#   (a) SELECT * of a >= 1 GB table: ADBC from Lakehouse vs pyarrow.flight from an in-memory Python server
#   (b) the 22 TPC-H queries at SF1: Flight SQL vs in-process DataFusion
#   (c) bulk ingest of 10 M generated rows: ADBC adbc_ingest into Lakehouse vs pyarrow.flight
#       DoPut into a minimal Python server
#   (d) CSV ingest of a >= 1 GB file (TPC-H lineitem SF2): lakehouse.ingest.file vs DataFusion's
#       own CSV -> Parquet, in-process
#   (e) database ingest of a 5 M-row table: lakehouse.ingest.postgres vs psql \copy TO a CSV file,
#       lakehouse.ingest.mysql vs mariadb --quick -e 'SELECT ...' > file (local servers)
#   (f) vector search: HNSW recall@10 vs QPS beside Faiss-HNSW on GloVe-100k (glove), and on
#       MiniLM-embedded WordNet glosses with GCIDE definitions as queries, embedding texts/s and
#       end-to-end latency (wordnet; embeds once, 20-45 min for 100k rows, kept for later runs)
#   (g) load: 32 concurrent ADBC clients for 60 s mixing queries, prepared statements, bulk
#       ingest and vector searches; per-operation p50/p95/p99, errors, server peak RSS
#   (i) workers: our HNSW beside Faiss HNSW32, IVF and IVF-PQ built in the Faiss worker process
#       and Lance IVF_PQ and IVF_HNSW_SQ in the Lance worker process, on WordNet glosses
#       (LAKEHOUSE_WORKERS_ROWS, default 3000), measured through the server
#   (l) lance: GloVe-100k (50-d) and WordNet-100k (MiniLM 384-d, embedded once and cached)
#       as precomputed-vector indexes: Lance IVF_PQ / IVF_HNSW_SQ beside our HNSW and Faiss
#       IVF-PQ (build, recall@10 vs p50/QPS over nprobe x refine), take by id p50/p95, the
#       worker's append of 100 rows, worker RSS (LAKEHOUSE_LANCE_ROWS, default 100000)
#   (h) vacuum: lakehouse.table.vacuum on a table of 300 commits then an overwrite (dry run,
#       default retention, retention 0, a second run)
#   (k) latency: ADBC SELECT 1, a point lookup, a prepared statement with a parameter and a
#       vector search by vector, p50/p99, beside a minimal in-process pyarrow.flight server
#   (j) profiles: a GPU-slot switch (unload one model, load one, keep one) against an Ollama
#       stand-in that answers at once, i.e. the server's own cost; a /metrics scrape
# Data is generated once under $LAKEHOUSE_BENCH_DIR (default ~/.cache/lakehouse/bench).
#   benches/run.sh [throughput|tpch|ingest|csv|db|glove|wordnet|load|vacuum|workers|lance|profiles|latency|all]
#   (LAKEHOUSE_WORDNET_ROWS sets the WordNet corpus size, default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
bench_dir="${LAKEHOUSE_BENCH_DIR:-$HOME/.cache/lakehouse/bench}"
target="${CARGO_TARGET_DIR:-target}"
venv="${LAKEHOUSE_VENV:-.venv}"
mkdir -p "$bench_dir"
export LAKEHOUSE_BENCH_DIR="$bench_dir"

cargo build --release --workspace --quiet
scripts/build-lance-worker.sh
if [[ ! -x "$venv/bin/python" ]]; then python3 -m venv "$venv"; fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt \
  -r benches/requirements.txt
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall ./clients/python

# Starts the release server on a free port with the given flags (log in $1); sets $server
# (its pid) and $uri once it listens (first start may generate demo data: up to 10 min).
start_server() {
  local log="$1"
  shift
  "$target/release/lakehouse" serve --listen 127.0.0.1:0 --memory-limit 8GiB "$@" >/dev/null 2>"$log" &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 1200); do
    grep -q "listening on" "$log" && break
    kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.5
  done
  uri="$(grep -o 'grpc://[0-9.:]*' "$log" | head -1)"
}

if [[ "$which" == all || "$which" == throughput ]]; then
  echo "==> (a) throughput: TPC-H SF2 lineitem (first run generates it)"
  start_server "$bench_dir/throughput-server.log" --data-dir "$bench_dir/tpch-sf2" --demo --demo-scale 2
  "$venv/bin/python" benches/flight_throughput.py --uri "$uri"
  kill $server; wait $server || true
  trap - EXIT
fi

if [[ "$which" == all || "$which" == tpch ]]; then
  echo "==> (b) TPC-H SF1: Flight SQL vs in-process (first run generates the tables)"
  cargo bench --quiet -p lakehouse --bench tpch -- --data-dir "$bench_dir/tpch-sf1" --scale 1 --runs 3
fi

if [[ "$which" == all || "$which" == ingest ]]; then
  echo "==> (c) bulk ingest: ADBC adbc_ingest vs pyarrow.flight DoPut"
  rm -rf "$bench_dir/ingest"
  start_server "$bench_dir/ingest-server.log" --data-dir "$bench_dir/ingest"
  "$venv/bin/python" benches/ingest_throughput.py --uri "$uri"
  # Uploads stream into the Delta writer: the server's peak memory stays far below the data size.
  echo "server peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' /proc/$server/status)"
  kill $server; wait $server || true
  trap - EXIT
  rm -rf "$bench_dir/ingest"
fi

if [[ "$which" == all || "$which" == csv ]]; then
  echo "==> (d) CSV ingest: lakehouse.ingest.file vs DataFusion CSV -> Parquet (first run generates the CSV)"
  cargo bench --quiet -p lakehouse --bench csv_ingest -- --dir "$bench_dir/csv" --scale 2
fi

if [[ "$which" == all || "$which" == db ]]; then
  echo "==> (e) database ingest: PostgreSQL and MariaDB tables vs their own export (first run creates them)"
  rm -rf "$bench_dir/db"
  start_server "$bench_dir/db-server.log" --data-dir "$bench_dir/db"
  "$venv/bin/python" benches/db_ingest.py --uri "$uri"
  echo "server peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' /proc/$server/status)"
  kill $server; wait $server || true
  trap - EXIT
  rm -rf "$bench_dir/db"
fi

if [[ "$which" == all || "$which" == glove ]]; then
  echo "==> (f) vector search on GloVe-100k: Lakehouse HNSW vs Faiss HNSW"
  "$venv/bin/python" benches/vector_bench.py glove
fi

if [[ "$which" == all || "$which" == wordnet ]]; then
  echo "==> (f) vector search on WordNet glosses (MiniLM): Lakehouse vs Faiss on the same vectors"
  start_server "$bench_dir/wordnet-server.log" --data-dir "$bench_dir/wordnet"
  "$venv/bin/python" benches/vector_bench.py wordnet --uri "$uri" --data-dir "$bench_dir/wordnet" \
    --rows "${LAKEHOUSE_WORDNET_ROWS:-100000}"
  echo "server peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' /proc/$server/status)"
  kill $server; wait $server || true
  trap - EXIT
fi

if [[ "$which" == all || "$which" == workers ]]; then
  echo "==> (i) workers: our HNSW vs Faiss HNSW32 / IVF / IVF-PQ and Lance IVF_PQ / IVF_HNSW_SQ through the server"
  start_server "$bench_dir/workers-server.log" --data-dir "$bench_dir/workers"
  "$venv/bin/python" benches/vector_bench.py workers --uri "$uri" \
    --rows "${LAKEHOUSE_WORKERS_ROWS:-3000}" --queries 200
  kill $server; wait $server || true
  trap - EXIT
fi

if [[ "$which" == all || "$which" == lance ]]; then
  echo "==> (l) lance: Lance IVF_PQ / IVF_HNSW_SQ beside our HNSW and Faiss IVF-PQ on precomputed vectors"
  start_server "$bench_dir/lance-server.log" --data-dir "$bench_dir/lance"
  "$venv/bin/python" benches/lance_bench.py --uri "$uri" --log "$bench_dir/lance-server.log" \
    --data-dir "$bench_dir/lance" --wordnet-dir "$bench_dir/wordnet" \
    --rows "${LAKEHOUSE_LANCE_ROWS:-100000}" ${LAKEHOUSE_LANCE_ONLY:+--only "$LAKEHOUSE_LANCE_ONLY"}
  kill $server; wait $server || true
  trap - EXIT
fi

if [[ "$which" == all || "$which" == load ]]; then
  echo "==> (g) load: ${LAKEHOUSE_LOAD_CLIENTS:-32} ADBC clients for ${LAKEHOUSE_LOAD_SECONDS:-60} s mixing queries,"
  echo "    prepared statements, bulk ingest and vector searches (SQL and DoGet)"
  rm -rf "$bench_dir/load"
  start_server "$bench_dir/load-server.log" --data-dir "$bench_dir/load" --demo --demo-scale 0.1
  mkdir -p benches/results
  "$venv/bin/python" benches/load.py --uri "$uri" --pid "$server" \
    --clients "${LAKEHOUSE_LOAD_CLIENTS:-32}" --seconds "${LAKEHOUSE_LOAD_SECONDS:-60}" \
    --out benches/results/load.json
  kill $server; wait $server || true
  trap - EXIT
fi

if [[ "$which" == all || "$which" == profiles ]]; then
  echo "==> (j) profiles: GPU-slot switches against an Ollama stand-in, /metrics scrapes"
  mkdir -p benches/results
  LAKEHOUSE_BIN="$target/release/lakehouse" PYTHONPATH=clients/python \
    "$venv/bin/python" benches/profiles_bench.py | tee benches/results/profiles.json
fi

if [[ "$which" == all || "$which" == vacuum ]]; then
  echo "==> (h) vacuum: a table of 300 commits, then an overwrite"
  rm -rf "$bench_dir/vacuum"
  start_server "$bench_dir/vacuum-server.log" --data-dir "$bench_dir/vacuum"
  mkdir -p benches/results
  "$venv/bin/python" benches/vacuum.py --uri "$uri" --commits 300 | tee benches/results/vacuum.json
  kill $server; wait $server || true
  trap - EXIT
fi

if [[ "$which" == all || "$which" == latency ]]; then
  echo "==> (k) latency: small calls through ADBC and pyarrow.flight vs a minimal pyarrow.flight server"
  rm -rf "$bench_dir/latency"
  start_server "$bench_dir/latency-server.log" --data-dir "$bench_dir/latency" --demo --demo-scale 0.1
  "$venv/bin/python" benches/latency.py --uri "$uri" --calls "${LAKEHOUSE_LATENCY_CALLS:-300}"
  kill $server; wait $server || true
  trap - EXIT
  rm -rf "$bench_dir/latency"
fi
