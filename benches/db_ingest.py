"""Database ingest: rows/s of lakehouse.ingest.postgres and lakehouse.ingest.mysql beside the
databases' own export to a file, on the same table in the same run.

  python benches/db_ingest.py --uri grpc://127.0.0.1:PORT [--rows 5000000] [--runs 2]

The source table (8 columns: bigint id, int, decimal(12,2), double, 32-char text, bool,
timestamp, date) is created once per server in database `lh_bench` and kept for later runs.
Baselines:
  PostgreSQL: psql `\\copy bench TO 'file' CSV` (COPY protocol, text)
  MariaDB:    `mariadb --quick --batch -e 'SELECT * FROM bench' > file` (unbuffered, tab-separated)
Lakehouse is timed from the action call until its job reports the Delta commit (rows read
through the wire protocol, decoded into Arrow, written as Parquet, committed). Prints
rows/s, the ratio Lakehouse ÷ baseline (goal >= 0.8) and writes
benches/results/db_ingest.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.flight as fl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from mysql_cli import client_args, run as mysql  # noqa: E402


def psql(dsn: str, sql: str) -> str:
    done = subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qtAc", sql], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout.strip()


def with_db(dsn: str, db: str) -> str:
    base = dsn.rstrip("/")
    scheme, rest = base.split("://", 1)
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{db}"


def prepare_pg(admin: str, rows: int) -> str:
    if psql(admin, "SELECT count(*) FROM pg_database WHERE datname = 'lh_bench'") == "0":
        psql(admin, "CREATE DATABASE lh_bench")
    dsn = with_db(admin, "lh_bench")
    exists = psql(dsn, "SELECT to_regclass('bench') IS NOT NULL") == "t"
    if not exists or int(psql(dsn, "SELECT count(*) FROM bench")) != rows:
        print(f"creating the PostgreSQL table ({rows} rows)…", flush=True)
        psql(dsn, "DROP TABLE IF EXISTS bench")
        psql(dsn, f"""CREATE TABLE bench AS SELECT g::bigint AS id, (g % 1000)::int AS k,
            (g * 0.37)::numeric(12,2) AS amount, g * 1.5e-3::float8 AS price, md5(g::text) AS label,
            g % 3 = 0 AS flag, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' AS created,
            date '2000-01-01' + (g % 9000) AS day FROM generate_series(1, {rows}) g""")
        psql(dsn, "VACUUM ANALYZE bench")
    return dsn


def prepare_mysql(admin: str, rows: int) -> str:
    mysql(admin, "CREATE DATABASE IF NOT EXISTS lh_bench")
    have = mysql(admin, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'lh_bench' "
                        "AND table_name = 'bench'")
    if have == "1" and int(mysql(admin, "SELECT COUNT(*) FROM lh_bench.bench")) == rows:
        return with_db(admin, "lh_bench")
    print(f"creating the MariaDB table ({rows} rows)…", flush=True)
    mysql(admin, """DROP TABLE IF EXISTS bench; CREATE TABLE bench (id BIGINT PRIMARY KEY, k INT,
        amount DECIMAL(12,2), price DOUBLE, label VARCHAR(32), flag TINYINT(1), created DATETIME,
        day DATE)""", "lh_bench")
    step = 1_000_000
    for start in range(1, rows + 1, step):
        end = min(rows, start + step - 1)
        mysql(admin, f"""SET time_zone = '+00:00'; INSERT INTO bench SELECT seq, seq % 1000, seq * 0.37,
            seq * 1.5e-3, MD5(seq), seq % 3 = 0, '2020-01-01' + INTERVAL seq SECOND,
            '2000-01-01' + INTERVAL (seq % 9000) DAY FROM seq_{start}_to_{end}""", "lh_bench")
    return with_db(admin, "lh_bench")


def timed(command: list[str], stdout=None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=stdout)
    return time.perf_counter() - started


def lakehouse(client: fl.FlightClient, action: str, dsn: str, table: str) -> tuple[float, dict]:
    body = {"dsn": dsn, "sourceTable": "bench", "table": table, "mode": "INGEST_MODE_REPLACE"}
    started = time.perf_counter()
    job = None
    for reply in client.do_action(fl.Action(action, json.dumps(body).encode())):
        job = json.loads(reply.body.to_pybytes())
    seconds = time.perf_counter() - started
    assert job and job["state"] == "JOB_STATE_SUCCEEDED", job
    return seconds, job["ingest"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--pg-dsn", default=os.environ.get(
        "LAKEHOUSE_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--mysql-dsn", default=os.environ.get("LAKEHOUSE_MYSQL_DSN", "mysql://root@127.0.0.1:3306"))
    parser.add_argument("--only", choices=["postgres", "mysql"])
    args = parser.parse_args()
    client = fl.connect(args.uri)
    results = {"rows": args.rows}
    out = Path(tempfile.mkdtemp(prefix="lh-db-bench-")) / "export.txt"
    systems = [args.only] if args.only else ["postgres", "mysql"]
    for system in systems:
        if system == "postgres":
            dsn = prepare_pg(args.pg_dsn, args.rows)
            baseline_name = "psql \\copy TO csv"
            baseline_cmd = ["psql", dsn, "-qc", f"\\copy bench TO '{out}' WITH (FORMAT csv)"]
            stdout = None
        else:
            dsn = prepare_mysql(args.mysql_dsn, args.rows)
            baseline_name = "mariadb --quick -e > file"
            baseline_cmd = client_args(dsn) + ["--quick", "-e", "SELECT * FROM bench"]
            stdout = "file"
        base_times, ours_times, ingest = [], [], {}
        for _ in range(args.runs):
            if stdout:
                with open(out, "wb") as sink:
                    base_times.append(timed(baseline_cmd, stdout=sink))
            else:
                base_times.append(timed(baseline_cmd))
            size = out.stat().st_size
            out.unlink()
            seconds, ingest = lakehouse(client, f"lakehouse.ingest.{system}", dsn, f"bench_{system}")
            assert int(ingest["rows"]) == args.rows, ingest
            ours_times.append(seconds)
        base, ours = statistics.median(base_times), statistics.median(ours_times)
        ratio = base / ours
        results[system] = {
            "baseline": baseline_name, "baseline_s": base_times, "lakehouse_s": ours_times,
            "baseline_rows_per_s": args.rows / base, "lakehouse_rows_per_s": args.rows / ours,
            "export_bytes": size, "source_bytes_read": int(ingest.get("bytes", 0)), "ratio": ratio,
        }
        print(f"{system:8} {args.rows} rows: {baseline_name}: {base:.2f} s ({args.rows / base / 1e6:.2f} M rows/s, "
              f"{size / 1e6:.0f} MB file); lakehouse: {ours:.2f} s ({args.rows / ours / 1e6:.2f} M rows/s); "
              f"ratio {ratio:.2f} (goal >= 0.8)", flush=True)
    target = ROOT / "benches" / "results" / "db_ingest.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
