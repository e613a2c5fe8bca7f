"""lakehouse.ingest.mysql against the real MariaDB/MySQL server of this machine
($LAKEHOUSE_MYSQL_DSN, default mysql://root@127.0.0.1:3306); each test creates and
drops its own database. Also named connections (for PostgreSQL too), from the
server's configuration. Clients: pyarrow.flight (JSON bodies), ADBC."""

import json
import os
import shutil
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import Server
from mysql_cli import run as mysql
from test_ingest import action, query

ADMIN_DSN = os.environ.get("LAKEHOUSE_MYSQL_DSN", "mysql://root@127.0.0.1:3306")
PG_ADMIN_DSN = os.environ.get("LAKEHOUSE_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres")


@pytest.fixture()
def my_db():
    try:
        mysql(ADMIN_DSN, "SELECT 1")
    except (OSError, RuntimeError) as e:
        pytest.fail(f"MariaDB/MySQL is not reachable at {ADMIN_DSN} ({e}); scripts/test.sh starts it, "
                    "or set LAKEHOUSE_MYSQL_DSN")
    name = f"lh_it_{uuid.uuid4().hex[:10]}"
    mysql(ADMIN_DSN, f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield name, ADMIN_DSN.rstrip("/") + "/" + name
    mysql(ADMIN_DSN, f"DROP DATABASE IF EXISTS {name}")


def ingest_my(server, **body) -> dict:
    replies = action(server, "lakehouse.ingest.mysql", body)
    assert replies[-1]["state"] == "JOB_STATE_SUCCEEDED", replies[-1]
    return replies[-1]


SETUP = """
SET time_zone = '+02:00';
CREATE TABLE all_types (
  id BIGINT PRIMARY KEY, b TINYINT(1), ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT,
  su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT,
  bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, n DECIMAL(12,3), nu DECIMAL(10,2) UNSIGNED,
  nbig DECIMAL(65,30), bt BIT(1), b8 BIT(8), c CHAR(3), vc VARCHAR(20), t TEXT,
  e ENUM('sad','ok','happy'), st SET('a','b','c'), j JSON, bin BINARY(3), vb VARBINARY(10),
  bl BLOB, dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), y YEAR, g POINT);
INSERT INTO all_types VALUES
  (1, 1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,
   18446744073709551615, 1.5, 1e300, 123456789.123, 99999999.99,
   '12345678901234567890123456789012345.123456789012345678901234567890', b'1', b'10000001',
   'ab', 'héllo ✓ 世界', 'long text', 'happy', 'a,c', '{"a": [1, 2]}', 0x00ff10, 0x0001,
   0xdeadbeef, '2024-02-29', '1999-12-31 23:59:59.999999', '2024-06-01 12:00:00.5',
   '-838:59:59', 2155, POINT(1, 2)),
  (2, 0, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, -0.0, -1e-300,
   -0.001, 0, -0.000000000000000000000000000001, b'0', b'0', '', '', '', 'sad', '', 'null',
   0x000000, '', '', '1000-01-01', '1000-01-01 00:00:00', '1970-01-01 02:00:01', '00:00:00', 1901,
   POINT(0, 0)),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL),
  (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '0000-00-00',
   '0000-00-00 00:00:00', NULL, NULL, NULL, NULL);
"""


def test_every_mapped_type_round_trips(server, my_db):
    name, dsn = my_db
    mysql(ADMIN_DSN, SETUP, name)
    # A type without a mapping is a clear error naming the column, unless text is asked for.
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.ingest.mysql", {"dsn": dsn, "sourceTable": "all_types", "table": "my_types"})
    assert '"g"' in str(err.value) and "geometry" in str(err.value) and "text_fallback" in str(err.value)
    job = ingest_my(server, dsn=dsn, sourceTable=f"{name}.all_types", table="my_types", textFallback=True)
    assert int(job["ingest"]["rows"]) == 4
    types = {c["name"]: c["dataType"] for c in job["ingest"]["columns"]}
    assert types["b"] == "Boolean" and types["bt"] == "Boolean"
    assert (types["ti"], types["tu"], types["su"], types["mu"], types["iu"]) == (
        "Int8", "Int16", "Int32", "Int32", "Int64")
    assert types["bu"] == "Decimal128(20, 0)" and types["n"] == "Decimal128(12, 3)"
    assert types["nu"] == "Decimal128(10, 2)" and types["nbig"] == "Utf8"
    assert types["bin"] == "Binary" and types["vc"] == "Utf8" and types["dt"] == "Date32"
    assert "UTC" in types["ts"] and "UTC" not in types["dtm"]
    one, two, nulls, zero = query(server, "SELECT * FROM my_types ORDER BY id").to_pylist()
    assert (one["b"], one["ti"], one["tu"], one["si"], one["su"]) == (True, 127, 255, 32767, 65535)
    assert (one["mi"], one["mu"], one["i"], one["iu"]) == (8388607, 16777215, 2147483647, 4294967295)
    assert (one["bi"], one["bu"]) == (9223372036854775807, Decimal(18446744073709551615))
    assert (one["f"], one["d"], one["n"], one["nu"]) == (1.5, 1e300, Decimal("123456789.123"),
                                                         Decimal("99999999.99"))
    assert one["nbig"] == "12345678901234567890123456789012345.123456789012345678901234567890"
    assert (one["bt"], one["b8"]) == (True, 129)
    assert (one["c"], one["vc"], one["e"], one["st"]) == ("ab", "héllo ✓ 世界", "happy", "a,c")
    assert json.loads(one["j"]) == {"a": [1, 2]}
    assert (one["bin"], one["vb"], one["bl"]) == (b"\x00\xff\x10", b"\x00\x01", b"\xde\xad\xbe\xef")
    assert str(one["dt"]) == "2024-02-29" and str(one["dtm"]) == "1999-12-31 23:59:59.999999"
    # TIMESTAMP is stored in UTC: written at +02:00, read back as UTC.
    assert one["ts"].isoformat() == "2024-06-01T10:00:00.500000+00:00"
    assert one["tm"] == "-838:59:59" and one["y"] == 2155 and one["g"] == "POINT(1 2)"
    assert (two["b"], two["ti"], two["si"], two["mi"], two["i"], two["bi"]) == (
        False, -128, -32768, -8388608, -2147483648, -9223372036854775808)
    assert (two["n"], two["nbig"], two["b8"]) == (Decimal("-0.001"), "-0.000000000000000000000000000001", 0)
    assert (two["vc"], two["j"], two["bin"], two["vb"]) == ("", "null", b"\x00\x00\x00", b"")
    assert str(two["dt"]) == "1000-01-01" and two["ts"].isoformat() == "1970-01-01T00:00:01+00:00"
    assert two["tm"] == "00:00:00" and two["y"] == 1901
    assert all(v is None for k, v in nulls.items() if k != "id")
    # Zero dates have no Arrow value: NULL.
    assert zero["dt"] is None and zero["dtm"] is None
    # tinyint(1) holding something else than 0/1 is an error, not a silent true.
    mysql(ADMIN_DSN, "UPDATE all_types SET b = 5 WHERE id = 3", name)
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.ingest.mysql", {"dsn": dsn, "query": "SELECT id, b FROM all_types",
                                                  "table": "my_bad_bool"})
    assert '"b"' in str(err.value) and "neither 0 nor 1" in str(err.value)


