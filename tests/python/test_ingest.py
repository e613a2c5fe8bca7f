"""File ingest, jobs, PII and lineage through real clients: pyarrow.flight for the
custom actions and the upload (JSON bodies, as any client can send), ADBC for SQL."""

import http.server
import json
import threading
import time
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from conftest import Server


def client(server) -> fl.FlightClient:
    return fl.FlightClient(server.uri)


def action(server, name: str, body: dict) -> list[dict]:
    """Runs a lakehouse action with a JSON body; returns every reply, decoded."""
    results = client(server).do_action(fl.Action(name, json.dumps(body).encode()))
    return [json.loads(r.body.to_pybytes()) for r in results]


def ingest(server, **body) -> dict:
    """lakehouse.ingest.file; returns the final job (the last streamed snapshot)."""
    replies = action(server, "lakehouse.ingest.file", body)
    assert replies, "no progress streamed"
    final = replies[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    return final


def primary(server) -> Path:
    return server.data_dir / "buckets" / "primary"


def put_file(server, relative: str, data: bytes) -> None:
    path = primary(server) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def query(server, sql: str) -> pa.Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = flightsql.connect(server.uri)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()
    finally:
        conn.close()


def test_list_actions_describes_every_lakehouse_action(server):
    actions = {a.type: a.description for a in client(server).list_actions()}
    for name in ["lakehouse.ingest.file", "lakehouse.job.status", "lakehouse.job.cancel",
                 "lakehouse.job.list", "lakehouse.pii.mark"]:
        assert name in actions and len(actions[name]) > 20, name


def test_unknown_actions_and_bad_bodies_get_precise_errors(server):
    with pytest.raises(pa.ArrowNotImplementedError) as err:
        list(client(server).do_action(fl.Action("lakehouse.nope", b"")))
    assert "lakehouse.ingest.file" in str(err.value)
    with pytest.raises(pa.ArrowInvalid) as err:  # gRPC INVALID_ARGUMENT
        action(server, "lakehouse.ingest.file", {"path": "x.csv", "table": "t", "csv": {"hasHeader": "yes"}})
    assert "csv.hasHeader" in str(err.value)
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.ingest.file", {"path": "../../etc/passwd", "table": "t"})
    assert "leaves the bucket" in str(err.value)
    with pytest.raises(fl.FlightUnauthorizedError) as err:  # PERMISSION_DENIED
        action(server, "lakehouse.ingest.file", {"path": "_lakehouse/catalog.json", "table": "t"})
    with pytest.raises(pa.ArrowKeyError) as err:  # NOT_FOUND
        action(server, "lakehouse.ingest.file", {"path": "missing/*.csv", "table": "t"})
    assert "no file" in str(err.value)
    with pytest.raises(pa.ArrowKeyError) as err:
        action(server, "lakehouse.ingest.file", {"path": "x.csv", "table": "t", "sourceBucket": "nope"})
    assert "nope" in str(err.value)
    with pytest.raises(pa.ArrowKeyError) as err:
        action(server, "lakehouse.job.status", {"jobId": "nope"})
    assert "no job" in str(err.value)


CSV_LATIN1 = (
    'id;name;note;price;day\n'
    '1;"Caf\xe9 M\xfcller";"line one\nline two";1.50;2024-01-02\n'
    '2;"Semi;colon ""quoted""";plain;2.25;2024-02-03\n'
    '3;Na\xefve;;3.00;2024-03-04\n'
).encode("latin-1")


def test_csv_with_quotes_newlines_and_latin1(server):
    put_file(server, "landing/latin1.csv", CSV_LATIN1)
    job = ingest(server, path="landing/latin1.csv", table="csv_latin1",
                 csv={"delimiter": ";", "encoding": "latin1"})
    result = job["ingest"]
    assert result["table"] == "public.csv_latin1"
    assert int(result["rows"]) == 3
    assert job["progress"]["percent"] == 100
    assert {c["name"]: c["dataType"] for c in result["columns"]} == {
        "id": "Int64", "name": "Utf8", "note": "Utf8", "price": "Float64", "day": "Date32"}
    rows = query(server, "SELECT id, name, note, price, day FROM csv_latin1 ORDER BY id").to_pylist()
    assert rows[0]["name"] == "Café Müller"
    assert rows[0]["note"] == "line one\nline two"
    assert rows[1]["name"] == 'Semi;colon "quoted"'
    assert rows[2]["name"] == "Naïve" and rows[2]["note"] is None
    assert str(rows[2]["day"]) == "2024-03-04"


def test_csv_without_header_tabs_escapes_comments_and_null_text(server):
    data = (b"# exported 2024-05-01\n"
            b"1\t\"tab\\\"quote\"\tNA\n"
            b"2\tplain\t3.5\n")
    put_file(server, "landing/plain.tsv", data)
    job = ingest(server, path="landing/plain.tsv", table="tsv_plain",
                 csv={"delimiter": "\t", "hasHeader": False, "escape": "\\", "comment": "#", "nullValue": "NA"})
    columns = [c["name"] for c in job["ingest"]["columns"]]
    assert columns == ["column_1", "column_2", "column_3"]
    rows = query(server, "SELECT * FROM tsv_plain ORDER BY column_1").to_pylist()
    assert rows == [{"column_1": 1, "column_2": 'tab"quote', "column_3": None},
                    {"column_1": 2, "column_2": "plain", "column_3": 3.5}]


def test_bad_rows_fail_with_the_line_or_go_to_rejects(server):
    data = b"id,amount\n1,10\n2,oops\n3,30\n4\n5,50\n"
    put_file(server, "landing/bad.csv", data)
    with pytest.raises(pa.ArrowInvalid) as err:
        action(server, "lakehouse.ingest.file", {"path": "landing/bad.csv", "table": "bad_fail",
                                                 "columnTypes": {"amount": "BIGINT"}})
    assert "line 3" in str(err.value) and "oops" in str(err.value)
    tables = query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()
    assert "bad_fail" not in tables
    job = ingest(server, path="landing/bad.csv", table="bad_reject", badRows="BAD_ROWS_REJECT",
                 columnTypes={"amount": "BIGINT"})
    result = job["ingest"]
    assert int(result["rows"]) == 3 and int(result["rejectedRows"]) == 2
    assert result["rejectsTable"] == "public.bad_reject_rejects"
    rejects = query(server, "SELECT line, record, error FROM bad_reject_rejects ORDER BY line").to_pylist()
    assert [r["line"] for r in rejects] == [3, 5]
    assert "cannot read \"oops\"" in rejects[0]["error"]
    assert "expected 2 fields, found 1" in rejects[1]["error"]
    assert query(server, "SELECT sum(amount) AS s FROM bad_reject").column(0)[0].as_py() == 90


def test_ndjson_parquet_ipc_and_globs(server):
    lines = [json.dumps({"id": i, "tag": f"t{i}", "score": i / 2}) for i in range(1, 6)]
    lines.insert(2, "{not json")
    put_file(server, "multi/events.ndjson", ("\n".join(lines) + "\n").encode())
    job = ingest(server, path="multi/events.ndjson", table="nd_events", badRows="BAD_ROWS_REJECT")
    result = job["ingest"]
    assert int(result["rows"]) == 5 and int(result["rejectedRows"]) == 1
    assert query(server, "SELECT line FROM nd_events_rejects").column(0).to_pylist() == [3]

    table = pa.table({"id": pa.array(range(100), pa.int32()), "name": [f"n{i}" for i in range(100)]})
    pq.write_table(table, primary(server) / "multi/part.parquet")
    for name, writer in [("file.arrow", ipc.new_file), ("stream.arrows", ipc.new_stream)]:
        with writer(str(primary(server) / "multi" / name), table.schema) as w:
            w.write_table(table)
    for path, name in [("multi/part.parquet", "pq_t"), ("multi/file.arrow", "ipc_file_t"),
                       ("multi/stream.arrows", "ipc_stream_t")]:
        job = ingest(server, path=path, table=name)
        assert int(job["ingest"]["rows"]) == 100, path
        assert query(server, f"SELECT sum(id) FROM {name}").column(0)[0].as_py() == 4950

    for day in range(3):
        put_file(server, f"glob/2024-0{day + 1}/sales.csv", f"region,units\nnorth,{day}\nsouth,{day * 10}\n".encode())
    put_file(server, "glob/ignored.txt", b"not matched")
    job = ingest(server, path="glob/2024-*/*.csv", table="glob_sales")
    result = job["ingest"]
    assert int(result["files"]) == 3 and int(result["rows"]) == 6
    assert job["progress"]["filesDone"] == "3" or int(job["progress"]["filesDone"]) == 3
    assert query(server, "SELECT sum(units) FROM glob_sales").column(0)[0].as_py() == 33
    # Modes: append adds, replace starts over (a new version), create refuses.
    ingest(server, path="glob/2024-01/sales.csv", table="glob_sales", mode="INGEST_MODE_APPEND")
    assert query(server, "SELECT count(*) FROM glob_sales").column(0)[0].as_py() == 8
    ingest(server, path="glob/2024-01/sales.csv", table="glob_sales", mode="INGEST_MODE_REPLACE")
    assert query(server, "SELECT count(*) FROM glob_sales").column(0)[0].as_py() == 2
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.ingest.file", {"path": "glob/2024-01/sales.csv", "table": "glob_sales"})
    assert "already exists" in str(err.value)


def any_descriptor(message: str, body: dict) -> fl.FlightDescriptor:
    """A command descriptor holding lakehouse.v1.<message> (JSON) in a protobuf Any."""
    type_url = f"type.googleapis.com/lakehouse.v1.{message}".encode()
    value = json.dumps(body).encode()

    def field(number: int, payload: bytes) -> bytes:
        length, out = len(payload), bytearray()
        while True:
            byte = length & 0x7F
            length >>= 7
            out.append(byte | (0x80 if length else 0))
            if not length:
                break
        return bytes([number << 3 | 2]) + bytes(out) + payload

    return fl.FlightDescriptor.for_command(field(1, type_url) + field(2, value))


def upload_descriptor(body: dict) -> fl.FlightDescriptor:
    """A DoPut descriptor holding IngestUploadCommand."""
    return any_descriptor("IngestUploadCommand", body)


def test_upload_by_do_put(server):
    data = b"id,city\n" + b"".join(f"{i},city{i % 7}\n".encode() for i in range(50_000))
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    schema = pa.schema([("chunk", pa.binary())])
    descriptor = upload_descriptor({"fileName": "cities.csv", "request": {"table": "uploaded_cities"}})
    writer, reader = client(server).do_put(descriptor, schema)
    for i in range(0, len(chunks), 8):
        writer.write_batch(pa.record_batch([pa.array(chunks[i:i + 8], pa.binary())], schema=schema))
    writer.done_writing()
    job = json.loads(reader.read().to_pybytes())
    writer.close()
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert int(job["ingest"]["rows"]) == 50_000
    assert query(server, "SELECT count(DISTINCT city) FROM uploaded_cities").column(0)[0].as_py() == 7
    staging = primary(server) / "_lakehouse" / "staging"
    assert not staging.exists() or not any(staging.rglob("*.csv"))


def make_pdf(path: Path, pages: list[str], title: str, author: str, password: str | None = None) -> None:
    from fpdf import FPDF
    from fpdf.enums import EncryptionMethod

    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password,
                           encryption_method=EncryptionMethod.RC4)
    pdf.output(str(path))


