"""lakehouse.ingest.postgres against the real PostgreSQL server of this machine
($LAKEHOUSE_PG_DSN, default postgres://postgres@127.0.0.1:5432/postgres); each test
creates and drops its own database. Clients: pyarrow.flight (JSON bodies), ADBC."""

import json
import os
import subprocess
import uuid
from decimal import Decimal

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from test_ingest import action, ingest, query

ADMIN_DSN = os.environ.get("LAKEHOUSE_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres")


def psql(dsn: str, sql: str) -> str:
    done = subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout.strip()


@pytest.fixture()
def pg_db():
    try:
        psql(ADMIN_DSN, "SELECT 1")
    except (OSError, RuntimeError) as e:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN} ({e}); scripts/test.sh starts it, "
                    "or set LAKEHOUSE_PG_DSN")
    name = f"lh_it_{uuid.uuid4().hex[:10]}"
    psql(ADMIN_DSN, f"CREATE DATABASE {name}")
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    yield dsn
    psql(ADMIN_DSN, f"DROP DATABASE {name} WITH (FORCE)")


SETUP = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE all_types (
  id bigint PRIMARY KEY, i2 smallint, i4 integer, f4 real, f8 double precision,
  n numeric(12,3), nb numeric, b boolean, t text, vc varchar(10), c char(3), by bytea,
  d date, ts timestamp, tstz timestamptz, tm time, iv interval, j json, jb jsonb, u uuid,
  m mood, arr integer[], tarr text[], pt point);
