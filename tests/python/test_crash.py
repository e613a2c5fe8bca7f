"""Crash safety: the server is killed with SIGKILL during (a) a bulk ingest, (b) a file
ingest job, (c) an index build and (d) a run of catalog changes, then restarted. Each time:
the catalog loads, nothing partial is visible, every acknowledged write is there,
interrupted jobs show as FAILED, and no folder of an uncommitted write is left behind."""

import json
import threading
import time
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest

from conftest import Server, fresh_node
from test_ingest import action, query
from test_vector import TOPICS


@pytest.fixture()
def node():
    with fresh_node("lakehouse-crash-") as holder:
        yield holder


def crash_and_restart(node) -> Server:
    """SIGKILL, then a new server on the same data directory."""
    node["server"].proc.kill()
    node["server"].proc.wait(30)
    node["server"] = Server(node["data"])
    return node["server"]


def connect(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(server.uri)


def folders(node, top: str, depth: int) -> set[str]:
    """Folders `depth` levels under `top` of the primary bucket, as bucket-relative paths."""
    root = node["data"] / "buckets" / "primary"
    found = {root / top}
    for _ in range(depth):
        found = {child for parent in found if parent.is_dir() for child in parent.iterdir() if child.is_dir()}
    return {str(f.relative_to(root)) + "/" for f in found}


def assert_no_orphans(node, server):
    """Every table and index folder on disk is one the catalog lists."""
    listed = {row["location"].split("/buckets/primary/", 1)[1]
              for row in query(server, "SELECT location FROM system.tables").to_pylist()
              if "/buckets/primary/" in row["location"]}
    assert folders(node, "tables", 2) <= listed, folders(node, "tables", 2) - listed
    indexes = {row["location"] for row in query(
        server, "SELECT location FROM system.vector_indexes WHERE bucket = 'primary'").to_pylist()}
    assert folders(node, "indexes", 1) <= indexes, folders(node, "indexes", 1) - indexes


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def job(server, job_id: str) -> dict:
    return action(server, "lakehouse.job.status", {"jobId": job_id})[0]


def ingest_until_killed(server, table: str, schema: pa.Schema, batches, mode: str) -> threading.Thread:
    """Streams `batches` into `table` with ADBC on a thread until the server dies under
    it; returns once the first batch has been taken."""
    started = threading.Event()

    def flagged():
        for batch in batches:
            started.set()
            yield batch

    def ingest():
        try:
            c = connect(server)
            with c.cursor() as cur:
                cur.adbc_ingest(table, pa.RecordBatchReader.from_batches(schema, flagged()), mode=mode)
        except Exception:  # noqa: BLE001 - the server is killed under it
            pass

    thread = threading.Thread(target=ingest, daemon=True)
    thread.start()
    assert started.wait(30)
    return thread


def test_kill_during_bulk_ingest(node):
    server = node["server"]
    conn = connect(server)
    with conn.cursor() as cur:
        cur.adbc_ingest("crash_acked", pa.table({"id": pa.array(range(1000), pa.int64())}), mode="create")
    conn.commit()

    def batches():
        for i in range(100_000):
            yield pa.record_batch({"id": pa.array(range(i * 50_000, (i + 1) * 50_000), pa.int64()),
                                   "label": pa.array([f"row {i}"] * 50_000)})

    schema = pa.schema([("id", pa.int64()), ("label", pa.string())])
    thread = ingest_until_killed(server, "crash_bulk", schema, batches(), "create")
    # Kill once the open Delta write has put a data file down (it flushes a file per
    # ~100 MiB of rows), so the crash leaves an uncommitted folder behind.
    tables = node["data"] / "buckets" / "primary" / "tables" / "public"
    wait_for(lambda: list(tables.glob("crash_bulk-*/*.parquet")), timeout=120, what="a data file")
    server = crash_and_restart(node)
    thread.join(30)
    assert query(server, "SELECT count(*) AS n FROM crash_acked").column(0)[0].as_py() == 1000
    names = query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()
    assert "crash_bulk" not in names
    assert any("never committed" in line for line in server.log), "the start swept the partial write"
    assert_no_orphans(node, server)


def test_kill_during_an_append(node):
    """The killed append's finished data files (and half-written ones) sit in a listed
    table; the next start notices the unclean stop and deletes them."""
    from test_vacuum import data_files, logged_files, staged, table_folder, unnamed

    server = node["server"]
    conn = connect(server)
    with conn.cursor() as cur:
        cur.adbc_ingest("crash_append", pa.table({"id": pa.array(range(1000), pa.int64())}), mode="create")
    conn.commit()
    folder = table_folder(server, "crash_append")
    batches = (pa.record_batch({"id": pa.array(range(i * 200_000, (i + 1) * 200_000), pa.int64())})
               for i in range(100_000))
    thread = ingest_until_killed(server, "crash_append", pa.schema([("id", pa.int64())]), batches, "append")
    wait_for(lambda: unnamed(folder), timeout=120, what="a data file of the append")
    server = crash_and_restart(node)
    thread.join(30)
    wait_for(lambda: any("table sweep done" in line for line in server.log), what="the sweep after the restart")
    assert any("did not stop cleanly" in line for line in server.log)
    assert not unnamed(folder) and not staged(folder), "the killed append's files are gone"
    assert data_files(folder) <= logged_files(folder)
    assert query(server, "SELECT count(*) FROM crash_append").column(0)[0].as_py() == 1000
    # A clean stop then leaves nothing to sweep at the next start.
    node["server"].stop()
    node["server"] = server = Server(node["data"])
    assert not any("did not stop cleanly" in line for line in server.log)


def test_kill_during_a_file_ingest_job(node):
    server = node["server"]
    landing = node["data"] / "buckets" / "primary" / "landing"
    landing.mkdir(parents=True)
    with (landing / "big.csv").open("w") as out:
        out.write("id,name,amount\n")
        for i in range(1_500_000):
            out.write(f"{i},name {i % 1000},{i * 0.5}\n")
    started = action(server, "lakehouse.ingest.file",
                     {"path": "landing/big.csv", "table": "crash_file", "detach": True})[0]
    wait_for(lambda: int(job(server, started["id"]).get("progress", {}).get("rows", 0)) > 0,
             what="the job to write rows")
    server = crash_and_restart(node)
    record = job(server, started["id"])
    assert record["state"] == "JOB_STATE_FAILED", record
    assert "crash_file" not in query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()
    assert_no_orphans(node, server)
    # The same ingest runs to the end after the restart.
    final = action(server, "lakehouse.ingest.file", {"path": "landing/big.csv", "table": "crash_file"})[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED"
    assert query(server, "SELECT count(*) FROM crash_file").column(0)[0].as_py() == 1_500_000


def load_notes(server, table: str, count: int = 3000) -> None:
    """`table(id, body)`: `count` short texts, minutes of embedding for an index build."""
    texts = [text for group in TOPICS.values() for text in group]
    rows = [{"id": i, "body": f"{texts[i % len(texts)]} (note {i})"} for i in range(count)]
    conn = connect(server)
    with conn.cursor() as cur:
        cur.adbc_ingest(table, pa.Table.from_pylist(rows), mode="create")
    conn.commit()
    conn.close()


def test_kill_during_an_index_build(node):
    server = node["server"]
    load_notes(server, "crash_docs")
    started = action(server, "lakehouse.vector.index.create", {
        "name": "crash_idx", "table": "crash_docs", "textColumn": "body", "idColumn": "id", "detach": True})[0]
    wait_for(lambda: int(job(server, started["id"]).get("progress", {}).get("rows", 0)) > 0,
             what="the build to embed rows")
    server = crash_and_restart(node)
    assert job(server, started["id"])["state"] == "JOB_STATE_FAILED"
    assert query(server, "SELECT count(*) AS n FROM system.vector_indexes").column(0)[0].as_py() == 0
    assert_no_orphans(node, server)
    assert folders(node, "indexes", 1) == set(), "the unfinished build's vectors are swept"


def test_kill_during_catalog_changes(node):
    server = node["server"]
    acknowledged: list[tuple[str, str]] = []  # (op, table) the server confirmed
    stop = threading.Event()

    def churn():
        try:
            c = connect(server)
            with c.cursor() as cur:
                i = 0
                while not stop.is_set():
                    cur.execute(f"CREATE TABLE churn_{i} AS SELECT {i} AS v")
                    cur.fetchall()
                    acknowledged.append(("create", f"churn_{i}"))
                    if i % 3 == 2:
                        cur.execute(f"DROP TABLE churn_{i - 1}")
                        cur.fetchall()
                        acknowledged.append(("drop", f"churn_{i - 1}"))
                    i += 1
        except Exception:  # noqa: BLE001 - the server is killed under it
            pass

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    wait_for(lambda: len(acknowledged) >= 10, what="catalog changes")
    server = crash_and_restart(node)
    stop.set()
    thread.join(30)
    names = set(query(server, "SELECT table_name FROM system.tables").column(0).to_pylist())
    created = {t for op, t in acknowledged if op == "create"}
    dropped = {t for op, t in acknowledged if op == "drop"}
    assert created - dropped <= names, "every acknowledged CREATE survives"
    assert not (dropped & names), "every acknowledged DROP stays dropped"
    for table in sorted(names):
        if table.startswith("churn_"):
            value = query(server, f"SELECT v FROM {table}").column(0).to_pylist()
            assert value == [int(table.split("_")[1])], table
    assert_no_orphans(node, server)
    with open(node["data"] / "buckets" / "primary" / "_lakehouse" / "catalog.json") as f:
        json.load(f)  # whole, never torn
