"""(j) profiles: what a GPU-slot switch costs the server, and a /metrics scrape with the
slot's figures (NVML read included).

Ollama's own load time depends on the model and the GPU; this measures everything around
it: a stand-in for Ollama's model-management API (tests/python/test_profiles.py) answers at
once, so a switch's time is the server's work — the job, the unload/load/keep plan, the
HTTP calls, /api/ps, the catalog write — as a client following the job sees it.

    LAKEHOUSE_BIN=target/release/lakehouse python benches/profiles_bench.py [--switches 40]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from conftest import Server  # noqa: E402
from test_profiles import FakeOllama  # noqa: E402

from lakehouse_client import Client  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--switches", type=int, default=40)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    ollama = FakeOllama()
    data = Path(tempfile.mkdtemp(prefix="lakehouse-bench-profiles-"))
    url = f"http://127.0.0.1:{ollama.port}"
    config = data / "lakehouse.toml"
    config.write_text(f'metrics_listen = "127.0.0.1:0"\n'
                      f'[embedders.nomic]\nprotocol = "ollama"\nurl = "{url}"\nmodel = "nomic-embed-text"\n'
                      f'[llms.chat]\nprotocol = "ollama"\nurl = "{url}"\nmodel = "llama3.2"\n'
                      f'[llms.coder]\nprotocol = "ollama"\nurl = "{url}"\nmodel = "qwen2.5-coder"\n')
    server = Server(data, "--config", str(config))
    try:
        with Client(server.uri, progress=False) as client:
            client.create_profile("docs", embedder="nomic", llm="chat")
            client.create_profile("code", embedder="nomic", llm="coder")
            followed, inside = [], []
            for i in range(args.switches):
                started = time.perf_counter()
                result = client.activate_profile("docs" if i % 2 else "code")
                followed.append(time.perf_counter() - started)
                inside.append(result["seconds"])
        scrapes = []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            urllib.request.urlopen(server.ops_url + "/metrics", timeout=10).read()
            scrapes.append(time.perf_counter() - started)
    finally:
        server.stop()
        ollama.stop()

    def ms(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[int(q) - 1] * 1000, 2) if q < 100 else round(max(values) * 1000, 2)

    figures = {
        "switches": args.switches,
        "switch_followed_ms": {"p50": ms(followed, 50), "p95": ms(followed, 95), "max": ms(followed, 100)},
        "switch_in_server_ms": {"p50": ms(inside, 50), "p95": ms(inside, 95)},
        "metrics_scrape_ms": {"p50": ms(scrapes, 50), "p95": ms(scrapes, 95)},
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
