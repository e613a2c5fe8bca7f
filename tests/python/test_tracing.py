"""OpenTelemetry trace export: spans posted as OTLP/HTTP JSON to a collector (here a
small HTTP server in the test that records what it receives, decoded as an OTLP
collector would). A client's W3C traceparent makes the call's span a child of the
client's span; the job the call starts, and the Delta commit inside it, are children."""

import json
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.flight as fl
import pytest

from conftest import Server
from test_crash import wait_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture()
def collector():
    received: list[tuple[str, str, dict]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("Content-Type", ""), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()


def spans_of(received) -> list[dict]:
    return [span for _, _, body in received for resource in body["resourceSpans"]
            for scope in resource["scopeSpans"] for span in scope["spans"]]


def attributes(span: dict) -> dict:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


def test_spans_are_exported_and_join_the_clients_trace(collector):
    endpoint, received = collector
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-otel-"))
    server = Server(data_dir, "--otlp-endpoint", endpoint, "--otlp-service-name", "lake-under-test")
    try:
        landing = data_dir / "buckets" / "primary" / "landing"
        landing.mkdir(parents=True)
        (landing / "rows.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
        options = fl.FlightCallOptions(headers=[
            (b"traceparent", f"00-{TRACE}-{CLIENT_SPAN}-01".encode()),
            (b"x-request-id", b"otel-req-1"),
        ])
        client = fl.FlightClient(server.uri)
        body = json.dumps({"path": "landing/rows.csv", "table": "traced_rows"}).encode()
        replies = list(client.do_action(fl.Action("lakehouse.ingest.file", body), options=options))
        assert json.loads(replies[-1].body.to_pybytes())["state"] == "JOB_STATE_SUCCEEDED"
        # A call without trace context starts a trace of its own.
        list(client.do_action(fl.Action("lakehouse.job.list", b"{}")))
        # Batches go out every 2 s.
        wait_for(lambda: any(s["traceId"] == TRACE for s in spans_of(received)), timeout=30,
                 what="the traced call's spans")
    finally:
        assert server.stop() == 0
        shutil.rmtree(data_dir, ignore_errors=True)

    paths = {path for path, _, _ in received}
    assert paths == {"/v1/traces"}
    assert all(kind.startswith("application/json") for _, kind, _ in received)
    resource = {a["key"]: a["value"]["stringValue"] for a in received[0][2]["resourceSpans"][0]["resource"]["attributes"]}
    assert resource["service.name"] == "lake-under-test"

    spans = spans_of(received)
    traced = [s for s in spans if s["traceId"] == TRACE]
    calls = [s for s in traced if s.get("parentSpanId") == CLIENT_SPAN]
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["name"] == "DoAction" and call["kind"] == 2  # SERVER
    assert attributes(call)["request_id"] == "otel-req-1"
    assert int(call["endTimeUnixNano"]) >= int(call["startTimeUnixNano"]) > 0
    jobs = [s for s in traced if s["name"] == "job"]
    assert len(jobs) == 1 and jobs[0]["parentSpanId"] == call["spanId"]
    assert attributes(jobs[0])["kind"] == "lakehouse.ingest.file"
    writes = [s for s in traced if s["name"] == "delta.write"]
    assert writes and all(s["parentSpanId"] in {jobs[0]["spanId"]} | {w["spanId"] for w in traced} for s in writes)
    write_attributes = attributes(writes[-1])
    assert write_attributes["table"] == "public.traced_rows" and int(write_attributes["rows"]) == 3
    # Every span of the trace hangs off the client's span, through the call.
    by_id = {s["spanId"]: s for s in traced}
    for span in traced:
        node = span
        while node.get("parentSpanId") in by_id:
            node = by_id[node["parentSpanId"]]
        assert node is call, span
    own = [s for s in spans if s["name"] == "DoAction" and s["traceId"] != TRACE]
    assert own and all("parentSpanId" not in s for s in own)


def test_a_collector_that_is_down_costs_a_warning_not_an_error():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-otel-down-"))
    # Nothing listens on port 9 (discard) here: every export fails.
    server = Server(data_dir, "--otlp-endpoint", "http://127.0.0.1:9")
    try:
        client = fl.FlightClient(server.uri)
        for _ in range(3):
            list(client.do_action(fl.Action("lakehouse.job.list", b"{}")))
        wait_for(lambda: any("cannot export traces" in line for line in server.log), timeout=30,
                 what="the export warning")
        list(client.do_action(fl.Action("lakehouse.job.list", b"{}")))
    finally:
        assert server.stop() == 0
        shutil.rmtree(data_dir, ignore_errors=True)
    assert sum("cannot export traces" in line for line in server.log) == 1, "one warning a minute"


def test_a_bad_endpoint_is_refused_at_start(tmp_path):
    with pytest.raises(RuntimeError) as err:
        Server(tmp_path / "data", "--otlp-endpoint", "grpc://collector:4317")
    assert "otlp_endpoint" in str(err.value) and "OTLP over HTTP" in str(err.value)
