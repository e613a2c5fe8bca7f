"""Load: N concurrent ADBC clients against one server for a fixed time, each mixing
queries, prepared (parameterised) statements, bulk ingest and vector searches (SQL
`vector_search`, and the VectorSearchCommand DoGet through the lakehouse-client package). Prints per-operation counts, errors and
latency percentiles, and the server's peak resident memory (sampled from /proc, plus the
kernel's high-water mark).

    python benches/load.py --uri grpc://127.0.0.1:50051 --pid <server pid> [--clients 32 --seconds 60]

The server needs the TPC-H demo tables (--demo) and the built-in embedding model; the
script creates `load_docs` (WordNet glosses) with a vector index `load_idx` once.
"""

import argparse
import json
import random
import sys
import threading
import time
import warnings
from collections import defaultdict
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import lakehouse_client
import pyarrow as pa
import pyarrow.flight as fl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from corpora import gcide_definitions, wordnet_glosses  # noqa: E402

QUERIES = [
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS qty, avg(l_extendedprice) AS price "
    "FROM lineitem GROUP BY l_returnflag, l_linestatus ORDER BY 1, 2",
    "SELECT n_name, count(*) AS customers FROM customer JOIN nation ON c_nationkey = n_nationkey "
    "GROUP BY n_name ORDER BY customers DESC LIMIT 5",
    "SELECT o_orderpriority, count(*) FROM orders WHERE o_orderdate >= DATE '1995-01-01' GROUP BY 1",
    "SELECT * FROM region",
    "SELECT p_brand, avg(p_retailprice) FROM part GROUP BY p_brand ORDER BY 2 DESC LIMIT 10",
]
PREPARED = "SELECT o_orderkey, o_totalprice, o_orderstatus FROM orders WHERE o_orderkey = $1"
WEIGHTS = {"query": 35, "prepared": 25, "ingest": 10, "search_sql": 15, "search_doget": 15}


def connect(uri: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(uri)


def setup(uri: str, rows: int) -> None:
    conn = connect(uri)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM system.vector_indexes WHERE name = 'load_idx'")
        if cur.fetchone()[0]:
            return
        texts = wordnet_glosses(rows)
        cur.adbc_ingest("load_docs", pa.table({"id": pa.array(range(len(texts)), pa.int64()),
                                                "body": texts}), mode="replace")
    conn.commit()
    conn.close()
    print(f"embedding {rows} glosses for load_idx (once)...", flush=True)
    body = {"name": "load_idx", "table": "load_docs", "textColumn": "body", "idColumn": "id", "replace": True}
    replies = list(fl.connect(uri).do_action(fl.Action("lakehouse.vector.index.create", json.dumps(body).encode())))
    final = json.loads(replies[-1].body.to_pybytes())
    assert final["state"] == "JOB_STATE_SUCCEEDED", final


def rss_sampler(pid: int, stop: threading.Event, peak: list) -> None:
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except OSError:
            return
        stop.wait(0.25)


def worker(index: int, uri: str, deadline: float, queries: list[str], order_keys: list[int],
           latencies: dict, errors: dict, lock: threading.Lock) -> None:
    rng = random.Random(index)
    conn = connect(uri)
    client = lakehouse_client.connect(uri, progress=False)
    ops, weights = zip(*WEIGHTS.items())
    table = f"load_ingest_{index}"
    while time.time() < deadline:
        op = rng.choices(ops, weights)[0]
        started = time.perf_counter()
        try:
            with conn.cursor() as cur:
                if op == "query":
                    cur.execute(rng.choice(QUERIES))
                    cur.fetch_arrow_table()
                elif op == "prepared":
                    cur.execute(PREPARED, parameters=(rng.choice(order_keys),))
                    cur.fetch_arrow_table()
                elif op == "ingest":
                    base = rng.randrange(1 << 40)
                    data = pa.table({"id": pa.array(range(base, base + 1000), pa.int64()),
                                     "v": pa.array([rng.random() for _ in range(1000)])})
                    cur.adbc_ingest(table, data, mode="create_append")
                elif op == "search_sql":
                    text = rng.choice(queries).replace("'", "''")
                    cur.execute(f"SELECT h.id, h.score, d.body FROM vector_search('load_idx', '{text}', 10) h "
                                "JOIN load_docs d ON d.id = h.id")
                    assert cur.fetch_arrow_table().num_rows == 10
                else:  # the VectorSearchCommand DoGet, through the Python client
                    assert client.search("load_idx", rng.choice(queries), k=10).num_rows == 10
            elapsed = time.perf_counter() - started
            with lock:
                latencies[op].append(elapsed)
        except Exception as error:  # noqa: BLE001 - counted and reported
            with lock:
                errors[op].append(f"{type(error).__name__}: {str(error)[:200]}")
    conn.close()
    client.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--pid", type=int, required=True, help="server process, for its memory")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--docs", type=int, default=5000, help="glosses in the searched index")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    setup(args.uri, args.docs)
    conn = connect(args.uri)
    with conn.cursor() as cur:
        cur.execute("SELECT o_orderkey FROM orders LIMIT 5000")
        order_keys = [row[0] for row in cur.fetchall()]
    conn.close()
    queries = gcide_definitions(500)

    latencies: dict = defaultdict(list)
    errors: dict = defaultdict(list)
    lock = threading.Lock()
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=rss_sampler, args=(args.pid, stop, peak), daemon=True)
    sampler.start()
    deadline = time.time() + args.seconds
    threads = [threading.Thread(target=worker, args=(i, args.uri, deadline, queries, order_keys,
                                                     latencies, errors, lock)) for i in range(args.clients)]
    began = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - began
    stop.set()
    hwm = None
    for line in Path(f"/proc/{args.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024

    result = {"clients": args.clients, "seconds": round(wall, 1), "ops": {}, "errors": {},
              "peak_rss_mib_sampled": round(peak[0] / 2**20), "peak_rss_mib_hwm": round((hwm or 0) / 2**20)}
    print(f"\n{args.clients} clients, {wall:.0f} s")
    print(f"{'operation':<14}{'count':>8}{'per s':>8}{'errors':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for op in WEIGHTS:
        values = latencies.get(op, [])
        row = {"count": len(values), "per_s": round(len(values) / wall, 1), "errors": len(errors.get(op, [])),
               "p50_ms": round(percentile(values, 50) * 1e3, 1), "p95_ms": round(percentile(values, 95) * 1e3, 1),
               "p99_ms": round(percentile(values, 99) * 1e3, 1)}
        result["ops"][op] = row
        print(f"{op:<14}{row['count']:>8}{row['per_s']:>8}{row['errors']:>8}{row['p50_ms']:>10}"
              f"{row['p95_ms']:>10}{row['p99_ms']:>10}")
    total_errors = sum(len(v) for v in errors.values())
    result["errors"] = {op: v[:5] for op, v in errors.items()}
    print(f"errors: {total_errors}; server peak RSS {result['peak_rss_mib_sampled']} MiB sampled, "
          f"{result['peak_rss_mib_hwm']} MiB high-water mark")
    for op, messages in errors.items():
        print(f"  {op}: {messages[0]}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    sys.exit(1 if total_errors else 0)


if __name__ == "__main__":
    main()
