"""What `lakehouse.table.vacuum` costs on a table with a long history.

Builds `vacuum_bench` with --commits appends of --rows rows each (delta-rs writes a
checkpoint every 100 commits), then overwrites it, so every earlier file is removed.
Times a dry run, a run with the default retention (nothing expired: only a listing and a
read of the whole log) and a run with retention 0 (deletes every removed file), and a
count(*) of the latest version before and after. Prints one JSON object.

    python benches/vacuum.py --uri grpc://127.0.0.1:50051 [--commits 300] [--rows 1000]
"""

import argparse
import json
import time
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
from lakehouse_client import Client


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", default="grpc://127.0.0.1:50051")
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = flightsql.connect(args.uri)
    batch = lambda i: pa.table({"id": pa.array(range(i * args.rows, (i + 1) * args.rows), pa.int64()),
                                "label": pa.array([f"commit {i}"] * args.rows)})
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS vacuum_bench")
        cur.adbc_ingest("vacuum_bench", batch(0), mode="create")
        for i in range(1, args.commits):
            cur.adbc_ingest("vacuum_bench", batch(i), mode="append")
        cur.adbc_ingest("vacuum_bench", batch(args.commits), mode="replace")
    conn.commit()
    build_s = round(time.perf_counter() - started, 1)

    def count():
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM vacuum_bench")
            return cur.fetchone()[0]

    rows_before, count_before_s = timed(count)
    with Client(args.uri) as lake:
        dry, dry_s = timed(lambda: lake.vacuum("vacuum_bench", dry_run=True, retain_hours=0))
        kept, kept_s = timed(lambda: lake.vacuum("vacuum_bench"))
        swept, swept_s = timed(lambda: lake.vacuum("vacuum_bench", retain_hours=0))
        again, again_s = timed(lambda: lake.vacuum("vacuum_bench", retain_hours=0))
    rows_after, count_after_s = timed(count)
    assert rows_after == rows_before == args.rows
    conn.close()
    print(json.dumps({
        "commits": args.commits + 1,
        "build_seconds": build_s,
        "dry_run_retain_0": {"seconds": dry_s, "expired_files": int(dry.get("expiredFiles", 0))},
        "default_retention": {"seconds": kept_s, "deleted_files": int(kept.get("expiredFiles", 0))
                              + int(kept.get("uncommittedFiles", 0))},
        "retain_0": {"seconds": swept_s, "expired_files": int(swept.get("expiredFiles", 0)),
                     "bytes": int(swept.get("bytes", 0)),
                     "oldest_readable_version": int(swept.get("oldestReadableVersion", 0))},
        "second_run_seconds": again_s,
        "count_seconds_before_after": [count_before_s, count_after_s],
    }, indent=2))


if __name__ == "__main__":
    main()
