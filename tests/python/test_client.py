"""The lakehouse-client package (clients/python, pip-installed into the test venv by
scripts/test.sh) against a running server: SQL, DataFrame writes, file ingest and upload,
vector index/search/eval helpers, jobs (detach, wait, cancel), PII verdicts, errors."""

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.flight as fl
import pytest

import lakehouse_client as lh
from test_ingest import put_file


@pytest.fixture()
def client(server):
    with lh.connect(server.uri, progress=False) as client:
        yield client


def test_sql_and_dataframe_writes(client):
    assert client.sql("SELECT count(*) AS n FROM region").column("n")[0].as_py() == 5
    frame = pd.DataFrame({"id": [1, 2, 3], "name": ["ann", "bob", "cy"]})
    assert client.write("client_people", frame, mode="replace") == 3
    assert client.write("client_people", pl.DataFrame({"id": [4], "name": ["dee"]}), mode="append") == 1
    names = client.sql("SELECT name FROM client_people WHERE id > $1 ORDER BY id", [1]).column("name").to_pylist()
    assert names == ["bob", "cy", "dee"]
    assert client.sql("INSERT INTO client_people VALUES (5, 'eve')").column(0)[0].as_py() == 1


def test_file_ingest_upload_and_progress(server, client, tmp_path, capsys):
    put_file(server, "client/cities.csv", b"id,city\n" + b"".join(f"{i},c{i % 3}\n".encode() for i in range(1000)))
    result = client.ingest_file("client/cities.csv", "client_cities", progress=True)
    assert int(result["rows"]) == 1000 and result["table"] == "public.client_cities"
    assert "ingest client/cities.csv" in capsys.readouterr().err  # the tqdm bar
    local = tmp_path / "more.csv"
    local.write_text("id,city\n" + "".join(f"{i},d{i % 4}\n" for i in range(1000, 3500)))
    result = client.upload_file(local, "client_cities", mode="append")
    assert int(result["rows"]) == 2500
    assert client.sql("SELECT count(*) FROM client_cities").column(0)[0].as_py() == 3500
    with pytest.raises(pa.ArrowKeyError):  # NOT_FOUND, the server's message
        client.ingest_file("client/nope.csv", "client_nope")


def test_jobs_detach_wait_and_cancel(server, client):
    put_file(server, "client/jobs.csv", b"a,b\n" + b"".join(f"{i},{i * 2}\n".encode() for i in range(5000)))
    job = client.ingest_file("client/jobs.csv", "client_jobs", detach=True)
    assert job["id"] and job["kind"] == "lakehouse.ingest.file"
    done = client.wait(job["id"])
    assert done["state"] == "JOB_STATE_SUCCEEDED" and int(done["ingest"]["rows"]) == 5000
    assert client.job(job["id"])["state"] == "JOB_STATE_SUCCEEDED"
    assert any(j["id"] == job["id"] for j in client.jobs())
    with pytest.raises(pa.ArrowException) as err:  # FAILED_PRECONDITION: it has ended
        client.cancel_job(job["id"])
    assert "ended" in str(err.value) or "finished" in str(err.value) or "already" in str(err.value)
    # A job that fails raises with the server's reason.
    put_file(server, "client/bad.csv", b"a,b\n1,2\n3\n")
    with pytest.raises(pa.ArrowException) as err:
        client.ingest_file("client/bad.csv", "client_bad")
    assert "line" in str(err.value)


def test_vector_helpers(client):
    rows = pa.table({"id": [1, 2, 3, 4], "kind": ["pet", "pet", "money", "money"],
                     "body": ["a puppy chews a shoe", "a kitten chases yarn",
                              "the bank raised interest rates", "stocks fell sharply"]})
    client.write("client_docs", rows, mode="replace")
    info = client.create_index("client_idx", "client_docs", text_column="body", id_column="id", backend="flat")
    assert int(info["rows"]) == 4
    hits = client.search("client_idx", "a young dog", k=2, columns=["kind"])
    assert hits.column_names == ["id", "score", "distance", "text", "rank", "kind"]
    assert hits.column("kind").to_pylist() == ["pet", "pet"] and hits.column("id")[0].as_py() == 1
    hits = client.search("client_idx", "interest", k=3, mode="text")
    assert hits.column("id").to_pylist() == [3] and hits.column("distance").null_count == 1
    frame = client.search("client_idx", "money", k=1, filter="kind = 'pet'").to_pandas()
    assert list(frame["id"]) in ([1], [2])
    assert "client_idx" in client.indexes().column("name").to_pylist()
    evalset = client.create_eval_set("client_eval", "client_idx", queries=["dogs", "finance"], depth=2)
    assert evalset["queries"] == 2
    result = client.evaluate("client_idx", "client_eval", k=2)
    assert result["runs"][0]["recallMean"] == 1.0  # flat is exact
    with pytest.raises(pa.ArrowKeyError):
        client.search("no_such_idx", "x")


def test_pii_marks(client):
    client.write("client_contacts", pa.table({"id": [1], "email": ["ann@example.com"]}), mode="replace")
    result = client.mark_pii("client_contacts", "email", "email")
    assert result["table"] == "public.client_contacts"
    assert any(c.get("column") == "email" for c in result["columns"])


def test_connect_reads_the_environment(server, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_URL", server.uri)
    with lh.connect(progress=False) as client:
        assert client.uri == server.uri
        assert client.sql("SELECT 1 AS one").column("one")[0].as_py() == 1


def test_buckets(server, client):
    names = {b["name"]: b for b in client.buckets()}
    assert names["primary"]["builtin"] and names["rescue"]["builtin"]
    folder = server.data_dir / "client_bucket"
    info = client.add_bucket("client_extra", str(folder))
    assert info["kind"] == "local" and folder.is_dir()
    with pytest.raises(pa.ArrowException, match="exists already"):  # ALREADY_EXISTS
        client.add_bucket("client_extra", str(folder))
    with pytest.raises(fl.FlightUnauthorizedError):  # PERMISSION_DENIED
        client.remove_bucket("primary")
    assert client.remove_bucket("client_extra")["bucket"]["name"] == "client_extra"
    assert "client_extra" not in {b["name"] for b in client.buckets()}
