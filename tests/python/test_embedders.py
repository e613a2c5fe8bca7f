"""Vector indexes built with HTTP embedding services configured under `[embedders.NAME]`:
one speaking Ollama's `/api/embed`, one OpenAI's `/v1/embeddings` (API key from the
environment, base64 vectors). Neither Ollama nor an OpenAI endpoint can run here, so a
small HTTP service in this file speaks both protocols and embeds deterministically (a
hashed bag of words: texts sharing words are near, a text is nearest to itself).

Covers: building, searching (the query embedded by the index's service), rows appended
later embedded by the same service, the index's embedder in `system.vector_indexes`,
errors (unknown embedder before any job, a service that is down), restart."""

import base64
import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import Server
from lakehouse_client import Client
from test_ingest import query
from test_vector import TOPICS

DIM = 64
API_KEY = "sk-test-embedders-0123456789"
TEXTS = [text for group in TOPICS.values() for text in group]


def embed(text: str) -> list[float]:
    vector = [0.0] * DIM
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,;:!?").encode()).digest()
        vector[int.from_bytes(digest[:4], "little") % DIM] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet handler answering JSON, for the stand-in services."""

    def log_message(self, *args):
        pass

    def answer(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class EmbeddingService:
    """Ollama and OpenAI embedding endpoints on one ephemeral port."""

    def __init__(self):
        self.requests: list[dict] = []
        service = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                service.requests.append({"path": self.path, "body": body,
                                         "authorization": self.headers.get("authorization")})
                texts = body["input"]
                if self.path == "/api/embed":
                    return self.answer(200, {"model": body["model"], "embeddings": [embed(t) for t in texts]})
                if self.path == "/v1/embeddings":
                    if self.headers.get("authorization") != f"Bearer {API_KEY}":
                        return self.answer(401, {"error": {"message": "invalid api key"}})
                    data = []
                    for i, text in enumerate(texts):
                        vector = embed(text)
                        if body.get("encoding_format") == "base64":
                            vector = base64.b64encode(struct.pack(f"<{DIM}f", *vector)).decode()
                        data.append({"object": "embedding", "index": i, "embedding": vector})
                    # Out of order on purpose: clients must sort by index.
                    return self.answer(200, {"object": "list", "data": data[::-1], "model": body["model"]})
                self.answer(404, {"error": f"no route {self.path}"})

        self.handler = Handler
        self.port = 0
        self.start()

    def start(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def setup():
    service = EmbeddingService()
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-embedders-"))
    config = data_dir / "lakehouse.toml"
    config.write_text(f"""
[embedders.toy_ollama]
protocol = "ollama"
url = "http://127.0.0.1:{service.port}"
model = "toy-bow"
retries = 1
timeout_secs = 5

