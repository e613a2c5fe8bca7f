"""Vector indexes follow every change of their table, not only appends (issue 20, defect
3): after an UPDATE, a DELETE or an overwrite, every backend (flat, HNSW, the Faiss
worker) answers as if rebuilt — deleted rows never come back, k rows come back whenever
k match, an updated row is found by its new text (vector and BM25 text search), and
this holds after a restart. system.vector_indexes shows the table version each index
reflects."""

import time

import pyarrow as pa
import pytest

from conftest import Server, fresh_node
from test_ingest import query
from test_vector import TOPICS, create, rows, search, sql, write


def table_version(server, table: str) -> int:
    return query(server, f"SELECT version FROM system.tables WHERE table_name = '{table}'").to_pylist()[0]["version"]


def index_state(server, name: str) -> dict:
    return query(server, "SELECT rows, vectors, source_version FROM system.vector_indexes "
                         f"WHERE name = '{name}'").to_pylist()[0]


def caught_up(server, index: str, table: str) -> dict:
    """Waits until the index reflects the table's latest version."""
    deadline = time.time() + 120
    while True:
        state = index_state(server, index)
        if state["source_version"] == table_version(server, table) or time.time() > deadline:
            assert state["source_version"] == table_version(server, table), state
            return state
        time.sleep(0.3)


@pytest.fixture(scope="module")
def node():
    with fresh_node("lakehouse-vchanges-") as holder:
        yield holder


@pytest.mark.parametrize("backend", ["flat", "hnsw", "faiss"])
def test_indexes_answer_as_if_rebuilt_after_updates_and_deletes(node, backend):
    server = node["server"]
    table, index = f"chg_{backend}", f"chg_{backend}_idx"
    write(server, table, pa.Table.from_pylist(rows()))
    extra = {"factory": "Flat"} if backend == "faiss" else {}
    create(server, name=index, table=table, textColumn="body", idColumn="id", backend=backend, **extra)

    # DELETE: the animals go; a search for an animal still returns k rows, none deleted.
    sql(server, f"DELETE FROM {table} WHERE topic = 'animals'")
    state = caught_up(server, index, table)
    assert state["rows"] == 20 and state["vectors"] == 20, state
    hits = search(server, index=index, query="a dog chases a ball", k=5)
    assert len(hits) == 5 and all(int(h["id"]) > 10 for h in hits), hits
    assert all(int(h["id"]) > 10 for h in search(server, index=index, query="ball", k=5, mode="text"))
    # A filter that matches 3 rows still gets 3.
    hits = search(server, index=index, query="a dog", k=3, filter="id IN (11, 12, 13)")
    assert sorted(int(h["id"]) for h in hits) == [11, 12, 13], hits

    # UPDATE: row 21 ("simmer the tomato sauce") now talks about volcanoes.
    sql(server, f"UPDATE {table} SET body = 'the volcano erupted and lava flowed down the mountain' WHERE id = 21")
    state = caught_up(server, index, table)
    assert state["rows"] == 20 and state["vectors"] == 20, state
    hits = search(server, index=index, query="lava from an erupting volcano", k=1)
    assert [int(h["id"]) for h in hits] == [21] and "volcano" in hits[0]["text"], hits
    hits = search(server, index=index, query="tomato sauce simmering", k=3)
    assert 21 not in [int(h["id"]) for h in hits], hits  # not found by its old meaning
    assert [int(h["id"]) for h in search(server, index=index, query="volcano", k=3, mode="text")] == [21]
    assert search(server, index=index, query="simmer", k=3, mode="text") == []
    # Hybrid agrees.
    assert int(search(server, index=index, query="volcano lava", k=1, mode="hybrid")[0]["id"]) == 21

    # SQL search functions see the same.
    found = sql(server, f"SELECT id FROM vector_search('{index}', 'a kitten plays with yarn', 5)")
    assert len(found) == 5 and all(r["id"] > 10 for r in found), found


@pytest.mark.parametrize("backend", ["hnsw", "faiss"])
def test_an_overwrite_and_a_restart(node, backend):
    """Both backends whose structure is saved beside the vectors (an HNSW graph, a Faiss
    index file): after the restart the index must not come back with the old vectors."""
    server = node["server"]
    table, index = f"chg_over_{backend}", f"chg_over_{backend}_idx"
    write(server, table, pa.Table.from_pylist(rows()))
    extra = {"factory": "HNSW16"} if backend == "faiss" else {}
    create(server, name=index, table=table, textColumn="body", idColumn="id", backend=backend, **extra)
    # Overwrite with the same rows but one: the first finance row now talks of glaciers.
    # Every (row, chunk) key still exists, so a saved structure would still "fit".
    kept = rows()
    changed = next(i for i, r in enumerate(kept) if r["topic"] == "finance")
    kept[changed] = {**kept[changed], "body": "glaciers carved the deep valley over millennia"}
    write(server, table, pa.Table.from_pylist(kept), mode="replace")
    state = caught_up(server, index, table)
    assert state["rows"] == 30 and state["vectors"] == 30, state
    hits = search(server, index=index, query="a glacier shaping a valley", k=1)
    assert [int(h["id"]) for h in hits] == [kept[changed]["id"]], hits

    # After a restart the index still answers as if rebuilt: the stale vector was deleted
    # from the stored vectors and the saved structure, not only hidden in memory.
    server.stop()
    node["server"] = server = Server(node["data"])
    assert int(search(server, index=index, query="glacier valley", k=1)[0]["id"]) == kept[changed]["id"]
    kept = [r for r in kept if r["topic"] == "finance"]  # kept[0] is the changed row
    # Not found by the text it had before the overwrite (a saved structure would still hold it).
    old_text = TOPICS["finance"][0]
    assert int(search(server, index=index, query=old_text, k=1)[0]["id"]) != kept[0]["id"]
    # Then the cooking and animal rows go, and a restart keeps them gone.
    write(server, table, pa.Table.from_pylist(kept), mode="replace")
    assert caught_up(server, index, table)["rows"] == 10
    server.stop()
    node["server"] = server = Server(node["data"])
    hits = search(server, index=index, query="a puppy chews a shoe", k=10)
    assert len(hits) == 10 and {int(h["id"]) for h in hits} == {r["id"] for r in kept}, hits
    assert index_state(server, index)["source_version"] == table_version(server, table)
