"""arrow-rs's `flight_sql_client` CLI (installed by scripts/test.sh) against the server."""

import os
import shutil
import subprocess

import pytest

CLI = os.environ.get("FLIGHT_SQL_CLIENT") or shutil.which("flight_sql_client")
pytestmark = pytest.mark.skipif(CLI is None, reason="flight_sql_client not installed (scripts/test.sh installs it)")


def run(server, *args: str) -> str:
    cmd = [CLI, "--host", "127.0.0.1", "--port", str(server.port), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{cmd}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def test_catalog_commands(server):
    assert "lakehouse" in run(server, "catalogs")
    schemas = run(server, "db-schemas", "lakehouse")
    assert "public" in schemas and "system" in schemas
    tables = run(server, "tables", "lakehouse")
    assert "lineitem" in tables and "SYSTEM TABLE" in tables
    assert "VIEW" in run(server, "table-types")


def test_statement_query_with_handshake(server):
    # --username/--password: Handshake with Basic auth and an empty payload, then the bearer token.
    out = run(server, "--username", "demo", "--password", "demo", "statement-query",
              "SELECT r_name FROM region ORDER BY r_regionkey LIMIT 2")
    assert "AFRICA" in out and "AMERICA" in out and "ASIA" not in out


def test_prepared_statement_with_named_parameter(server):
    # The CLI builds its parameter batch by name from our parameter schema ($1).
    out = run(server, "prepared-statement-query", "SELECT n_name FROM nation WHERE n_nationkey = $1", "-p", "$1=7")
    assert "GERMANY" in out
