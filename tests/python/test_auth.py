"""Authentication with the ADBC driver: Basic in the Handshake header, Bearer after."""

import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest

from conftest import Server, lakehouse_binary


@pytest.fixture(scope="module")
def auth_server():
    hashed = subprocess.run([lakehouse_binary(), "hash-password"], input="s3cret\n", capture_output=True,
                            text=True, check=True).stdout.strip()
    assert hashed.startswith("$argon2id$")
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-auth-"))
    server = Server(data_dir, "--user", f"alice={hashed}")
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def connect(server, **db_kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(server.uri, db_kwargs=db_kwargs)


def test_adbc_with_credentials(auth_server):
    conn = connect(auth_server, username="alice", password="s3cret")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM nation")
        assert cur.fetchone() == (25,)
    assert conn.adbc_get_info()["vendor_name"] == "Lakehouse"
    conn.close()


def test_adbc_wrong_password_is_unauthenticated(auth_server):
    with pytest.raises(adbc_driver_manager.Error) as err:
        conn = connect(auth_server, username="alice", password="wrong")
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED


def test_adbc_without_credentials_is_unauthenticated(auth_server):
    conn = connect(auth_server)
    with pytest.raises(adbc_driver_manager.Error) as err:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED
    conn.close()
