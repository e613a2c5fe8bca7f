"""The primary bucket on S3, against a local S3-compatible server (moto)."""

import shutil
import tempfile
import warnings
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

import adbc_driver_flightsql.dbapi as flightsql
from conftest import Server
from test_ingest import action

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def connect(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "cannot disable autocommit": no transactions
        return flightsql.connect(server.uri)


@pytest.fixture()
def s3_endpoint():
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    yield endpoint, s3
    moto.stop()


def test_tables_in_an_s3_primary_bucket(s3_endpoint, monkeypatch):
    endpoint, s3 = s3_endpoint
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-s3-"))
    args = ["--primary-url", "s3://lake/warehouse", "--s3-endpoint", endpoint, "--s3-allow-http", "true"]
    server = Server(data_dir, *args)
    try:
        conn = connect(server)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM lineitem")
            assert cur.fetchone()[0] == 60175
            cur.execute("SELECT name, kind, url FROM system.buckets WHERE name = 'primary'")
            assert cur.fetchone() == ("primary", "s3", "s3://lake/warehouse/")
            cur.execute("SELECT location FROM system.tables WHERE table_name = 'region'")
            assert cur.fetchone()[0].startswith("s3://lake/warehouse/tables/public/region-")
        conn.close()
        # The objects really are in the S3 bucket: the catalog and Delta logs.
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="warehouse/")["Contents"]]
        assert "warehouse/_lakehouse/catalog.json" in keys
        assert any("/_delta_log/00000000000000000000.json" in k for k in keys)
    finally:
        assert server.stop() == 0
        shutil.rmtree(data_dir, ignore_errors=True)

    # A restart reads the catalog back from S3 without recreating anything.
    server = Server(data_dir, *args)
    try:
        conn = connect(server)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), max(version) FROM system.tables")
            assert cur.fetchone() == (8, 0)
        conn.close()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_writes_to_an_s3_bucket(s3_endpoint, monkeypatch):
    """Bulk ingest, DML, concurrent appends (conditional puts) and DROP against S3."""
    import threading

    import pyarrow as pa

    endpoint, s3 = s3_endpoint
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-s3w-"))
    server = Server(data_dir, "--primary-url", "s3://lake/w", "--s3-endpoint", endpoint, "--s3-allow-http", "true")
    try:
        conn = connect(server)
        with conn.cursor() as cur:
            assert cur.adbc_ingest("events", pa.table({"id": pa.array(range(1000), pa.int64())}), mode="create") == 1000
            cur.execute("DELETE FROM events WHERE id >= 500")
            assert cur.fetchone() == (500,)

        errors = []

        def append(start):
            try:
                c = connect(server)
                with c.cursor() as cur:
                    cur.adbc_ingest("events", pa.table({"id": pa.array(range(start, start + 10), pa.int64())}),
                                    mode="append")
                c.close()
            except Exception as e:  # noqa: BLE001 - asserted below
                errors.append(e)

        threads = [threading.Thread(target=append, args=(10_000 + 10 * i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT id) FROM events")
            assert cur.fetchone() == (540, 540)
            cur.execute('SELECT count(*) FROM "events@v0"')
            assert cur.fetchone() == (1000,)
        # Vacuum on S3: an object no commit names (what a killed write leaves) and the
        # file the DELETE rewrote go; the latest version stays whole.
        prefix = "w/tables/public/events-"
        data = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix=prefix)["Contents"]
                if o["Key"].endswith(".parquet") and "/_delta_log/" not in o["Key"]]
        stray = data[0].rsplit("/", 1)[0] + "/part-00077-left-by-a-crash.snappy.parquet"
        s3.copy_object(Bucket="lake", Key=stray, CopySource={"Bucket": "lake", "Key": data[0]})
        reply = action(server, "lakehouse.table.vacuum", {"table": "events", "retainHours": 0})[0]
        assert int(reply["uncommittedFiles"]) == 1 and int(reply["expiredFiles"]) >= 1, reply
        assert int(reply["oldestReadableVersion"]) >= 1
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix=prefix)["Contents"]}
        assert stray not in keys
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT id) FROM events")
            assert cur.fetchone() == (540, 540)
            with pytest.raises(flightsql.Error, match="vacuumed"):
                cur.execute('SELECT count(*) FROM "events@v0"')
        with conn.cursor() as cur:
            cur.execute("DROP TABLE events")
        conn.close()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="w/tables/public/events-").get("Contents", [])]
        assert keys == [], "a dropped table's objects are deleted"
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_file_ingest_from_s3(s3_endpoint, monkeypatch):
    """lakehouse.ingest.file reads objects through the S3 store: a glob of CSVs, Parquet,
    and a DoPut upload staged with a multipart upload."""
    import io
    import json

    import pyarrow as pa
    import pyarrow.flight as fl
    import pyarrow.parquet as pq

    from test_ingest import ingest, upload_descriptor

    endpoint, s3 = s3_endpoint
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    for day in range(1, 4):
        body = "".join(f"{day},{i},item {i}\n" for i in range(1000))
        s3.put_object(Bucket="lake", Key=f"warehouse/landing/day{day}.csv", Body=f"day,n,label\n{body}".encode())
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(500))}), buffer)
    s3.put_object(Bucket="lake", Key="warehouse/landing/nums.parquet", Body=buffer.getvalue())
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-s3-ingest-"))
    server = Server(data_dir, "--primary-url", "s3://lake/warehouse", "--s3-endpoint", endpoint,
                    "--s3-allow-http", "true")
    try:
        job = ingest(server, path="landing/day*.csv", table="s3_days")
        assert int(job["ingest"]["files"]) == 3 and int(job["ingest"]["rows"]) == 3000
        job = ingest(server, path="landing/nums.parquet", table="s3_nums")
        assert int(job["ingest"]["rows"]) == 500
        data = b"k\n" + b"".join(f"{i}\n".encode() for i in range(200_000))
        schema = pa.schema([("chunk", pa.binary())])
        writer, reader = fl.connect(server.uri).do_put(
            upload_descriptor({"fileName": "keys.csv", "request": {"table": "s3_uploaded"}}), schema)
        chunks = [data[i:i + 1 << 20] for i in range(0, len(data), 1 << 20)]
        writer.write_batch(pa.record_batch([pa.array(chunks, pa.binary())], schema=schema))
        writer.done_writing()
        assert json.loads(reader.read().to_pybytes())["state"] == "JOB_STATE_SUCCEEDED"
        writer.close()
        conn = connect(server)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(day) FROM s3_days")
            assert cur.fetchone() == (3000, 6000)
            cur.execute("SELECT sum(x) FROM s3_nums")
            assert cur.fetchone()[0] == 124750
            cur.execute("SELECT count(*) FROM s3_uploaded")
            assert cur.fetchone()[0] == 200_000
        conn.close()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="warehouse/_lakehouse/")["Contents"]]
        assert not any("/staging/" in k for k in keys), keys
        assert any("/lineage/" in k for k in keys)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_s3_bucket_added_at_run_time(s3_endpoint, monkeypatch):
    """lakehouse.bucket.add with an s3:// URL (beside a local primary), a table written into
    it, the refusal of an unreachable bucket, and a forced removal that keeps the objects."""
    import pyarrow as pa

    from test_ingest import action, ingest

    endpoint, s3 = s3_endpoint
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    s3.put_object(Bucket="lake", Key="extra/in/a.csv", Body=b"id,v\n1,x\n2,y\n")
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-s3-add-"))
    server = Server(data_dir, "--s3-endpoint", endpoint, "--s3-allow-http", "true")
    try:
        info = action(server, "lakehouse.bucket.add", {"name": "extra", "url": "s3://lake/extra"})[0]
        assert info["kind"] == "s3" and info["url"] == "s3://lake/extra/"
        job = ingest(server, sourceBucket="extra", path="in/a.csv", table="from_s3", targetBucket="extra")
        assert int(job["ingest"]["rows"]) == 2
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="extra/tables/")["Contents"]]
        assert any("/_delta_log/00000000000000000000.json" in k for k in keys)

        with pytest.raises(pa.ArrowException, match="cannot be used"):  # FAILED_PRECONDITION
            action(server, "lakehouse.bucket.add", {"name": "ghost", "url": "s3://no-such-bucket/x"})
        names = [b["name"] for b in action(server, "lakehouse.bucket.list", {})[0]["buckets"]]
        assert "ghost" not in names and "extra" in names

        with pytest.raises(pa.ArrowException, match="1 tables"):
            action(server, "lakehouse.bucket.remove", {"name": "extra"})
        removed = action(server, "lakehouse.bucket.remove", {"name": "extra", "force": True})[0]
        assert removed["droppedTables"] == ["public.from_s3"]
        # Unlisted, not deleted: the objects stay in S3.
        assert s3.list_objects_v2(Bucket="lake", Prefix="extra/tables/")["KeyCount"] > 0
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
