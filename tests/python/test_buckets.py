"""Bucket administration over pyarrow.flight: lakehouse.bucket.add|remove|list|move_index,
their refusals (status codes), and what survives a restart."""

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import Server
from test_ingest import action, query
from test_vector import create, load_docs, search


@pytest.fixture(scope="module")
def node():
    """A server of its own (restarted by a test), allowed to add local buckets under
    `roots/`."""
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-buckets-"))
    roots = Path(tempfile.mkdtemp(prefix="lakehouse-roots-"))
    holder = {"server": Server(data_dir, "--local-bucket-root", str(roots)), "roots": roots, "data": data_dir}
    yield holder
    holder["server"].stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(roots, ignore_errors=True)


def buckets(server) -> dict:
    return {b["name"]: b for b in action(server, "lakehouse.bucket.list", {})[0]["buckets"]}


def refused(server, name: str, body: dict) -> pa.ArrowException:
    with pytest.raises(pa.ArrowException) as error:
        action(server, name, body)
    return error.value


def test_add_list_and_refusals(node):
    server, roots = node["server"], node["roots"]
    listed = buckets(server)
    assert listed["primary"]["builtin"] and listed["rescue"]["builtin"]
    assert listed["primary"]["tables"] == 8  # the demo tables

    folder = roots / "landing"
    added = action(server, "lakehouse.bucket.add", {"name": "landing", "url": str(folder)})[0]
    assert added["kind"] == "local" and added["url"] == folder.resolve().as_uri() + "/"
    assert folder.is_dir(), "a local bucket's folder is created"
    assert "landing" in buckets(server)
    # system.buckets shows it too, with what it holds.
    rows = query(server, "SELECT name, kind, builtin, tables FROM system.buckets WHERE name = 'landing'")
    assert rows.to_pylist() == [{"name": "landing", "kind": "local", "builtin": False, "tables": 0}]

    cases = [
        ({"name": "landing", "url": str(roots / "other")}, pa.ArrowException, "exists already"),
        ({"name": "inside", "url": str(folder / "sub")}, pa.ArrowException, "overlaps bucket"),
        ({"name": "outside", "url": tempfile.gettempdir() + "/lakehouse-not-allowed"},
         fl.FlightUnauthorizedError, "outside the allowed roots"),
        # '..' cannot climb out: dot segments resolve before the roots are checked.
        ({"name": "sneaky", "url": f"file://{roots}/../escape"}, fl.FlightUnauthorizedError,
         "outside the allowed roots"),
        ({"name": "sneaky", "url": f"{roots}/../escape"}, fl.FlightUnauthorizedError,
         "outside the allowed roots"),
        ({"name": "Bad-Name", "url": str(roots / "x")}, pa.ArrowInvalid, "name:"),
        ({"name": "ftp", "url": "ftp://host/x"}, pa.ArrowInvalid, "unsupported scheme"),
        ({"name": "empty", "url": ""}, pa.ArrowInvalid, "url: is empty"),
    ]
    for body, kind, message in cases:
        error = refused(server, "lakehouse.bucket.add", body)
        assert isinstance(error, kind), (body, error)
        assert message in str(error), (body, str(error))
    assert not (Path(tempfile.gettempdir()) / "lakehouse-not-allowed").exists()

    for name in ["primary", "rescue"]:
        error = refused(server, "lakehouse.bucket.remove", {"name": name, "force": True})
        assert isinstance(error, fl.FlightUnauthorizedError) and "built in" in str(error)
    error = refused(server, "lakehouse.bucket.remove", {"name": "nope"})
    assert isinstance(error, pa.ArrowKeyError) and "does not exist" in str(error)  # NOT_FOUND


