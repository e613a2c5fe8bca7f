"""Graceful shutdown (SIGTERM): the server takes no new calls, lets in-flight calls and
running jobs finish within the grace period (`--shutdown-grace-secs`), then stops what
is left cleanly: a query still streaming ends UNAVAILABLE, a job ends FAILED with
nothing committed and its record written, a client following the job gets that final
state. Then the server exits 0."""

import shutil
import signal
import tempfile
import threading
import time
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import Server
from lakehouse_client import Client, JobFailed
from test_crash import assert_no_orphans, job, load_notes, wait_for
from test_ingest import query

# ADBC cursors closed against a stopped server complain again when collected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

# Rows of a result far larger than the gRPC flow-control windows and the ADBC
# driver's read-ahead, so its stream is still in flight when the signal arrives.
BIG = 20_000_000


@pytest.fixture()
def node():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-shutdown-"))
    holder = {"data": data_dir}
    yield holder
    if "server" in holder:
        holder["server"].stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def connect(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(server.uri)


def open_stream(server, sql: str):
    """A result stream that has started: its first batch is read. The connection holds
    the cursor, so the stream lives as long as the connection."""
    conn = connect(server)
    cur = conn.cursor()
    cur.execute(sql)
    reader = cur.fetch_record_batch()
    first = reader.read_next_batch()
    conn.open_cursor = cur
    return conn, reader, first


def close(conn):
    """Closes the cursor and connection; the server may have exited already."""
    for closing in (conn.open_cursor.close, conn.close):
        try:
            closing()
        except Exception:  # noqa: BLE001 - a connection to a stopped server
            pass


def terminate(server) -> float:
    """Sends SIGTERM and waits until the server says it is shutting down."""
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any("shutting down" in line for line in server.log), timeout=10,
             what="the server to start shutting down")
    return started


def test_in_flight_queries_finish_and_new_calls_are_refused(node):
    server = node["server"] = Server(node["data"])
    conn, reader, first = open_stream(server, f"SELECT value FROM generate_series(1, {BIG}) AS t(value)")
    started = terminate(server)
    # A new call is refused while the in-flight stream goes on.
    with pytest.raises(Exception):
        query(server, "SELECT 1")
    total = pa.compute.sum(first.column(0)).as_py() + sum(
        pa.compute.sum(batch.column(0)).as_py() or 0 for batch in reader)
    assert total == BIG * (BIG + 1) // 2, "the in-flight result arrived whole"
    close(conn)
    assert server.proc.wait(30) == 0, "".join(server.log[-20:])
    assert time.monotonic() - started < 30
    assert "stopped" in server.log[-1], server.log[-3:]


def test_what_outlives_the_grace_period_is_stopped_cleanly(node):
    grace = 3
    server = node["server"] = Server(node["data"], "--shutdown-grace-secs", str(grace))
    load_notes(server, "shutdown_docs")

    # An index build (minutes of embedding here), followed by a client as it runs.
    outcome = {}

    def build():
        with Client(server.uri, progress=False) as client:
            try:
                outcome["info"] = client.create_index("shutdown_idx", "shutdown_docs",
                                                      text_column="body", id_column="id")
            except (JobFailed, fl.FlightError) as error:
                outcome["error"] = error

    follower = threading.Thread(target=build)
    follower.start()
    started_job = wait_for(lambda: next((j for j in query(server, "SELECT * FROM system.jobs").to_pylist()
                                         if j["kind"] == "lakehouse.vector.index.create"), None),
                           what="the build to start")
    wait_for(lambda: int(job(server, started_job["job_id"]).get("progress", {}).get("rows", 0)) > 0,
             what="the build to embed rows")
    # A query whose client stopped reading: it would never finish by itself.
    stalled, reader, _ = open_stream(server, f"SELECT value FROM generate_series(1, {BIG}) AS t(value)")

    started = terminate(server)
    time.sleep(grace + 1)
    with pytest.raises(Exception, match="shutting down"):
        for _ in reader:
            pass
    close(stalled)
    follower.join(30)
    assert not follower.is_alive()
    # The follower's call ends with the job's own status: UNAVAILABLE, run it again.
    assert isinstance(outcome.get("error"), fl.FlightUnavailableError), outcome
    assert "shut down before the job finished" in str(outcome["error"])
    assert server.proc.wait(30) == 0, "".join(server.log[-20:])
    assert time.monotonic() - started < grace + 20

    # After a restart: the job reads as the shutdown left it, nothing was committed.
    server = node["server"] = Server(node["data"])
    record = job(server, started_job["job_id"])
    assert record["state"] == "JOB_STATE_FAILED"
    assert record["errorCode"] == "UNAVAILABLE", record
    assert query(server, "SELECT count(*) AS n FROM system.vector_indexes").column(0)[0].as_py() == 0
    assert_no_orphans(node, server)
