"""Lance indexes (backend "lance"): a Lance dataset in the index's home bucket, written,
indexed (IVF_PQ, IVF_HNSW_SQ, IVF_FLAT) and searched by the Lance worker process, which
the server supervises as it does the Faiss worker. Recall is measured with an eval set
(exact truth by a flat scan of the same vectors); appended rows land as new fragments
(searched exactly) until an optimize folds them into the index; the dataset survives a
restart and a move to another bucket without a rebuild; a worker killed during a search
fails only that call; a missing worker binary is a precise error, and the server goes on."""

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest

import lakehouse_client as lh

from conftest import Server
from corpora import gcide_definitions, wordnet_glosses
from test_crash import wait_for
from test_ingest import action, query
from test_lakehouse_cli import lh as lh_cli
from test_vector import create, load_docs, search, sql, write

DOCS = 2000
K = 10


def start(data_dir: Path, *extra: str) -> Server:
    return Server(data_dir, "--metrics-listen", "127.0.0.1:0", *extra)


@pytest.fixture(scope="module")
def node():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-lance-"))
    roots = Path(tempfile.mkdtemp(prefix="lakehouse-lance-roots-"))
    server = start(data_dir, "--local-bucket-root", str(roots))
    write(server, "glosses", pa.table({"id": pa.array(range(DOCS), pa.int64()),
                                        "body": wordnet_glosses(DOCS)}))
    holder = {"server": server, "data": data_dir, "roots": roots}
    yield holder
    holder["server"].stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(roots, ignore_errors=True)


def worker(server) -> dict:
    rows = query(server, "SELECT * FROM system.workers WHERE name = 'lance'").to_pylist()
    assert len(rows) == 1, rows
    return rows[0]


def layout(server, name: str) -> dict:
    rows = query(server, "SELECT backend, parameters, index_type, fragments, indexed_rows, unindexed_rows, "
                         f"dataset_version, bytes, vectors FROM system.vector_indexes WHERE name = '{name}'").to_pylist()
    assert len(rows) == 1, rows
    return rows[0]


def ids(hits) -> list[int]:
    return [int(h["id"]) for h in hits]


QUERIES = gcide_definitions(40)


@pytest.fixture(scope="module")
def pq(node):
    """The IVF_PQ index of the glosses, with the defaults chosen from the data."""
    return create(node["server"], name="g_pq", table="glosses", textColumn="body", idColumn="id",
                  backend="lance")


def test_ivf_pq_with_refine_reaches_the_recall_of_exact_search(node, pq):
    server = node["server"]
    assert pq["backend"] == "lance" and int(pq["vectors"]) == DOCS
    params = json.loads(pq["parameters"])
    # √2000 ≈ 45 partitions; 384-d MiniLM vectors in 48 sub-vectors of 8 dimensions.
    assert params["index_type"] == "IVF_PQ" and params["partitions"] == 45, params
    assert params["sub_vectors"] == 48 and params["bits"] == 8, params
    assert params["nprobe"] == 20 and params["refine_factor"] == 4, params
    row = layout(server, "g_pq")
    assert row["index_type"] == "IVF_PQ" and row["indexed_rows"] == DOCS and row["unindexed_rows"] == 0, row
    assert row["fragments"] >= 1 and row["bytes"] > 0, row
    # The dataset is in the index's home bucket, beside its vectors table.
    dataset = node["data"] / "buckets" / "primary" / pq["location"] / "lance"
    assert (dataset / "_versions").is_dir() and (dataset / "_indices").is_dir(), list(dataset.iterdir())
    assert worker(server)["state"] == "running"

    replies = action(server, "lakehouse.vector.eval_set.create", {
        "name": "g_eval", "index": "g_pq", "depth": K, "queries": QUERIES})
    assert replies[-1]["state"] == "JOB_STATE_SUCCEEDED", replies[-1]
    result = action(server, "lakehouse.vector.eval", {"index": "g_pq", "evalSet": "g_eval", "k": K})[0]
    assert result["backend"] == "lance", result
    run = result["runs"][0]
    assert run["recallMean"] >= 0.9, run
    assert 0 < run["latencyP50Ms"] <= run["latencyP95Ms"]

    # Fewer probes and no refine trade recall for speed: per search, by the action...
    exact = {q: ids(search(server, index="g_pq", query=q, k=K, nprobe=45, refineFactor=20)) for q in QUERIES[:10]}
    rough = {q: ids(search(server, index="g_pq", query=q, k=K, nprobe=1, refineFactor=1)) for q in QUERIES[:10]}
    assert all(len(hits) == K for hits in rough.values())
    agree = sum(len(set(exact[q]) & set(rough[q])) for q in exact) / (K * len(exact))
    assert agree < 0.95, agree
    # ... and by the Python client's DoGet stream.
    with lh.connect(server.uri, progress=False) as client:
        table = client.search("g_pq", QUERIES[0], k=K, nprobe=45, refine_factor=20)
    assert table.column("id").to_pylist() == exact[QUERIES[0]]