def test_tables_in_a_bucket_keep_it_until_forced(node):
    server, roots = node["server"], node["roots"]
    folder = roots / "sales"
    action(server, "lakehouse.bucket.add", {"name": "sales", "url": folder.as_uri()})
    (folder / "in").mkdir()
    (folder / "in" / "orders.csv").write_text("id,amount\n1,10.5\n2,20\n")
    final = action(server, "lakehouse.ingest.file", {
        "sourceBucket": "sales", "path": "in/orders.csv", "table": "sales_orders", "targetBucket": "sales"})[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    location = query(server, "SELECT location FROM system.tables WHERE table_name = 'sales_orders'").column(0)[0].as_py()
    assert location.startswith(folder.as_uri() + "/tables/public/sales_orders-")
    assert buckets(server)["sales"]["tables"] == 1

    error = refused(server, "lakehouse.bucket.remove", {"name": "sales"})
    assert "not empty" in str(error) and "1 tables (public.sales_orders)" in str(error)

    # An empty bucket holding only files is refused too, naming one of them.
    action(server, "lakehouse.bucket.add", {"name": "drop_zone", "url": str(roots / "drop_zone")})
    (roots / "drop_zone" / "x.csv").write_text("a\n1\n")
    assert "objects (e.g. x.csv)" in str(refused(server, "lakehouse.bucket.remove", {"name": "drop_zone"}))
    (roots / "drop_zone" / "x.csv").unlink()
    removed = action(server, "lakehouse.bucket.remove", {"name": "drop_zone"})[0]
    assert removed["bucket"]["name"] == "drop_zone" and removed["droppedTables"] == []

    removed = action(server, "lakehouse.bucket.remove", {"name": "sales", "force": True})[0]
    assert removed["droppedTables"] == ["public.sales_orders"]
    assert "sales" not in buckets(server)
    assert query(server, "SELECT count(*) AS n FROM system.tables WHERE table_name = 'sales_orders'").column(0)[0].as_py() == 0
    # The files stay where they were.
    assert any((folder / "tables" / "public").iterdir())


def test_move_an_index_between_buckets_and_restart(node):
    server, roots = node["server"], node["roots"]
    load_docs(server, "docs")
    info = create(server, name="docs_idx", table="docs", textColumn="body", idColumn="id", backend="flat")
    assert info["bucket"] == "primary"
    before = [h["id"] for h in search(server, index="docs_idx", query="a cat on a windowsill", k=3)]
    old_folder = node["data"] / "buckets" / "primary" / info["location"]
    assert old_folder.is_dir()

    action(server, "lakehouse.bucket.add", {"name": "vectors", "url": str(roots / "vectors")})
    replies = action(server, "lakehouse.bucket.move_index", {"index": "docs_idx", "bucket": "vectors"})
    final = replies[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    assert final["kind"] == "lakehouse.bucket.move_index"
    assert int(final["progress"]["bytes"]) == int(final["progress"]["bytesTotal"]) > 0
    moved = final["vectorIndex"]
    assert moved["bucket"] == "vectors" and moved["location"] == info["location"]
    assert (roots / "vectors" / info["location"] / "vectors" / "_delta_log").is_dir()
    assert not old_folder.exists(), "the old files are deleted after the switch"
    row = query(server, "SELECT bucket FROM system.vector_indexes WHERE name = 'docs_idx'").to_pylist()
    assert row == [{"bucket": "vectors"}]
    assert [h["id"] for h in search(server, index="docs_idx", query="a cat on a windowsill", k=3)] == before
    assert buckets(server)["vectors"]["indexes"] == 1

    # Refusals are the call's status, before any job starts.
    for body, message in [({"index": "docs_idx", "bucket": "vectors"}, "already lives"),
                          ({"index": "nope", "bucket": "vectors"}, "does not exist"),
                          ({"index": "docs_idx", "bucket": "nope"}, "does not exist")]:
        assert message in str(refused(server, "lakehouse.bucket.move_index", body))
    error = refused(server, "lakehouse.bucket.remove", {"name": "vectors"})
    assert "1 vector indexes (docs_idx)" in str(error)

    # Buckets and the moved index survive a restart; the index loads from its new home.
    server.stop()
    node["server"] = server = Server(node["data"], "--local-bucket-root", str(roots))
    assert "vectors" in buckets(server)
    assert [h["id"] for h in search(server, index="docs_idx", query="a cat on a windowsill", k=3)] == before

    # Back to primary, then a forced removal of the emptied bucket needs no force.
    final = action(server, "lakehouse.bucket.move_index", {"index": "docs_idx", "bucket": "primary"})[-1]
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    assert old_folder.is_dir()
    action(server, "lakehouse.bucket.remove", {"name": "vectors"})
    assert [h["id"] for h in search(server, index="docs_idx", query="a cat on a windowsill", k=3)] == before
