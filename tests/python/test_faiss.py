"""Faiss indexes (backend "faiss"), built and searched in the Faiss worker process, and the
worker's supervision. Recall is measured against an exact (flat) index over the same
vectors. A worker killed during a search or a build fails only that call (UNAVAILABLE),
is restarted, and gets its indexes back. system.workers and /metrics show it, and the
worker never outlives the server, however the server stops."""

import csv
import io
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest

import lakehouse_client as lh

from conftest import Server
from corpora import gcide_definitions, wordnet_glosses
from test_crash import job, wait_for
from test_ingest import action, query
from test_lakehouse_cli import lh as lh_cli
from test_vector import create, load_docs, search, write

DOCS = 300
K = 10


def start(data_dir: Path) -> tuple[Server, str]:
    server = Server(data_dir, "--metrics-listen", "127.0.0.1:0")
    return server, server.ops_url


@pytest.fixture(scope="module")
def node():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-faiss-"))
    server, ops = start(data_dir)
    texts = wordnet_glosses(DOCS)
    write(server, "glosses", pa.table({"id": pa.array(range(DOCS), pa.int64()), "body": texts}))
    holder = {"server": server, "ops": ops, "data": data_dir}
    yield holder
    holder["server"].stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def worker(server) -> dict:
    rows = query(server, "SELECT * FROM system.workers WHERE name = 'faiss'").to_pylist()
    assert len(rows) == 1, rows
    return rows[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def metric(ops: str, name: str) -> float:
    text = urllib.request.urlopen(f"{ops}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def ids(hits) -> list[int]:
    return [int(h["id"]) for h in hits]


def killed_during(server, call) -> tuple[dict, dict]:
    """Runs `call` while the Faiss worker is stopped (it takes the call and never
    answers), then kills the worker under it. Returns the worker's row from before and
    the call's outcome: {"value": ...} or {"error": exception}."""
    old = worker(server)
    os.kill(old["pid"], signal.SIGSTOP)
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except Exception as error:  # noqa: BLE001 - inspected by the caller
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)
    os.kill(old["pid"], signal.SIGKILL)
    thread.join(60)
    return old, outcome


QUERIES = gcide_definitions(20)


def test_faiss_indexes_match_exact_search(node):
    server = node["server"]
    create(server, name="g_flat", table="glosses", textColumn="body", idColumn="id", backend="flat")
    ivf = create(server, name="g_ivf", table="glosses", textColumn="body", idColumn="id", backend="faiss")
    assert ivf["backend"] == "faiss"
    # 300 vectors: 4·√300 lists would hold ~4 vectors each; at least 39 a list gives 7.
    assert '"factory":"IVF7,Flat"' in ivf["parameters"].replace(" ", ""), ivf["parameters"]
    assert int(ivf["vectors"]) == DOCS
    create(server, name="g_hnsw", table="glosses", textColumn="body", idColumn="id",
           backend="faiss", factory="HNSW32")

    found = {name: [] for name in ["g_flat", "g_ivf", "g_ivf_1", "g_hnsw"]}
    for text in QUERIES:
        exact = search(server, index="g_flat", query=text, k=K)
        found["g_flat"].append(ids(exact))
        # nprobe 16 ≥ 7 lists: every list is scanned, so the result is exact.
        ivf_hits = search(server, index="g_ivf", query=text, k=K)
        found["g_ivf"].append(ids(ivf_hits))
        for a, b in zip(exact, ivf_hits):
            assert abs(a["distance"] - b["distance"]) < 1e-4, (a, b)
        found["g_ivf_1"].append(ids(search(server, index="g_ivf", query=text, k=K, nprobe=1)))
        found["g_hnsw"].append(ids(search(server, index="g_hnsw", query=text, k=K)))

    def recall(name: str) -> float:
        hit = sum(len(set(got) & set(truth)) for got, truth in zip(found[name], found["g_flat"]))
        return hit / (K * len(QUERIES))

    assert recall("g_ivf") >= 0.99
    assert recall("g_hnsw") >= 0.9
    # One list of seven: far from every neighbour is in the probed list.
    assert recall("g_ivf_1") < recall("g_ivf")

    # The filter runs inside Faiss: k rows come back whenever k rows match.
    hits = search(server, index="g_ivf", query=QUERIES[0], k=K, filter="id % 7 = 0", nprobe=1)
    assert len(hits) == K and all(int(h["id"]) % 7 == 0 for h in hits), hits

    row = worker(server)
    assert row["state"] == "running" and row["pid"] > 0 and row["restarts"] == 0, row
    listed = query(server, "SELECT name, backend FROM system.vector_indexes WHERE backend = 'faiss'")
    assert sorted(listed.column(0).to_pylist()) == ["g_hnsw", "g_ivf"]


def test_bad_faiss_requests_get_precise_errors(node):
    server = node["server"]
    with pytest.raises(pa.ArrowInvalid) as err:  # INVALID_ARGUMENT, in Faiss's words
        create(server, name="g_bad", table="glosses", textColumn="body", idColumn="id",
               backend="faiss", factory="NoSuchIndex42")
    assert "NoSuchIndex42" in str(err.value) or "could not parse" in str(err.value), err.value
    with pytest.raises(pa.ArrowInvalid) as err:
        create(server, name="g_bad", table="glosses", textColumn="body", idColumn="id",
               backend="faiss", factory="IVF4096,Flat")
    assert "training points" in str(err.value), err.value
    with pytest.raises(pa.ArrowInvalid) as err:
        create(server, name="g_bad", table="glosses", textColumn="body", idColumn="id",
               backend="hnsw", factory="IVF8,Flat")
    assert "Faiss parameters" in str(err.value)
    names = query(server, "SELECT name FROM system.vector_indexes").column(0).to_pylist()
    assert "g_bad" not in names


def test_a_worker_killed_mid_search_fails_only_that_call(node):
    server, ops = node["server"], node["ops"]
    create(server, name="g_ivf", table="glosses", textColumn="body", idColumn="id",
           backend="faiss", replace=True)
    before = ids(search(server, index="g_ivf", query=QUERIES[1], k=K))
    old, outcome = killed_during(server, lambda: search(server, index="g_ivf", query=QUERIES[1], k=K))
    assert isinstance(outcome.get("error"), fl.FlightUnavailableError), outcome
    assert "exited during this call" in str(outcome["error"]), outcome["error"]
    assert "signal 9" in str(outcome["error"]), outcome["error"]

    row = wait_for(lambda: (lambda r: r if r["state"] == "running" and r["pid"] != old["pid"] else None)(
        worker(server)), timeout=60, what="the restarted worker")
    assert row["restarts"] == 1 and "signal 9" in row["last_exit"], row
    # The next search reloads the index into the new worker and answers as before.
    assert ids(search(server, index="g_ivf", query=QUERIES[1], k=K)) == before
    assert any("giving the restarted Faiss worker its index back" in line for line in server.log)
    assert metric(ops, 'lakehouse_worker_restarts_total{worker="faiss"}') == 1
    assert metric(ops, 'lakehouse_worker_up{worker="faiss"}') == 1


def test_a_worker_killed_mid_build_fails_the_job_and_records_nothing(node):
    server = node["server"]
    load_docs(server, "topics")
    old = worker(server)
    os.kill(old["pid"], signal.SIGSTOP)
    try:
        started = action(server, "lakehouse.vector.index.create", {
            "name": "t_crash", "table": "topics", "textColumn": "body", "idColumn": "id",
            "backend": "faiss", "factory": "Flat", "detach": True})
        job_id = started[-1]["id"]
        wait_for(lambda: job(server, job_id).get("progress", {}).get("phase") == "indexing",
                 timeout=120, what="the build to reach the worker")
        time.sleep(1.0)
    finally:
        os.kill(old["pid"], signal.SIGKILL)
    final = wait_for(lambda: (lambda j: j if j["state"] != "JOB_STATE_RUNNING" else None)(job(server, job_id)),
                     timeout=60, what="the job to end")
    assert final["state"] == "JOB_STATE_FAILED", final
    assert "exited during this call" in final["error"], final
    names = query(server, "SELECT name FROM system.vector_indexes").column(0).to_pylist()
    assert "t_crash" not in names
    wait_for(lambda: worker(server)["state"] == "running", timeout=60, what="the restarted worker")
    # The same build succeeds on the restarted worker, here from our CLI.
    out = lh_cli(server, "index", "create", "t_crash", "-t", "topics", "--text-column", "body",
                 "--id-column", "id", "--backend", "faiss", "--factory", "IVF2,Flat", "--nprobe", "1").stdout
    assert "30 vectors for 30 rows, faiss in bucket primary" in out, out
    hits = lh_cli(server, "index", "search", "t_crash", "a kitten chasing yarn", "-k", "3", "--nprobe", "2",
                  "--columns", "topic", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(hits)))
    assert len(rows) == 3 and rows[0]["topic"] == "animals", rows