def test_filters_are_pre_filters(node, pq):
    server = node["server"]
    # 40 rows pass; one partition probed holds few of them: the search widens until k do.
    hits = search(server, index="g_pq", query=QUERIES[3], k=K, filter="id % 50 = 0", nprobe=1)
    assert len(hits) == K and all(int(h["id"]) % 50 == 0 for h in hits), hits
    # SQL reaches the worker too.
    text = QUERIES[3].replace("'", "''")
    rows = sql(server, f"SELECT id FROM vector_search('g_pq', '{text}', 5) ORDER BY rank")
    assert len(rows) == 5


def test_hnsw_sq_and_tiny_datasets(node):
    server = node["server"]
    info = create(server, name="g_hnsw", table="glosses", textColumn="body", idColumn="id",
                  backend="lance", lance={"indexType": "IVF_HNSW_SQ", "partitions": 4})
    params = json.loads(info["parameters"])
    assert params["index_type"] == "IVF_HNSW_SQ" and params["partitions"] == 4 and params["sub_vectors"] == 0
    assert layout(server, "g_hnsw")["index_type"] == "IVF_HNSW_SQ"
    exact = ids(search(server, index="g_pq", query=QUERIES[5], k=5, nprobe=45, refineFactor=50))
    found = ids(search(server, index="g_hnsw", query=QUERIES[5], k=5, nprobe=4, ef=200))
    assert len(set(exact) & set(found)) >= 4, (exact, found)

    # Under 1024 rows there is nothing to train an IVF index on: searches are exact.
    load_docs(server, "lance_topics")
    small = create(server, name="t_lance", table="lance_topics", textColumn="body", idColumn="id",
                   backend="lance", lance={"indexType": "IVF_FLAT"})
    assert int(small["vectors"]) == 30
    row = layout(server, "t_lance")
    assert row["index_type"] == "" and row["indexed_rows"] == 0 and row["unindexed_rows"] == 30, row
    exact_small = ids(search(server, index="t_lance", query="a kitten chasing yarn", k=3))
    create(server, name="t_flat", table="lance_topics", textColumn="body", idColumn="id", backend="flat")
    assert exact_small == ids(search(server, index="t_flat", query="a kitten chasing yarn", k=3))
    result = action(server, "lakehouse.vector.index.optimize", {"index": "t_lance"})[0]
    assert result["indexType"] == "" and int(result["unindexedRows"]) == 30, result