def digits_table(name: str, rows: int, columns: str) -> None:
    """CREATE TABLE big AS a cross join of digits: `rows` rows (a power of ten) with an id `n`."""
    mysql(ADMIN_DSN, "CREATE TABLE digits (d INT); INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)",
          name)
    powers = len(str(rows)) - 1
    joins = ", ".join(f"digits d{i}" for i in range(powers))
    n = " + ".join(f"d{i}.d * {10 ** i}" for i in range(powers)) + " + 1"
    mysql(ADMIN_DSN, f"CREATE TABLE big AS SELECT {columns} FROM (SELECT {n} AS n FROM {joins}) AS s", name)


def test_large_table_aggregates_match_the_source(server, my_db):
    name, dsn = my_db
    digits_table(name, 100_000, "n AS id, n % 97 AS grp, CAST(n * 1.25 AS DECIMAL(14,2)) AS amount, "
                                "MD5(n) AS label, n % 3 = 0 AS flag")
    job = ingest_my(server, dsn=dsn, sourceTable="big", table="my_big")
    assert int(job["ingest"]["rows"]) == 100_000
    assert int(job["ingest"]["bytes"]) > 3_000_000
    source = mysql(ADMIN_DSN, "SELECT count(*), sum(grp), sum(amount), count(DISTINCT label), sum(flag) FROM big",
                   name)
    ours = query(server, "SELECT count(*) AS n, sum(grp) AS g, sum(amount) AS a, count(DISTINCT label) AS l, "
                         "sum(CAST(flag AS INT)) AS f FROM my_big").to_pylist()[0]
    count, grp, amount, labels, flags = source.split("\t")
    assert (ours["n"], ours["g"], ours["l"], ours["f"]) == (int(count), int(grp), int(labels), int(flags))
    assert ours["a"] == Decimal(amount)
    # A query as the source, and replace mode.
    ingest_my(server, dsn=dsn, query="SELECT id, amount FROM big WHERE id % 4 = 0", table="my_big",
              mode="INGEST_MODE_REPLACE")
    assert query(server, "SELECT count(*) FROM my_big").column(0)[0].as_py() == 25_000
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.ingest.mysql", {"dsn": dsn, "sourceTable": "big", "table": "my_big"})
    assert "already exists" in str(err.value)


