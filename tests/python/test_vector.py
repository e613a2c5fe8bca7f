"""Vector indexes end to end: lakehouse.vector.index.create (built-in MiniLM model, hnsw and
flat, chunked long texts), lakehouse.vector.search (text, vector, SQL filter; vector, text
and hybrid modes), the VectorSearchCommand DoGet stream from pyarrow.flight, the
vector_search/text_search/hybrid_search SQL functions from ADBC, system.vector_indexes,
refresh on append, and an index surviving a restart."""

import json
import shutil
import time
import tempfile
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import Server
from test_ingest import action, any_descriptor, client, query

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


def write(server, table: str, data: pa.Table, mode: str = "replace") -> None:
    """ADBC bulk ingest of `data` into `table`."""
    conn = connect(server)
    try:
        with conn.cursor() as cur:
            cur.adbc_ingest(table, data, mode=mode)
        conn.commit()
    finally:
        conn.close()


def load_docs(server, table: str) -> None:
    write(server, table, pa.Table.from_pylist(rows()))


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
    assert int(indexed["vectors"]) == 30 and int(indexed["rows"]) == 30 and indexed["dimension"] == 384
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
    # proto3 JSON leaves out a field at its default: an exact 0.0 distance is absent.
    assert int(first["id"]) == 2 and first.get("distance", 0.0) < 1e-4


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
            # Appended after the graph was saved: inserted when the graph is read back.
            sql(srv, "INSERT INTO docs (id, topic, body) "
                     "VALUES (9001, 'economy', 'The central bank raised its policy rate again')")
            deadline = time.time() + 60
            while 9001 not in [int(h["id"]) for h in search(srv, index="docs_idx", query="central bank policy rate", k=5)]:
                assert time.time() < deadline, "the appended row was not indexed"
                time.sleep(0.5)
            before = search(srv, index="docs_idx", query="central bank policy", k=3)
            before_appended = search(srv, index="docs_idx", query="central bank policy rate", k=5)
        finally:
            srv.stop()
        srv = Server(data_dir)
        try:
            relative = query(srv, "SELECT location FROM system.vector_indexes").column(0)[0].as_py()
            location = data_dir / "buckets" / "primary" / relative
            assert (location / "graph.bin").is_file(), sorted(p.name for p in location.iterdir())
            after = search(srv, index="docs_idx", query="central bank policy", k=3)
            assert [h["id"] for h in after] == [h["id"] for h in before]
            # The graph was read back, not rebuilt, and the appended row is still found.
            assert any("graph read back" in line and "docs_idx" in line for line in srv.log), srv.log[-5:]
            after_appended = search(srv, index="docs_idx", query="central bank policy rate", k=5)
            assert [h["id"] for h in after_appended] == [h["id"] for h in before_appended]
            parameters = json.loads(query(srv, "SELECT parameters FROM system.vector_indexes").column(0)[0].as_py())
            assert parameters == {"m": 8, "ef_construction": 200, "ef_search": 64,
                                  "chunk_tokens": 254, "chunk_overlap": 32}
        finally:
            srv.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def sql(server, statement: str) -> list[dict]:
    conn = connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetch_arrow_table().to_pylist()
    finally:
        conn.close()


def test_text_mode_ranks_by_bm25(server, indexed):
    hits = search(server, index="vec_docs_idx", query="windowsill", k=3, mode="text")
    assert [int(h["id"]) for h in hits] == [2], hits  # only one row has the word
    assert hits[0]["score"] > 0 and "distance" not in hits[0]  # a text hit has no vector distance
    hits = search(server, index="vec_docs_idx", query="ball", k=5, mode="text")
    assert sorted(int(h["id"]) for h in hits) == [1, 6]
    assert search(server, index="vec_docs_idx", query="zeppelin", k=5, mode="text") == []
    hits = search(server, index="vec_docs_idx", query="ball", k=5, mode="text", filter="id > 3")
    assert [int(h["id"]) for h in hits] == [6]


def test_hybrid_mode_fuses_both_rankings(server, indexed):
    hits = search(server, index="vec_docs_idx", query="puppy chewing a shoe", k=5, mode="hybrid")
    assert len(hits) == 5 and int(hits[0]["id"]) == 4, hits
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 2 / 61 + 1e-6
    assert all(topic_of(h) == "animals" for h in hits[:3]), hits
    # A word the model barely knows still ranks its row first once BM25 joins in.
    hits = search(server, index="vec_docs_idx", query="hamster", k=3, mode="hybrid")
    assert int(hits[0]["id"]) == 10
    hits = search(server, index="vec_docs_idx", query="money", k=4, mode="hybrid", filter="topic = 'cooking'")
    assert len(hits) == 4 and all(topic_of(h) == "cooking" for h in hits)


