"""Fixtures: a real `lakehouse serve` process on an ephemeral port."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lakehouse_binary() -> str:
    """The binary under test: $LAKEHOUSE_BIN, else the cargo debug build."""
    if os.environ.get("LAKEHOUSE_BIN"):
        return os.environ["LAKEHOUSE_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "lakehouse"
    if not binary.exists():
        pytest.exit(f"{binary} not found: run `cargo build --workspace` first (scripts/test.sh does)", 2)
    return str(binary)


class Server:
    def __init__(self, data_dir: Path, *extra: str):
        self.log: list[str] = []
        self.data_dir = Path(data_dir)
        self.proc = subprocess.Popen(
            [lakehouse_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--demo", "--demo-scale", "0.01", *extra],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env={**os.environ, "LAKEHOUSE_LOG": "info"},
        )
        ready = threading.Event()
        self.port = None

        def pump():
            for line in self.proc.stderr:
                self.log.append(line)
                match = re.search(r"listening on grpc(?:\+tls)?://127\.0\.0\.1:(\d+)", line)
                if match:
                    self.port = int(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(120) or self.port is None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.log))

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """The operations HTTP port's URL (a server started with --metrics-listen)."""
        for line in self.log:
            match = re.search(r"operations on http://127\.0\.0\.1:(\d+)", line)
            if match:
                return f"http://127.0.0.1:{match.group(1)}"
        raise AssertionError("no operations port in the log:\n" + "".join(self.log))

    @property
    def tls_uri(self) -> str:
        # "localhost": the name the test certificate is issued for.
        return f"grpc+tls://localhost:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@contextlib.contextmanager
def fresh_node(prefix: str):
    """A server on a new data folder, as ``{"server": Server, "data": Path}``: tests that
    restart or kill the server replace ``holder["server"]``; the last one is stopped."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    holder = {"server": Server(data_dir), "data": data_dir}
    try:
        yield holder
    finally:
        holder["server"].stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-pytest-"))
    srv = Server(data_dir)
    yield srv
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture()
def conn(server):
    import warnings

    import adbc_driver_flightsql.dbapi as flightsql

    with warnings.catch_warnings():
        # The driver warns that autocommit can't be disabled: we report no transactions.
        warnings.simplefilter("ignore")
        connection = flightsql.connect(server.uri)
    yield connection
    connection.close()
