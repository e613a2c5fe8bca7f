"""Vector search on real text: 1 000 WordNet glosses embedded by the built-in model, queried
with GCIDE dictionary definitions (scripts/fetch-data.sh fetches both from Debian packages)."""

import pyarrow as pa

import corpora
from test_ingest import action
from test_vector import search, write

ROWS = 1000


def test_wordnet_recall_rises_with_ef_and_words_count(server):
    texts = corpora.wordnet_glosses(ROWS)
    table = pa.table({"id": pa.array(range(1, ROWS + 1), pa.int64()), "gloss": texts})
    write(server, "wordnet_small", table)
    final = action(server, "lakehouse.vector.index.create", {
        "name": "wordnet_small_idx", "table": "wordnet_small", "textColumn": "gloss", "idColumn": "id",
        "m": 8, "efConstruction": 32})[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    assert int(final["vectorIndex"]["rows"]) == ROWS
    final = action(server, "lakehouse.vector.eval_set.create", {
        "name": "wordnet_gcide_small", "index": "wordnet_small_idx", "depth": 10,
        "queries": corpora.gcide_definitions(100)})[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    result = action(server, "lakehouse.vector.eval", {
        "index": "wordnet_small_idx", "evalSet": "wordnet_gcide_small", "k": 10, "ef": [10, 40, 500]})[0]
    recalls = [run["recallMean"] for run in result["runs"]]
    assert recalls[0] <= recalls[1] <= recalls[2] + 1e-9, recalls
    # ef 500 over 1 000 vectors: close to exhaustive.
    assert recalls[2] >= 0.97 and result["runs"][2]["recallP5"] >= 0.8, result["runs"]
    # BM25 finds the literal word; every hit contains it.
    hits = search(server, index="wordnet_small_idx", query="water", k=5, mode="text")
    assert hits and all("water" in h["text"].lower() for h in hits), hits
    # A gloss finds itself first, by vector and fused; a SQL filter holds in hybrid mode.
    for mode in ["vector", "hybrid"]:
        hits = search(server, index="wordnet_small_idx", query=texts[41], k=3, mode=mode)
        assert int(hits[0]["id"]) == 42, (mode, hits)
    hits = search(server, index="wordnet_small_idx", query=texts[41], k=5, mode="hybrid", filter="id > 500")
    assert len(hits) == 5 and all(int(h["id"]) > 500 for h in hits)
