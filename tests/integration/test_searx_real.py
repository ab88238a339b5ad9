"""The SearXNG client against a real searx service (Debian `searx` 1.1, same JSON API as SearXNG),
whose only engine is searx's `json_engine` pointed at our local search server.
Needs `apt-get install searx`; skipped when `searx-run` is not installed."""

import os
import shutil
import socket
import subprocess
import time

import pytest
import yaml

from crucible.pipelines.browse.api import build_corpus
from crucible.pipelines.browse.corpus import render_pages
from crucible.pipelines.browse.search.backends import LocalBackend
from crucible.pipelines.browse.search.env import BrowseEnv
from crucible.pipelines.browse.search.live import HttpClient, SearxngBackend
from crucible.pipelines.browse.search.server import SearchServer
from tests.unit.browse_helpers import small_graph

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("searx-run") is None,
                                                          reason="searx not installed (apt-get install searx)")]
EXAMPLE = "/usr/share/doc/searx/examples/settings.yml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def searx(tmp_path_factory):
    d = tmp_path_factory.mktemp("searx")
    build_corpus(render_pages(small_graph()), d / "corpus")
    local = LocalBackend(d / "corpus")
    srv = SearchServer(local).start()
    with open(EXAMPLE, encoding="utf-8") as f:
        settings = yaml.safe_load(f)
    port = _free_port()
    settings["server"].update({"port": port, "bind_address": "127.0.0.1", "secret_key": os.urandom(16).hex()})
    settings["search"]["formats"] = ["html", "json"]
    settings["outgoing"]["request_timeout"] = 5.0
    settings["engines"] = [{
        "name": "crucible", "engine": "json_engine", "shortcut": "cr", "categories": "general",
        "search_url": srv.url + "/search?q={query}&format=json", "results_query": "results",
        "url_query": "url", "title_query": "title", "content_query": "content", "enable_http": True,
        "timeout": 5.0,
    }]
    (d / "settings.yml").write_text(yaml.safe_dump(settings))
    env = dict(os.environ, SEARX_SETTINGS_PATH=str(d / "settings.yml"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(["searx-run"], env=env, stdout=subprocess.DEVNULL, stderr=open(d / "searx.log", "w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"searx exited: {(d / 'searx.log').read_text()[-2000:]}")
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail("searx did not start in 30 s")
    yield url, local
    proc.terminate()
    proc.wait(timeout=10)
    srv.stop()


def test_searxng_client_against_real_searx(searx):
    url, local = searx
    client = SearxngBackend(url, HttpClient(timeout_s=10, max_retries=2, backoff_s=0.2, rate_limit_per_s=0))
    got = client.search("Reykjavik Airport", 5)
    assert got and got[0]["url"] == local.search("Reykjavik Airport", 5)[0]["url"]
    assert {r["url"] for r in got} <= {r["url"] for r in local.search("Reykjavik Airport", 10)}
    s = BrowseEnv(client).session()
    obs = s.search({"query": "capital of Belgium?"})
    assert not obs.error and "https://kb.local/country/BE" in obs.content
