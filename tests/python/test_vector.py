"""Vector indexes end to end: lakehouse.vector.index.create (built-in MiniLM model, hnsw and
flat), lakehouse.vector.search (text, vector, SQL filter), the vector_search SQL function
from ADBC, system.vector_indexes, and an index surviving a restart."""

import shutil
import tempfile
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest

from conftest import Server
from test_ingest import action, query

TOPICS = {
    "animals": ["a dog chases a ball in the park", "the cat sleeps on the warm windowsill",
                "a horse gallops across the meadow", "the puppy chews on an old shoe",
                "birds build nests in the spring", "a kitten plays with a ball of yarn",
                "the cow grazes in the green field", "a parrot repeats words it hears",
                "wolves hunt together in a pack", "the hamster runs on its wheel"],
    "finance": ["the stock market fell sharply today", "interest rates were raised by the central bank",
                "the company reported record quarterly profits", "investors moved money into bonds",
                "inflation eroded household savings", "the bank approved the mortgage loan",
                "shares of the tech firm rose ten percent", "the budget deficit widened this year",
                "currency traders bet against the euro", "the startup raised a new funding round"],
    "cooking": ["simmer the tomato sauce for twenty minutes", "knead the bread dough until smooth",
                "season the soup with salt and pepper", "bake the cake at 180 degrees",
                "chop the onions and garlic finely", "whisk the eggs with sugar until fluffy",
                "grill the vegetables over high heat", "the recipe calls for fresh basil",
                "roast the chicken with lemon and thyme", "fry the potatoes until golden"],
}


def rows():
    out, i = [], 0
    for topic, texts in TOPICS.items():
        for text in texts:
            i += 1
            out.append({"id": i, "topic": topic, "body": text})
    return out


def connect(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(server.uri)


def load_docs(server, table: str) -> None:
    data = pa.Table.from_pylist(rows())
    conn = connect(server)
    try:
        with conn.cursor() as cur:
            cur.adbc_ingest(table, data, mode="replace")
        conn.commit()
    finally:
        conn.close()


def create(server, **body) -> dict:
    replies = action(server, "lakehouse.vector.index.create", body)
    assert replies[-1]["state"] == "JOB_STATE_SUCCEEDED", replies[-1]
    return replies[-1]["vectorIndex"]


def search(server, **body) -> list[dict]:
    return action(server, "lakehouse.vector.search", body)[0].get("hits", [])


def topic_of(hit) -> str:
    return next(t for t, texts in TOPICS.items() if hit["text"] in texts)


@pytest.fixture(scope="module")
def indexed(server):
    load_docs(server, "vec_docs")
    info = create(server, name="vec_docs_idx", table="vec_docs", textColumn="body", idColumn="id")
    return info


def test_create_records_the_index(server, indexed):
    assert int(indexed["vectors"]) == 30 and indexed["dimension"] == 384
    assert indexed["backend"] == "hnsw" and indexed["metric"] == "cosine"
    assert indexed["model"] == "all-minilm-l6-v2" and indexed["location"].startswith("indexes/vec_docs_idx-")
    rows_ = query(server, "SELECT name, table_name, backend, vectors, dimension, parameters "
                          "FROM system.vector_indexes WHERE name = 'vec_docs_idx'").to_pylist()
    assert rows_ and rows_[0]["vectors"] == 30 and '"m":16' in rows_[0]["parameters"]
    jobs = query(server, "SELECT kind, state FROM system.jobs WHERE kind = 'lakehouse.vector.index.create'")
    assert "SUCCEEDED" in jobs.column("state").to_pylist()


def test_search_finds_the_meaning_not_the_words(server, indexed):
    hits = search(server, index="vec_docs_idx", query="a young dog playing fetch", k=3)
    assert len(hits) == 3 and all(topic_of(h) == "animals" for h in hits), hits
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    hits = search(server, index="vec_docs_idx", query="economy and money", k=5, ef=100)
    assert sum(topic_of(h) == "finance" for h in hits) >= 4, hits


def test_filters_return_k_rows_when_k_match(server, indexed):
    hits = search(server, index="vec_docs_idx", query="a dog chases a ball", k=10, filter="topic = 'cooking'")
    assert len(hits) == 10 and all(topic_of(h) == "cooking" for h in hits)
    hits = search(server, index="vec_docs_idx", query="bread", k=3, filter="id IN (1, 2)")
    assert sorted(int(h["id"]) for h in hits) == [1, 2]
    with pytest.raises(pa.ArrowInvalid) as err:
        search(server, index="vec_docs_idx", query="x", filter="no_such_column = 1")
    assert "filter" in str(err.value)


def test_flat_agrees_with_hnsw_and_vectors_search(server, indexed):
    create(server, name="vec_docs_flat", table="vec_docs", textColumn="body", idColumn="id", backend="flat")
    for q in ["stock prices", "baking a cake", "a bird in the sky"]:
        flat = search(server, index="vec_docs_flat", query=q, k=5)
        hnsw = search(server, index="vec_docs_idx", query=q, k=5, ef=200)
        assert [h["id"] for h in flat] == [h["id"] for h in hnsw], q
    # A raw vector query: the stored vector of a row finds that row first.
    first = search(server, index="vec_docs_flat", query="the cat sleeps on the warm windowsill", k=1)[0]
    assert int(first["id"]) == 2 and first["distance"] < 1e-4


def test_vector_search_in_sql_joins_tables(server, indexed):
    conn = connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT d.topic, s.rank, s.distance FROM vector_search('vec_docs_idx', "
                        "'cooking dinner in the kitchen', 4) s JOIN vec_docs d ON d.id = s.id ORDER BY s.rank")
            result = cur.fetch_arrow_table().to_pylist()
    finally:
        conn.close()
    assert [r["rank"] for r in result] == [1, 2, 3, 4]
    assert all(r["topic"] == "cooking" for r in result), result


def test_errors_are_precise(server, indexed):
    with pytest.raises(pa.ArrowKeyError):  # NOT_FOUND
        search(server, index="nope", query="x")
    with pytest.raises(pa.ArrowInvalid) as err:
        search(server, index="vec_docs_idx", query="x", k=1_000_000)
    assert "k:" in str(err.value)
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.vector.index.create",
               {"name": "bad", "table": "vec_docs", "textColumn": "id", "idColumn": "id"})
    assert "not text" in str(err.value)
    with pytest.raises(pa.ArrowKeyError):
        action(server, "lakehouse.vector.index.create",
               {"name": "bad", "table": "vec_docs", "textColumn": "nope", "idColumn": "id"})
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.vector.index.create",
               {"name": "vec_docs_idx", "table": "vec_docs", "textColumn": "body", "idColumn": "id"})
    assert "already exists" in str(err.value)
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.vector.index.create",
               {"name": "bad", "table": "vec_docs", "textColumn": "body", "idColumn": "id", "m": 300})
    assert "m = 300" in str(err.value)


def test_an_index_survives_a_restart():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-pytest-vec-"))
    try:
        srv = Server(data_dir)
        try:
            load_docs(srv, "docs")
            create(srv, name="docs_idx", table="docs", textColumn="body", idColumn="id", m=8)
            before = search(srv, index="docs_idx", query="central bank policy", k=3)
        finally:
            srv.stop()
        srv = Server(data_dir)
        try:
            after = search(srv, index="docs_idx", query="central bank policy", k=3)
            assert [h["id"] for h in after] == [h["id"] for h in before]
            assert query(srv, "SELECT parameters FROM system.vector_indexes").column(0)[0].as_py().startswith('{"ef_construction":200,"ef_search":64,"m":8')
        finally:
            srv.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
