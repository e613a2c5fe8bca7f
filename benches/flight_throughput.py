"""SELECT * of a >= 1 GB table: ADBC from Lakehouse vs pyarrow.flight from a minimal Python server.

    python benches/flight_throughput.py --uri grpc://127.0.0.1:50051 [--table lineitem] [--runs 3]

Lakehouse path: the ADBC Flight SQL driver runs `SELECT * FROM <table>` and
fetches the whole result as a pyarrow Table (Lakehouse reads the Delta/Parquet
files, decodes and streams them).

Baseline: the same batches, already in memory, served by a minimal in-process
pyarrow.flight server (`RecordBatchStream`) and read with `pyarrow.flight`
`do_get().read_all()` — Arrow Flight with no storage and no SQL at all.

For diagnosis it also times pyarrow.flight reading the same query from Lakehouse
(GetFlightInfo + DoGet with the baseline's client), which separates the server's
share of the gap from the ADBC driver's own decoding.

All are timed `runs` times, alternating, after one warm-up each; the medians
give GB/s (Arrow buffer bytes of the result / seconds). Prints the figures and
the ratio (goal >= 0.9), and writes benches/results/flight_throughput.json.
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
import pyarrow.flight as flight


class InMemoryServer(flight.FlightServerBase):
    """Serves one table for any ticket."""

    def __init__(self, table: pa.Table):
        super().__init__("grpc://127.0.0.1:0")
        self.table = table

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.table)


def fetch_adbc(uri: str, sql: str) -> pa.Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = flightsql.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()
    finally:
        conn.close()


def fetch_baseline(port: int) -> pa.Table:
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    try:
        return client.do_get(flight.Ticket(b"t")).read_all()
    finally:
        client.close()


def length_delimited(number: int, payload: bytes) -> bytes:
    """One protobuf length-delimited field (built by hand: no protobuf dependency)."""
    length, varint = len(payload), b""
    while True:
        byte = length & 0x7F
        length >>= 7
        varint += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return bytes([number << 3 | 2]) + varint + payload


def flight_sql_descriptor(command_name: str, command: bytes) -> flight.FlightDescriptor:
    """A Flight SQL command message packed in an Any, as a command descriptor."""
    type_url = f"type.googleapis.com/arrow.flight.protocol.sql.{command_name}".encode()
    return flight.FlightDescriptor.for_command(length_delimited(1, type_url) + length_delimited(2, command))


def statement_query_descriptor(sql: str) -> flight.FlightDescriptor:
    """CommandStatementQuery{query = sql}."""
    return flight_sql_descriptor("CommandStatementQuery", length_delimited(1, sql.encode()))


def fetch_pyarrow_from_lakehouse(uri: str, sql: str) -> pa.Table:
    client = flight.connect(uri)
    try:
        info = client.get_flight_info(statement_query_descriptor(sql))
        return client.do_get(info.endpoints[0].ticket).read_all()
    finally:
        client.close()


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--table", default="lineitem")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--min-bytes", type=float, default=1e9)
    args = parser.parse_args()
    sql = f"SELECT * FROM {args.table}"

    table = fetch_adbc(args.uri, sql)  # warm-up, and the data the baseline serves
    nbytes = table.nbytes
    if nbytes < args.min_bytes:
        raise SystemExit(f"{args.table} is {nbytes / 1e9:.2f} GB; the benchmark needs >= {args.min_bytes / 1e9:.1f} GB")
    batches = table.to_batches()
    server = InMemoryServer(pa.Table.from_batches(batches, schema=table.schema))
    threading.Thread(target=server.serve, daemon=True).start()
    fetch_baseline(server.port)  # warm-up

    lakehouse_s, baseline_s, raw_s = [], [], []
    fetch_pyarrow_from_lakehouse(args.uri, sql)  # warm-up
    for _ in range(args.runs):
        seconds, result = timed(lambda: fetch_pyarrow_from_lakehouse(args.uri, sql))
        assert result.num_rows == table.num_rows
        raw_s.append(seconds)
        seconds, result = timed(lambda: fetch_adbc(args.uri, sql))
        assert result.num_rows == table.num_rows
        lakehouse_s.append(seconds)
        seconds, result = timed(lambda: fetch_baseline(server.port))
        assert result.num_rows == table.num_rows
        baseline_s.append(seconds)
    server.shutdown()

    lakehouse = nbytes / statistics.median(lakehouse_s) / 1e9
    baseline = nbytes / statistics.median(baseline_s) / 1e9
    raw = nbytes / statistics.median(raw_s) / 1e9
    ratio = lakehouse / baseline
    print(f"table {args.table}: {table.num_rows:,} rows, {nbytes / 1e9:.2f} GB (Arrow), {table.num_columns} columns")
    print(f"ADBC from Lakehouse (SELECT *, Delta/Parquet)  : {lakehouse:6.3f} GB/s  (median of {args.runs}: {statistics.median(lakehouse_s):.2f} s)")
    print(f"pyarrow.flight from in-memory Python server    : {baseline:6.3f} GB/s  (median of {args.runs}: {statistics.median(baseline_s):.2f} s)")
    print(f"pyarrow.flight from Lakehouse (diagnostic)     : {raw:6.3f} GB/s  (median of {args.runs}: {statistics.median(raw_s):.2f} s)")
    print(f"ratio Lakehouse / baseline = {ratio:.3f} (goal >= 0.9); same client on both servers: {raw / baseline:.3f}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "flight_throughput.json").write_text(json.dumps({
        "benchmark": "flight_throughput", "table": args.table, "rows": table.num_rows, "bytes": nbytes,
        "runs": args.runs, "lakehouse_adbc_seconds": lakehouse_s, "baseline_pyarrow_seconds": baseline_s,
        "lakehouse_pyarrow_seconds": raw_s, "lakehouse_gbps": lakehouse, "baseline_gbps": baseline,
        "lakehouse_pyarrow_gbps": raw, "ratio": ratio, "same_client_ratio": raw / baseline,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
