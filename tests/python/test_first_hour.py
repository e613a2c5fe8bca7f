"""What real clients and a new user meet in the first hour (issue 20): the schema a
query announces is the schema it streams (the ADBC driver checks), user text never
reaches the server's disk through eval sets or search filters, errors raised inside
SQL keep their status, JSON replies carry every field, and concurrent writers to one
table lose nothing and fail nothing."""

import concurrent.futures
import contextlib
import os
import subprocess
import threading
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import lakehouse_binary
from test_ingest import action, client, query
from test_vector import TOPICS, create, load_docs, search


def connect(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(server.uri)


@contextlib.contextmanager
def cursor(server):
    """An ADBC cursor on a connection of its own, both closed afterwards."""
    conn = connect(server)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


# Each query's announced schema must equal its streamed one, field by field (nullability
# and metadata too): the ADBC Go driver rejects "endpoint 0 returned inconsistent schema".
CORPUS = [
    "SELECT version()",
    "SELECT current_date",
    "SELECT now()",
    "SELECT abs(-1)",
    "SELECT upper('a')",
    "SELECT 1",
    "SELECT 1 + 2 * 3 AS x",
    "SELECT NULL",
    "SELECT NULL AS n, 1 AS one",
    "SELECT CAST('2024-01-02' AS DATE) AS d, CAST(1.5 AS DECIMAL(10, 2)) AS dec",
    "SELECT CAST(n_nationkey AS VARCHAR) AS k FROM nation",
    "SELECT CASE WHEN n_nationkey > 3 THEN 'big' ELSE NULL END AS c FROM nation",
    "SELECT coalesce(NULL, n_name) FROM nation",
    "SELECT count(*) FROM nation",
    "SELECT n_regionkey, count(*), min(n_name), avg(n_nationkey) FROM nation GROUP BY n_regionkey",
    "SELECT sum(n_nationkey) FROM nation WHERE n_nationkey < 0",
    "SELECT 1 AS a UNION ALL SELECT 2",
    "SELECT n_name FROM nation UNION SELECT r_name FROM region",
    "SELECT n.n_name, r.r_name FROM nation n JOIN region r ON n.n_regionkey = r.r_regionkey",
    "SELECT n.n_name, r.r_name FROM nation n LEFT JOIN region r ON n.n_regionkey = r.r_regionkey + 100",
    "SELECT n_name, row_number() OVER (PARTITION BY n_regionkey ORDER BY n_name) AS rn FROM nation",
    "SELECT n_name, lag(n_name) OVER (ORDER BY n_nationkey) FROM nation",
    "SELECT * FROM nation WHERE n_name LIKE 'A%' ORDER BY n_nationkey LIMIT 3",
    "SELECT * FROM (VALUES (1, 'a'), (2, NULL)) AS t(x, y)",
    "SELECT * FROM generate_series(1, 3)",
    "SELECT * FROM range(5)",
    "SELECT array_length(make_array(1, 2, 3))",
    "SELECT named_struct('a', 1, 'b', 'x') AS s",
    "SELECT date_trunc('month', TIMESTAMP '2024-05-06 07:08:09')",
    "SELECT * FROM nation@v0 LIMIT 2",
    "SELECT * FROM system.jobs",
    "SELECT name, kind FROM system.buckets",
    "SELECT table_name FROM information_schema.tables",
    "EXPLAIN SELECT 1",
]


@pytest.mark.parametrize("sql", CORPUS)
def test_announced_schema_is_the_streamed_schema(server, sql):
    with cursor(server) as cur:
        # The driver compares FlightInfo's schema with the stream's and raises if
        # they differ; execute_schema asks GetSchema.
        cur.execute(sql)
        table = cur.fetch_arrow_table()
        announced = cur.adbc_execute_schema(sql)
    assert announced.equals(table.schema, check_metadata=True), (announced, table.schema)
    # pyarrow.flight, field metadata included.
    flight = client(server)
    info = flight.get_flight_info(fl.FlightDescriptor.for_command(_statement_query(sql)))
    streamed = flight.do_get(info.endpoints[0].ticket).read_all().schema
    assert info.schema.equals(streamed, check_metadata=True), (info.schema, streamed)


def _statement_query(sql: str) -> bytes:
    """A Flight SQL CommandStatementQuery packed in an Any (hand-encoded protobuf)."""
    command = _field(1, sql.encode())
    return _field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + _field(2, command)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_prepared_statement_schema_is_the_streamed_schema(server):
    with cursor(server) as cur:
        for sql in ["SELECT version()", "SELECT abs(-1) AS a, upper('x') AS u", "SELECT count(*) FROM nation"]:
            cur.adbc_prepare(sql)
            cur.execute(sql)
            assert cur.fetch_arrow_table().num_rows == 1
        # With a parameter: the schema after binding is the one streamed.
        cur.execute("SELECT n_name FROM nation WHERE n_nationkey = $1", parameters=(3,))
        assert cur.fetch_arrow_table().column(0).to_pylist() == ["CANADA"]


def test_a_statement_is_planned_once_per_call(server):
    """GetFlightInfo plans and DoGet runs that plan: many GetFlightInfo/DoGet pairs in a
    row all answer (and a ticket redeemed twice is planned again)."""
    flight = client(server)
    info = flight.get_flight_info(fl.FlightDescriptor.for_command(_statement_query("SELECT 41 + 1 AS x")))
    for _ in range(2):  # the second DoGet of the same ticket plans again
        assert flight.do_get(info.endpoints[0].ticket).read_all().column("x").to_pylist() == [42]


# --- user SQL never writes files --------------------------------------------------------

@pytest.fixture(scope="module")
def docs_index(server):
    load_docs(server, "first_docs")
    create(server, name="first_docs_idx", table="first_docs", textColumn="body", idColumn="id")
    return "first_docs_idx"


def test_eval_set_queries_cannot_write_files(server, docs_index, tmp_path):
    target = tmp_path / "written-by-eval-set.csv"
    for sql in [f"COPY (SELECT 'x' AS q) TO '{target}'",
                f"COPY (SELECT 'x' AS q) TO '{target}' STORED AS CSV",
                "INSERT INTO first_docs VALUES (999, 'x', 'y')",
                "SET datafusion.execution.batch_size = 1"]:
        with pytest.raises(pa.ArrowInvalid, match="queries_sql"):  # INVALID_ARGUMENT
            action(server, "lakehouse.vector.eval_set.create",
                   {"name": "evil_eval", "index": docs_index, "queriesSql": sql})
    assert not target.exists()
    assert query(server, "SELECT count(*) AS n FROM first_docs WHERE id = 999").to_pylist() == [{"n": 0}]


def test_search_filters_are_expressions(server, docs_index, tmp_path):
    target = tmp_path / "written-by-filter.csv"
    for bad in ["1=1) UNION SELECT 1 --",
                f"1=1; COPY (SELECT 1) TO '{target}'",
                "id > 0 UNION SELECT 5"]:
        with pytest.raises(pa.ArrowInvalid, match="filter"):  # INVALID_ARGUMENT
            search(server, index=docs_index, query="a dog", k=3, filter=bad)
    assert not target.exists()
    # A real expression still filters.
    hits = search(server, index=docs_index, query="a dog", k=3, filter="topic = 'cooking' AND id > 0")
    assert hits and all(h["text"] in TOPICS["cooking"] for h in hits)


# --- errors keep their status through SQL -----------------------------------------------

def test_search_functions_in_sql_keep_the_status(server):
    with cursor(server) as cur:
        with pytest.raises(flightsql.ProgrammingError) as err:  # NOT_FOUND, not INTERNAL
            cur.execute("SELECT * FROM vector_search('no_such_index', 'q', 3)")
            cur.fetchall()
        assert "NOT_FOUND" in str(err.value) or "NotFound" in str(err.value), str(err.value)
        assert "INTERNAL" not in str(err.value)
    with pytest.raises(pa.ArrowKeyError):  # pyarrow.flight: NOT_FOUND
        flight = client(server)
        flight.get_flight_info(fl.FlightDescriptor.for_command(
            _statement_query("SELECT * FROM text_search('no_such_index', 'q', 3)")))


# --- JSON replies carry every field -----------------------------------------------------

def test_json_replies_carry_default_fields(server, docs_index):
    reply = action(server, "lakehouse.vector.search", {"index": docs_index, "query": "zeppelin airship",
                                                        "k": 3, "mode": "text"})[0]
    assert reply["hits"] == []  # the README indexes [0]["hits"]
    hits = action(server, "lakehouse.vector.search", {"index": docs_index, "query": "windowsill", "k": 1,
                                                       "mode": "text"})[0]["hits"]
    assert hits and "distance" not in hits[0]  # a text hit has no vector distance (was "NaN")
    hits = action(server, "lakehouse.vector.search", {"index": docs_index, "query": "a dog", "k": 1})[0]["hits"]
    assert isinstance(hits[0]["distance"], float)


# --- concurrent writers ------------------------------------------------------------------

def test_concurrent_writers_lose_nothing_and_fail_nothing(server):
    conn = connect(server)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE counter (id BIGINT, x BIGINT)")
        cur.execute("INSERT INTO counter VALUES (1, 0)")
    conn.close()
    failures: list[str] = []
    lock = threading.Lock()

    def writer(w: int) -> int:
        conn = connect(server)
        inserted = 0
        try:
            with conn.cursor() as cur:
                for i in range(25):
                    for sql in ["UPDATE counter SET x = x + 1 WHERE id = 1",
                                f"INSERT INTO counter VALUES ({100 + w * 100 + i}, 1)"]:
                        try:
                            cur.execute(sql)
                            inserted += sql.startswith("INSERT")
                        except Exception as error:  # noqa: BLE001 - every failure is counted
                            with lock:
                                failures.append(f"{sql}: {error}")
        finally:
            conn.close()
        return inserted

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        inserted = sum(pool.map(writer, range(4)))
    assert failures == [], failures[:3]
    assert inserted == 100
    rows = query(server, "SELECT count(*) AS n, max(CASE WHEN id = 1 THEN x END) AS x FROM counter").to_pylist()
    assert rows == [{"n": 101, "x": 100}]


# --- the client and CLI on a failed job ---------------------------------------------------

def test_a_failed_job_is_job_failed_in_the_client_and_non_zero_in_the_cli(server):
    from lakehouse_client import Client, JobFailed

    # A CSV whose second row is not a BIGINT: the job starts, then fails on that row.
    landing = server.data_dir / "buckets" / "primary" / "first_hour"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "bad.csv").write_text("id\n1\nnot a number\n")
    with Client(server.uri, progress=False) as lake:
        with pytest.raises(JobFailed) as failed:
            lake.ingest_file("first_hour/bad.csv", "never_made", column_types={"id": "BIGINT"})
        assert failed.value.code == "INVALID_ARGUMENT", failed.value.job
        assert failed.value.job["state"] == "JOB_STATE_FAILED"
        assert isinstance(failed.value, pa.ArrowInvalid)  # the status's pyarrow class too
    done = subprocess.run([lakehouse_binary(), "ingest", "file", "first_hour/bad.csv", "-t", "never_made",
                           "--column-type", "id=BIGINT"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LAKEHOUSE_URL": server.uri})
    assert done.returncode == 1 and "INVALID_ARGUMENT" in done.stderr, done


# --- types, parameters and ingest edge cases ---------------------------------------------

def test_sql_type_names_of_other_databases(server):
    with cursor(server) as cur:
        cur.execute("CREATE TABLE typed_names (t TIMESTAMP WITH TIME ZONE, p TIMESTAMP(3), d DATETIME, "
                    "v VARBINARY(16), b BLOB)")
        cur.execute("SELECT * FROM typed_names")
        schema = cur.fetch_arrow_table().schema
        assert schema.field("t").type == pa.timestamp("us", tz="UTC")  # not a naive timestamp
        assert schema.field("p").type == pa.timestamp("us") and schema.field("d").type == pa.timestamp("us")
        assert schema.field("v").type == pa.binary() and schema.field("b").type == pa.binary()
        with pytest.raises(flightsql.ProgrammingError, match="TIME has no Delta Lake type"):
            cur.execute("CREATE TABLE typed_time (t TIME(3))")
        # TIME is fine in a query.
        cur.execute("SELECT CAST('12:34:56' AS TIME(3)) AS t")
        assert str(cur.fetchone()[0]) == "12:34:56"


def test_question_mark_placeholders_and_null_parameters(server):
    with cursor(server) as cur:
        cur.execute("SELECT n_name FROM nation WHERE n_nationkey = ? AND n_regionkey = ?", parameters=(3, 1))
        assert cur.fetchall() == [("CANADA",)]
        cur.execute("CREATE TABLE params_nulls (id BIGINT, note VARCHAR)")
        cur.executemany("INSERT INTO params_nulls VALUES (?, ?)", [(1, None), (2, "two"), (None, "three")])
        cur.execute("SELECT id, note FROM params_nulls ORDER BY note NULLS FIRST")
        assert cur.fetchall() == [(1, None), (None, "three"), (2, "two")]


def test_a_null_into_a_not_null_column_names_the_column(server):
    with cursor(server) as cur:
        cur.execute("CREATE TABLE strict_cols (code BIGINT NOT NULL, label VARCHAR)")
        with pytest.raises(flightsql.ProgrammingError) as err:
            cur.execute("INSERT INTO strict_cols VALUES (NULL, 'x')")
        assert "'code'" in str(err.value) and "column1" not in str(err.value), str(err.value)
        assert "INVALID_ARGUMENT" in str(err.value)


def test_bulk_ingest_edge_cases(server):
    from lakehouse_client import Client

    with cursor(server) as cur:
        # A nanosecond that Delta's microseconds would lose: refused, naming column and value.
        lossy = pa.table({"at": pa.array([1_700_000_000_000_000_001], pa.timestamp("ns"))})
        with pytest.raises(flightsql.ProgrammingError) as err:
            cur.adbc_ingest("ns_lossy", lossy, mode="create")
        assert "INVALID_ARGUMENT" in str(err.value) and '"at"' in str(err.value)
        assert "2023-11-14T22:13:20.000000001" in str(err.value), str(err.value)
        # Whole microseconds in a nanosecond column are fine.
        exact = pa.table({"at": pa.array([1_700_000_000_000_000_000], pa.timestamp("ns"))})
        assert cur.adbc_ingest("ns_exact", exact, mode="create") == 1
        # A negative-scale decimal: INVALID_ARGUMENT naming the column, not INTERNAL.
        with pytest.raises(flightsql.ProgrammingError) as err:
            cur.adbc_ingest("neg_scale", pa.table({"amount": pa.array([1200], pa.decimal128(5, -2))}),
                            mode="create")
        assert "INVALID_ARGUMENT" in str(err.value) and '"amount"' in str(err.value)
        # create_append onto a table of another schema: ALREADY_EXISTS (the ADBC spec's status).
        cur.adbc_ingest("ca_target", pa.table({"x": [1]}), mode="create")
        with pytest.raises(flightsql.Error) as err:
            cur.adbc_ingest("ca_target", pa.table({"y": ["other"]}), mode="create_append")
        assert "ALREADY_EXISTS" in str(err.value), str(err.value)
        # Zero rows: the Go driver sends nothing, and the server says so precisely.
        empty = pa.schema([("a", pa.int64()), ("b", pa.string())]).empty_table()
        with pytest.raises(flightsql.Error) as err:
            cur.adbc_ingest("empty_by_adbc", empty, mode="create")
        assert "INVALID_ARGUMENT" in str(err.value) and "CREATE TABLE" in str(err.value), str(err.value)
    # The Python client creates the empty table, and chunks big batches for the driver.
    with Client(server.uri, progress=False) as lake:
        empty = pa.schema([("a", pa.int64()), ("b", pa.string())]).empty_table()
        assert lake.write("empty_by_client", empty) == 0
        assert lake.sql("SELECT * FROM empty_by_client").schema.names == ["a", "b"]
        wide = pa.table({"blob": [b"x" * (1 << 20)] * 40})  # one 40 MiB batch
        assert lake.write("wide_rows", wide) == 40


def test_no_delayed_ack_floor_under_small_calls(server):
    """Nagle's algorithm against the client's delayed ACKs held every one-message answer for
    ~40 ms (44 ms p50 for SELECT 1 through ADBC). Not a speed target (benches/run.sh latency
    measures that): a guard against the floor coming back, with a margin of 2x."""
    import statistics
    import time

    flight = client(server)
    list(flight.list_actions())
    samples = []
    for _ in range(30):
        started = time.perf_counter()
        list(flight.list_actions())
        samples.append(time.perf_counter() - started)
    assert statistics.median(samples) < 0.020, sorted(samples)


def test_a_missing_built_in_model_is_said_at_start(tmp_path):
    from conftest import Server

    server = Server(tmp_path / "data", "--models-dir", str(tmp_path / "no-models"))
    try:
        log = "".join(server.log)
        assert "built-in embedding model is not installed" in log and "fetch-model.sh" in log, log[-2000:]
        # Everything else works.
        assert query(server, "SELECT count(*) AS n FROM nation").to_pylist() == [{"n": 25}]
    finally:
        server.stop()


def test_cli_ingest_takes_encoding_and_bad_rows(server):
    landing = server.data_dir / "buckets" / "primary" / "first_hour_cli"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "people.csv").write_bytes("id;city\n1;Düsseldorf\nbad;Zürich\n3;Genève\n".encode("latin1"))
    done = subprocess.run([lakehouse_binary(), "ingest", "file", "first_hour_cli/people.csv", "-t", "cli_latin",
                           "--delimiter", ";", "--encoding", "latin1", "--column-type", "id=BIGINT",
                           "--reject-bad-rows", "--rejects-table", "cli_latin_rejects", "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LAKEHOUSE_URL": server.uri})
    assert done.returncode == 0, done.stderr
    rows = query(server, "SELECT id, city FROM cli_latin ORDER BY id").to_pylist()
    assert rows == [{"id": 1, "city": "Düsseldorf"}, {"id": 3, "city": "Genève"}]
    assert query(server, "SELECT count(*) AS n FROM cli_latin_rejects").to_pylist() == [{"n": 1}]


def test_nanosecond_truncation_is_opt_in(server):
    """The bulk-ingest option lakehouse.truncate_nanoseconds=true accepts the loss (sent in
    CommandStatementIngest.options with pyarrow.flight; ADBC has no way to set it)."""
    options = bytes([1 << 3, 1, 2 << 3, 1])  # if_not_exist CREATE, if_exists FAIL
    entry = _field(1, b"lakehouse.truncate_nanoseconds") + _field(2, b"true")
    command = _field(1, options) + _field(2, b"ns_truncated") + _field(1000, entry)
    any_ = _field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementIngest") + _field(2, command)
    data = pa.table({"at": pa.array([1_700_000_000_000_000_001], pa.timestamp("ns"))})
    flight = client(server)
    writer, reader = flight.do_put(fl.FlightDescriptor.for_command(any_), data.schema)
    writer.write_table(data)
    writer.done_writing()
    reader.read()
    writer.close()
    rows = query(server, "SELECT CAST(at AS BIGINT) AS us FROM ns_truncated").to_pylist()
    assert rows == [{"us": 1_700_000_000_000_000}]


def test_pii_in_any_script_and_confidence_by_sample_size(server):
    with cursor(server) as cur:
        cur.adbc_ingest("pii_world", pa.table({
            "contact": [f"josé.garcía{i}@correo.es" if i % 2 else f"zoë{i}@bücher.de" for i in range(200)],
            "city": ["San Jose", "Santa Clara"] * 100,
        }), mode="create")
        cur.adbc_ingest("pii_few", pa.table({"email": ["ana@example.com", "bo@example.com"]}), mode="create")
    found = {(r["table_name"], r["column_name"]): r for r in query(
        server, "SELECT table_name, column_name, entity_type, confidence FROM system.pii "
                "WHERE table_name IN ('pii_world', 'pii_few')").to_pylist()}
    assert found[("pii_world", "contact")]["entity_type"] == "email", found
    assert ("pii_world", "city") not in found, found  # city names are not people
    assert found[("pii_few", "email")]["confidence"] < 0.6, found  # two values are little evidence
    assert found[("pii_world", "contact")]["confidence"] > 0.85, found
