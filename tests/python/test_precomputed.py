"""Indexes over precomputed vectors (`vectorColumn` instead of `textColumn`): a table's own
embeddings — here GloVe 6B 50-d word vectors — indexed as they are by every backend (flat,
HNSW, the Faiss worker, the Lance worker), searched by vector, measured with eval sets made
from the index's own rows (`sampleRows`), refreshed when rows are appended or their vectors
change, and refused precisely when a vector is NULL, NaN or of the wrong width."""

import json
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest

import lakehouse_client as lh

from conftest import Server
from corpora import glove_vectors
from test_crash import wait_for
from test_ingest import action, query
from test_lakehouse_cli import lh as lh_cli
from test_vector import create, search, write

WORDS = 5000
DIM = 50
K = 10


def vectors_table(vectors, first_id: int = 0, fixed: bool = True) -> pa.Table:
    item = pa.float32()
    kind = pa.list_(item, DIM) if fixed else pa.list_(item)
    return pa.table({
        "id": pa.array(range(first_id, first_id + len(vectors)), pa.int64()),
        "vec": pa.array([list(map(float, v)) for v in vectors], kind),
    })


@pytest.fixture(scope="module")
def server():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-precomputed-"))
    node = Server(data_dir)
    write(node, "words", vectors_table(glove_vectors(WORDS)))
    yield node
    node.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def ids(hits) -> list[int]:
    return [int(h["id"]) for h in hits]


