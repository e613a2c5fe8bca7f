"""Model profiles and the single GPU slot, against the real server binary.

Ollama cannot run here, so a small HTTP service in this file speaks the part of its API
the slot uses: `/api/embed` (embeds deterministically, and loads the model), `/api/generate`
with an empty prompt (`keep_alive: -1` loads and pins a model, `keep_alive: 0` unloads it)
and `/api/ps` (what is loaded, with sizes). It keeps the set of loaded models the way
Ollama does, so the tests check what the server asked for, and in which order.

Covers: creating profiles (and their errors), activation as a job that unloads only what
the new profile does not share, the slot in `lakehouse.profile.list`, `system.gpu_slot`,
`system.profiles` and `/metrics`, pinning (embedding requests carry `keep_alive: -1` while
the slot holds the model), a failed activation, sessions bound to a profile (Python
client, ADBC session option, SQL, DoGet) and PERMISSION_DENIED outside it, drop rules,
the active profile restored after a restart, and releasing the slot."""

import json
import shutil
import tempfile
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import Server
from lakehouse_client import Client, LakehouseError
from test_embedders import TEXTS, JsonHandler, embed
from test_ingest import query

SIZES = {"nomic-embed-text": 280_000_000, "llama3.2": 2_000_000_000, "qwen2.5-coder": 4_000_000_000}


