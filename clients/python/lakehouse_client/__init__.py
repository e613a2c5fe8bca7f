"""Python client for Lakehouse.

Lakehouse speaks Arrow Flight SQL, so SQL goes through the ADBC Flight SQL driver (which
pandas, polars and any DB-API code can use); the custom actions — ingest, vector indexes
and search, eval sets, jobs, PII verdicts — go through pyarrow.flight with JSON bodies.
`connect()` returns a `Client` holding both::

    import lakehouse_client as lh

    client = lh.connect("grpc://127.0.0.1:50051")
    client.sql("SELECT count(*) FROM region")             # a pyarrow.Table
    client.ingest_file("landing/sales.csv", "sales")       # a job, with a progress bar
    client.create_index("sales_idx", "sales", text_column="note", id_column="id")
    client.search("sales_idx", "late delivery", k=5, columns=["customer"]).to_pandas()
"""

from .client import Client, JobFailed, LakehouseError, connect

__all__ = ["Client", "JobFailed", "LakehouseError", "connect"]
__version__ = "0.1.0"