def test_incremental_ingest_by_watermark(server, my_db):
    name, dsn = my_db
    mysql(ADMIN_DSN, "CREATE TABLE events (id BIGINT UNSIGNED PRIMARY KEY, updated_at DATETIME(6) NOT NULL, v TEXT);"
                     "INSERT INTO events SELECT seq, '2024-01-01' + INTERVAL seq MINUTE, CONCAT('v', seq) "
                     "FROM seq_1_to_1000", name)
    body = {"dsn": dsn, "sourceTable": "events", "table": "my_events", "watermarkColumn": "updated_at"}
    first = ingest_my(server, **body)["ingest"]
    assert int(first["rows"]) == 1000 and first["watermark"].startswith("2024-01-01 16:40:00")
    mysql(ADMIN_DSN, "INSERT INTO events SELECT seq, '2024-01-01' + INTERVAL seq MINUTE, CONCAT('v', seq) "
                     "FROM seq_1001_to_1250", name)
    second = ingest_my(server, **body)["ingest"]
    assert int(second["rows"]) == 250 and second["watermark"] > first["watermark"]
    third = ingest_my(server, **body)["ingest"]
    assert int(third.get("rows", 0)) == 0 and third["watermark"] == second["watermark"]
    # An integer watermark on the same source (its own key): big unsigned ids compare exactly.
    by_id = {**body, "table": "my_events_by_id", "watermarkColumn": "id"}
    assert ingest_my(server, **by_id)["ingest"]["watermark"] == "1250"
    mysql(ADMIN_DSN, "INSERT INTO events VALUES (18446744073709551615, NOW(), 'max')", name)
    assert int(ingest_my(server, **by_id)["ingest"]["rows"]) == 1
    counts = query(server, "SELECT count(*) AS n, count(DISTINCT id) AS d, max(id) AS m FROM my_events").to_pylist()
    assert counts == [{"n": 1250, "d": 1250, "m": 1250}]
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.ingest.mysql", {**body, "watermarkColumn": "nope"})
    assert "watermark_column" in str(err.value)


