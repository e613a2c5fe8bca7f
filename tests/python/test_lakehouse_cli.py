"""Our own command-line client, `lakehouse sql|ingest|index|bucket|job`, against a running
server: one-shot commands as subprocesses, the interactive prompt through a pseudo-terminal
(pexpect)."""

import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pexpect
import pyarrow.parquet as pq
import pytest

from conftest import Server, lakehouse_binary
from test_ingest import query
from test_vector import load_docs


def lh(server, *args: str, check: bool = True, env: dict | None = None, url: str | None = None,
       stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [lakehouse_binary(), *args]
    environment = {**os.environ, "LAKEHOUSE_URL": url or server.uri, **(env or {})}
    environment.pop("LAKEHOUSE_TOKEN", None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment, input=stdin)
    if check:
        assert done.returncode == 0, f"{command}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def test_sql_one_shot_in_every_format(server, tmp_path):
    sql = "SELECT r_regionkey AS id, r_name AS name FROM region ORDER BY r_regionkey LIMIT 3"
    table = lh(server, "sql", "-c", sql).stdout
    assert "| id | name" in table.replace("  ", " ") or "| id" in table
    assert "AFRICA" in table and "(3 rows in " in table

    out = lh(server, "sql", "-c", sql, "--format", "csv")
    assert list(csv.reader(io.StringIO(out.stdout))) == [["id", "name"], ["0", "AFRICA"], ["1", "AMERICA"], ["2", "ASIA"]]
    assert "(3 rows in " in out.stderr, "the timing goes to stderr beside data"

    rows = json.loads(lh(server, "sql", "-c", sql, "--format", "json", "--no-timing").stdout)
    assert rows == [{"id": 0, "name": "AFRICA"}, {"id": 1, "name": "AMERICA"}, {"id": 2, "name": "ASIA"}]
    lines = lh(server, "sql", "-c", sql, "--format", "ndjson").stdout.splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["AFRICA", "AMERICA", "ASIA"]

    target = tmp_path / "regions.parquet"
    lh(server, "sql", "-c", sql, "--format", "parquet", "-o", str(target))
    assert pq.read_table(target).column("name").to_pylist() == ["AFRICA", "AMERICA", "ASIA"]
    done = lh(server, "sql", "-c", sql, "--format", "parquet", check=False)
    assert done.returncode == 2 and "--output" in done.stderr

    # Several statements: -c repeated, ';' inside one, a file, standard input.
    out = lh(server, "sql", "-c", "SELECT 1 AS a; SELECT 'x;y' AS b", "-c", "SELECT 3 AS c", "--format", "csv",
             "--no-timing").stdout
    assert out.split() == ["a", "1", "b", "x;y", "c", "3"]
    script = tmp_path / "q.sql"
    script.write_text("-- a comment\nSELECT 40 +\n  2 AS answer;\n")
    assert lh(server, "sql", "-f", str(script), "--format", "csv").stdout.split() == ["answer", "42"]
    assert lh(server, "sql", "--format", "csv", stdin="SELECT 7 AS seven;").stdout.split() == ["seven", "7"]


def test_sql_errors_carry_the_status_and_a_hint(server):
    done = lh(server, "sql", "-c", "SELECT * FROM no_such_table", check=False)
    assert done.returncode == 1
    assert "error (NOT_FOUND)" in done.stderr and "no_such_table" in done.stderr
    assert "hint:" in done.stderr

    done = lh(server, "sql", "-c", "SELEC 1", check=False)
    assert done.returncode == 1 and "error (INVALID_ARGUMENT)" in done.stderr

    done = lh(server, "sql", "-c", "SELECT 1", url="grpc://127.0.0.1:1", check=False)
    assert done.returncode == 3
    assert "cannot connect" in done.stderr and "lakehouse serve" in done.stderr

    done = lh(server, "sql", "-c", "SELECT 1", url="http://127.0.0.1:1", check=False)
    assert done.returncode == 2 and "grpc://" in done.stderr

    # --keep-going runs the rest and still fails.
    done = lh(server, "sql", "-c", "SELECT * FROM nope; SELECT 5 AS five", "--keep-going", "--format", "csv",
              check=False)
    assert done.returncode == 1 and "five" in done.stdout


def test_login_with_user_and_password(tmp_path):
    hashed = subprocess.run([lakehouse_binary(), "hash-password"], input="s3cret\n", capture_output=True,
                            text=True, check=True).stdout.strip()
    server = Server(tmp_path / "data", "--user", f"ana={hashed}")
    try:
        done = lh(server, "sql", "-c", "SELECT 1 AS one", "--format", "csv", env={"LAKEHOUSE_USER": "ana",
                                                                              "LAKEHOUSE_PASSWORD": "s3cret"})
        assert done.stdout.split() == ["one", "1"]
        done = lh(server, "sql", "-c", "SELECT 1", check=False)
        assert done.returncode == 3 and "UNAUTHENTICATED" in done.stderr and "--user" in done.stderr
        done = lh(server, "sql", "--user", "ana", "--password", "wrong", "-c", "SELECT 1", check=False)
        assert done.returncode == 3 and "UNAUTHENTICATED" in done.stderr
        assert "s3cret" not in done.stderr and "wrong" not in done.stderr
    finally:
        server.stop()


def test_ingest_upload_and_bucket_file(server, tmp_path):
    local = tmp_path / "cli_people.csv"
    local.write_text("id,name,email\n1,Ana,ana@example.com\n2,Bo,bo@example.com\n3,Cy,cy@example.com\n")
    out = lh(server, "ingest", "file", str(local), "--upload", "-t", "cli_people").stdout
    assert "ingested 3 rows into public.cli_people" in out
    assert "PII found: email" in out
    job = json.loads(lh(server, "ingest", "file", str(local), "--upload", "-t", "cli_people", "--mode", "append",
                        "--json").stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["ingest"]["rows"] == "3"
    assert query(server, "SELECT count(*) AS n FROM cli_people").column(0)[0].as_py() == 6

    done = lh(server, "ingest", "file", str(local), "--upload", "-t", "cli_people", check=False)
    assert done.returncode == 1 and "ALREADY_EXISTS" in done.stderr
    done = lh(server, "ingest", "file", str(tmp_path / "missing.csv"), "--upload", "-t", "x", check=False)
    assert done.returncode == 2 and "missing.csv" in done.stderr

    # A file in a bucket, detached, then followed and listed as a job.
    landing = server.data_dir / "buckets" / "primary" / "cli_landing"
    landing.mkdir(parents=True, exist_ok=True)
    shutil.copy(local, landing / "people.csv")
    out = lh(server, "ingest", "file", "cli_landing/people.csv", "-t", "cli_people2", "--detach").stdout
    job_id = out.split()[1]
    assert out.startswith("job ") and "lakehouse job status" in out
    follow = lh(server, "job", "status", job_id, "--follow").stdout
    assert "ingested 3 rows into public.cli_people2" in follow
    status = json.loads(lh(server, "job", "status", job_id, "--json").stdout)
    assert status["state"] == "JOB_STATE_SUCCEEDED"
    assert job_id in lh(server, "job", "list").stdout
    done = lh(server, "job", "cancel", job_id, check=False)
    assert done.returncode == 1 and "FAILED_PRECONDITION" in done.stderr
    done = lh(server, "job", "status", "no-such-job", check=False)
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr and "lakehouse job list" in done.stderr


def test_ingest_postgres(server):
    dsn = os.environ.get("LAKEHOUSE_PG_DSN")
    if not dsn:
        pytest.skip("LAKEHOUSE_PG_DSN not set (scripts/test.sh sets it)")
    psql = ["psql", dsn, "-qtAc"]
    subprocess.run(psql + ["DROP TABLE IF EXISTS lh_cli_src; CREATE TABLE lh_cli_src AS "
                           "SELECT g AS id, 'row ' || g AS label FROM generate_series(1, 500) g"], check=True)
    try:
        out = lh(server, "ingest", "postgres", "--dsn", dsn, "--source-table", "lh_cli_src",
                 "-t", "cli_pg", "--mode", "replace").stdout
        assert "ingested 500 rows into public.cli_pg" in out
        done = lh(server, "ingest", "postgres", "-t", "x", check=False)
        assert done.returncode == 2 and "--dsn or --connection" in done.stderr
    finally:
        subprocess.run(psql + ["DROP TABLE IF EXISTS lh_cli_src"], check=True)


def test_index_search_eval_and_buckets(server, tmp_path):
    load_docs(server, "cli_docs")
    out = lh(server, "index", "create", "cli_idx", "-t", "cli_docs", "--text-column", "body", "--id-column", "id",
             "--backend", "flat").stdout
    assert "index cli_idx over public.cli_docs.body: 30 vectors for 30 rows, flat in bucket primary" in out

    hits = lh(server, "index", "search", "cli_idx", "a kitten playing", "-k", "3", "--columns", "topic",
               "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(hits)))
    assert len(rows) == 3 and rows[0]["topic"] == "animals" and rows[0]["rank"] == "1"
    table = lh(server, "index", "search", "cli_idx", "interest rates", "--mode", "hybrid", "-k", "2").stdout
    assert "(2 hits in " in table
    done = lh(server, "index", "search", "nope", "x", check=False)
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr and "system.vector_indexes" in done.stderr

    out = lh(server, "index", "eval-set", "cli_eval", "--index", "cli_idx", "--query", "a dog in a park",
             "--query", "bake a cake", "--depth", "10").stdout
    assert "eval set cli_eval for index cli_idx: 2 queries" in out
    out = lh(server, "index", "eval", "cli_idx", "--eval-set", "cli_eval", "-k", "5").stdout
    assert "recall mean" in out and "1.0000" in out, out

    # Buckets: add, list, move the index there, refuse to remove it, move back, remove.
    folder = server.data_dir / "cli_bucket"
    assert "bucket extra added" in lh(server, "bucket", "add", "extra", str(folder)).stdout
    listing = lh(server, "bucket", "list").stdout
    assert "primary (built in)" in listing and "extra" in listing
    out = lh(server, "bucket", "move", "cli_idx", "extra").stdout
    assert "index cli_idx over public.cli_docs.body" in out and "in bucket extra" in out
    listed = json.loads(lh(server, "bucket", "list", "--json").stdout)["buckets"]
    assert {b["name"]: b.get("indexes", 0) for b in listed}["extra"] == 1
    done = lh(server, "bucket", "remove", "extra", check=False)
    assert done.returncode == 1 and "FAILED_PRECONDITION" in done.stderr and "--force" in done.stderr
    done = lh(server, "bucket", "remove", "primary", check=False)
    assert done.returncode == 1 and "PERMISSION_DENIED" in done.stderr
    lh(server, "bucket", "move", "cli_idx", "primary", "--quiet")
    assert "bucket extra removed" in lh(server, "bucket", "remove", "extra").stdout


def test_interactive_prompt(server, tmp_path):
    history = tmp_path / "history"
    env = {**os.environ, "LAKEHOUSE_URL": server.uri, "LAKEHOUSE_HISTORY": str(history), "TERM": "xterm"}
    prompt = pexpect.spawn(lakehouse_binary(), ["sql"], env=env, encoding="utf-8", timeout=60,
                           dimensions=(40, 200))
    try:
        prompt.expect("lakehouse> ")
        # A statement over two lines: the continuation prompt, then the result.
        prompt.sendline("SELECT 40 +")
        prompt.expect(r"\.\.\.> ")
        prompt.sendline("2 AS answer;")
        prompt.expect(r"\| answer \|")
        prompt.expect(r"\| 42 ")
        prompt.expect(r"\(1 row in [0-9.]+ s\)")
        prompt.expect("lakehouse> ")
        # A failing statement prints the error and the prompt stays.
        prompt.sendline("SELECT * FROM nope;")
        prompt.expect("error \\(NOT_FOUND\\)")
        prompt.expect("lakehouse> ")
        # Ctrl-C drops an unfinished statement.
        prompt.send("SELECT 'never")
        prompt.sendintr()
        prompt.expect("lakehouse> ")
        prompt.sendline("\\format csv")
        prompt.expect("format: csv")
        prompt.sendline("SELECT 'a,b' AS s;")
        prompt.expect('"a,b"')
        prompt.sendline("\\d region")
        prompt.expect("r_regionkey")
        prompt.sendline("\\q")
        prompt.expect(pexpect.EOF)
    finally:
        prompt.close()
    assert prompt.exitstatus == 0, prompt.before
    saved = history.read_text()
    assert "SELECT 40 +\n2 AS answer;" in saved.replace("\\n", "\n") or "2 AS answer;" in saved
    assert "never" not in saved


def test_ctrl_c_during_a_job_cancels_or_detaches(server):
    """Ctrl-C while a job's progress bar runs asks: 'y' cancels the job (nothing committed),
    anything else leaves it running."""
    dsn = os.environ.get("LAKEHOUSE_PG_DSN")
    if not dsn:
        pytest.skip("LAKEHOUSE_PG_DSN not set (scripts/test.sh sets it)")
    # About 20 s of source rows: each row sleeps 5 ms in PostgreSQL.
    slow = "SELECT g AS id FROM generate_series(1, 4000) g WHERE pg_sleep(0.005)::text = ''"
    env = {**os.environ, "LAKEHOUSE_URL": server.uri, "TERM": "xterm"}

    def start(table: str) -> pexpect.spawn:
        child = pexpect.spawn(lakehouse_binary(), ["ingest", "postgres", "--dsn", dsn, "--query", slow, "-t", table],
                              env=env, encoding="utf-8", timeout=60, dimensions=(40, 200))
        child.expect("reading|starting|queued")  # the bar is up: the job runs
        return child

    child = start("cli_cancelled")
    child.sendintr()
    child.expect(r"Cancel job ([0-9a-f-]+)\?")
    child.sendline("y")
    child.expect("was cancelled; it committed nothing")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert query(server, "SELECT count(*) AS n FROM system.tables WHERE table_name = 'cli_cancelled'") \
        .column(0)[0].as_py() == 0

    child = start("cli_detached")
    child.sendintr()
    child.expect(r"Cancel job ([0-9a-f-]+)\?")
    job_id = child.match.group(1)
    child.sendline("")
    child.expect("keeps running on the server")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    status = json.loads(lh(server, "job", "status", job_id, "--json").stdout)
    assert status["state"] == "JOB_STATE_RUNNING"
    assert lh(server, "job", "cancel", job_id).stdout.startswith(f"job {job_id}: ")
    final = json.loads(lh(server, "job", "status", job_id, "--follow", "--json", check=False).stdout)
    assert final["state"] == "JOB_STATE_CANCELLED"