def test_pdf_pages_chunks_and_a_corrupt_file(server):
    folder = primary(server) / "pdfs"
    folder.mkdir(parents=True, exist_ok=True)
    pages = [f"Page {n} talks about topic {n}. " + ("lorem ipsum dolor sit amet " * 40) for n in range(1, 4)]
    make_pdf(folder / "report.pdf", pages, "Quarterly Report", "Ada Lovelace")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ntruncated")
    make_pdf(folder / "secret.pdf", ["classified"], "Secret", "Nobody", password="hunter2")
    job = ingest(server, path="pdfs/*.pdf", table="docs", pdf={"chunkSize": 300, "chunkOverlap": 50})
    result = job["ingest"]
    assert int(result["rows"]) == 3
    assert result["chunksTable"] == "public.docs_chunks" and int(result["chunkRows"]) > 3
    errors = {e["file"]: e["error"] for e in result["fileErrors"]}
    assert set(errors) == {"pdfs/broken.pdf", "pdfs/secret.pdf"}
    assert "not a readable PDF" in errors["pdfs/broken.pdf"]
    assert "encrypted" in errors["pdfs/secret.pdf"] and "password" in errors["pdfs/secret.pdf"]
    rows = query(server, "SELECT page, page_count, title, author, text FROM docs ORDER BY page").to_pylist()
    assert [r["page"] for r in rows] == [1, 2, 3]
    assert rows[0]["title"] == "Quarterly Report" and rows[0]["author"] == "Ada Lovelace"
    assert "topic 2" in rows[1]["text"] and rows[0]["page_count"] == 3
    chunks = query(server, "SELECT page, chunk, text FROM docs_chunks ORDER BY chunk").to_pylist()
    assert all(len(c["text"]) <= 300 for c in chunks)
    assert {c["page"] for c in chunks} == {1, 2, 3}
    # Only broken files: the job fails and says why.
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.ingest.file", {"path": "pdfs/broken.pdf", "table": "docs_broken"})
    assert "no file could be ingested" in str(err.value)