def test_appended_rows_are_new_fragments_until_an_optimize(node, pq):
    server = node["server"]
    before = layout(server, "g_pq")
    new = ["molten rock pouring from an erupting volcano", "a glacier carving a deep valley"]
    sql(server, "INSERT INTO glosses VALUES " + ", ".join(f"({DOCS + i}, '{t}')" for i, t in enumerate(new)))
    after = wait_for(lambda: (lambda r: r if r["vectors"] == DOCS + 2 else None)(layout(server, "g_pq")),
                     timeout=120, what="the appended rows in the index")
    # Appended as a fragment: nothing rewritten, the new rows searched exactly.
    assert after["fragments"] == before["fragments"] + 1, (before, after)
    assert after["indexed_rows"] == DOCS and after["unindexed_rows"] == 2, after
    assert after["dataset_version"] > before["dataset_version"]
    assert ids(search(server, index="g_pq", query="lava from a volcano", k=1)) == [DOCS]
    # The optimize action (here by our CLI) folds them into the index.
    out = lh_cli(server, "index", "optimize", "g_pq").stdout
    assert f"{DOCS + 2} rows" in out and "0 searched exactly" in out, out
    row = layout(server, "g_pq")
    assert row["indexed_rows"] == DOCS + 2 and row["unindexed_rows"] == 0, row
    assert ids(search(server, index="g_pq", query="a glacier shaping a valley", k=1)) == [DOCS + 1]
    # A DELETE tombstones the row: never returned, k rows still come back.
    sql(server, f"DELETE FROM glosses WHERE id = {DOCS}")
    wait_for(lambda: layout(server, "g_pq")["vectors"] == DOCS + 1, timeout=120, what="the delete")
    hits = search(server, index="g_pq", query="lava from a volcano", k=K)
    assert DOCS not in ids(hits) and len(hits) == K


def test_rows_are_taken_by_id(node, pq):
    server = node["server"]
    # By the action: every chunk of each id, in the order asked; unknown ids left out.
    reply = action(server, "lakehouse.vector.take", {"index": "g_pq", "ids": [17, 5, 10**9, 17]})[0]
    rows = reply["rows"]
    assert [int(r["id"]) for r in rows] == [17, 5], rows
    assert all(r.get("chunk", 0) == 0 and len(r["vector"]) == 384 for r in rows)
    # Cosine indexes hold normalised vectors.
    assert abs(sum(x * x for x in rows[0]["vector"]) - 1.0) < 1e-3
    # By the Python client (DoGet of a VectorTakeRequest): an Arrow table of the columns asked.
    with lh.connect(server.uri, progress=False) as client:
        table = client.take("g_pq", [5, 17, 3], columns=["id", "chunk"])
        assert table.schema.names == ["id", "chunk"], table.schema
        assert table.column("id").to_pylist() == [5, 17, 3]
        whole = client.take("g_pq", [3])
        assert whole.schema.names == ["id", "chunk", "vector"]
        assert whole.schema.field("vector").type == pa.list_(pa.field("item", pa.float32()), 384)
        # The vector taken is the one searches find the row by.
        hits = search(server, index="g_pq", vector=whole.column("vector")[0].as_py(), k=1)
        assert ids(hits) == [3], hits
        # A row appended later is taken from its unindexed fragment; a deleted one is gone.
        new_id = DOCS + 10
        sql(server, f"INSERT INTO glosses VALUES ({new_id}, 'a lighthouse warning ships off a rocky coast')")
        wait_for(lambda: client.take("g_pq", [new_id]).num_rows == 1, timeout=120, what="the appended row")
        sql(server, f"DELETE FROM glosses WHERE id = {new_id}")
        wait_for(lambda: client.take("g_pq", [new_id, 5]).column("id").to_pylist() == [5], timeout=120,
                 what="the deleted row to go")
    # By our CLI.
    out = lh_cli(server, "index", "take", "g_pq", "--ids", "5,17", "--columns", "id,chunk").stdout
    assert "(2 rows in" in out, out
    # Precise errors.
    with pytest.raises(pa.ArrowInvalid, match="ids: is empty"):
        action(server, "lakehouse.vector.take", {"index": "g_pq", "ids": []})
    with pytest.raises(pa.ArrowInvalid, match="is not one of id, chunk, vector"):
        action(server, "lakehouse.vector.take", {"index": "g_pq", "ids": [1], "columns": ["body"]})
    with pytest.raises(pa.ArrowInvalid, match="at most 10000"):
        action(server, "lakehouse.vector.take", {"index": "g_pq", "ids": list(range(10001))})
    with pytest.raises(pa.ArrowKeyError, match="does not exist"):
        action(server, "lakehouse.vector.take", {"index": "nope", "ids": [1]})


