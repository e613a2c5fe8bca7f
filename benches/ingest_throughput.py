"""Bulk ingest: ADBC `adbc_ingest` into Lakehouse vs pyarrow.flight DoPut into a minimal Python server.

    python benches/ingest_throughput.py --uri grpc://127.0.0.1:50051 [--rows 10000000] [--runs 3]

Data: a generated table (int64 id, float64 amount, a low-cardinality string, a
free-text string and a timestamp), about 0.8 GB as Arrow at the default 10 M rows,
built once in memory and sent unchanged by both paths.

Lakehouse path: the ADBC Flight SQL driver's `cursor.adbc_ingest(..., mode="replace")`
(DoPut of CommandStatementIngest); the server decodes the stream, converts types for
Delta, encodes Parquet and commits one Delta version. Timed until the call returns,
i.e. until the commit is durable.

Baseline: pyarrow.flight `do_put` of the same batches into a minimal in-process
pyarrow.flight server that reads every batch and keeps nothing: Arrow Flight upload
with no storage at all.

For diagnosis it also times pyarrow.flight sending the same CommandStatementIngest to
Lakehouse (the baseline's client, so the gap splits into server and ADBC-driver shares).

Each path runs `runs` times, alternating, after a warm-up; medians give GB/s (Arrow
buffer bytes / seconds). Prints the figures and the ratio (goal >= 0.7), and writes
benches/results/ingest_throughput.json.
"""

import argparse
import json
import statistics
import threading
import time
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
from flight_throughput import flight_sql_descriptor, length_delimited


class DiscardingServer(flight.FlightServerBase):
    """Reads every uploaded batch and drops it."""

    def __init__(self):
        super().__init__("grpc://127.0.0.1:0")
        self.rows = 0

    def do_put(self, context, descriptor, reader, writer):
        rows = 0
        for chunk in reader:
            rows += chunk.data.num_rows
        self.rows = rows


def make_table(rows: int, batch_rows: int = 262_144) -> pa.Table:
    batches = []
    cities = pa.array(["Lisbon", "Paris", "Osaka", "Lagos", "Lima", "Perth", "Oslo", "Quito"])
    for start in range(0, rows, batch_rows):
        n = min(batch_rows, rows - start)
        ids = pa.array(range(start, start + n), pa.int64())
        amount = pc.divide(pc.cast(pc.bit_wise_and(pc.multiply(ids, 2654435761), 0xFFFFF), pa.float64()), 100.0)
        city = pc.take(cities, pc.bit_wise_and(ids, 7))
        note = pc.binary_join_element_wise("order ", pc.cast(ids, pa.string()), " for customer", "")
        at = pc.cast(pc.add(pc.multiply(ids, 1_000_000), 1_700_000_000_000_000), pa.timestamp("us"))
        batches.append(pa.record_batch([ids, amount, city, note, at], names=["id", "amount", "city", "note", "at"]))
    return pa.Table.from_batches(batches)


def ingest_adbc(uri: str, table: pa.Table) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = flightsql.connect(uri)
    try:
        with conn.cursor() as cur:
            return cur.adbc_ingest("bench_ingest", table, mode="replace")
    finally:
        conn.close()


def ingest_descriptor(table: str) -> flight.FlightDescriptor:
    """CommandStatementIngest{table, if_not_exist = CREATE (1), if_exists = REPLACE (3)}."""
    options = bytes([1 << 3, 1, 2 << 3, 3])
    command = length_delimited(1, options) + length_delimited(2, table.encode())
    return flight_sql_descriptor("CommandStatementIngest", command)


def ingest_pyarrow(uri: str, table: pa.Table) -> None:
    client = flight.connect(uri)
    try:
        writer, reader = client.do_put(ingest_descriptor("bench_ingest_pyarrow"), table.schema)
        writer.write_table(table)
        writer.done_writing()
        reader.read()  # DoPutUpdateResult: the commit is done
        writer.close()
    finally:
        client.close()


def put_baseline(port: int, table: pa.Table) -> None:
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    try:
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("bench"), table.schema)
        writer.write_table(table)
        writer.close()
    finally:
        client.close()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    table = make_table(args.rows)
    nbytes = table.nbytes
    server = DiscardingServer()
    threading.Thread(target=server.serve, daemon=True).start()

    assert ingest_adbc(args.uri, table) == args.rows  # warm-up (creates the table)
    put_baseline(server.port, table)
    ingest_pyarrow(args.uri, table)
    lakehouse_s, baseline_s, raw_s = [], [], []
    for _ in range(args.runs):
        raw_s.append(timed(lambda: ingest_pyarrow(args.uri, table)))
        lakehouse_s.append(timed(lambda: ingest_adbc(args.uri, table)))
        baseline_s.append(timed(lambda: put_baseline(server.port, table)))
        assert server.rows == args.rows
    server.shutdown()

    lakehouse = nbytes / statistics.median(lakehouse_s) / 1e9
    baseline = nbytes / statistics.median(baseline_s) / 1e9
    raw = nbytes / statistics.median(raw_s) / 1e9
    ratio = lakehouse / baseline
    print(f"data: {args.rows:,} rows, {nbytes / 1e9:.2f} GB (Arrow), {table.num_columns} columns")
    print(f"ADBC adbc_ingest -> Lakehouse (Delta commit)  : {lakehouse:6.3f} GB/s  "
          f"(median of {args.runs}: {statistics.median(lakehouse_s):.2f} s)")
    print(f"pyarrow.flight DoPut -> minimal Python server  : {baseline:6.3f} GB/s  "
          f"(median of {args.runs}: {statistics.median(baseline_s):.2f} s)")
    print(f"pyarrow.flight DoPut -> Lakehouse (diagnostic) : {raw:6.3f} GB/s  "
          f"(median of {args.runs}: {statistics.median(raw_s):.2f} s)")
    print(f"ratio Lakehouse / baseline = {ratio:.3f} (goal >= 0.7); same client on both servers: {raw / baseline:.3f}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ingest_throughput.json").write_text(json.dumps({
        "benchmark": "ingest_throughput", "rows": args.rows, "bytes": nbytes, "runs": args.runs,
        "lakehouse_adbc_seconds": lakehouse_s, "baseline_pyarrow_seconds": baseline_s,
        "lakehouse_pyarrow_seconds": raw_s, "lakehouse_gbps": lakehouse, "baseline_gbps": baseline,
        "lakehouse_pyarrow_gbps": raw, "ratio": ratio, "same_client_ratio": raw / baseline,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
