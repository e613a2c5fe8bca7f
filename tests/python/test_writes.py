"""Writes with the ADBC Flight SQL driver: DDL/DML, bulk ingest from pyarrow, pandas and
polars, time travel, and concurrent appends from several connections."""

import threading
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest


def connect(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "cannot disable autocommit": no transactions
        return flightsql.connect(server.uri)


def scalar(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_ddl_and_dml_through_cursor_execute(conn):
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS py_items")
        cur.execute("CREATE TABLE py_items (id BIGINT NOT NULL, name VARCHAR, price DOUBLE)")
        cur.execute("INSERT INTO py_items VALUES (1, 'apple', 1.5), (2, 'pear', 2.0), (3, 'fig', 9.0)")
        assert cur.fetchone() == (3,)  # the rows affected, as a one-row result
        cur.execute("UPDATE py_items SET price = price * 10 WHERE id = $1", (2,))
        assert cur.fetchone() == (1,)
        cur.execute("DELETE FROM py_items WHERE price > $1", (15.0,))
        assert cur.fetchone() == (1,)
        cur.execute("SELECT id, name, price FROM py_items ORDER BY id")
        assert cur.fetchall() == [(1, "apple", 1.5), (3, "fig", 9.0)]
        # Time travel: version 1 is the first INSERT.
        cur.execute('SELECT count(*) FROM "py_items@v1"')
        assert cur.fetchone() == (3,)
        cur.execute("SELECT max(version) FROM system.table_versions WHERE table_name = 'py_items'")
        assert cur.fetchone() == (3,)


def test_execute_update_returns_row_counts(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE py_counts AS SELECT value AS v FROM range(100)")
        stmt = cur.adbc_statement
        stmt.set_sql_query("DELETE FROM py_counts WHERE v < 40")
        assert stmt.execute_update() == 40
        stmt.set_sql_query("INSERT INTO py_counts SELECT value FROM range(5)")
        assert stmt.execute_update() == 5
        assert scalar(conn, "SELECT count(*) FROM py_counts") == 65


def test_executemany_inserts_every_row_in_one_commit(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE py_many (id BIGINT, name VARCHAR)")
        cur.executemany("INSERT INTO py_many VALUES ($1, $2)", [(1, "a"), (2, "b"), (3, None)])
        cur.execute("SELECT id, name FROM py_many ORDER BY id")
        assert cur.fetchall() == [(1, "a"), (2, "b"), (3, None)]
        cur.execute("SELECT count(*) FROM system.table_versions WHERE table_name = 'py_many'")
        assert cur.fetchone() == (2,)  # CREATE + one commit for the three rows


def test_write_errors_have_precise_status_and_change_nothing(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE py_strict (id BIGINT NOT NULL)")
    cases = [
        ("INSERT INTO py_strict VALUES (NULL)", adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT),
        ("INSERT INTO py_missing VALUES (1)", adbc_driver_manager.AdbcStatusCode.NOT_FOUND),
        ("CREATE TABLE py_strict (x INT)", adbc_driver_manager.AdbcStatusCode.ALREADY_EXISTS),
        ("DROP TABLE system.tables", adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED),
    ]
    for sql, status in cases:
        with pytest.raises(adbc_driver_manager.Error) as err, conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
        assert err.value.status_code == status, (sql, err.value)
    assert scalar(conn, "SELECT count(*) FROM py_strict") == 0


def test_adbc_ingest_modes_from_pyarrow(conn):
    first = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "tag": ["a", "b", None]})
    with conn.cursor() as cur:
        assert cur.adbc_ingest("py_ingest", first, mode="create") == 3
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.adbc_ingest("py_ingest", first, mode="create")
        assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.ALREADY_EXISTS
        assert cur.adbc_ingest("py_ingest", first, mode="append") == 3
        assert cur.adbc_ingest("py_ingest", first, mode="create_append") == 3
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.adbc_ingest("py_nowhere", first, mode="append")
        assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND
        # Columns are matched by name, in any order.
        swapped = pa.table({"tag": ["z"], "id": pa.array([9], pa.int64())})
        assert cur.adbc_ingest("py_ingest", swapped, mode="append") == 1
        assert scalar(conn, "SELECT count(*) FROM py_ingest") == 10
        # Replace: new rows and a new schema, as a new version.
        other = pa.table({"k": ["only"]})
        cur.adbc_ingest("py_ingest", other, mode="replace")
        cur.execute("SELECT * FROM py_ingest")
        assert cur.fetch_arrow_table().to_pylist() == [{"k": "only"}]
        assert scalar(conn, 'SELECT count(*) FROM "py_ingest@v3"') == 10
        # Into another schema.
        cur.execute("CREATE SCHEMA IF NOT EXISTS py_staging")
        assert cur.adbc_ingest("t", first, mode="create", db_schema_name="py_staging") == 3
        assert scalar(conn, "SELECT count(*) FROM py_staging.t") == 3
        assert cur.adbc_ingest("t", first, mode="append", catalog_name="lakehouse", db_schema_name="py_staging") == 3
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.adbc_ingest("t", first, mode="create", catalog_name="elsewhere")
        assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND


def test_adbc_ingest_refuses_a_mismatch_and_keeps_the_table(conn):
    with conn.cursor() as cur:
        cur.adbc_ingest("py_keep", pa.table({"id": pa.array([1], pa.int64())}), mode="create")
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.adbc_ingest("py_keep", pa.table({"other": [1]}), mode="append")
        assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
        assert "other" in str(err.value)
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.adbc_ingest("py_temp", pa.table({"id": [1]}), mode="create", temporary=True)
        assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_IMPLEMENTED
    assert scalar(conn, "SELECT count(*) FROM py_keep") == 1
    assert scalar(conn, "SELECT count(*) FROM system.tables WHERE table_name = 'py_temp'") == 0


def test_pandas_and_polars_frames(conn):
    # Pandas gives large strings, nanosecond timestamps and categoricals; Delta stores
    # strings, microseconds and the categories' values.
    frame = pd.DataFrame({
        "id": [1, 2, 3],
        "name": ["ä", "b", None],
        "at": pd.to_datetime(["2024-01-01 10:00:00", "2024-06-30 23:59:59.123456", None], format="ISO8601"),
        "kind": pd.Categorical(["x", "y", "x"]),
        "score": [0.5, None, 2.5],
    })
    with conn.cursor() as cur:
        assert cur.adbc_ingest("py_pandas", frame, mode="create") == 3
    back = pd.read_sql("SELECT * FROM py_pandas ORDER BY id", conn)
    assert back["name"].tolist()[:2] == ["ä", "b"]
    assert back["kind"].tolist() == ["x", "y", "x"]
    assert str(back["at"][1]) == "2024-06-30 23:59:59.123456"
    # pandas' own writer over the ADBC connection.
    assert frame.to_sql("py_pandas_sql", conn, index=False) == 3
    assert scalar(conn, "SELECT count(*) FROM py_pandas_sql") == 3
    # A frame whose types need no conversion still carries pandas' schema metadata.
    assert pd.DataFrame({"x": [1, 2]}).to_sql("py_pandas_plain", conn, index=False) == 2
    assert pd.DataFrame({"x": [3]}).to_sql("py_pandas_plain", conn, index=False, if_exists="append") == 1
    assert scalar(conn, "SELECT sum(x) FROM py_pandas_plain") == 6

    polars_frame = pl.DataFrame({"id": [10, 11], "label": ["p", "q"], "flag": [True, False]})
    with conn.cursor() as cur:
        assert cur.adbc_ingest("py_polars", polars_frame, mode="create") == 2
    polars_frame.write_database("py_polars", conn, if_table_exists="append", engine="adbc")
    read = pl.read_database("SELECT id, label, flag FROM py_polars ORDER BY id", conn)
    assert read["id"].to_list() == [10, 10, 11, 11]
    assert read["flag"].to_list() == [True, True, False, False]


def test_ten_million_rows_stream_into_one_commit(server):
    conn = connect(server)
    rows, batch_rows = 10_000_000, 500_000

    def batches():
        for start in range(0, rows, batch_rows):
            ids = pa.array(range(start, start + batch_rows), pa.int64())
            yield pa.record_batch([ids, pc.multiply(ids, 0.5), pc.cast(pc.bit_wise_and(ids, 1023), pa.string())],
                                  names=["id", "half", "bucket"])

    schema = pa.schema([("id", pa.int64()), ("half", pa.float64()), ("bucket", pa.string())])
    reader = pa.RecordBatchReader.from_batches(schema, batches())
    with conn.cursor() as cur:
        assert cur.adbc_ingest("py_ten_million", reader, mode="create") == rows
        cur.execute("SELECT count(*), sum(id), count(DISTINCT bucket) FROM py_ten_million")
        assert cur.fetchone() == (rows, rows * (rows - 1) // 2, 1024)
        cur.execute("SELECT count(*) FROM system.table_versions WHERE table_name = 'py_ten_million'")
        assert cur.fetchone() == (1,)
    conn.close()


def test_concurrent_appends_from_several_connections(server):
    setup = connect(server)
    with setup.cursor() as cur:
        cur.execute("CREATE TABLE py_concurrent (writer BIGINT, n BIGINT)")
    writers, appends, errors = 4, 5, []

    def work(writer):
        conn = connect(server)
        try:
            for i in range(appends):
                batch = pa.table({"writer": pa.array([writer] * 100, pa.int64()),
                                  "n": pa.array(range(i * 100, (i + 1) * 100), pa.int64())})
                with conn.cursor() as cur:
                    cur.adbc_ingest("py_concurrent", batch, mode="append")
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with setup.cursor() as cur:
        cur.execute("SELECT writer, count(*), count(DISTINCT n) FROM py_concurrent GROUP BY 1 ORDER BY 1")
        assert cur.fetchall() == [(w, appends * 100, appends * 100) for w in range(writers)]
        cur.execute("SELECT count(*) FROM system.table_versions WHERE table_name = 'py_concurrent'")
        assert cur.fetchone() == (1 + writers * appends,)
    setup.close()