def test_a_profile_whose_backend_is_lance_builds_and_searches_lance_indexes(node):
    server = node["server"]
    load_docs(server, "p_topics")
    with lh.connect(server.uri, progress=False) as client:
        profile = client.create_profile("lance_profile", backend="lance")
        assert profile["backend"] == "lance", profile
        client.use_profile("lance_profile")
        # The profile's backend, without naming it; searches of the bound session go there.
        info = client.create_index("p_lance", "p_topics", text_column="body", id_column="id")
        assert (info["profile"], info["backend"]) == ("lance_profile", "lance"), info
        hits = client.search("p_lance", "a kitten chasing yarn", k=3)
        assert hits.num_rows == 3
        rows = client.sql("SELECT id FROM vector_search('p_lance', 'a kitten chasing yarn', 3) ORDER BY rank")
        assert rows.column("id").to_pylist() == hits.column("id").to_pylist()
        assert client.take("p_lance", [1], columns=["id"]).column("id").to_pylist() == [1]
        client.use_profile(None)


def test_bad_lance_requests_get_precise_errors(node):
    server = node["server"]
    body = {"table": "glosses", "textColumn": "body", "idColumn": "id", "backend": "lance"}
    for lance, message in [({"indexType": "DISKANN"}, "is not IVF_PQ, IVF_HNSW_SQ, IVF_FLAT"),
                           ({"subVectors": 7}, "does not divide the dimension 384"),
                           ({"bits": 5}, "is not 4 or 8"),
                           ({"indexType": "IVF_FLAT", "subVectors": 8}, "IVF_PQ parameters")]:
        with pytest.raises(pa.ArrowInvalid, match=message):
            create(server, name="g_bad", **body, lance=lance)
    with pytest.raises(pa.ArrowInvalid, match="for backend"):
        create(server, name="g_bad", table="glosses", textColumn="body", idColumn="id", backend="hnsw",
               lance={"partitions": 4})
    load_docs(server, "lance_hnsw_src")
    create(server, name="t_hnsw", table="lance_hnsw_src", textColumn="body", idColumn="id")
    with pytest.raises(pa.ArrowInvalid, match="only lance indexes optimize"):
        action(server, "lakehouse.vector.index.optimize", {"index": "t_hnsw"})
    with pytest.raises(pa.ArrowInvalid, match="takes by id read a lance index"):
        action(server, "lakehouse.vector.take", {"index": "t_hnsw", "ids": [1]})
    with pytest.raises(pa.ArrowKeyError, match="does not exist"):  # NOT_FOUND
        action(server, "lakehouse.vector.index.optimize", {"index": "nope"})
    assert "g_bad" not in query(server, "SELECT name FROM system.vector_indexes").column(0).to_pylist()


def test_an_index_moves_between_buckets(node):
    server, roots = node["server"], node["roots"]
    load_docs(server, "lance_move")
    info = create(server, name="t_move", table="lance_move", textColumn="body", idColumn="id", backend="lance")
    before = ids(search(server, index="t_move", query="a kitten chasing yarn", k=5))
    action(server, "lakehouse.bucket.add", {"name": "lance_home", "url": str(roots / "lance_home")})
    replies = action(server, "lakehouse.bucket.move_index", {"index": "t_move", "bucket": "lance_home"})
    assert replies[-1]["state"] == "JOB_STATE_SUCCEEDED", replies[-1]
    assert (roots / "lance_home" / info["location"] / "lance" / "_versions").is_dir()
    assert not (node["data"] / "buckets" / "primary" / info["location"]).exists()
    # The copy is opened where it now lives: same answers, no rebuild.
    assert ids(search(server, index="t_move", query="a kitten chasing yarn", k=5)) == before
    assert any("Lance dataset opened" in line for line in server.log)