def test_source_errors_are_clean_and_never_show_the_password(server, my_db):
    name, dsn = my_db
    mysql(ADMIN_DSN, "CREATE TABLE secret_t (id INT); CREATE TABLE open_t (id INT); INSERT INTO open_t VALUES (1)",
          name)
    user = f"lh_u_{uuid.uuid4().hex[:6]}"
    mysql(ADMIN_DSN, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'S3cretPw!'; "
                     f"GRANT SELECT ON {name}.open_t TO '{user}'@'%'")
    try:
        base = f"mysql://{user}:S3cretPw%21@127.0.0.1:3306/{name}"
        job = ingest_my(server, dsn=base, sourceTable="open_t", table="my_open")
        assert int(job["ingest"]["rows"]) == 1
        with pytest.raises(pa.ArrowException) as err:  # PERMISSION_DENIED on the table
            action(server, "lakehouse.ingest.mysql", {"dsn": base, "sourceTable": "secret_t", "table": "my_denied"})
        assert "denied" in str(err.value) and "S3cretPw" not in str(err.value)
        wrong = f"mysql://{user}:Wr0ngS3cret@127.0.0.1:3306/{name}"
        with pytest.raises(pa.ArrowException) as err:  # bad credentials
            action(server, "lakehouse.ingest.mysql", {"dsn": wrong, "sourceTable": "open_t", "table": "my_badpw"})
        assert "Access denied" in str(err.value) and "Wr0ngS3cret" not in str(err.value)
        unreachable = "mysql://lakeuser:S3cretPw@127.0.0.1:1/nowhere"
        with pytest.raises(pa.ArrowException) as err:
            action(server, "lakehouse.ingest.mysql", {"dsn": unreachable, "sourceTable": "t", "table": "my_unreach"})
        assert "S3cretPw" not in str(err.value) and "connecting to MySQL" in str(err.value)
        with pytest.raises(pa.ArrowKeyError) as err:  # NOT_FOUND
            action(server, "lakehouse.ingest.mysql", {"dsn": dsn, "sourceTable": "missing", "table": "my_missing"})
        assert "missing" in str(err.value)
    finally:
        mysql(ADMIN_DSN, f"DROP USER '{user}'@'%'")
    tables = query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()
    assert not {"my_denied", "my_badpw", "my_unreach", "my_missing"} & set(tables)
    for secret in ["S3cretPw", "Wr0ngS3cret"]:
        leaked = query(server, f"SELECT count(*) FROM system.lineage WHERE event LIKE '%{secret}%'").column(0)[0]
        assert leaked.as_py() == 0
        jobs = query(server, f"SELECT count(*) FROM system.jobs WHERE description LIKE '%{secret}%' "
                             f"OR error LIKE '%{secret}%'").column(0)[0]
        assert jobs.as_py() == 0


def test_a_connection_dropped_mid_stream_fails_the_job_and_commits_nothing(server, my_db):
    name, dsn = my_db
    digits_table(name, 1_000_000, "n AS id, MD5(n) AS a, MD5(n + 1) AS b, MD5(n + 2) AS c")
    started = action(server, "lakehouse.ingest.mysql",
                     {"dsn": dsn, "sourceTable": "big", "table": "my_dropped", "detach": True})[0]
    deadline = time.time() + 60
    while True:
        job = action(server, "lakehouse.job.status", {"jobId": started["id"]})[0]
        if int(job.get("progress", {}).get("rows", 0)) > 0 or job["state"] != "JOB_STATE_RUNNING":
            break
        assert time.time() < deadline, job
        time.sleep(0.05)
    assert job["state"] == "JOB_STATE_RUNNING", job
    ids = mysql(ADMIN_DSN, f"SELECT id FROM information_schema.processlist WHERE db = '{name}' "
                           "AND id <> CONNECTION_ID()").split()
    assert ids
    for id_ in ids:
        mysql(ADMIN_DSN, f"KILL {id_}")
    final = action(server, "lakehouse.job.status", {"jobId": started["id"], "follow": True})[-1]
    assert final["state"] == "JOB_STATE_FAILED", final
    assert "reading rows" in final["error"], final["error"]
    tables = query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()
    assert "my_dropped" not in tables