class FakeOllama:
    """The model-management part of Ollama's API, on an ephemeral port."""

    def __init__(self):
        self.requests: list[dict] = []
        self.loaded: dict[str, int] = {}  # model -> keep_alive of its last request
        self.lock = threading.Lock()
        service = self

        class Handler(JsonHandler):
            def do_GET(self):
                if self.path == "/api/ps":
                    with service.lock:
                        models = [{"name": f"{m}:latest", "model": f"{m}:latest", "size": SIZES.get(m, 1),
                                   "size_vram": SIZES.get(m, 1)} for m in service.loaded]
                    return self.answer(200, {"models": models})
                self.answer(404, {"error": f"no route {self.path}"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                model = body.get("model", "")
                with service.lock:
                    service.requests.append({"path": self.path, "body": body})
                if model not in SIZES:
                    return self.answer(404, {"error": f"model '{model}' not found"})
                keep_alive = body.get("keep_alive")
                with service.lock:
                    if keep_alive == 0:
                        service.loaded.pop(model, None)
                    else:
                        service.loaded[model] = keep_alive
                if self.path == "/api/embed":
                    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    return self.answer(200, {"model": model, "embeddings": [embed(t) for t in texts]})
                if self.path == "/api/generate":
                    reason = "unload" if keep_alive == 0 else "load"
                    return self.answer(200, {"model": model, "response": "", "done": True, "done_reason": reason})
                self.answer(404, {"error": f"no route {self.path}"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def since(self, mark: int) -> list[tuple[str, str, object]]:
        """(path, model, keep_alive) of the requests after the first `mark`."""
        with self.lock:
            return [(r["path"], r["body"].get("model"), r["body"].get("keep_alive")) for r in self.requests[mark:]]

    def mark(self) -> int:
        with self.lock:
            return len(self.requests)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def setup():
    ollama = FakeOllama()
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-profiles-"))
    config = data_dir / "lakehouse.toml"
    url = f"http://127.0.0.1:{ollama.port}"
    config.write_text(f"""
metrics_listen = "127.0.0.1:0"

[embedders.nomic]
protocol = "ollama"
url = "{url}"
model = "nomic-embed-text"
retries = 0
timeout_secs = 10

[llms.chat]
protocol = "ollama"
url = "{url}"
model = "llama3.2"

[llms.coder]
protocol = "ollama"
url = "{url}"
model = "qwen2.5-coder"

[llms.missing]
protocol = "ollama"
url = "{url}"
model = "not-pulled"
""")
    holder = {"server": Server(data_dir, "--config", str(config)), "data": data_dir,
              "config": config, "ollama": ollama}
    with Client(holder["server"].uri, progress=False) as client:
        client.write("notes", pa.table({"id": list(range(len(TEXTS))), "body": TEXTS}))
    yield holder
    holder["server"].stop()
    ollama.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def metrics(server) -> str:
    with urllib.request.urlopen(server.ops_url + "/metrics", timeout=10) as response:
        return response.read().decode()


def flight_error(call):
    with pytest.raises(pa.ArrowException) as error:
        call()
    return error.value


def action(client: fl.FlightClient, name: str, body: dict):
    return [json.loads(r.body.to_pybytes()) for r in client.do_action(fl.Action(name, json.dumps(body).encode()))]


def ensure_profiles(client: Client) -> None:
    names = {p["name"] for p in client.profiles().get("profiles", [])}
    for name, llm in (("docs", "chat"), ("code", "coder")):
        if name not in names:
            client.create_profile(name, embedder="nomic", llm=llm, backend="flat")


def test_profiles_are_created_and_checked(setup):
    server = setup["server"]
    with Client(server.uri, progress=False) as client:
        docs = client.create_profile("docs", embedder="nomic", llm="chat", backend="flat")
        assert docs["name"] == "docs" and docs["embedder"] == "nomic" and docs["llm"] == "chat"
        assert docs["backend"] == "flat" and docs["bucket"] == "primary"
        assert not docs.get("active")
        client.create_profile("code", embedder="nomic", llm="coder", backend="flat")
        local = client.create_profile("local")
        assert (local["embedder"], local["backend"], local.get("llm", "")) == ("builtin", "hnsw", "")

        flight = fl.FlightClient(server.uri)
        bad = [
            ({"name": "docs", "embedder": "nomic"}, "already exists"),
            ({"name": "x", "embedder": "gpt-nowhere"}, "embedder"),
            ({"name": "x", "llm": "gpt5"}, "not configured"),
            ({"name": "x", "backend": "annoy"}, "backend"),
            ({"name": "x", "bucket": "nowhere"}, "bucket"),
            ({"name": "Bad Name"}, "name"),
        ]
        for body, words in bad:
            error = flight_error(lambda: action(flight, "lakehouse.profile.create", body))
            assert words in str(error), (body, error)
        with pytest.raises(pa.ArrowKeyError):  # NOT_FOUND
            action(flight, "lakehouse.profile.create", {"name": "x", "bucket": "nowhere"})
        with pytest.raises(pa.ArrowInvalid):  # INVALID_ARGUMENT
            action(flight, "lakehouse.profile.create", {"name": "x", "llm": "gpt5"})

        listed = client.profiles()
        assert [p["name"] for p in listed["profiles"]] == ["code", "docs", "local"]
        slot = listed["slot"]
        assert slot["state"] == "empty" and not slot.get("models")
        # No NVIDIA driver here: no GPU, and the reason is given.
        assert slot.get("gpus") or slot["gpuAbsent"].startswith("no GPU reported")

    rows = query(server, "SELECT name, embedder, llm, backend, active, indexes FROM system.profiles ORDER BY name")
    assert rows.to_pylist() == [
        {"name": "code", "embedder": "nomic", "llm": "coder", "backend": "flat", "active": False, "indexes": 0},
        {"name": "docs", "embedder": "nomic", "llm": "chat", "backend": "flat", "active": False, "indexes": 0},
        {"name": "local", "embedder": "builtin", "llm": None, "backend": "hnsw", "active": False, "indexes": 0},
    ]


def test_activation_loads_unloads_and_keeps_what_is_shared(setup):
    server, ollama = setup["server"], setup["ollama"]
    with Client(server.uri, progress=False) as client:
        ensure_profiles(client)
        mark = ollama.mark()
        first = client.activate_profile("docs")
        assert first["loaded"] == ["nomic (nomic-embed-text)", "chat (llama3.2)"]
        assert not first.get("unloaded") and not first.get("kept")
        posts = [r for r in ollama.since(mark) if r[0] != "/api/ps"]
        assert posts == [("/api/embed", "nomic-embed-text", -1), ("/api/generate", "llama3.2", -1)]
        slot = first["slot"]
        assert slot["state"] == "active" and slot["profile"] == "docs"
        vram = {m["model"]: int(m["vramBytes"]) for m in slot["models"]}
        assert vram == {"nomic-embed-text": SIZES["nomic-embed-text"], "llama3.2": SIZES["llama3.2"]}
        assert {m["placement"] for m in slot["models"]} == {"ollama"}

        # Switching: the LLM only docs uses goes, the embedder both use stays loaded.
        mark = ollama.mark()
        second = client.activate_profile("code")
        assert second["unloaded"] == ["chat (llama3.2)"]
        assert second["loaded"] == ["coder (qwen2.5-coder)"]
        assert second["kept"] == ["nomic (nomic-embed-text)"]
        posts = [r for r in ollama.since(mark) if r[0] != "/api/ps"]
        assert posts == [("/api/generate", "llama3.2", 0), ("/api/generate", "qwen2.5-coder", -1)]
        assert set(ollama.loaded) == {"nomic-embed-text", "qwen2.5-coder"}

        listed = {p["name"]: p for p in client.profiles()["profiles"]}
        assert listed["code"].get("active") and not listed["docs"].get("active")
        jobs = [j for j in client.jobs() if j["kind"] == "lakehouse.profile.activate"]
        assert jobs[0]["description"] == "activate profile code in the GPU slot"
        assert jobs[0]["state"] == "JOB_STATE_SUCCEEDED"

    rows = query(server, "SELECT state, profile, role, model_name, model, placement, model_vram_bytes, gpu_absent "
                         "FROM system.gpu_slot ORDER BY role").to_pylist()
    assert [(r["state"], r["profile"], r["role"], r["model"]) for r in rows] == [
        ("active", "code", "embedder", "nomic-embed-text"), ("active", "code", "llm", "qwen2.5-coder")]
    assert rows[1]["model_vram_bytes"] == SIZES["qwen2.5-coder"]
    assert all(r["gpu_absent"] is None or r["gpu_absent"].startswith("no GPU reported") for r in rows)
    assert query(server, "SELECT name FROM system.profiles WHERE active").column(0).to_pylist() == ["code"]

    text = metrics(server)
    assert 'lakehouse_gpu_slot_state{state="active"} 1' in text
    assert 'lakehouse_gpu_slot_state{state="empty"} 0' in text
    assert 'lakehouse_gpu_slot_profile{profile="code"} 1' in text
    assert 'lakehouse_gpu_slot_models{placement="ollama"} 2' in text
    assert 'lakehouse_profile_activations_total{result="ok"}' in text
    assert "lakehouse_gpu_present" in text


def test_a_failed_activation_leaves_a_clear_state(setup):
    server, ollama = setup["server"], setup["ollama"]
    with Client(server.uri, progress=False) as client:
        ensure_profiles(client)
        client.activate_profile("code")
        client.create_profile("broken", embedder="nomic", llm="missing", replace=True)
        with pytest.raises(fl.FlightUnavailableError) as failed:  # the followed job's status
            client.activate_profile("broken")
        assert "not-pulled" in str(failed.value)
        job = [j for j in client.jobs() if j["kind"] == "lakehouse.profile.activate"][0]
        assert job["state"] == "JOB_STATE_FAILED" and job["errorCode"] == "UNAVAILABLE", job
        assert "not-pulled" in job["error"] and "ollama pull" in job["error"], job["error"]
        slot = client.profiles()["slot"]
        assert slot["state"] == "failed" and slot["profile"] == "broken"
        assert "not-pulled" in slot["error"]
        # What is loaded is still reported: the shared embedder stayed, the coder LLM went.
        assert [m["model"] for m in slot["models"]] == ["nomic-embed-text"]
        assert "qwen2.5-coder" not in ollama.loaded
        assert 'lakehouse_gpu_slot_state{state="failed"} 1' in metrics(server)
        assert 'lakehouse_profile_activations_total{result="error"}' in metrics(server)

        # Unknown profiles fail the call, before any job: NOT_FOUND.
        jobs_before = len(client.jobs())
        with pytest.raises(pa.ArrowKeyError):
            client.activate_profile("nope")
        assert len(client.jobs()) == jobs_before

        # A profile whose activation failed holds nothing and may be dropped; the slot
        # recovers with the next activation.
        client.drop_profile("broken")
        again = client.activate_profile("code")
        assert again["slot"]["state"] == "active"


def test_sessions_bound_to_a_profile_see_only_its_indexes(setup):
    server, ollama = setup["server"], setup["ollama"]
    with Client(server.uri, progress=False) as code_client, Client(server.uri, progress=False) as docs_client:
        ensure_profiles(code_client)
        code_client.activate_profile("code")

        code_client.use_profile("code")
        info = code_client.create_index("code_idx", "notes", text_column="body", id_column="id")
        # The profile's embedder and backend, without naming them.
        assert (info["profile"], info["embedder"], info["backend"]) == ("code", "nomic", "flat")
        docs_info = docs_client.create_index("docs_idx", "notes", text_column="body", id_column="id",
                                             profile="docs")
        assert docs_info["profile"] == "docs"
        docs_client.create_index("open_idx", "notes", text_column="body", id_column="id", embedder="nomic",
                                 backend="flat")

        # While code holds the slot, its embedder is pinned: searches ask Ollama to keep it.
        mark = ollama.mark()
        hits = code_client.search("code_idx", TEXTS[3], k=1)
        assert hits.column("id").to_pylist() == [3]
        embeds = [r for r in ollama.since(mark) if r[0] == "/api/embed"]
        assert embeds and all(keep_alive == -1 for _, _, keep_alive in embeds)

        # The bound session cannot use another profile's index, nor one outside any profile.
        for other in ("docs_idx", "open_idx"):
            error = flight_error(lambda: code_client.search(other, TEXTS[3], k=1))
            assert isinstance(error, fl.FlightUnauthorizedError), error
            assert "bound to profile code" in str(error)
            with pytest.raises(fl.FlightUnauthorizedError):
                list(code_client._action("lakehouse.vector.search", {"index": other, "query": "x"}))
        with pytest.raises(fl.FlightUnauthorizedError):
            code_client.create_index("sneaky_idx", "notes", text_column="body", id_column="id", profile="docs")
        with pytest.raises(fl.FlightUnauthorizedError):
            code_client.create_index("docs_idx", "notes", text_column="body", id_column="id", replace=True)

        # SQL through ADBC in the bound session: the table function and system tables too.
        rows = code_client.sql(f"SELECT id FROM vector_search('code_idx', '{TEXTS[3]}', 1)")
        assert rows.column("id").to_pylist() == [3]
        with pytest.raises(Exception) as error:
            code_client.sql(f"SELECT id FROM vector_search('docs_idx', '{TEXTS[3]}', 1)")
        assert "bound to profile code" in str(error.value)
        assert code_client.indexes().column("name").to_pylist() == ["code_idx"]

        # An unbound session sees everything, with each index's profile.
        rows = docs_client.sql("SELECT name, profile FROM system.vector_indexes ORDER BY name").to_pylist()
        assert rows == [{"name": "code_idx", "profile": "code"}, {"name": "docs_idx", "profile": "docs"},
                        {"name": "open_idx", "profile": None}]
        assert docs_client.search("code_idx", TEXTS[3], k=1).column("id").to_pylist() == [3]

        # Binding to an unknown profile is refused; unbinding restores the full view.
        with pytest.raises(LakehouseError):
            code_client.use_profile("nope")
        code_client.use_profile(None)
        assert code_client.search("docs_idx", TEXTS[3], k=1).column("id").to_pylist() == [3]
        assert len(code_client.indexes()) == 3


def test_adbc_session_option_binds_the_connection(setup):
    import adbc_driver_flightsql.dbapi as flightsql

    server = setup["server"]
    with Client(server.uri, progress=False) as client:
        ensure_profiles(client)
        if "docs_idx" not in client.indexes().column("name").to_pylist():
            client.create_index("docs_idx", "notes", text_column="body", id_column="id", profile="docs")
    with flightsql.connect(server.uri, autocommit=True) as conn:
        conn.adbc_connection.set_options(**{"adbc.flight.sql.session.option.profile": "docs"})
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM system.vector_indexes ORDER BY name")
            assert [r[0] for r in cur.fetchall()] == ["docs_idx"]
            cur.execute(f"SELECT id FROM vector_search('docs_idx', '{TEXTS[8]}', 1)")
            assert cur.fetchall() == [(8,)]


def test_drop_rules(setup):
    server = setup["server"]
    with Client(server.uri, progress=False) as client:
        ensure_profiles(client)
        client.activate_profile("code")
        flight = fl.FlightClient(server.uri)
        # Holding the slot: FAILED_PRECONDITION, and nothing changes.
        error = flight_error(lambda: action(flight, "lakehouse.profile.drop", {"name": "code"}))
        assert "holds the GPU slot" in str(error)
        # Owning indexes: FAILED_PRECONDITION, naming them.
        if "docs_idx" not in client.indexes().column("name").to_pylist():
            client.create_index("docs_idx", "notes", text_column="body", id_column="id", profile="docs")
        error = flight_error(lambda: action(flight, "lakehouse.profile.drop", {"name": "docs"}))
        assert "owns indexes" in str(error) and "docs_idx" in str(error)
        with pytest.raises(pa.ArrowKeyError):
            client.drop_profile("nope")
        # Changing the profile that holds the slot is refused too.
        error = flight_error(lambda: client.create_profile("code", embedder="nomic", replace=True))
        assert "holds the GPU slot" in str(error)
        client.create_profile("spare")
        assert client.drop_profile("spare")["name"] == "spare"
        assert "spare" not in [p["name"] for p in client.profiles()["profiles"]]


def test_the_lakehouse_cli_manages_profiles(setup):
    from test_lakehouse_cli import lh

    server = setup["server"]
    with Client(server.uri, progress=False) as client:
        ensure_profiles(client)
    created = lh(server, "profile", "create", "cli_local", "--backend", "flat")
    assert "profile cli_local: embedder builtin, llm none, flat indexes in bucket primary" in created.stdout
    activated = lh(server, "profile", "activate", "docs", "--quiet")
    assert "GPU slot: active (docs)" in activated.stdout, activated.stdout
    listed = lh(server, "profile", "list")
    assert "cli_local" in listed.stdout and "GPU slot: active (docs)" in listed.stdout
    assert "llm chat = llama3.2 [ollama, 1907 MiB in VRAM]" in listed.stdout, listed.stdout
    as_json = json.loads(lh(server, "profile", "list", "--json").stdout)
    assert as_json["slot"]["profile"] == "docs"
    missing = lh(server, "profile", "drop", "nope", check=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr, missing.stderr
    assert "cli_local dropped" in lh(server, "profile", "drop", "cli_local").stdout


def test_the_active_profile_survives_a_restart_and_the_slot_can_be_released(setup):
    ollama = setup["ollama"]
    with Client(setup["server"].uri, progress=False) as client:
        ensure_profiles(client)
        client.activate_profile("docs")
    setup["server"].stop()
    # Ollama forgets nothing by itself here; a restarted server must load its models anyway.
    ollama.loaded.clear()
    mark = ollama.mark()
    setup["server"] = Server(setup["data"], "--config", str(setup["config"]))
    server = setup["server"]
    with Client(server.uri, progress=False) as client:
        deadline = time.time() + 60
        while client.profiles()["slot"]["state"] != "active":
            assert time.time() < deadline, client.profiles()
            time.sleep(0.2)
        slot = client.profiles()["slot"]
        assert slot["profile"] == "docs"
        assert set(ollama.loaded) == {"nomic-embed-text", "llama3.2"}
        loads = [r for r in ollama.since(mark) if r[0] != "/api/ps"]
        assert sorted(loads) == [("/api/embed", "nomic-embed-text", -1), ("/api/generate", "llama3.2", -1)]
        restart_jobs = [j for j in client.jobs() if j["kind"] == "lakehouse.profile.activate"]
        assert restart_jobs and restart_jobs[0]["state"] == "JOB_STATE_SUCCEEDED"

        released = client.release_gpu_slot()
        assert sorted(released["unloaded"]) == ["chat (llama3.2)", "nomic (nomic-embed-text)"]
        assert released["slot"]["state"] == "empty" and not released["slot"].get("models")
        assert ollama.loaded == {}
        assert 'lakehouse_gpu_slot_state{state="empty"} 1' in metrics(server)

    # Released stays released across a restart.
    server.stop()
    mark = ollama.mark()
    setup["server"] = Server(setup["data"], "--config", str(setup["config"]))
    with Client(setup["server"].uri, progress=False) as client:
        time.sleep(1)
        assert client.profiles()["slot"]["state"] == "empty"
        assert not [r for r in ollama.since(mark) if r[0] != "/api/ps"]
