"""Files no version of a table reads: those of writes that never committed are deleted
by themselves (after a failed or cancelled write, and at the start after a kill: see
test_crash.py); `lakehouse.table.vacuum` also deletes what old commits removed, after
which time travel to the versions that read them answers NOT_FOUND."""

import json
import shutil
from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from lakehouse_client import Client

from test_crash import connect, wait_for
from test_ingest import action, query
from test_lakehouse_cli import lh


def table_folder(server, name: str) -> Path:
    location = query(server, f"SELECT location FROM system.tables WHERE table_name = '{name}'").column(0)[0].as_py()
    assert location.startswith("file://"), location
    return Path(location.removeprefix("file://"))


def logged_files(folder: Path, kinds: tuple[str, ...] = ("add", "remove")) -> set[str]:
    """The data files the Delta log's `kinds` actions name, read independently of the server."""
    named = set()
    for commit in (folder / "_delta_log").glob("*.json"):
        for line in commit.read_text().splitlines():
            entry = json.loads(line)
            for kind in kinds:
                if kind in entry:
                    named.add(entry[kind]["path"])
    return named


def data_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts}


def unnamed(folder: Path) -> set[str]:
    return data_files(folder) - logged_files(folder)


def staged(folder: Path) -> list[Path]:
    """object_store's half-written uploads (`name#N`)."""
    return [p for p in folder.rglob("*#*") if p.name.rsplit("#", 1)[1].isdigit()]


def test_a_failed_append_leaves_no_files(server):
    conn = connect(server)
    with conn.cursor() as cur:
        cur.adbc_ingest("vac_failed", pa.table({"id": pa.array(range(1000), pa.int64())}), mode="create")
    conn.commit()
    folder = table_folder(server, "vac_failed")

    def batches():
        # Rows until the write has put a data file down, then the upload breaks.
        for i in range(100_000):
            if unnamed(folder):
                raise RuntimeError("the client's source broke")
            yield pa.record_batch({"id": pa.array(range(i * 200_000, (i + 1) * 200_000), pa.int64())})

    schema = pa.schema([("id", pa.int64())])
    with pytest.raises(Exception):
        with conn.cursor() as cur:
            cur.adbc_ingest("vac_failed", pa.RecordBatchReader.from_batches(schema, batches()), mode="append")
    conn.close()
    wait_for(lambda: not unnamed(folder) and not staged(folder), timeout=60, what="the files of the failed append to go")
    assert query(server, "SELECT count(*) FROM vac_failed").column(0)[0].as_py() == 1000
    assert any("did not commit" in line for line in server.log)


def test_vacuum_deletes_what_no_version_reads(server):
    conn = connect(server)
    with conn.cursor() as cur:
        cur.adbc_ingest("vac_t", pa.table({"id": [1, 2, 3]}), mode="create")  # v0
        cur.execute("INSERT INTO vac_t VALUES (4)")  # v1
        cur.adbc_ingest("vac_t", pa.table({"id": [10, 20]}), mode="replace")  # v2
    conn.commit()
    conn.close()
    folder = table_folder(server, "vac_t")
    live = next(iter(data_files(folder)))
    shutil.copy(folder / live, folder / "part-00042-left-by-a-crash.snappy.parquet")
    before = data_files(folder)
    assert len(before) == 4

    with Client(server.uri) as lake:
        # Dry run, default retention (a week): only the uncommitted file is due.
        plan = lake.vacuum("vac_t", dry_run=True)
        assert plan["dryRun"] is True
        assert int(plan["uncommittedFiles"]) == 1  # proto3 JSON writes 64-bit integers as strings
        assert plan["expiredFiles"] == "0"  # every field is written, zeros too
        assert plan["files"] == ["part-00042-left-by-a-crash.snappy.parquet"]
        assert data_files(folder) == before

        done = lake.vacuum("vac_t")
        assert int(done["uncommittedFiles"]) == 1 and int(done["bytes"]) > 0
        assert data_files(folder) == before - {"part-00042-left-by-a-crash.snappy.parquet"}
        assert query(server, 'SELECT count(*) FROM "vac_t@v0"').column(0)[0].as_py() == 3

        # Retain nothing: the files of v0 and v1, which the replace removed, go too.
        done = lake.vacuum("public.vac_t", retain_hours=0)
        assert int(done["expiredFiles"]) == 2, done
        assert int(done["oldestReadableVersion"]) == 2
        assert int(done["version"]) == 2
    assert data_files(folder) == logged_files(folder) - logged_files(folder, ("remove",))
    assert sorted(query(server, "SELECT id FROM vac_t").column(0).to_pylist()) == [10, 20]
    assert query(server, 'SELECT count(*) FROM "vac_t@v2"').column(0)[0].as_py() == 2
    with pytest.raises(adbc_driver_manager.Error) as err:
        query(server, 'SELECT count(*) FROM "vac_t@v1"')
    assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND, err.value
    assert "vacuumed" in str(err.value) and "versions 2 and later" in str(err.value)

    # The same through pyarrow.flight with a JSON body, and the CLI.
    reply = action(server, "lakehouse.table.vacuum", {"table": "vac_t", "retainHours": 0})[0]
    assert reply["table"] == "public.vac_t" and reply["bytes"] == "0"  # nothing left
    out = lh(server, "table", "vacuum", "vac_t", "--dry-run").stdout
    assert "would delete 0 files" in out and "versions 2 to 2 can be read" in out


def test_vacuum_refuses_bad_requests(server):
    with pytest.raises(pa.ArrowInvalid) as err:  # INVALID_ARGUMENT
        action(server, "lakehouse.table.vacuum", {"table": "region", "retainHours": -1})
    assert "retain_hours" in str(err.value)
    with pytest.raises(pa.ArrowInvalid):
        action(server, "lakehouse.table.vacuum", {"table": "region", "retainHours": "NaN"})
    with pytest.raises(pa.ArrowKeyError) as err:  # NOT_FOUND
        action(server, "lakehouse.table.vacuum", {"table": "no_such_table"})
    assert "no_such_table" in str(err.value)
    with pytest.raises(pa.ArrowInvalid):
        action(server, "lakehouse.table.vacuum", {"table": ""})
    descriptions = {a.type: a.description for a in fl.connect(server.uri).list_actions()}
    assert "retain_hours" in descriptions["lakehouse.table.vacuum"]