INSERT INTO all_types VALUES
  (1, 32767, 2147483647, 1.5, 1e300, 123456789.123, 3.14159265358979323846264338327950288419716939937510,
   true, 'héllo ✓ 世界', 'short', 'ab', '\\x00ff10', '2024-02-29', '1999-12-31 23:59:59.999999',
   '2024-06-01 12:00:00+02', '13:45:07.5', '1 year 2 months 3 days 04:05:06', '{"a": [1, 2]}',
   '{"b": null}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', '{1,NULL,3}', '{"x","y z"}', '(1,2)'),
  (2, -32768, -2147483648, -0.0, -1e-300, -0.001, -0.5, false, '', '', '', '', '0001-01-01',
   '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '00:00:00', '-1 days', 'null', '[]',
   '00000000-0000-0000-0000-000000000000', 'sad', '{}', '{}', '(0,0)'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""


def test_every_mapped_type_round_trips(server, pg_db):
    psql(pg_db, SETUP)
    # A type without a mapping is a clear error naming the column, unless text is asked for.
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.ingest.postgres", {"dsn": pg_db, "sourceTable": "all_types", "table": "pg_types"})
    assert '"pt"' in str(err.value) and "point" in str(err.value) and "text_fallback" in str(err.value)
    job = ingest_pg(server, dsn=pg_db, sourceTable="all_types", table="pg_types", textFallback=True)
    assert int(job["ingest"]["rows"]) == 3
    types = {c["name"]: c["dataType"] for c in job["ingest"]["columns"]}
    assert types["n"] == "Decimal128(12, 3)" and types["nb"] == "Utf8"
    assert types["tstz"] == 'Timestamp(µs, "UTC")' or types["tstz"].startswith("Timestamp(Microsecond")
    assert types["arr"].startswith("List(")
    rows = query(server, "SELECT * FROM pg_types ORDER BY id").to_pylist()
    one, two, nulls = rows
    assert (one["i2"], one["i4"], one["f4"], one["f8"]) == (32767, 2147483647, 1.5, 1e300)
    assert one["n"] == Decimal("123456789.123")
    assert one["nb"] == "3.14159265358979323846264338327950288419716939937510"
    assert one["t"] == "héllo ✓ 世界" and one["c"] == "ab " and one["by"] == b"\x00\xff\x10"
    assert str(one["d"]) == "2024-02-29"
    assert str(one["ts"]) == "1999-12-31 23:59:59.999999"
    assert one["tstz"].isoformat() == "2024-06-01T10:00:00+00:00"
    assert one["tm"] == "13:45:07.500000" and one["iv"] == "P1Y2M3DT14706S"
    assert json.loads(one["j"]) == {"a": [1, 2]} and json.loads(one["jb"]) == {"b": None}
    assert one["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" and one["m"] == "happy"
    assert one["arr"] == [1, None, 3] and one["tarr"] == ["x", "y z"] and one["pt"] == "(1,2)"
    assert (two["i2"], two["i4"], two["n"], two["nb"]) == (-32768, -2147483648, Decimal("-0.001"), "-0.5")
    assert str(two["d"]) == "0001-01-01" and two["arr"] == [] and two["iv"] == "P-1D"
    assert all(v is None for k, v in nulls.items() if k != "id")


def ingest_pg(server, **body) -> dict:
    replies = action(server, "lakehouse.ingest.postgres", body)
    assert replies[-1]["state"] == "JOB_STATE_SUCCEEDED", replies[-1]
    return replies[-1]


def test_large_table_aggregates_match_the_source(server, pg_db):
    psql(pg_db, "CREATE TABLE big AS SELECT g AS id, g % 97 AS grp, (g * 1.25)::numeric(14,2) AS amount, "
                "md5(g::text) AS label FROM generate_series(1, 150000) g")
    job = ingest_pg(server, dsn=pg_db, query="SELECT * FROM big WHERE id % 2 = 0", table="pg_big")
    assert int(job["ingest"]["rows"]) == 75_000
    source = psql(pg_db, "SELECT count(*), sum(grp), sum(amount), count(DISTINCT label) FROM big WHERE id % 2 = 0")
    ours = query(server, "SELECT count(*) AS n, sum(grp) AS g, sum(amount) AS a, count(DISTINCT label) AS l "
                         "FROM pg_big").to_pylist()[0]
    count, grp, amount, labels = source.split("|")
    assert (ours["n"], ours["g"], ours["l"]) == (int(count), int(grp), int(labels))
    assert ours["a"] == Decimal(amount)  # numeric(14,2) keeps its type through a query
    # Modes: append adds, create refuses an existing table.
    ingest_pg(server, dsn=pg_db, sourceTable="public.big", table="pg_big", mode="INGEST_MODE_REPLACE")
    assert query(server, "SELECT count(*) FROM pg_big").column(0)[0].as_py() == 150_000
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.ingest.postgres", {"dsn": pg_db, "sourceTable": "big", "table": "pg_big"})
    assert "already exists" in str(err.value)


def test_source_errors_are_clean_and_never_show_the_password(server, pg_db):
    secret_dsn = "postgres://lakeuser:S3cretPw!@127.0.0.1:1/nowhere"
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.ingest.postgres", {"dsn": secret_dsn, "sourceTable": "t", "table": "pg_unreachable"})
    assert "S3cretPw" not in str(err.value) and "connecting to PostgreSQL" in str(err.value)
    with pytest.raises(pa.ArrowKeyError) as err:  # NOT_FOUND
        action(server, "lakehouse.ingest.postgres", {"dsn": pg_db, "sourceTable": "missing", "table": "pg_missing"})
    assert "missing" in str(err.value)
    tables = query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()
    assert "pg_unreachable" not in tables and "pg_missing" not in tables
    leaked = query(server, "SELECT count(*) FROM system.lineage WHERE event LIKE '%S3cretPw%'").column(0)[0]
    assert leaked.as_py() == 0
    jobs = query(server, "SELECT count(*) FROM system.jobs WHERE description LIKE '%S3cretPw%' "
                         "OR error LIKE '%S3cretPw%'").column(0)[0]
    assert jobs.as_py() == 0


def test_incremental_ingest_by_watermark(server, pg_db):
    psql(pg_db, "CREATE TABLE events (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, v text);"
                "INSERT INTO events SELECT g, '2024-01-01'::timestamptz + g * interval '1 minute', 'v' || g "
                "FROM generate_series(1, 1000) g")
    body = {"dsn": pg_db, "sourceTable": "events", "table": "pg_events", "watermarkColumn": "updated_at"}
    first = ingest_pg(server, **body)["ingest"]
    assert int(first["rows"]) == 1000 and first["watermark"].startswith("2024-01-01 16:40:00")
    psql(pg_db, "INSERT INTO events SELECT g, '2024-01-01'::timestamptz + g * interval '1 minute', 'v' || g "
                "FROM generate_series(1001, 1250) g")
    second = ingest_pg(server, **body)["ingest"]
    assert int(second["rows"]) == 250 and second["watermark"] > first["watermark"]
    third = ingest_pg(server, **body)["ingest"]
    assert int(third.get("rows", 0)) == 0 and third["watermark"] == second["watermark"]
    counts = query(server, "SELECT count(*) AS n, count(DISTINCT id) AS d, max(id) AS m FROM pg_events").to_pylist()
    assert counts == [{"n": 1250, "d": 1250, "m": 1250}]
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.ingest.postgres", {**body, "watermarkColumn": "nope"})
    assert "watermark_column" in str(err.value)


def test_a_connection_dropped_mid_stream_fails_the_job_and_commits_nothing(server, pg_db):
    import time

    psql(pg_db, "CREATE TABLE wide AS SELECT g AS id, md5(g::text) AS a, md5((g + 1)::text) AS b "
                "FROM generate_series(1, 2000000) g")
    started = action(server, "lakehouse.ingest.postgres",
                     {"dsn": pg_db, "sourceTable": "wide", "table": "pg_dropped", "detach": True})[0]
    deadline = time.time() + 60
    while True:
        job = action(server, "lakehouse.job.status", {"jobId": started["id"]})[0]
        if int(job.get("progress", {}).get("rows", 0)) > 0 or job["state"] != "JOB_STATE_RUNNING":
            break
        assert time.time() < deadline, job
        time.sleep(0.05)
    assert job["state"] == "JOB_STATE_RUNNING", job
    database = pg_db.rsplit("/", 1)[1]
    psql(ADMIN_DSN, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")
    final = action(server, "lakehouse.job.status", {"jobId": started["id"], "follow": True})[-1]
    assert final["state"] == "JOB_STATE_FAILED", final
    assert "terminat" in final["error"] or "closed" in final["error"], final["error"]
    tables = query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()
    assert "pg_dropped" not in tables