def test_a_worker_killed_under_sql_is_unavailable(node):
    """vector_search() in SQL reaches the worker from inside DataFusion: a worker that
    dies under it is UNAVAILABLE to the SQL client too (retrying may succeed), not INTERNAL."""
    server = node["server"]
    create(server, name="g_sql", table="glosses", textColumn="body", idColumn="id",
           backend="faiss", replace=True)
    text = QUERIES[2].replace("'", "''")
    sql = f"SELECT id FROM vector_search('g_sql', '{text}', {K}) ORDER BY rank"
    before = query(server, sql).column("id").to_pylist()
    assert len(before) == K
    old, outcome = killed_during(server, lambda: query(server, sql))
    error = str(outcome.get("error"))
    assert "UNAVAILABLE" in error or "Unavailable" in error, outcome
    assert "INTERNAL" not in error and "exited during this call" in error, error
    wait_for(lambda: (lambda r: r if r["state"] == "running" and r["pid"] != old["pid"] else None)(
        worker(server)), timeout=60, what="the restarted worker")
    assert query(server, sql).column("id").to_pylist() == before


def test_the_worker_goes_with_the_server():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-faiss-life-"))
    try:
        server, _ = start(data_dir)
        load_docs(server, "topics")
        create(server, name="life", table="topics", textColumn="body", idColumn="id",
               backend="faiss", factory="HNSW16")
        before = search(server, index="life", query="interest rates and inflation", k=5)
        pid = worker(server)["pid"]
        # A clean stop stops the worker.
        assert server.stop() == 0
        assert not alive(pid)
        assert any("worker stopped" in line for line in server.log), "".join(server.log[-20:])

        # A restart reads the saved index back into a new worker: same answers, here
        # through the Python client's DoGet search stream.
        server, _ = start(data_dir)
        assert worker(server)["state"] == "not started"
        with lh.connect(server.uri, progress=False) as client:
            after = client.search("life", "interest rates and inflation", k=5, ef=128, columns=["topic"])
        assert after.column("id").to_pylist() == ids(before)
        assert set(after.column("topic").to_pylist()) == {"finance"}
        pid = worker(server)["pid"]

        # Killed with SIGKILL, the server cannot stop it: its closed stdin does.
        server.proc.kill()
        server.proc.wait(30)
        wait_for(lambda: not alive(pid), timeout=30, what="the orphaned worker to exit")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
