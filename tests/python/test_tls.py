"""TLS (and mutual TLS) with authentication, from ADBC, pyarrow.flight and arrow-rs's CLI,
using throw-away certificates made by tests/tls/make-certs.sh."""

import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from adbc_driver_flightsql import DatabaseOptions

from conftest import ROOT, Server, lakehouse_binary

PASSWORD = "tls-s3cret"


@pytest.fixture(scope="module")
def certs():
    folder = Path(tempfile.mkdtemp(prefix="lakehouse-certs-"))
    subprocess.run(["bash", str(ROOT / "tests/tls/make-certs.sh"), str(folder)], check=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def password_hash() -> str:
    return subprocess.run([lakehouse_binary(), "hash-password"], input=PASSWORD + "\n", capture_output=True,
                          text=True, check=True).stdout.strip()


def tls_server(certs: Path, *extra: str) -> Server:
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-tls-"))
    return Server(data_dir, "--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key"),
                  "--user", f"alice={password_hash()}", "--token-ttl-secs", "4", *extra)


@pytest.fixture(scope="module")
def server_tls(certs):
    server = tls_server(certs)
    yield server
    server.stop()


def connect(server, certs, **options):
    kwargs = {"username": "alice", "password": PASSWORD,
              DatabaseOptions.TLS_ROOT_CERTS.value: (certs / "ca.pem").read_text(), **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(server.tls_uri, db_kwargs=kwargs)


def test_adbc_over_tls_reads_and_writes(server_tls, certs):
    conn = connect(server_tls, certs)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM nation")
        assert cur.fetchone() == (25,)
        assert cur.adbc_ingest("tls_rows", pa.table({"x": [1, 2, 3]}), mode="create") == 3
        cur.execute("SELECT sum(x) FROM tls_rows")
        assert cur.fetchone() == (6,)
    conn.close()


def test_untrusted_or_plaintext_clients_are_refused(server_tls, certs):
    # No CA given: the server's certificate is not trusted.
    with pytest.raises(adbc_driver_manager.Error), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = flightsql.connect(server_tls.tls_uri, db_kwargs={"username": "alice", "password": PASSWORD})
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    # Plain text to the TLS port.
    client = flight.FlightClient(f"grpc://127.0.0.1:{server_tls.port}")
    with pytest.raises(flight.FlightError):
        client.authenticate_basic_token("alice", PASSWORD)


def test_pyarrow_flight_over_tls(server_tls, certs):
    client = flight.FlightClient(server_tls.tls_uri, tls_root_certs=(certs / "ca.pem").read_bytes())
    header, value = client.authenticate_basic_token("alice", PASSWORD)
    assert value.startswith(b"Bearer ")
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("alice", "wrong")


def test_tokens_expire(server_tls, certs):
    conn = connect(server_tls, certs)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    time.sleep(5)  # token_ttl_secs = 4
    with pytest.raises(adbc_driver_manager.Error) as err, conn.cursor() as cur:
        cur.execute("SELECT 1")
    assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED
    conn.close()
    # A new connection authenticates again.
    conn = connect(server_tls, certs)
    with conn.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    conn.close()


def test_mutual_tls_requires_a_client_certificate(certs):
    server = tls_server(certs, "--tls-client-ca", str(certs / "ca.pem"))
    try:
        with pytest.raises(adbc_driver_manager.Error):
            conn = connect(server, certs)
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        conn = connect(server, certs, **{
            DatabaseOptions.MTLS_CERT_CHAIN.value: (certs / "client.pem").read_text(),
            DatabaseOptions.MTLS_PRIVATE_KEY.value: (certs / "client.key").read_text(),
        })
        with conn.cursor() as cur:
            cur.execute("SELECT 3")
            assert cur.fetchone() == (3,)
        conn.close()
    finally:
        server.stop()


CLI = os.environ.get("FLIGHT_SQL_CLIENT") or shutil.which("flight_sql_client")


@pytest.mark.skipif(CLI is None, reason="flight_sql_client not installed (scripts/test.sh installs it)")
def test_arrow_rs_cli_over_tls_with_auth(server_tls, certs):
    # The CLI is built with native roots, which honour SSL_CERT_FILE: trust the test CA.
    env = {**os.environ, "SSL_CERT_FILE": str(certs / "ca.pem")}
    base = [CLI, "--host", "localhost", "--port", str(server_tls.port), "--tls"]
    done = subprocess.run([*base, "--username", "alice", "--password", PASSWORD, "statement-query",
                           "SELECT n_name FROM nation WHERE n_nationkey = 7"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "GERMANY" in done.stdout
    done = subprocess.run([*base, "--username", "alice", "--password", "wrong", "catalogs"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0
    # tonic prints the code's description: "does not have valid authentication credentials".
    assert "valid authentication credentials" in done.stderr, done.stderr
    assert "invalid user name or password" in done.stderr, done.stderr
