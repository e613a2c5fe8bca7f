"""Hostile input: each gets a precise status, the server stays up, and no secret leaks into
errors, logs or system tables."""

import json

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from test_ingest import action, client, query

# ADBC raises its own DB-API errors; pyarrow.flight raises Arrow ones.
REFUSED = (pa.ArrowException, adbc_driver_manager.Error)


def test_deeply_nested_sql_is_refused_not_fatal(server):
    nested = "SELECT " + "(" * 5000 + "1" + ")" * 5000
    with pytest.raises(REFUSED) as err:
        query(server, nested)
    assert "INVALID_ARGUMENT" in str(err.value) and "Recursion" in str(err.value), str(err.value)[:300]
    # A long operator chain is a tree as deep as it is long: up to the bound it runs...
    assert query(server, "SELECT 1" + " + 1" * 1999 + " AS n").column(0)[0].as_py() == 2000
    ors = " OR ".join(f"r_regionkey = {i}" for i in range(1000))
    assert query(server, f"SELECT count(*) FROM region WHERE {ors}").column(0)[0].as_py() == 5
    # ...beyond it, it is refused before planning (it used to overflow a worker's stack).
    for chain in ["SELECT 1" + " + 1" * 2500, "SELECT 1" + " + 1" * 200_000]:
        with pytest.raises(REFUSED) as err:
            query(server, chain)
        assert "INVALID_ARGUMENT" in str(err.value) and "too complex" in str(err.value)
    assert query(server, "SELECT 1 AS alive").column(0)[0].as_py() == 1


def test_sql_cannot_read_server_files(server):
    for sql in ["SELECT * FROM '/etc/passwd'", "SELECT * FROM 'file:///etc/hostname'",
                "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '/etc/passwd'",
                "COPY (SELECT 1) TO '/tmp/lakehouse-hostile.csv'"]:
        with pytest.raises(REFUSED) as err:
            query(server, sql)
        assert "root:" not in str(err.value), sql
        assert "INTERNAL" not in str(err.value), str(err.value)[:300]


def test_absurd_sizes_are_invalid_arguments(server):
    for body in [{"index": "x", "query": "q", "k": 10_000_000}, {"index": "x", "query": "q", "ef": 1 << 30}]:
        with pytest.raises((pa.ArrowInvalid, pa.ArrowKeyError)):
            action(server, "lakehouse.vector.search", body)
    with pytest.raises(pa.ArrowInvalid):
        action(server, "lakehouse.job.list", {"limit": "lots"})
    with pytest.raises(pa.ArrowInvalid):
        list(client(server).do_action(fl.Action("lakehouse.ingest.file", b"\xff\xfe not a message")))
    # A body over the message limit is refused by the transport, not by a crash.
    with pytest.raises(pa.ArrowException):
        list(client(server).do_action(fl.Action("lakehouse.pii.mark", b"{" + b" " * (300 << 20) + b"}")))
    assert query(server, "SELECT 2 AS alive").column(0)[0].as_py() == 2


def test_paths_cannot_leave_their_bucket(server):
    for path in ["../../etc/passwd", "landing/../../../etc/passwd", "/etc/passwd", "**/../../etc/*"]:
        with pytest.raises(pa.ArrowException) as err:
            action(server, "lakehouse.ingest.file", {"path": path, "table": "hostile_t"})
        assert "root:" not in str(err.value)
    for url in ["/etc", "file:///etc/", "file:///tmp/../etc"]:
        with pytest.raises(fl.FlightUnauthorizedError):  # PERMISSION_DENIED
            action(server, "lakehouse.bucket.add", {"name": "hostile_b", "url": url})
    assert "hostile_t" not in query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()


def test_passwords_never_reach_logs_or_system_tables(server):
    secret = "Hx7-very-secret-pw"
    for name, dsn in [("lakehouse.ingest.postgres", f"postgres://lh:{secret}@127.0.0.1:1/db"),
                      ("lakehouse.ingest.mysql", f"mysql://lh:{secret}@127.0.0.1:1/db"),
                      ("lakehouse.ingest.postgres", f"host=127.0.0.1 port=1 user=lh password={secret}")]:
        with pytest.raises(pa.ArrowException) as err:
            action(server, name, {"dsn": dsn, "sourceTable": "t", "table": "hostile_db"})
        assert secret not in str(err.value)
        detached = None
        try:
            detached = action(server, name, {"dsn": dsn, "query": "SELECT 1", "table": "hostile_db2",
                                             "detach": True})
        except pa.ArrowException as error:
            assert secret not in str(error)
        if detached:
            assert secret not in json.dumps(detached)
    for table in ["system.jobs", "system.lineage", "system.tables"]:
        rows = query(server, f"SELECT * FROM {table}").to_pylist()
        assert secret not in json.dumps(rows, default=str), table
    assert not [line for line in server.log if secret in line], "a password reached the server log"
