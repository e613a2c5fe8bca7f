"""pandas with Lakehouse: write a DataFrame, query it back, search it by meaning.

  python clients/python/examples/pandas_example.py [grpc://127.0.0.1:50051]
"""

import sys

import pandas as pd

import lakehouse_client as lh

reviews = pd.DataFrame({
    "id": range(1, 7),
    "stars": [5, 1, 4, 2, 5, 3],
    "review": ["arrived early and works perfectly", "broke after two days, refund requested",
               "good value for the price", "the package was damaged in transit",
               "excellent build quality", "okay but the manual is confusing"],
})

with lh.connect(*sys.argv[1:2]) as client:
    client.write("reviews", reviews, mode="replace")
    print(client.sql("SELECT stars, count(*) AS n FROM reviews GROUP BY stars ORDER BY stars").to_pandas())
    client.create_index("reviews_idx", "reviews", text_column="review", id_column="id", replace=True)
    hits = client.search("reviews_idx", "shipping problems", k=3, columns=["stars"]).to_pandas()
    print(hits[["id", "score", "stars", "text"]])