def recall(server, index: str, **knobs) -> list[dict]:
    name = f"{index}_eval"
    replies = action(server, "lakehouse.vector.eval_set.create", {
        "name": name, "index": index, "sampleRows": 100, "depth": K, "replace": True})
    final = replies[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    assert final["vectorEvalSet"]["queries"] == 100, final
    return action(server, "lakehouse.vector.eval", {"index": index, "evalSet": name, "k": K, **knobs})[0]["runs"]


@pytest.mark.parametrize("backend,extra", [
    ("flat", {}),
    ("hnsw", {}),
    ("faiss", {"factory": "IVF32,Flat", "nprobe": 32}),
    ("lance", {"lance": {"indexType": "IVF_FLAT", "partitions": 16}, "nprobe": 16}),
])
def test_every_backend_indexes_precomputed_vectors(server, backend, extra):
    name = f"words_{backend}"
    info = create(server, name=name, table="words", vectorColumn="vec", idColumn="id", backend=backend,
                  metric="l2", **extra)
    assert info["vectorColumn"] == "vec" and info.get("textColumn", "") == "", info
    assert int(info["vectors"]) == WORDS and info["dimension"] == DIM, info
    # No embedder: nothing embeds, the model is empty.
    assert info.get("model", "") == "" and info.get("embedder", "") == "", info
    row = query(server, f"SELECT vector_column, text_column, model FROM system.vector_indexes WHERE name = '{name}'")
    assert row.to_pylist() == [{"vector_column": "vec", "text_column": "", "model": ""}]
    # A row's own vector finds the row first, at distance 0.
    probe = [float(x) for x in glove_vectors(124)[123]]
    hits = search(server, index=name, vector=probe, k=K)
    assert ids(hits)[0] == 123 and hits[0].get("distance", 0.0) == pytest.approx(0.0, abs=1e-4), hits[:2]
    assert len(hits) == K and all(h.get("text", "") == "" for h in hits)
    # Filters still apply (k rows whenever k match).
    filtered = search(server, index=name, vector=probe, k=K, filter="id % 7 = 0")
    assert len(filtered) == K and all(i % 7 == 0 for i in ids(filtered)), filtered
    runs = recall(server, name)
    assert runs[0]["recallMean"] >= (1.0 if backend == "flat" else 0.9), runs


def test_lance_ivf_pq_over_5k_vectors_reaches_recall_with_refine(server):
    info = create(server, name="words_pq", table="words", vectorColumn="vec", idColumn="id", backend="lance",
                  metric="l2")
    params = json.loads(info["parameters"])
    # √5000 ≈ 70 partitions is above 5000/39: at least 39 vectors each; 50 = 5 × 10 dimensions.
    assert params["index_type"] == "IVF_PQ" and params["sub_vectors"] == 5, params
    runs = recall(server, "words_pq", nprobe=[params["partitions"]], refineFactor=[1, 10])
    by_refine = {int(r.get("refineFactor", 0)): r for r in runs}
    assert by_refine[10]["recallMean"] >= 0.9, runs
    assert by_refine[1]["recallMean"] < by_refine[10]["recallMean"], runs


def test_appended_and_changed_vectors_are_refreshed(server):
    create(server, name="words_live", table="words", vectorColumn="vec", idColumn="id", backend="hnsw",
           metric="l2")
    far = [[100.0 + i] * DIM for i in range(2)]
    write(server, "words", vectors_table(far, first_id=WORDS), mode="append")
    wait_for(lambda: ids(search(server, index="words_live", vector=far[1], k=1)) == [WORDS + 1],
             timeout=120, what="the appended vectors in the index")
    # A row whose vector changes (here the table is overwritten with row 7 changed) is
    # found by its new vector, not its old one.
    old = [float(x) for x in glove_vectors(8)[7]]
    new = [-50.0] * DIM
    current = query(server, "SELECT id, vec FROM words ORDER BY id")
    vecs = current.column("vec").to_pylist()
    vecs[7] = new
    changed = pa.table({"id": current.column("id"), "vec": pa.array(vecs, pa.list_(pa.float32(), DIM))})
    write(server, "words", changed, mode="replace")
    # (During the refresh the new vector is searchable before the old one is tombstoned.)
    wait_for(lambda: ids(search(server, index="words_live", vector=new, k=1)) == [7]
             and 7 not in ids(search(server, index="words_live", vector=old, k=3)),
             timeout=120, what="the changed vector in the index, the old one gone")


def test_bad_vectors_and_requests_get_precise_errors(server):
    good = glove_vectors(20)
    with_null = vectors_table(good).set_column(1, "vec", pa.array(
        [None if i == 7 else list(map(float, v)) for i, v in enumerate(good)], pa.list_(pa.float32(), DIM)))
    write(server, "bad_null", with_null)
    with pytest.raises(pa.ArrowInvalid, match="row with id 7: vec is NULL"):
        create(server, name="bad", table="bad_null", vectorColumn="vec", idColumn="id")
    nan = [list(map(float, v)) for v in good]
    nan[8][3] = float("nan")
    write(server, "bad_nan", pa.table({"id": pa.array(range(20), pa.int64()),
                                       "vec": pa.array(nan, pa.list_(pa.float32(), DIM))}))
    with pytest.raises(pa.ArrowInvalid, match="row with id 8: vec holds NaN"):
        create(server, name="bad", table="bad_nan", vectorColumn="vec", idColumn="id", backend="flat")
    ragged = [list(map(float, v)) for v in good]
    ragged[9] = ragged[9][:3]
    write(server, "bad_width", pa.table({"id": pa.array(range(20), pa.int64()),
                                         "vec": pa.array(ragged, pa.list_(pa.float32()))}))
    with pytest.raises(pa.ArrowInvalid, match="row with id 9: vec has 3 dimensions, the index 50"):
        create(server, name="bad", table="bad_width", vectorColumn="vec", idColumn="id", backend="flat")
    # A List<Float32> column of even width is fine.
    write(server, "good_list", vectors_table(good, fixed=False))
    info = create(server, name="list_idx", table="good_list", vectorColumn="vec", idColumn="id", backend="flat")
    assert info["dimension"] == DIM
    write(server, "texts", pa.table({"id": pa.array([1], pa.int64()), "body": ["words"],
                                     "doubles": pa.array([[1.0, 2.0]], pa.list_(pa.float64()))}))
    for body, message in [
        ({"table": "words", "textColumn": "x", "vectorColumn": "vec"}, "not both"),
        ({"table": "words"}, "set text_column .* or vector_column"),
        ({"table": "texts", "vectorColumn": "body"}, "not a list of Float32"),
        ({"table": "texts", "vectorColumn": "doubles"}, "holds Float64, not Float32"),
        ({"table": "words", "vectorColumn": "nope"}, "has no column"),
    ]:
        with pytest.raises((pa.ArrowInvalid, pa.ArrowKeyError), match=message):
            create(server, name="bad", idColumn="id", **body)
    # An embedder of another width cannot search these vectors by text.
    with pytest.raises(pa.ArrowInvalid, match="makes 384-dimensional vectors, the column vec holds 50"):
        create(server, name="bad", table="good_list", vectorColumn="vec", idColumn="id", embedder="builtin")
    # Without an embedder: by vector only; no text or hybrid search, no text eval sets.
    with pytest.raises(pa.ArrowInvalid, match="names no embedder"):
        search(server, index="list_idx", query="king", k=3)
    with pytest.raises(pa.ArrowInvalid, match="text and hybrid search need"):
        search(server, index="list_idx", query="king", k=3, mode="text")
    with pytest.raises(pa.ArrowInvalid, match="make its eval set from sample_rows"):
        action(server, "lakehouse.vector.eval_set.create", {"name": "e", "index": "list_idx", "queries": ["king"]})
    names = query(server, "SELECT name FROM system.vector_indexes").column(0).to_pylist()
    assert "bad" not in names


def test_the_cli_and_python_client_take_a_vector_column(server):
    out = lh_cli(server, "index", "create", "words_cli", "-t", "good_list", "--vector-column", "vec",
                 "--id-column", "id", "--backend", "flat").stdout
    assert "words_cli" in out, out
    out = lh_cli(server, "index", "eval-set", "words_cli_eval", "--index", "words_cli", "--sample-rows", "5").stdout
    assert "5" in out, out
    with lh.connect(server.uri, progress=False) as client:
        info = client.create_index("words_py", "good_list", vector_column="vec", id_column="id", backend="hnsw")
        assert info["vectorColumn"] == "vec"
        table = client.search("words_py", vector=[float(x) for x in glove_vectors(3)[2]], k=1)
        assert table.column("id").to_pylist() == [2]
        made = client.create_eval_set("words_py_eval", "words_py", sample_rows=10)
        assert made["queries"] == 10
