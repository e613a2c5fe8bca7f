"""Per-call latency of small requests: Lakehouse through real clients beside a minimal
in-process pyarrow.flight server, in the same run.

    python benches/latency.py --uri grpc://127.0.0.1:50051 [--calls 300]

Lakehouse (a server started with --demo, so `nation` and `orders` exist):
  - ADBC `SELECT 1` (GetFlightInfo + DoGet on one open connection);
  - ADBC point lookup `SELECT * FROM orders WHERE o_orderkey = <key>`;
  - ADBC prepared statement with a parameter (`... WHERE n_nationkey = ?`, bound per call);
  - vector search by vector (`lakehouse.vector.search` with a `vector`, pyarrow.flight
    DoAction, over a flat index of the 25 nation comments embedded by the built-in model).

Baseline: a pyarrow.flight server in this process that answers GetFlightInfo + DoGet with
a one-row table, and DoAction with one small result: Flight itself, no SQL, no storage.
Both sides are timed alternately, after a warm-up, and report p50/p99 in milliseconds.
Writes benches/results/latency.json. Goal: ADBC `SELECT 1` p50 <= 2 ms on loopback.
"""

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight


class MinimalServer(flight.FlightServerBase):
    """One-row answers for any descriptor, ticket or action."""

    def __init__(self):
        super().__init__("grpc://127.0.0.1:0")
        self.table = pa.table({"x": pa.array([1], pa.int64())})

    def get_flight_info(self, context, descriptor):
        endpoint = flight.FlightEndpoint(b"t", [])
        return flight.FlightInfo(self.table.schema, descriptor, [endpoint], 1, -1)

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.table)

    def do_action(self, context, action):
        yield flight.Result(b'{"hits": []}')


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 3), "p99_ms": round(p99 * 1e3, 3),
            "min_ms": round(ordered[0] * 1e3, 3)}


def timed(call, calls: int) -> list[float]:
    for _ in range(10):  # warm-up
        call(0)
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = flightsql.connect(args.uri)
    cur = conn.cursor()
    lake = flight.connect(args.uri)

    # A flat index over the nation comments for the search by vector.
    body = {"name": "latency_idx", "table": "nation", "idColumn": "n_nationkey", "textColumn": "n_comment",
            "backend": "flat", "replace": True}
    for result in lake.do_action(flight.Action("lakehouse.vector.index.create", json.dumps(body).encode())):
        job = json.loads(result.body.to_pybytes())
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    # Search by a vector the client already has (a unit vector of the model's 384 dims).
    embedded = [1.0] + [0.0] * 383

    server = MinimalServer()
    base = flight.connect(f"grpc://127.0.0.1:{server.port}")

    def adbc_select_1(_):
        cur.execute("SELECT 1")
        cur.fetch_arrow_table()

    def adbc_point_lookup(i):
        cur.execute(f"SELECT * FROM orders WHERE o_orderkey = {1 + (i % 100) * 32}")
        cur.fetch_arrow_table()

    def adbc_prepared(i):
        cur.execute("SELECT n_name FROM nation WHERE n_nationkey = ?", parameters=(i % 25,))
        cur.fetch_arrow_table()

    search_body = json.dumps({"index": "latency_idx", "vector": embedded, "k": 5}).encode()

    def vector_search(_):
        list(lake.do_action(flight.Action("lakehouse.vector.search", search_body)))

    def base_query(_):
        info = base.get_flight_info(flight.FlightDescriptor.for_command(b"SELECT 1"))
        base.do_get(info.endpoints[0].ticket).read_all()

    def base_action(_):
        list(base.do_action(flight.Action("search", search_body)))

    figures = {}
    for name, call, baseline in [("adbc SELECT 1", adbc_select_1, base_query),
                                 ("adbc point lookup", adbc_point_lookup, base_query),
                                 ("adbc prepared, 1 parameter", adbc_prepared, base_query),
                                 ("vector search by vector (k=5)", vector_search, base_action)]:
        ours, theirs = [], []
        for _ in range(3):  # alternate so that noise hits both sides alike
            ours += timed(call, args.calls // 3)
            theirs += timed(baseline, args.calls // 3)
        figures[name] = {"lakehouse": percentiles(ours), "minimal_flight_server": percentiles(theirs)}
        print(f"{name:32} lakehouse p50 {figures[name]['lakehouse']['p50_ms']:7.3f} ms  "
              f"p99 {figures[name]['lakehouse']['p99_ms']:7.3f} ms   |   minimal pyarrow.flight server "
              f"p50 {figures[name]['minimal_flight_server']['p50_ms']:7.3f} ms  "
              f"p99 {figures[name]['minimal_flight_server']['p99_ms']:7.3f} ms")

    goal = figures["adbc SELECT 1"]["lakehouse"]["p50_ms"] <= 2.0
    print(f"goal ADBC SELECT 1 p50 <= 2 ms: {'met' if goal else 'NOT met'}")
    out = Path("benches/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps({"calls": args.calls, "figures": figures}, indent=2))
    cur.close()
    conn.close()
    server.shutdown()


if __name__ == "__main__":
    main()
