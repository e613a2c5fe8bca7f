"""The Lakehouse client: an ADBC Flight SQL connection for SQL plus pyarrow.flight for the
custom actions (JSON bodies, see proto/lakehouse/v1/ for every field)."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import pyarrow as pa
import pyarrow.flight as fl

Mode = Literal["create", "append", "replace"]
SearchMode = Literal["vector", "text", "hybrid"]

_INGEST_MODES = {"create": "INGEST_MODE_CREATE", "append": "INGEST_MODE_APPEND", "replace": "INGEST_MODE_REPLACE"}
_FORMATS = {"csv": "FILE_FORMAT_CSV", "ndjson": "FILE_FORMAT_NDJSON", "parquet": "FILE_FORMAT_PARQUET",
            "arrow": "FILE_FORMAT_ARROW_IPC", "pdf": "FILE_FORMAT_PDF"}
_UPLOAD_CHUNK = 1 << 20


class LakehouseError(Exception):
    """An error this client raises itself (the server's own errors arrive as pyarrow's
    Flight exceptions: ``pyarrow.ArrowInvalid`` for INVALID_ARGUMENT, ``ArrowKeyError`` for
    NOT_FOUND, ``flight.FlightUnauthenticatedError``…, each with the server's message)."""


class JobFailed(LakehouseError):
    """A job that ended without succeeding; ``job`` is its last snapshot and ``code`` its
    gRPC status name (``INVALID_ARGUMENT``, ``UNAVAILABLE``…, ``CANCELLED``).

    Raised for every failed job the client follows. It is also an instance of the pyarrow
    Flight exception of the job's status (``pyarrow.ArrowInvalid`` for INVALID_ARGUMENT,
    ``flight.FlightUnavailableError`` for UNAVAILABLE…), so either may be caught."""

    def __init__(self, job: Mapping[str, Any]):
        self.job = dict(job)
        self.code = job.get("errorCode", "")
        super().__init__(f"job {job.get('id', '?')} {job.get('state', '?')}: {self.code} {job.get('error', '')}".strip())


_FAILED_AS: dict[type, type] = {}


def _job_failed(job: Mapping[str, Any], cause: BaseException | None = None) -> JobFailed:
    """JobFailed for ``job``; when the server ended the stream with a status (``cause``),
    one that is also that status's pyarrow exception."""
    if cause is None:
        return JobFailed(job)
    kind = type(cause)
    if kind not in _FAILED_AS:
        try:
            _FAILED_AS[kind] = type("JobFailed", (JobFailed, kind), {"__module__": __name__})
        except TypeError:  # a base that cannot be combined: plain JobFailed
            _FAILED_AS[kind] = JobFailed
    error = _FAILED_AS[kind].__new__(_FAILED_AS[kind])
    JobFailed.__init__(error, job)
    return error


# The ADBC Flight SQL driver (Go) refuses to send a single message above 16 MiB; batches
# are cut below that, whatever size the caller's batches have.
_MAX_BATCH_BYTES = 8 << 20


def _chunked(data: "pa.Table | pa.RecordBatch | pa.RecordBatchReader") -> "pa.RecordBatchReader | pa.Table":
    """``data`` as batches of at most ``_MAX_BATCH_BYTES`` (an estimate by row width)."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        if data.num_rows == 0 or data.nbytes <= _MAX_BATCH_BYTES:
            return data
        rows = max(1, int(_MAX_BATCH_BYTES * data.num_rows / data.nbytes))
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=rows))

    def batches():
        for batch in data:
            if batch.nbytes <= _MAX_BATCH_BYTES or batch.num_rows <= 1:
                yield batch
                continue
            rows = max(1, int(_MAX_BATCH_BYTES * batch.num_rows / batch.nbytes))
            for start in range(0, batch.num_rows, rows):
                yield batch.slice(start, rows)

    return pa.RecordBatchReader.from_batches(data.schema, batches())


def _failed_job(last: Mapping[str, Any]) -> bool:
    """True when ``last`` is the snapshot of a job that ended without succeeding."""
    return last.get("state") in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


def connect(uri: str = "grpc://127.0.0.1:50051", *, username: str | None = None, password: str | None = None,
            token: str | None = None, tls_root_certs: str | bytes | Path | None = None,
            progress: bool = True) -> "Client":
    """Connects to a Lakehouse server.

    Args:
        uri: ``grpc://host:port`` or ``grpc+tls://host:port``; default the local server.
            ``LAKEHOUSE_URL`` overrides the default.
        username, password: Basic credentials, exchanged for a bearer token in the Handshake.
        token: a bearer token instead (``LAKEHOUSE_TOKEN`` when neither is given).
        tls_root_certs: PEM of the CA that signed the server's certificate (text, bytes or a path).
        progress: show a tqdm progress bar while waiting on jobs (when tqdm is installed).
    """
    if uri == "grpc://127.0.0.1:50051":
        uri = os.environ.get("LAKEHOUSE_URL", uri)
    if token is None and username is None:
        token = os.environ.get("LAKEHOUSE_TOKEN") or None
    return Client(uri, username=username, password=password, token=token, tls_root_certs=tls_root_certs,
                  progress=progress)


def _pem(certs: str | bytes | Path | None) -> bytes | None:
    if certs is None:
        return None
    if isinstance(certs, Path) or (isinstance(certs, str) and "-----BEGIN" not in certs):
        return Path(certs).read_bytes()
    return certs.encode() if isinstance(certs, str) else certs


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    length, prefix = len(payload), bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        prefix.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(prefix) + payload


def _any_command(message: str, body: Mapping[str, Any]) -> bytes:
    """A protobuf ``Any`` holding ``lakehouse.v1.<message>`` as JSON (the server accepts both)."""
    type_url = f"type.googleapis.com/lakehouse.v1.{message}".encode()
    return _field(1, type_url) + _field(2, json.dumps(body).encode())


# ADBC ingest modes as CommandStatementIngest.TableDefinitionOptions (if_not_exist, if_exists):
# TableNotExistOption CREATE=1 FAIL=2; TableExistsOption FAIL=1 APPEND=2 REPLACE=3.
_INGEST_TABLE_OPTIONS = {"create": (1, 1), "append": (2, 2), "replace": (1, 3), "create_append": (1, 2)}


def _ingest_command(table: str, mode: str) -> bytes:
    """A Flight SQL ``CommandStatementIngest`` for ``table`` in an ``Any``."""
    if_not_exist, if_exists = _INGEST_TABLE_OPTIONS[mode]
    options = bytes([1 << 3, if_not_exist, 2 << 3, if_exists])  # two varint fields
    command = _field(1, options) + _field(2, table.encode())
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementIngest"
    return _field(1, type_url) + _field(2, command)


def _set_string_option(name: str, value: str) -> bytes:
    """A Flight ``SetSessionOptionsRequest`` setting one string option."""
    option_value = _field(1, value.encode())  # SessionOptionValue.string_value
    entry = _field(1, name.encode()) + _field(2, option_value)
    return _field(1, entry)


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


class _Progress:
    """A tqdm bar fed by job snapshots: percent when the job knows its total, else rows."""

    def __init__(self, enabled: bool, description: str):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(desc=description, unit="rows", unit_scale=True, file=sys.stderr, leave=False)

    def update(self, job: Mapping[str, Any]) -> None:
        if self.bar is None:
            return
        progress = job.get("progress", {})
        if "percent" in progress:
            if self.bar.total != 100:
                self.bar.reset(total=100)
                self.bar.unit = "%"
            self.bar.n = float(progress["percent"])
        else:
            self.bar.n = int(progress.get("rows", 0))
        phase = progress.get("phase")
        if phase:
            self.bar.set_postfix_str(phase, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Client:
    """A connection to one Lakehouse server. Use `connect()` to make one; close it (or use
    it as a context manager) when done."""

    def __init__(self, uri: str, *, username: str | None = None, password: str | None = None,
                 token: str | None = None, tls_root_certs: str | bytes | Path | None = None,
                 progress: bool = True):
        self.uri = uri
        self.progress = progress
        certs = _pem(tls_root_certs)
        self._flight = fl.FlightClient(uri, **({"tls_root_certs": certs} if certs else {}))
        headers: list[tuple[bytes, bytes]] = []
        self._db_kwargs: dict[str, str] = {}
        if token:
            headers = [(b"authorization", f"Bearer {token}".encode())]
            self._db_kwargs["adbc.flight.sql.authorization_header"] = f"Bearer {token}"
        elif username is not None:
            headers = [self._flight.authenticate_basic_token(username, password or "")]
            self._db_kwargs.update({"username": username, "password": password or ""})
        if certs:
            self._db_kwargs["adbc.flight.sql.client_option.tls_root_certs"] = certs.decode()
        self._options = fl.FlightCallOptions(headers=headers)
        self._adbc = None
        self._profile: str | None = None

    # --- SQL -------------------------------------------------------------------------

    @property
    def adbc(self):
        """The ADBC DB-API connection (autocommit), for cursors, pandas ``read_sql`` and polars."""
        if self._adbc is None:
            import adbc_driver_flightsql.dbapi as flightsql
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._adbc = flightsql.connect(self.uri, db_kwargs=dict(self._db_kwargs), autocommit=True)
            if self._profile is not None:
                self._bind_adbc(self._profile)
        return self._adbc

    def sql(self, query: str, parameters: Sequence[Any] | None = None) -> pa.Table:
        """Runs a statement; returns its rows (a DML statement returns its row count)."""
        with self.adbc.cursor() as cur:
            cur.execute(query, parameters)
            return cur.fetch_arrow_table()

    def write(self, table: str, data: Any, mode: Mode | Literal["create_append"] = "create") -> int:
        """Bulk-ingests a pyarrow Table/RecordBatchReader or a pandas/polars DataFrame into
        ``table`` (ADBC bulk ingest: one atomic Delta commit); returns the rows written."""
        if hasattr(data, "to_arrow"):  # polars
            data = data.to_arrow()
        elif not isinstance(data, (pa.Table, pa.RecordBatchReader, pa.RecordBatch)):
            data = pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, (pa.Table, pa.RecordBatch)) and data.num_rows == 0:
            # The ADBC driver sends nothing for no rows (not even the table's name):
            # send the schema alone with pyarrow.flight, which creates the empty table.
            descriptor = fl.FlightDescriptor.for_command(_ingest_command(table, mode))
            writer, reader = self._flight.do_put(descriptor, data.schema, options=self._options)
            writer.done_writing()
            reader.read()
            writer.close()
            return 0
        with self.adbc.cursor() as cur:
            return cur.adbc_ingest(table, _chunked(data), mode=mode)

    # --- actions ---------------------------------------------------------------------

    def _action(self, name: str, body: Mapping[str, Any]) -> Iterator[dict]:
        action = fl.Action(name, json.dumps(body).encode())
        for result in self._flight.do_action(action, options=self._options):
            yield json.loads(result.body.to_pybytes())

    def _one(self, name: str, body: Mapping[str, Any]) -> dict:
        for reply in self._action(name, body):
            return reply
        raise LakehouseError(f"{name} answered nothing")

    def _job(self, name: str, body: Mapping[str, Any], result: str, progress: bool | None,
             description: str) -> dict:
        """Starts a job and follows it; returns its result (the job itself if detached)."""
        if body.get("detach"):
            return self._one(name, body)
        bar = _Progress(self.progress if progress is None else progress, description)
        last: dict = {}
        try:
            for last in self._action(name, body):
                bar.update(last)
        except (fl.FlightError, pa.ArrowException) as error:
            # The server ends a failed job's stream with its status, after the last snapshot.
            if _failed_job(last):
                raise _job_failed(last, error) from error
            raise
        except KeyboardInterrupt as interrupt:
            if last.get("id"):
                interrupt.add_note(f"job {last['id']} keeps running on the server: "
                                   f"client.cancel_job({last['id']!r}) stops it, client.wait() follows it")
            raise
        finally:
            bar.close()
        if last.get("state") != "JOB_STATE_SUCCEEDED":
            raise _job_failed(last)
        return last.get(result, {})

    def ingest_file(self, path: str, table: str, *, mode: Mode = "create", format: str | None = None,
                    bucket: str | None = None, target_bucket: str | None = None,
                    csv: Mapping[str, Any] | None = None, column_types: Mapping[str, str] | None = None,
                    reject_bad_rows: bool = False, rejects_table: str | None = None,
                    max_rejects: int | None = None, pdf: Mapping[str, Any] | None = None,
                    detach: bool = False, progress: bool | None = None) -> dict:
        """Ingests a file or glob from a bucket (``lakehouse.ingest.file``); returns the
        IngestResult (table, version, rows, rejectedRows, pii, runId…), or the Job if detached.

        ``csv`` and ``pdf`` take the CsvOptions/PdfOptions fields in camelCase, e.g.
        ``csv={"delimiter": ";", "hasHeader": True}``."""
        body = _drop_none({
            "path": path, "table": table, "mode": _INGEST_MODES[mode],
            "format": _FORMATS[format.lower()] if format else None, "sourceBucket": bucket,
            "targetBucket": target_bucket, "csv": csv, "columnTypes": column_types,
            "badRows": "BAD_ROWS_REJECT" if reject_bad_rows else None, "rejectsTable": rejects_table,
            "maxRejects": max_rejects, "pdf": pdf, "detach": detach or None})
        return self._job("lakehouse.ingest.file", body, "ingest", progress, f"ingest {path}")

    def upload_file(self, local_path: str | Path, table: str, *, mode: Mode = "create",
                    format: str | None = None, csv: Mapping[str, Any] | None = None,
                    column_types: Mapping[str, str] | None = None) -> dict:
        """Uploads a local file and ingests it (DoPut ``IngestUploadCommand``, streamed in
        1 MiB chunks); returns the IngestResult."""
        local_path = Path(local_path)
        request = _drop_none({"table": table, "mode": _INGEST_MODES[mode],
                              "format": _FORMATS[format.lower()] if format else None,
                              "csv": csv, "columnTypes": column_types})
        descriptor = fl.FlightDescriptor.for_command(
            _any_command("IngestUploadCommand", {"fileName": local_path.name, "request": request}))
        schema = pa.schema([("chunk", pa.binary())])
        writer, reader = self._flight.do_put(descriptor, schema, options=self._options)
        with local_path.open("rb") as file:
            while chunk := file.read(_UPLOAD_CHUNK):
                writer.write_batch(pa.record_batch([pa.array([chunk], pa.binary())], schema=schema))
        writer.done_writing()
        job = json.loads(reader.read().to_pybytes())
        writer.close()
        if job.get("state") != "JOB_STATE_SUCCEEDED":
            raise JobFailed(job)
        return job.get("ingest", {})

    def _ingest_database(self, action: str, table: str, dsn: str | None, connection: str | None,
                         source_table: str | None, query: str | None, mode: Mode,
                         watermark_column: str | None, text_fallback: bool, target_bucket: str | None,
                         detach: bool, progress: bool | None) -> dict:
        body = _drop_none({"table": table, "dsn": dsn, "connection": connection, "sourceTable": source_table,
                           "query": query, "mode": _INGEST_MODES[mode], "watermarkColumn": watermark_column,
                           "textFallback": text_fallback or None, "targetBucket": target_bucket,
                           "detach": detach or None})
        return self._job(action, body, "ingest", progress, f"ingest {source_table or 'query'}")

    def ingest_postgres(self, table: str, *, dsn: str | None = None, connection: str | None = None,
                        source_table: str | None = None, query: str | None = None, mode: Mode = "create",
                        watermark_column: str | None = None, text_fallback: bool = False,
                        target_bucket: str | None = None, detach: bool = False,
                        progress: bool | None = None) -> dict:
        """Streams a PostgreSQL table or SELECT into ``table`` (``lakehouse.ingest.postgres``).
        With ``watermark_column`` a re-run appends only new rows."""
        return self._ingest_database("lakehouse.ingest.postgres", table, dsn, connection, source_table, query,
                                     mode, watermark_column, text_fallback, target_bucket, detach, progress)

    def ingest_mysql(self, table: str, *, dsn: str | None = None, connection: str | None = None,
                     source_table: str | None = None, query: str | None = None, mode: Mode = "create",
                     watermark_column: str | None = None, text_fallback: bool = False,
                     target_bucket: str | None = None, detach: bool = False,
                     progress: bool | None = None) -> dict:
        """Streams a MySQL/MariaDB table or SELECT into ``table`` (``lakehouse.ingest.mysql``)."""
        return self._ingest_database("lakehouse.ingest.mysql", table, dsn, connection, source_table, query,
                                     mode, watermark_column, text_fallback, target_bucket, detach, progress)

    # --- vector search ---------------------------------------------------------------

    def create_index(self, name: str, table: str, *, text_column: str | None = None, id_column: str,
                     vector_column: str | None = None,
                     backend: Literal["hnsw", "flat", "faiss", "lance"] | None = None, metric: str = "cosine",
                     m: int | None = None, ef_construction: int | None = None, ef_search: int | None = None,
                     factory: str | None = None, nprobe: int | None = None, chunk_tokens: int | None = None, chunk_overlap: int | None = None,
                     bucket: str | None = None, replace: bool = False, detach: bool = False,
                     embedder: str | None = None, profile: str | None = None,
                     lance: Mapping[str, Any] | None = None,
                     progress: bool | None = None) -> dict:
        """Embeds ``table.text_column`` — or takes ``table.vector_column``, a column of
        precomputed vectors (FixedSizeList or List of float32) indexed as they are, searched by
        vector (and by text only when ``embedder`` names a model of their width) — and builds a
        vector index (``lakehouse.vector.index.create``); returns the VectorIndexInfo. ``embedder`` is
        ``"builtin"`` (the server's built-in model, the default) or the name of an HTTP
        embedding service the server configures under ``[embedders.NAME]``. ``backend="faiss"``
        builds a Faiss index in the server's Faiss worker from ``factory`` (an index_factory
        string such as ``"IVF256,Flat"`` or ``"HNSW32"``; default ``IVF{n},Flat``), with
        ``nprobe`` lists probed per search by default. ``backend="lance"`` writes a Lance
        dataset in the home bucket and indexes it in the server's Lance worker; ``lance`` holds
        its options, e.g. ``{"indexType": "IVF_PQ", "partitions": 64, "subVectors": 48,
        "bits": 8, "refineFactor": 4, "optimizeFraction": 0.1}`` (all optional: defaults are
        chosen from the data). ``profile`` puts the index in a model
        profile, whose embedder, backend and bucket it then uses unless given (a client bound
        with ``use_profile`` puts its indexes in that profile)."""
        body = _drop_none({"name": name, "table": table, "textColumn": text_column,
                           "vectorColumn": vector_column, "idColumn": id_column,
                           "backend": backend, "metric": metric, "m": m, "efConstruction": ef_construction,
                           "efSearch": ef_search, "factory": factory, "nprobe": nprobe, "chunkTokens": chunk_tokens, "chunkOverlap": chunk_overlap,
                           "bucket": bucket, "replace": replace or None, "detach": detach or None,
                           "embedder": embedder, "profile": profile,
                           "lance": dict(lance) if lance is not None else None})
        return self._job("lakehouse.vector.index.create", body, "vectorIndex", progress, f"index {name}")

    def optimize_index(self, index: str) -> dict:
        """Folds the rows appended to a lance index since its build into its IVF index
        (``lakehouse.vector.index.optimize``); returns the VectorIndexOptimizeResult (rows,
        fragments, indexedRows, unindexedRows, bytes, indexType, seconds)."""
        return self._one("lakehouse.vector.index.optimize", {"index": index})

    def search(self, index: str, query: str | None = None, *, vector: Sequence[float] | None = None,
               k: int = 10, ef: int | None = None, filter: str | None = None, mode: SearchMode = "vector",
               columns: Sequence[str] = (), nprobe: int | None = None,
               refine_factor: int | None = None) -> pa.Table:
        """The ``k`` best rows as a pyarrow Table — ``id, score, distance, text, rank`` and the
        requested ``columns`` of the source table — streamed by DoGet of a
        ``VectorSearchCommand``. ``mode``: "vector", "text" (BM25) or "hybrid";
        ``filter``: a SQL predicate on the source table; ``ef`` (HNSW), ``nprobe`` (Faiss and
        Lance IVF) and ``refine_factor`` (Lance IVF_PQ: candidates re-ranked exactly, as a
        multiple of k) trade speed for recall. ``.to_pandas()`` for a DataFrame."""
        search = _drop_none({"index": index, "query": query, "vector": list(vector) if vector is not None else None,
                             "k": k, "ef": ef, "nprobe": nprobe, "refineFactor": refine_factor,
                             "filter": filter, "mode": mode})
        descriptor = fl.FlightDescriptor.for_command(
            _any_command("VectorSearchCommand", {"search": search, "columns": list(columns)}))
        info = self._flight.get_flight_info(descriptor, options=self._options)
        return self._flight.do_get(info.endpoints[0].ticket, options=self._options).read_all()

    def take(self, index: str, ids: Sequence[int], *, columns: Sequence[str] = ()) -> pa.Table:
        """Rows of a lance index's dataset by document id (the index's id column), found
        through the dataset's BTREE index on ``id``: every chunk of each id, in the order the
        ids are asked, as a pyarrow Table of ``columns`` (of ``id``, ``chunk``, ``vector``;
        all when empty), streamed by DoGet of a ``VectorTakeRequest``
        (``lakehouse.vector.take``). Ids the index does not hold are left out."""
        body = {"index": index, "ids": [int(i) for i in ids], "columns": list(columns)}
        descriptor = fl.FlightDescriptor.for_command(_any_command("VectorTakeRequest", body))
        info = self._flight.get_flight_info(descriptor, options=self._options)
        return self._flight.do_get(info.endpoints[0].ticket, options=self._options).read_all()

    def indexes(self) -> pa.Table:
        """Every vector index (``system.vector_indexes``)."""
        return self.sql("SELECT * FROM system.vector_indexes ORDER BY name")

    def create_eval_set(self, name: str, index: str, *, queries: Sequence[str] | None = None,
                        queries_sql: str | None = None, sample_rows: int | None = None,
                        depth: int | None = None, bucket: str | None = None,
                        replace: bool = False, progress: bool | None = None) -> dict:
        """Stores query texts — or ``sample_rows`` rows of the index itself, their stored
        vectors as the queries — with their exact nearest rows in ``index``
        (``lakehouse.vector.eval_set.create``); returns the VectorEvalSetInfo."""
        body = _drop_none({"name": name, "index": index, "queries": list(queries) if queries else None,
                           "queriesSql": queries_sql, "sampleRows": sample_rows, "depth": depth, "bucket": bucket,
                           "replace": replace or None})
        return self._job("lakehouse.vector.eval_set.create", body, "vectorEvalSet", progress, f"eval set {name}")

    def evaluate(self, index: str, eval_set: str, *, k: int = 10, ef: Sequence[int] = (),
                 embed_queries: bool = False, nprobe: Sequence[int] = (),
                 refine_factor: Sequence[int] = ()) -> dict:
        """recall@k (mean, p5), latency p50/p95/p99 and QPS of ``index`` against ``eval_set``,
        one run per combination of ``ef`` × ``nprobe`` × ``refine_factor`` (each defaults
        to the index's own) (``lakehouse.vector.eval``)."""
        return self._one("lakehouse.vector.eval", _drop_none({
            "index": index, "evalSet": eval_set, "k": k, "ef": list(ef) or None,
            "nprobe": list(nprobe) or None, "refineFactor": list(refine_factor) or None,
            "embedQueries": embed_queries or None}))

    # --- buckets ---------------------------------------------------------------------

    def buckets(self) -> list[dict]:
        """Buckets (name, kind, url, builtin) with how many tables, indexes and eval sets
        each holds (``lakehouse.bucket.list``)."""
        return self._one("lakehouse.bucket.list", {}).get("buckets", [])

    def add_bucket(self, name: str, url: str) -> dict:
        """Registers a bucket: a local folder (``/path`` or ``file:///path``, created; only
        under the server's local bucket roots) or ``s3://bucket/prefix`` (uses the server's
        S3 settings; must be reachable). Returns its BucketInfo."""
        return self._one("lakehouse.bucket.add", {"name": name, "url": url})

    def remove_bucket(self, name: str, *, force: bool = False) -> dict:
        """Unregisters a bucket. ``primary``/``rescue`` are refused; a bucket holding tables,
        indexes, eval sets or files only with ``force``, which drops those from the catalog
        (the files stay). Returns what was dropped."""
        return self._one("lakehouse.bucket.remove", _drop_none({"name": name, "force": force or None}))

    def move_index(self, index: str, bucket: str, *, detach: bool = False,
                   progress: bool | None = None) -> dict:
        """Moves a vector index's files to ``bucket`` (copy, check, switch, delete the old
        files) as a job; searches keep working meanwhile. Returns the moved VectorIndexInfo."""
        body = _drop_none({"index": index, "bucket": bucket, "detach": detach or None})
        return self._job("lakehouse.bucket.move_index", body, "vectorIndex", progress, f"move {index}")

    # --- model profiles and the GPU slot ----------------------------------------------

    def create_profile(self, name: str, *, embedder: str | None = None, llm: str | None = None,
                       bucket: str | None = None, backend: Literal["hnsw", "flat", "faiss", "lance"] | None = None,
                       replace: bool = False) -> dict:
        """Creates a model profile (``lakehouse.profile.create``): the embedder (``"builtin"``,
        the default, or an ``[embedders.NAME]`` of the server), an optional LLM (an
        ``[llms.NAME]``), and the home bucket and vector backend of its indexes."""
        return self._one("lakehouse.profile.create", _drop_none({
            "name": name, "embedder": embedder, "llm": llm, "bucket": bucket, "backend": backend,
            "replace": replace or None}))

    def profiles(self) -> dict:
        """``{"profiles": [...], "slot": {...}}``: every profile, and the GPU slot (state,
        profile, models with their memory, the GPUs NVML reports or why none is)."""
        return self._one("lakehouse.profile.list", {})

    def activate_profile(self, name: str, *, detach: bool = False, progress: bool | None = None) -> dict:
        """Gives the GPU slot to profile ``name`` (a job): the previous profile's models are
        unloaded, this one's preloaded and pinned, shared ones kept. Returns the
        ProfileActivation (``unloaded``, ``loaded``, ``kept``, ``slot``)."""
        body = _drop_none({"name": name, "detach": detach or None})
        label = f"activate {name}" if name else "release the GPU slot"
        return self._job("lakehouse.profile.activate", body, "profileActivation", progress, label)

    def release_gpu_slot(self, *, progress: bool | None = None) -> dict:
        """Unloads every model of the active profile; the slot is then empty."""
        return self.activate_profile("", progress=progress)

    def drop_profile(self, name: str) -> dict:
        """Drops a profile that neither holds the GPU slot nor owns indexes."""
        return self._one("lakehouse.profile.drop", {"name": name})

    def use_profile(self, name: str | None) -> None:
        """Binds this client's sessions (actions, searches and SQL) to profile ``name``:
        only its vector indexes can be used, and new indexes belong to it. ``None``
        unbinds."""
        value = name or ""
        action = fl.Action("SetSessionOptions", _set_string_option("profile", value))
        for result in self._flight.do_action(action, options=self._options):
            if result.body.size:  # a SetSessionOptionsResult with errors
                raise LakehouseError(f"profile {value!r} does not exist (see client.profiles())")
        self._profile = value
        if self._adbc is not None:
            self._bind_adbc(value)

    def _bind_adbc(self, profile: str) -> None:
        self._adbc.adbc_connection.set_options(**{"adbc.flight.sql.session.option.profile": profile})

    # --- table maintenance -----------------------------------------------------------

    def vacuum(self, table: str, *, retain_hours: float | None = None, dry_run: bool = False) -> dict:
        """Deletes the table's data files that no version reads (``lakehouse.table.vacuum``):
        those of writes that never committed, and those that commits older than
        ``retain_hours`` (server default 168) removed. Versions that read the latter can
        no longer be queried; the reply's ``oldestReadableVersion`` says which still can.
        ``dry_run`` only reports. Returns the TableVacuumResult (counts, bytes, files)."""
        return self._one("lakehouse.table.vacuum", _drop_none({"table": table, "retainHours": retain_hours,
                                                                 "dryRun": dry_run or None}))

    # --- jobs and PII ----------------------------------------------------------------

    def jobs(self, *, running_only: bool = False, limit: int | None = None) -> list[dict]:
        """Jobs, newest first."""
        reply = self._one("lakehouse.job.list", _drop_none({"runningOnly": running_only or None, "limit": limit}))
        return reply.get("jobs", [])

    def job(self, job_id: str) -> dict:
        """A job's current snapshot."""
        return self._one("lakehouse.job.status", {"jobId": job_id})

    def wait(self, job_id: str, *, progress: bool | None = None) -> dict:
        """Follows a (detached) job to its end; returns its last snapshot, or raises JobFailed."""
        bar = _Progress(self.progress if progress is None else progress, f"job {job_id[:8]}")
        last: dict = {}
        try:
            for last in self._action("lakehouse.job.status", {"jobId": job_id, "follow": True}):
                bar.update(last)
        finally:
            bar.close()
        if last.get("state") != "JOB_STATE_SUCCEEDED":
            raise JobFailed(last)
        return last

    def cancel_job(self, job_id: str) -> dict:
        """Asks a running job to stop; it commits nothing."""
        return self._one("lakehouse.job.cancel", {"jobId": job_id})

    def mark_pii(self, table: str, column: str, entity_type: str = "", *, clear: bool = False) -> dict:
        """Records a person's verdict on a column ("" = not PII); ``clear`` removes it."""
        return self._one("lakehouse.pii.mark", _drop_none({"table": table, "column": column,
                                                            "entityType": entity_type or None,
                                                            "clear": clear or None}))

    # --- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        if self._adbc is not None:
            self._adbc.close()
            self._adbc = None
        self._flight.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