def test_mode_errors(server, indexed):
    with pytest.raises(pa.ArrowInvalid) as err:
        search(server, index="vec_docs_idx", query="x", mode="fuzzy")
    assert "mode" in str(err.value)
    with pytest.raises(pa.ArrowInvalid) as err:
        search(server, index="vec_docs_idx", vector=[0.1] * 384, mode="text")
    assert "query text" in str(err.value)


def test_search_functions_in_sql(server, indexed):
    rows_ = sql(server, "SELECT id, rank, score, distance FROM text_search('vec_docs_idx', 'warm windowsill', 3)")
    assert rows_[0]["id"] == 2 and rows_[0]["rank"] == 1 and rows_[0]["distance"] is None
    rows_ = sql(server, "SELECT d.topic, s.rank, s.score FROM hybrid_search('vec_docs_idx', 'bake bread', 3) s "
                        "JOIN vec_docs d ON d.id = s.id ORDER BY s.rank")
    assert [r["rank"] for r in rows_] == [1, 2, 3] and all(r["topic"] == "cooking" for r in rows_), rows_
    rows_ = sql(server, "SELECT score, distance FROM vector_search('vec_docs_idx', 'stock market', 2)")
    assert all(abs(r["score"] - (1 - r["distance"])) < 1e-5 for r in rows_)
    with pytest.raises(Exception) as err:
        sql(server, "SELECT * FROM text_search('vec_docs_idx', 'x', 3, 50)")
    assert "text_search takes" in str(err.value)


def test_search_command_streams_hits_with_columns(server, indexed):
    descriptor = any_descriptor("VectorSearchCommand", {
        "search": {"index": "vec_docs_idx", "query": "interest rates and loans", "k": 4},
        "columns": ["topic", "id", "body"],
    })
    flight = client(server)
    info = flight.get_flight_info(descriptor)
    assert info.schema.names == ["id", "score", "distance", "text", "rank", "topic"]
    table = flight.do_get(info.endpoints[0].ticket).read_all()
    assert table.num_rows == 4 and table.column("rank").to_pylist() == [1, 2, 3, 4]
    assert table.column("topic").to_pylist() == ["finance"] * 4
    for row in table.to_pylist():
        assert row["text"] in TOPICS["finance"] and row["id"] == rows()[row["id"] - 1]["id"]
    # The same search as the action, in the same order.
    hits = search(server, index="vec_docs_idx", query="interest rates and loans", k=4)
    assert table.column("id").to_pylist() == [int(h["id"]) for h in hits]
    with pytest.raises(pa.ArrowKeyError):
        flight.get_flight_info(any_descriptor("VectorSearchCommand", {
            "search": {"index": "vec_docs_idx", "query": "x"}, "columns": ["nope"]}))
    with pytest.raises(pa.ArrowInvalid) as err:
        flight.get_flight_info(any_descriptor("VectorSearchCommand", {
            "search": {"index": "vec_docs_idx", "query": "x"}, "columns": ["rank"]}))
    assert "clashes" in str(err.value)


LONG_PREFIX = " ".join(["the chef stirred the pot of soup and tasted the broth again"] * 40)


def test_long_texts_are_chunked(server):
    data = pa.Table.from_pylist([
        {"id": 1, "body": LONG_PREFIX + " Finally the submarine surfaced beside the arctic ice shelf."},
        {"id": 2, "body": "a short note about watering the garden roses"},
        {"id": 3, "body": "an essay on medieval castles and their stone walls"},
    ])
    write(server, "vec_long", data)
    info = create(server, name="vec_long_idx", table="vec_long", textColumn="body", idColumn="id",
                  backend="flat", chunkTokens=64, chunkOverlap=8)
    assert int(info["rows"]) == 3 and int(info["vectors"]) > 8, info
    hits = search(server, index="vec_long_idx", query="a submarine surfacing near arctic ice", k=3)
    # The passage at the end of row 1 is found; a row comes back once, at its best chunk.
    assert int(hits[0]["id"]) == 1 and len({h["id"] for h in hits}) == 3, hits
    assert hits[0]["text"].endswith("arctic ice shelf.")
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.vector.index.create", {"name": "bad", "table": "vec_long",
               "textColumn": "body", "idColumn": "id", "chunkTokens": 1000})
    assert "chunk_tokens" in str(err.value)
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.vector.index.create", {"name": "bad", "table": "vec_long",
               "textColumn": "body", "idColumn": "id", "chunkTokens": 64, "chunkOverlap": 64})
    assert "chunk_overlap" in str(err.value)


def index_row(server, name: str) -> dict:
    return query(server, "SELECT rows, vectors, source_version, location, build_seconds "
                         f"FROM system.vector_indexes WHERE name = '{name}'").to_pylist()[0]