def test_a_worker_killed_mid_search_fails_only_that_call(node, pq):
    server = node["server"]
    before = ids(search(server, index="g_pq", query=QUERIES[1], k=K))
    old = worker(server)
    os.kill(old["pid"], signal.SIGSTOP)
    outcome = {}

    def run():
        try:
            outcome["value"] = search(server, index="g_pq", query=QUERIES[1], k=K)
        except Exception as error:  # noqa: BLE001 - inspected below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)
    os.kill(old["pid"], signal.SIGKILL)
    thread.join(60)
    assert isinstance(outcome.get("error"), fl.FlightUnavailableError), outcome
    assert "lance worker exited during this call" in str(outcome["error"]), outcome["error"]
    row = wait_for(lambda: (lambda r: r if r["state"] == "running" and r["pid"] != old["pid"] else None)(
        worker(server)), timeout=60, what="the restarted worker")
    assert row["restarts"] == 1 and "signal 9" in row["last_exit"], row
    # The restarted worker opens the dataset where it is: the next search answers as before.
    assert ids(search(server, index="g_pq", query=QUERIES[1], k=K)) == before


def test_a_restart_opens_the_dataset_without_a_rebuild():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-lance-life-"))
    try:
        server = start(data_dir)
        write(server, "glosses", pa.table({"id": pa.array(range(1100), pa.int64()),
                                            "body": wordnet_glosses(1100)}))
        create(server, name="life", table="glosses", textColumn="body", idColumn="id", backend="lance",
               lance={"partitions": 8, "subVectors": 24})
        before = search(server, index="life", query="interest rates and inflation", k=5)
        pid = worker(server)["pid"]
        assert server.stop() == 0
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1],
                 timeout=30, what="the worker to stop with the server")

        server = start(data_dir)
        assert worker(server)["state"] == "not started"
        after = search(server, index="life", query="interest rates and inflation", k=5)
        assert ids(after) == ids(before)
        assert any("Lance dataset opened" in line for line in server.log), "".join(server.log[-30:])
        assert not any("rebuilding" in line for line in server.log)
        server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_missing_worker_binary_is_a_precise_error_and_the_server_goes_on():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-lance-missing-"))
    try:
        server = start(data_dir, "--lance-worker", str(data_dir / "no-such-lance-worker"))
        load_docs(server, "topics")
        # FAILED_PRECONDITION (pyarrow has no class of its own for it), saying how to build it.
        with pytest.raises(pa.ArrowException, match="build-lance-worker.sh"):
            create(server, name="t_missing", table="topics", textColumn="body", idColumn="id", backend="lance")
        # Everything else is served: SQL, other backends.
        assert query(server, "SELECT count(*) AS n FROM topics").column(0)[0].as_py() == 30
        create(server, name="t_ok", table="topics", textColumn="body", idColumn="id", backend="flat")
        assert len(search(server, index="t_ok", query="a kitten chasing yarn", k=3)) == 3
        server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_lance_index_in_an_s3_bucket():
    """The dataset is written to and searched in S3 (moto) with the bucket's settings."""
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-lance-s3-"))
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1"})
    try:
        server = start(data_dir, "--s3-endpoint", endpoint, "--s3-allow-http", "true")
        action(server, "lakehouse.bucket.add", {"name": "vectors_s3", "url": "s3://lake/vectors"})
        load_docs(server, "topics")
        info = create(server, name="t_s3", table="topics", textColumn="body", idColumn="id",
                      backend="lance", bucket="vectors_s3")
        assert info["bucket"] == "vectors_s3"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="vectors/indexes/")["Contents"]]
        assert any("/lance/_versions/" in k for k in keys), keys
        assert any("/lance/data/" in k for k in keys), keys
        exact = create(server, name="t_s3_flat", table="topics", textColumn="body", idColumn="id", backend="flat")
        assert exact["bucket"] == "primary"
        for text in ["a kitten chasing yarn", "interest rates and inflation"]:
            assert ids(search(server, index="t_s3", query=text, k=3)) == \
                ids(search(server, index="t_s3_flat", query=text, k=3))
        # Appends reach S3 as new fragments.
        sql(server, "INSERT INTO topics VALUES (31, 'geology', 'molten rock pouring from an erupting volcano')")
        wait_for(lambda: layout(server, "t_s3")["vectors"] == 31, timeout=120, what="the append")
        assert ids(search(server, index="t_s3", query="lava from a volcano", k=1)) == [31]
        assert layout(server, "t_s3")["fragments"] == 2
        server.stop()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        moto.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