def luhn_complete(prefix: str) -> str:
    digits = [int(d) for d in prefix + "0"]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return prefix + str((10 - total % 10) % 10)


def iban_complete(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def test_pii_detection_precision_recall_and_overrides(server):
    import random

    rng = random.Random(7)
    first = ["James", "Mary", "Olga", "Kenji", "Amara", "Lucas", "Ines", "Tomasz"]
    last = ["Smith", "Garcia", "Okafor", "Tanaka", "Novak", "Rossi", "Dubois", "Lindqvist"]
    n = 2000
    rows = {
        "customer_name": [f"{rng.choice(first)} {rng.choice(last)}" for _ in range(n)],
        "email": [f"user{i}@example{i % 5}.com" for i in range(n)],
        "phone": [f"+1 415 555 {rng.randint(1000, 9999)}" if i % 2 else f"(212) 555-{rng.randint(1000, 9999)}"
                  for i in range(n)],
        "card": [luhn_complete("4" + "".join(str(rng.randint(0, 9)) for _ in range(14))) for _ in range(n)],
        "iban": [iban_complete("DE", "".join(str(rng.randint(0, 9)) for _ in range(18))) for _ in range(n)],
        "ssn": [f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}" for _ in range(n)],
        "client_ip": [f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(n)],
        "date_of_birth": [f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                          for _ in range(n)],
        # Decoys: none of these is PII.
        "order_id": [str(rng.randint(10**15, 10**16 - 1)) for _ in range(n)],
        "shipped_on": [f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" for _ in range(n)],
        "product_name": [rng.choice(["Blue Widget", "Red Gadget", "Green Gizmo"]) for _ in range(n)],
        "quantity": [str(rng.randint(1, 10**9)) for _ in range(n)],
        "comment": [rng.choice(["fast delivery", "ok", "would buy again", "n/a"]) for _ in range(n)],
    }
    truth = {"customer_name": "person_name", "email": "email", "phone": "phone", "card": "credit_card",
             "iban": "iban", "ssn": "us_ssn", "client_ip": "ip_address", "date_of_birth": "date_of_birth"}
    header = ",".join(rows)
    lines = [header] + [",".join(rows[c][i] for c in rows) for i in range(n)]
    put_file(server, "pii/people.csv", ("\n".join(lines) + "\n").encode())
    job = ingest(server, path="pii/people.csv", table="people",
                 columnTypes={"order_id": "VARCHAR", "quantity": "VARCHAR"})
    found = {f["column"]: f for f in job["ingest"]["pii"]}
    detected = {c: f["entityType"] for c, f in found.items()}
    true_positive = sum(1 for c, e in detected.items() if truth.get(c) == e)
    precision = true_positive / len(detected)
    recall = true_positive / len(truth)
    print(f"\nPII detector on a {n}-row table with known truth: precision {precision:.2f}, recall {recall:.2f}")
    assert precision == 1.0 and recall == 1.0, detected
    card = found["card"]
    assert card["checksumPassShare"] == 1.0 and card["matchShare"] == 1.0
    assert int(card["sampleSize"]) == 1000 and card["detectorVersion"].startswith("lakehouse-pii")
    pii = query(server, "SELECT column_name, entity_type, match_share, sample_size FROM system.pii "
                        "WHERE table_name = 'people' ORDER BY column_name").to_pylist()
    assert {r["column_name"]: r["entity_type"] for r in pii} == truth

    # Manual verdicts: unmark one column, mark another; they survive a later ingest.
    action(server, "lakehouse.pii.mark", {"table": "people", "column": "client_ip", "entityType": ""})
    marked = action(server, "lakehouse.pii.mark", {"table": "people", "column": "comment", "entityType": "person_name"})
    assert {c["column"] for c in marked[0]["columns"]} == set(truth) - {"client_ip"} | {"comment"}
    ingest(server, path="pii/people.csv", table="people", mode="INGEST_MODE_APPEND",
           columnTypes={"order_id": "VARCHAR", "quantity": "VARCHAR"})
    pii = query(server, "SELECT column_name, manual FROM system.pii WHERE table_name = 'people'").to_pylist()
    columns = {r["column_name"]: r["manual"] for r in pii}
    assert "client_ip" not in columns and columns["comment"] is True
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.pii.mark", {"table": "people", "column": "nope", "entityType": "email"})
    assert "no column" in str(err.value)


def test_lineage_after_success_and_failure(server):
    put_file(server, "lineage/ok.csv", b"a,b\n1,x\n2,y\n")
    job = ingest(server, path="lineage/ok.csv", table="lineage_ok")
    run_id = job["ingest"]["runId"]
    events = query(server, f"SELECT event_type, source_system, source_location, output_table, row_count, "
                           f"delta_version, event FROM system.lineage WHERE run_id = '{run_id}' "
                           f"ORDER BY event_time").to_pylist()
    assert [e["event_type"] for e in events] == ["START", "COMPLETE"]
    done = events[1]
    assert done["output_table"] == "public.lineage_ok" and done["row_count"] == 2
    assert done["delta_version"] == 0 and done["source_system"] == "local"
    assert done["source_location"].endswith("lineage/ok.csv")
    event = json.loads(done["event"])
    assert event["schemaURL"].startswith("https://openlineage.io/spec/")
    assert [f["name"] for f in event["outputs"][0]["facets"]["schema"]["fields"]] == ["a", "b"]

    put_file(server, "lineage/bad.csv", b"a,b\n1,x\n2\n")
    with pytest.raises(pa.ArrowException):
        action(server, "lakehouse.ingest.file", {"path": "lineage/bad.csv", "table": "lineage_bad",
                                                 "columnTypes": {"a": "BIGINT"}})
    failed = query(server, "SELECT event_type, error FROM system.lineage "
                           "WHERE output_table = 'public.lineage_bad' ORDER BY event_time").to_pylist()
    assert [e["event_type"] for e in failed] == ["START", "FAIL"]
    assert "line 3" in failed[1]["error"]


def test_jobs_list_detach_status_and_cancel_midway(server):
    rows = 3_000_000
    path = primary(server) / "big" / "big.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write("id,value,label\n")
        block = "".join(f"{i},{i * 0.5},label-{i % 100}\n" for i in range(100_000))
        for _ in range(rows // 100_000):
            f.write(block)
    started = action(server, "lakehouse.ingest.file", {"path": "big/big.csv", "table": "big_cancelled", "detach": True})
    assert len(started) == 1 and started[0]["state"] == "JOB_STATE_RUNNING"
    job_id = started[0]["id"]
    deadline = time.time() + 60
    while True:
        status = action(server, "lakehouse.job.status", {"jobId": job_id})[0]
        if int(status.get("progress", {}).get("rows", 0)) > 0 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert status["state"] == "JOB_STATE_RUNNING", status
    cancelled = action(server, "lakehouse.job.cancel", {"jobId": job_id})[0]
    assert cancelled["state"] == "JOB_STATE_CANCELLED", cancelled
    tables = query(server, "SELECT table_name FROM system.tables").column(0).to_pylist()
    assert "big_cancelled" not in tables
    leftovers = list((primary(server) / "tables" / "public").glob("big_cancelled-*"))
    assert leftovers == [], leftovers
    with pytest.raises(pa.ArrowException) as err:
        action(server, "lakehouse.job.cancel", {"jobId": job_id})
    assert "already ended" in str(err.value)

    listed = action(server, "lakehouse.job.list", {})[0]["jobs"]
    assert listed[0]["id"] == job_id
    jobs = query(server, f"SELECT state, kind, rows, error_code FROM system.jobs WHERE job_id = '{job_id}'").to_pylist()
    assert jobs == [{"state": "CANCELLED", "kind": "lakehouse.ingest.file", "rows": jobs[0]["rows"],
                     "error_code": "CANCELLED"}]
    # Follow a detached job to its end with job.status.
    put_file(server, "big/small.csv", b"x\n1\n2\n")
    started = action(server, "lakehouse.ingest.file", {"path": "big/small.csv", "table": "followed", "detach": True})
    followed = action(server, "lakehouse.job.status", {"jobId": started[0]["id"], "follow": True})
    assert followed[-1]["state"] == "JOB_STATE_SUCCEEDED"


class Collector(http.server.BaseHTTPRequestHandler):
    events: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Collector.events.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_lineage_is_posted_to_an_openlineage_endpoint(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/lineage"
    srv = Server(tmp_path / "data", "--lineage-endpoint", endpoint)
    try:
        (tmp_path / "data" / "buckets" / "primary" / "in.csv").write_bytes(b"k\n1\n")
        ingest(srv, path="in.csv", table="posted")
        deadline = time.time() + 10
        while len([e for e in Collector.events if e["outputs"][0]["name"] == "public.posted"]) < 2:
            assert time.time() < deadline, Collector.events
            time.sleep(0.1)
        kinds = [e["eventType"] for e in Collector.events if e["outputs"][0]["name"] == "public.posted"]
        assert kinds == ["START", "COMPLETE"]
    finally:
        srv.stop()
        httpd.shutdown()
