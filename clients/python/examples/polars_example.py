"""polars with Lakehouse: write a DataFrame, read SQL results as polars, hybrid search.

  python clients/python/examples/polars_example.py [grpc://127.0.0.1:50051]
"""

import sys

import polars as pl

import lakehouse_client as lh

tickets = pl.DataFrame({
    "id": [1, 2, 3, 4],
    "team": ["billing", "infra", "billing", "infra"],
    "body": ["invoice INV-2291 charged twice", "disk full on db-7", "refund for order 5531",
             "TLS certificate expired on api gateway"],
})

with lh.connect(*sys.argv[1:2]) as client:
    client.write("tickets", tickets, mode="replace")
    print(pl.from_arrow(client.sql("SELECT team, count(*) AS n FROM tickets GROUP BY team ORDER BY team")))
    client.create_index("tickets_idx", "tickets", text_column="body", id_column="id", replace=True)
    # Hybrid: the exact code INV-2291 (BM25) and the meaning (vectors) both count.
    print(pl.from_arrow(client.search("tickets_idx", "INV-2291 double charge", k=2, mode="hybrid",
                                      columns=["team"])))
