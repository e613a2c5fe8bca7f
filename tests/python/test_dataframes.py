"""pandas and polars reading through the ADBC driver."""

import pandas as pd
import polars as pl


def test_pandas_read_sql(conn):
    frame = pd.read_sql("SELECT n_name, n_regionkey FROM nation ORDER BY n_nationkey LIMIT 3", conn)
    assert list(frame.columns) == ["n_name", "n_regionkey"]
    assert frame["n_name"].tolist() == ["ALGERIA", "ARGENTINA", "BRAZIL"]


def test_cursor_fetch_df(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT l_returnflag, sum(l_quantity) AS qty FROM lineitem GROUP BY 1 ORDER BY 1")
        frame = cur.fetch_df()
    assert frame["l_returnflag"].tolist() == ["A", "N", "R"]
    assert frame["qty"].sum() > 0


def test_polars_read_database_aggregate(conn):
    frame = pl.read_database("SELECT o_orderpriority, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1", conn)
    assert frame.columns == ["o_orderpriority", "n"]
    assert frame.height == 5
    assert frame["n"].sum() == 15000


def test_polars_read_database_with_connection(conn):
    frame = pl.read_database("SELECT r_regionkey, r_name FROM region", conn)
    assert frame.shape == (5, 2)