[embedders.toy_openai]
protocol = "openai"
url = "http://127.0.0.1:{service.port}/v1"
model = "toy-bow"
api_key_env = "LAKEHOUSE_TEST_TOY_KEY"
base64 = true
batch_size = 7
retries = 0
""")
    os.environ["LAKEHOUSE_TEST_TOY_KEY"] = API_KEY
    holder = {"server": Server(data_dir, "--config", str(config)), "data": data_dir,
              "config": config, "service": service}
    with Client(holder["server"].uri, progress=False) as client:
        client.write("toy_docs", pa.table({"id": list(range(len(TEXTS))), "body": TEXTS}))
    yield holder
    holder["server"].stop()
    service.stop()
    os.environ.pop("LAKEHOUSE_TEST_TOY_KEY", None)
    shutil.rmtree(data_dir, ignore_errors=True)


def ensure_ollama_index(client) -> None:
    """The index the first test builds, built here when that test did not run."""
    if "toy_ollama_idx" not in client.indexes().column("name").to_pylist():
        client.create_index("toy_ollama_idx", "toy_docs", text_column="body", id_column="id",
                            embedder="toy_ollama")


def test_ollama_embedder_builds_searches_and_embeds_appends(setup):
    server, service = setup["server"], setup["service"]
    with Client(server.uri, progress=False) as client:
        info = client.create_index("toy_ollama_idx", "toy_docs", text_column="body", id_column="id",
                                   embedder="toy_ollama")
        assert info["model"] == "ollama:toy-bow"
        assert info["embedder"] == "toy_ollama"
        assert info["dimension"] == DIM
        assert int(info["rows"]) == len(TEXTS)
        embedded = [r for r in service.requests if r["path"] == "/api/embed"]
        assert embedded and all(r["body"]["model"] == "toy-bow" for r in embedded)
        assert sum(len(r["body"]["input"]) for r in embedded) >= len(TEXTS)

        # The query is embedded by the same service: a text finds its own row first.
        for i in (0, 17, len(TEXTS) - 1):
            hits = client.search("toy_ollama_idx", TEXTS[i], k=3)
            assert hits.column("id")[0].as_py() == i, (TEXTS[i], hits.to_pylist())
            assert hits.column("score")[0].as_py() == pytest.approx(1.0, abs=1e-5)

        # A row appended later is embedded by the service in the background.
        new_text = "quasar pulsar nebula telescope observatory"
        client.sql(f"INSERT INTO toy_docs VALUES (1000, '{new_text}')")
        deadline = time.time() + 60
        while True:
            hits = client.search("toy_ollama_idx", new_text, k=1)
            if hits.num_rows and hits.column("id")[0].as_py() == 1000:
                break
            assert time.time() < deadline, hits.to_pylist()
            time.sleep(0.5)
        assert any(new_text in r["body"]["input"] for r in service.requests if r["path"] == "/api/embed")

    row = query(server, "SELECT model, embedder, dimension FROM system.vector_indexes "
                        "WHERE name = 'toy_ollama_idx'").to_pylist()
    assert row == [{"model": "ollama:toy-bow", "embedder": "toy_ollama", "dimension": DIM}]


def test_openai_embedder_sends_the_key_and_reads_base64(setup):
    server, service = setup["server"], setup["service"]
    before = len(service.requests)
    with Client(server.uri, progress=False) as client:
        info = client.create_index("toy_openai_idx", "toy_docs", text_column="body", id_column="id",
                                   embedder="toy_openai", backend="flat")
        assert info["model"] == "openai:toy-bow" and info["dimension"] == DIM
        hits = client.search("toy_openai_idx", TEXTS[5], k=1)
        assert hits.column("id")[0].as_py() == 5
    sent = [r for r in service.requests[before:] if r["path"] == "/v1/embeddings"]
    assert sent and all(r["authorization"] == f"Bearer {API_KEY}" for r in sent)
    assert all(r["body"]["encoding_format"] == "base64" for r in sent)
    assert max(len(r["body"]["input"]) for r in sent) <= 7, "batch_size is honoured"
    assert not any(API_KEY in line for line in server.log), "the API key is never logged"


def test_unknown_embedder_and_a_service_that_is_down(setup):
    server, service = setup["server"], setup["service"]
    flight = fl.FlightClient(server.uri)
    body = json.dumps({"name": "nope_idx", "table": "toy_docs", "textColumn": "body",
                       "idColumn": "id", "embedder": "gpt-nowhere"}).encode()
    jobs_before = query(server, "SELECT count(*) FROM system.jobs").column(0)[0].as_py()
    with pytest.raises(pa.ArrowKeyError) as error:  # NOT_FOUND
        list(flight.do_action(fl.Action("lakehouse.vector.index.create", body)))
    message = str(error.value)
    assert "gpt-nowhere" in message and "builtin, toy_ollama, toy_openai" in message, message
    assert query(server, "SELECT count(*) FROM system.jobs").column(0)[0].as_py() == jobs_before

    with Client(server.uri, progress=False) as client:
        ensure_ollama_index(client)
        service.stop()
        try:
            with pytest.raises(Exception) as down:
                client.search("toy_ollama_idx", "a dog in the park", k=3)
            assert "cannot reach" in str(down.value) and str(service.port) in str(down.value), down.value
            # A search by vector needs no embedding and still answers.
            hits = client.search("toy_ollama_idx", vector=embed(TEXTS[3]), k=1)
            assert hits.column("id")[0].as_py() == 3
        finally:
            service.start()
        hits = client.search("toy_ollama_idx", TEXTS[3], k=1)
        assert hits.column("id")[0].as_py() == 3


def test_indexes_keep_their_embedder_across_a_restart(setup):
    with Client(setup["server"].uri, progress=False) as client:
        ensure_ollama_index(client)
    setup["server"].stop()
    setup["server"] = Server(setup["data"], "--config", str(setup["config"]))
    with Client(setup["server"].uri, progress=False) as client:
        hits = client.search("toy_ollama_idx", TEXTS[8], k=1)
        assert hits.column("id")[0].as_py() == 8


def test_an_embedder_that_now_serves_another_model_is_refused(setup):
    with Client(setup["server"].uri, progress=False) as client:
        ensure_ollama_index(client)
    config = setup["config"]
    original = config.read_text()
    setup["server"].stop()
    try:
        # Same name, another model: vectors from it would not be comparable.
        config.write_text(original.replace('model = "toy-bow"\nretries = 1', 'model = "toy-bow-2"\nretries = 1'))
        setup["server"] = Server(setup["data"], "--config", str(config))
        with Client(setup["server"].uri, progress=False) as client:
            with pytest.raises(Exception) as refused:
                client.search("toy_ollama_idx", TEXTS[8], k=1)
            message = str(refused.value)
            assert "ollama:toy-bow" in message and "ollama:toy-bow-2" in message and "rebuild" in message, message
            # Searching by vector needs no embedder and still answers.
            assert client.search("toy_ollama_idx", vector=embed(TEXTS[8]), k=1).column("id")[0].as_py() == 8
    finally:
        setup["server"].stop()
        config.write_text(original)
        setup["server"] = Server(setup["data"], "--config", str(config))
