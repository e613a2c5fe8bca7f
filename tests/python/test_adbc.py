"""The ADBC Flight SQL driver (Go), as pandas/polars users run it."""

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pytest


def test_get_info_reports_server_and_arrow_versions(conn):
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "Lakehouse"
    assert info["vendor_arrow_version"].startswith("59.")
    assert info["vendor_version"]


@pytest.mark.parametrize("depth", ["catalogs", "db_schemas", "tables", "columns", "all"])
def test_get_objects_at_every_depth(conn, depth):
    objects = conn.adbc_get_objects(depth=depth).read_all().to_pylist()
    assert [c["catalog_name"] for c in objects] == ["lakehouse"]
    if depth == "catalogs":
        return
    schemas = {s["db_schema_name"]: s for s in objects[0]["catalog_db_schemas"]}
    assert {"public", "system", "information_schema"} <= set(schemas)
    if depth == "db_schemas":
        return
    tables = {t["table_name"]: t for t in schemas["public"]["db_schema_tables"]}
    assert set(tables) == {"customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"}
    assert tables["nation"]["table_type"] == "TABLE"
    if depth == "tables":
        return
    columns = [c["column_name"] for c in tables["nation"]["table_columns"]]
    assert columns == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
    positions = [c["ordinal_position"] for c in tables["nation"]["table_columns"]]
    assert positions == [1, 2, 3, 4]


def test_get_objects_filters(conn):
    objects = conn.adbc_get_objects(depth="tables", table_name_filter="line%").read_all().to_pylist()
    names = {(s["db_schema_name"], t["table_name"])
             for s in objects[0]["catalog_db_schemas"] for t in (s["db_schema_tables"] or [])}
    assert names == {("public", "lineitem"), ("system", "lineage")}
    objects = conn.adbc_get_objects(depth="tables", db_schema_filter="public",
                                    table_name_filter="line%").read_all().to_pylist()
    names = [t["table_name"] for s in objects[0]["catalog_db_schemas"] for t in (s["db_schema_tables"] or [])]
    assert names == ["lineitem"]


def test_table_schema_and_types(conn):
    schema = conn.adbc_get_table_schema("region")
    assert schema.names == ["r_regionkey", "r_name", "r_comment"]
    assert schema.field("r_name").type == pa.string()
    assert schema.field("r_regionkey").type == pa.int64()
    system = conn.adbc_get_table_schema("tables", db_schema_filter="system")
    assert "table_name" in system.names
    assert set(conn.adbc_get_table_types()) == {"TABLE", "VIEW", "SYSTEM TABLE"}


def test_execute_without_and_with_parameters(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT r_name FROM region ORDER BY r_regionkey")
        assert [r[0] for r in cur.fetchall()] == ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]
        cur.execute("SELECT n_name FROM nation WHERE n_regionkey = $1 AND n_nationkey > $2 ORDER BY 1", (2, 10))
        assert [r[0] for r in cur.fetchall()] == ["CHINA", "JAPAN", "VIETNAM"]
        cur.execute("SELECT $1 || '!' AS greeting", ("hello",))
        assert cur.fetchone() == ("hello!",)
        cur.execute("SELECT count(*) FROM lineitem")
        assert cur.fetchone()[0] == 60175


def test_executemany_style_parameter_batch(conn):
    with conn.cursor() as cur:
        cur.adbc_prepare("SELECT n_name FROM nation WHERE n_nationkey = $1")
        cur.execute("SELECT n_name FROM nation WHERE n_nationkey = $1", pa.record_batch([pa.array([1, 2, 3])], names=["0"]))
        assert sorted(r[0] for r in cur.fetchall()) == ["ARGENTINA", "BRAZIL", "CANADA"]


def test_five_million_row_result_fetched_whole(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT value AS v, value % 7 AS m, 'row' AS label FROM range(5000000)")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 5_000_000
    assert table.schema.names == ["v", "m", "label"]
    assert pa.compute.sum(table["v"]).as_py() == sum(range(5_000_000))


def test_errors_have_the_right_codes(conn):
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.ProgrammingError) as missing:
            cur.execute("SELECT * FROM no_such_table")
        assert missing.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND
        assert "no_such_table" in str(missing.value)
        with pytest.raises(adbc_driver_manager.ProgrammingError) as bad:
            cur.execute("SELEC 1")
        assert bad.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
        with pytest.raises(adbc_driver_manager.Error) as division:
            cur.execute("SELECT 1 / 0")
            cur.fetchall()
        assert "zero" in str(division.value).lower()
        # The connection is still usable.
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone() == (1,)


def test_system_tables(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT table_name, version FROM system.tables ORDER BY table_name")
        rows = cur.fetchall()
        assert [r[0] for r in rows][:3] == ["customer", "lineitem", "nation"]
        assert all(r[1] == 0 for r in rows)
        cur.execute("SELECT name FROM system.buckets ORDER BY name")
        assert [r[0] for r in cur.fetchall()] == ["primary", "rescue"]
        cur.execute("SELECT column_name FROM system.columns WHERE table_name = 'region' ORDER BY ordinal_position")
        assert [r[0] for r in cur.fetchall()] == ["r_regionkey", "r_name", "r_comment"]


def test_session_schema_option(server):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = flightsql.connect(server.uri)
    try:
        conn.adbc_current_db_schema = "system"
        assert conn.adbc_current_db_schema == "system"
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM buckets")
            assert cur.fetchone()[0] == 2
    finally:
        conn.close()


def test_execute_schema_uses_get_schema_without_running(conn):
    with conn.cursor() as cur:
        schema = cur.adbc_execute_schema("SELECT l_orderkey, l_comment FROM lineitem WHERE l_quantity > 10")
    assert schema.names == ["l_orderkey", "l_comment"]
    assert schema.field("l_comment").type == pa.string()