def test_appended_rows_are_indexed_without_a_rebuild(server):
    load_docs(server, "vec_fresh")
    create(server, name="vec_fresh_idx", table="vec_fresh", textColumn="body", idColumn="id")
    before = index_row(server, "vec_fresh_idx")
    assert search(server, index="vec_fresh_idx", query="volcano erupting lava", k=1, mode="text") == []
    write(server, "vec_fresh", pa.Table.from_pylist([
        {"id": 31, "topic": "geology", "body": "the volcano erupted and lava flowed down the mountain"},
        {"id": 32, "topic": "geology", "body": "an earthquake shook the coastal town at dawn"},
    ]), mode="append")
    deadline = time.time() + 120
    while (after := index_row(server, "vec_fresh_idx"))["rows"] < 32 and time.time() < deadline:
        time.sleep(0.5)
    assert after["rows"] == 32 and after["vectors"] == 32, after
    assert after["source_version"] > before["source_version"]
    # Refreshed in place: same build, same files.
    assert after["location"] == before["location"] and after["build_seconds"] == before["build_seconds"]
    hits = search(server, index="vec_fresh_idx", query="lava from a volcano", k=2)
    assert [int(h["id"]) for h in hits] == [31, 32], hits
    hits = search(server, index="vec_fresh_idx", query="volcano", k=1, mode="text")
    assert [int(h["id"]) for h in hits] == [31]
    # An INSERT is an append too.
    sql(server, "INSERT INTO vec_fresh VALUES (33, 'geology', 'glaciers carved the deep valley')")
    deadline = time.time() + 120
    while index_row(server, "vec_fresh_idx")["rows"] < 33 and time.time() < deadline:
        time.sleep(0.5)
    hits = search(server, index="vec_fresh_idx", query="a glacier shaping a valley", k=1)
    assert [int(h["id"]) for h in hits] == [33]


def test_eval_sets_measure_recall_and_latency(server, indexed):
    replies = action(server, "lakehouse.vector.eval_set.create", {
        "name": "vec_eval", "index": "vec_docs_idx", "depth": 20,
        "queries": ["pets at home", "money matters", "in the kitchen", "farm animals", "bank loans"]})
    assert replies[-1]["state"] == "JOB_STATE_SUCCEEDED", replies[-1]
    info = replies[-1]["vectorEvalSet"]
    assert info["queries"] == 5 and info["depth"] == 20 and int(info["vectors"]) == 30
    assert info["location"].startswith("evalsets/vec_eval-")
    listed = query(server, "SELECT index_name, queries, depth, vectors FROM system.vector_eval_sets "
                           "WHERE name = 'vec_eval'").to_pylist()
    assert listed == [{"index_name": "vec_docs_idx", "queries": 5, "depth": 20, "vectors": 30}]
    result = action(server, "lakehouse.vector.eval", {"index": "vec_docs_idx", "evalSet": "vec_eval",
                                                      "k": 10, "ef": [10, 100]})[0]
    runs = result["runs"]
    assert [r["ef"] for r in runs] == [10, 100] and result["queries"] == 5 and result["k"] == 10
    # 30 vectors and ef 100: the graph search is exhaustive, recall is exact.
    assert runs[1]["recallMean"] == 1.0 and runs[1]["recallP5"] == 1.0
    for run in runs:
        assert 0 < run["recallMean"] <= 1 and run["qps"] > 0
        assert 0 < run["latencyP50Ms"] <= run["latencyP95Ms"] <= run["latencyP99Ms"]
    assert result["backend"] == "hnsw" and int(result["bytes"]) > 0 and not result.get("warning")
    # Queries read by SQL, and latency with the embedding: each text finds itself first.
    replies = action(server, "lakehouse.vector.eval_set.create", {
        "name": "vec_eval_sql", "index": "vec_docs_idx", "depth": 5,
        "queriesSql": "SELECT body FROM vec_docs WHERE topic = 'cooking'"})
    assert replies[-1]["vectorEvalSet"]["queries"] == 10
    result = action(server, "lakehouse.vector.eval", {"index": "vec_docs_idx", "evalSet": "vec_eval_sql",
                                                      "k": 5, "ef": [100], "embedQueries": True})[0]
    assert result["runs"][0]["recallMean"] == 1.0
    assert result["runs"][0]["latencyP50Ms"] > 0.5  # the model runs inside the timed loop
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.vector.eval", {"index": "vec_docs_idx", "evalSet": "vec_eval_sql", "k": 10})
    assert "depth" in str(err.value)
    with pytest.raises(pa.ArrowKeyError):
        action(server, "lakehouse.vector.eval", {"index": "vec_docs_idx", "evalSet": "nope"})
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.vector.eval_set.create", {
            "name": "x", "index": "vec_docs_idx", "queries": ["a"], "queriesSql": "SELECT 'b'"})
    assert "set one of queries, queries_sql and sample_rows" in str(err.value)
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.vector.eval_set.create", {
            "name": "vec_eval", "index": "vec_docs_idx", "queries": ["a"]})
    assert "already exists" in str(err.value)