def test_named_connections_keep_passwords_on_the_server(my_db, tmp_path):
    """[connections.NAME] in the config: a URL without the password, which comes from an
    environment variable or a secret file; callers name the connection."""
    name, _ = my_db
    mysql(ADMIN_DSN, "CREATE TABLE t (id INT, v VARCHAR(5)); INSERT INTO t VALUES (1, 'a'), (2, 'b')", name)
    user = f"lh_n_{uuid.uuid4().hex[:6]}"
    mysql(ADMIN_DSN, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'N4medPw'; GRANT SELECT ON {name}.* TO '{user}'@'%'")
    secret = tmp_path / "pg-password"
    secret.write_text("unused-with-trust-auth\n")
    pg = PG_ADMIN_DSN.replace("postgresql://", "postgres://", 1)
    config = tmp_path / "lakehouse.toml"
    config.write_text(f"""
[connections.shop]
url = "mysql://{user}@127.0.0.1:3306/{name}"
password_env = "LH_TEST_SHOP_PASSWORD"

[connections.warehouse]
url = "{pg}"
password_file = "{secret}"
""")
    os.environ["LH_TEST_SHOP_PASSWORD"] = "N4medPw"
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-pytest-conn-"))
    srv = Server(data_dir, "--config", str(config))
    try:
        job = ingest_my(srv, connection="shop", sourceTable="t", table="named_my")
        assert int(job["ingest"]["rows"]) == 2
        replies = action(srv, "lakehouse.ingest.postgres",
                         {"connection": "warehouse", "query": "SELECT 42 AS answer", "table": "named_pg"})
        assert replies[-1]["state"] == "JOB_STATE_SUCCEEDED", replies[-1]
        assert query(srv, "SELECT answer FROM named_pg").column(0).to_pylist() == [42]
        with pytest.raises(pa.ArrowKeyError) as err:  # NOT_FOUND, naming the known ones
            action(srv, "lakehouse.ingest.mysql", {"connection": "nope", "sourceTable": "t", "table": "x"})
        assert "shop, warehouse" in str(err.value)
        with pytest.raises(pa.ArrowInvalid) as err:  # a MySQL connection for a PostgreSQL ingest
            action(srv, "lakehouse.ingest.postgres", {"connection": "shop", "sourceTable": "t", "table": "x"})
        assert "not PostgreSQL" in str(err.value)
        with pytest.raises(pa.ArrowInvalid):
            action(srv, "lakehouse.ingest.mysql", {"connection": "shop", "dsn": "mysql://x@y/z",
                                                   "sourceTable": "t", "table": "x"})
        lineage = query(srv, "SELECT event FROM system.lineage").column(0).to_pylist()
        assert lineage and not any("N4medPw" in e for e in lineage)
        assert not any("N4medPw" in line for line in srv.log)
    finally:
        srv.stop()
        del os.environ["LH_TEST_SHOP_PASSWORD"]
        shutil.rmtree(data_dir, ignore_errors=True)
        mysql(ADMIN_DSN, f"DROP USER '{user}'@'%'")
    # A password inside the configured URL is refused at start.
    config.write_text('[connections.bad]\nurl = "mysql://u:inline@127.0.0.1/db"\n')
    with pytest.raises(RuntimeError) as err:
        Server(Path(tempfile.mkdtemp(prefix="lakehouse-pytest-conn-")), "--config", str(config))
    assert "password_env" in str(err.value) and "inline" not in str(err.value)
