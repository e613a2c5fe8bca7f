"""The README's five-minute tour runs as written: every Python block of it, in order, in
one namespace, against a fresh server whose data folder is ./lakehouse-data (as
scripts/serve.sh makes it) — and a second time on the same server, since a user runs a
tour again."""

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, Server

DEFAULT_URL = "grpc://127.0.0.1:50051"
TOUR = "## A five-minute tour from Python"


def tour_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(TOUR)
    end = text.index("\n## ", start + len(TOUR))
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)
    assert len(blocks) >= 4, "the tour lost its Python blocks"
    return blocks


@pytest.fixture(scope="module")
def home():
    folder = Path(tempfile.mkdtemp(prefix="lakehouse-readme-"))
    server = Server(folder / "lakehouse-data")
    yield folder, server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("round_", [1, 2])
def test_the_tour_runs_as_written(home, round_, capsys):
    folder, server = home
    namespace: dict = {"__name__": "__readme__"}
    here = os.getcwd()
    os.chdir(folder)
    try:
        for number, block in enumerate(tour_blocks(), 1):
            code = compile(block.replace(DEFAULT_URL, server.uri), f"README.md tour block {number}", "exec")
            exec(code, namespace)  # noqa: S102 - the README's own code is what is tested
    finally:
        os.chdir(here)
        for name in ("conn", "client"):
            closer = getattr(namespace.get(name), "close", None)
            if callable(closer):
                closer()
    out = capsys.readouterr().out
    # What the tour says it prints.
    assert "(2,)" in out and "SUCCEEDED" in out, out[-2000:]
    hits = namespace["hits"]
    assert hits and all(int(h["id"]) != 3 for h in hits), hits  # the filter keeps English rows
    assert int(hits[0]["id"]) == 1, hits
