"""The operations port (/metrics, /healthz, /readyz) and JSON logs carrying the request id
of the call through the job it started."""

import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.flight as fl
import pytest

from conftest import Server
from test_ingest import put_file, query


@pytest.fixture(scope="module")
def ops():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-ops-"))
    server = Server(data_dir, "--metrics-listen", "127.0.0.1:0", "--log-format", "json")
    yield server, server.ops_url
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_health_and_readiness(ops):
    _, base = ops
    assert get(base + "/healthz") == (200, "ok\n")
    assert get(base + "/readyz") == (200, "ready\n")
    assert get(base + "/nope")[0] == 404


def test_metrics_count_calls_by_status_and_rows(ops):
    server, base = ops
    assert query(server, "SELECT * FROM region").num_rows == 5
    with pytest.raises(Exception):
        query(server, "SELECT * FROM no_such_table")
    status, text = get(base + "/metrics")
    assert status == 200
    values = samples(text)
    assert values['lakehouse_grpc_calls_total{method="GetFlightInfo",code="OK"}'] >= 1
    # ADBC may plan the failing statement as a prepared statement (DoAction) or directly.
    assert sum(v for k, v in values.items() if k.startswith("lakehouse_grpc_calls_total{")
               and 'code="NOT_FOUND"' in k) >= 1
    assert values['lakehouse_grpc_calls_total{method="DoGet",code="OK"}'] >= 1
    assert values["lakehouse_result_rows_total"] >= 5
    assert values["lakehouse_result_bytes_total"] > 0
    assert values['lakehouse_grpc_response_seconds_count{method="DoGet"}'] >= 1
    assert values['lakehouse_grpc_response_seconds_bucket{method="DoGet",le="+Inf"}'] == \
        values['lakehouse_grpc_response_seconds_count{method="DoGet"}']
    assert values["lakehouse_process_resident_memory_bytes"] > 10e6
    assert values["lakehouse_queries_running"] == 0
    assert 'lakehouse_build_info{version="' in text


def test_request_id_follows_the_call_into_its_job(ops):
    server, base = ops
    put_file(server, "ops/rows.csv", b"id,name\n1,a\n2,b\n")
    options = fl.FlightCallOptions(headers=[(b"x-request-id", b"req-ops-42")])
    body = json.dumps({"path": "ops/rows.csv", "table": "ops_rows"}).encode()
    replies = list(fl.FlightClient(server.uri).do_action(fl.Action("lakehouse.ingest.file", body), options=options))
    assert json.loads(replies[-1].body.to_pybytes())["state"] == "JOB_STATE_SUCCEEDED"
    deadline = time.time() + 10
    ended = []
    while time.time() < deadline and not ended:
        lines = [json.loads(line) for line in server.log if line.startswith("{")]
        ended = [entry for entry in lines if entry.get("fields", {}).get("message") == "job ended"
                 and any(span.get("request_id") == "req-ops-42" for span in entry.get("spans", []))]
        time.sleep(0.2)
    assert ended, "the job's log lines carry the request id of the call that started it"
    call, job = ended[0]["spans"]
    assert ended[0]["level"] == "INFO" and call["name"] == "call" and call["method"] == "DoAction"
    # The job's own span (the innermost) names it.
    assert job["name"] == "job" and ended[0]["span"]["job_id"] == job["job_id"]
    assert job["kind"] == "lakehouse.ingest.file"

    values = samples(get(base + "/metrics")[1])
    assert values['lakehouse_ingest_rows_total{kind="lakehouse.ingest.file"}'] >= 2
    assert values['lakehouse_jobs{kind="lakehouse.ingest.file",state="succeeded"}'] >= 1
