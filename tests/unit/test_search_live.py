"""Every live client against the real loopback server (`crucible search serve` in-process)."""

import pytest

from crucible.pipelines.browse.api import build_corpus, make_backend
from crucible.pipelines.browse.corpus import render_pages
from crucible.pipelines.browse.search.backends import BackendConfigError, BackendError, LocalBackend
from crucible.pipelines.browse.search.env import BrowseEnv
from crucible.pipelines.browse.search.live import (
    BraveBackend,
    HttpClient,
    PageFetcher,
    SearxngBackend,
    SerperBackend,
    TavilyBackend,
)
from crucible.pipelines.browse.search.server import SearchServer
from tests.unit.browse_helpers import small_graph

KEY = "test-key-123"


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    build_corpus(render_pages(small_graph()), d)
    return LocalBackend(d)


@pytest.fixture(scope="module")
def server(local):
    with SearchServer(local, api_key=KEY) as srv:
        yield srv


@pytest.fixture
def http():
    return HttpClient(timeout_s=5, max_retries=2, backoff_s=0.01, rate_limit_per_s=0)


def _clients(server, http, monkeypatch):
    monkeypatch.setenv("T_SERPER", KEY)
    monkeypatch.setenv("T_BRAVE", KEY)
    monkeypatch.setenv("T_TAVILY", KEY)
    fetch = PageFetcher(http, server.url + "/page?url={url}")
    return [
        SearxngBackend(server.url, http, fetch),
        SerperBackend(http, "T_SERPER", server.url + "/serper", fetch),
        BraveBackend(http, "T_BRAVE", server.url + "/brave", fetch),
        TavilyBackend(http, "T_TAVILY", server.url + "/tavily", fetch),
    ]


@pytest.mark.parametrize("query", ["capital of Belgium", "Reykjavik Airport RKV", "Nordic island: country?"])
def test_every_live_client_returns_the_local_ranking(server, local, http, monkeypatch, query):
    expected = local.search(query, 4)
    assert expected
    for client in _clients(server, http, monkeypatch):
        got = client.search(query, 4)
        assert got == expected, client.name


def test_visit_over_http_extracts_page_text_with_trafilatura(server, http, monkeypatch):
    for client in _clients(server, http, monkeypatch):
        s = BrowseEnv(client).session()
        obs = s.visit({"url": "https://kb.local/airport/BIRK"})
        assert not obs.error, obs.content
        assert "Reykjavik Airport serves the city of Reykjavík." in obs.content
        assert "crucible kb" not in obs.content  # the nav boilerplate is stripped
        assert obs.meta["title"] == "Reykjavik Airport"
        missing = s.visit({"url": "https://kb.local/airport/NOPE"})
        assert missing.error and "HTTP 404" in missing.content


def test_missing_key_is_a_clear_error_at_construction(http, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    for cls in (SerperBackend, BraveBackend, TavilyBackend):
        with pytest.raises(BackendConfigError, match="NO_SUCH_KEY_VAR is not set"):
            cls(http, "NO_SUCH_KEY_VAR", "http://127.0.0.1:9")
    with pytest.raises(BackendConfigError, match="base_url"):
        SearxngBackend(None, http)
    cfg = {"backend": "serper", "serper": {"api_key_env": "NO_SUCH_KEY_VAR"}}
    with pytest.raises(BackendConfigError, match="needs an API key"):
        make_backend(cfg)


def test_wrong_key_is_rejected_by_the_server(server, http, monkeypatch):
    monkeypatch.setenv("T_BAD", "wrong")
    for cls, base in ((SerperBackend, "/serper"), (BraveBackend, "/brave"), (TavilyBackend, "/tavily")):
        with pytest.raises(BackendError, match="HTTP 401"):
            cls(http, "T_BAD", server.url + base).search("x", 3)


def test_retries_on_429_and_5xx_then_succeeds(server, local, http, monkeypatch):
    client = _clients(server, http, monkeypatch)[1]
    server.fail_next[:] = [429, 503]
    assert client.search("Antwerp", 2) == local.search("Antwerp", 2)
    assert http.retries == 2


def test_gives_up_after_max_retries_as_an_error_observation(server, http, monkeypatch):
    client = _clients(server, http, monkeypatch)[3]
    server.fail_next[:] = [500, 500, 500]
    s = BrowseEnv(client).session()
    obs = s.search({"query": "Antwerp"})
    assert obs.error and "gave up after 3 attempts" in obs.content
    assert s.stats.tool_errors == 1
    server.fail_next.clear()


def test_rate_limit_spaces_requests(server, monkeypatch):
    import time

    http = HttpClient(timeout_s=5, max_retries=0, backoff_s=0.01, rate_limit_per_s=20)
    client = SearxngBackend(server.url, http)
    t0 = time.monotonic()
    for _ in range(5):
        client.search("Euro", 2)
    assert time.monotonic() - t0 >= 4 / 20 - 0.01


def test_rate_limit_zero_leaves_requests_unpaced(server):
    """The pacer switched off: the same five requests come back to back."""
    import time

    client = SearxngBackend(server.url, HttpClient(timeout_s=5, max_retries=0, backoff_s=0.01, rate_limit_per_s=0))
    t0 = time.monotonic()
    for _ in range(5):
        client.search("Euro", 2)
    assert time.monotonic() - t0 < 4 / 20 - 0.01


def test_server_binds_loopback_only(local):
    with pytest.raises(ValueError, match="loopback"):
        SearchServer(local, host="0.0.0.0")


def test_html_to_text_falls_back_to_html2text_when_trafilatura_finds_nothing():
    from crucible.pipelines.browse.search.live import html_to_text

    assert html_to_text("<html><body><p>Hi</p></body></html>").strip() == "Hi"
    page = ("<html><head><title>T</title></head><body><nav>Home | About</nav><article><h1>Lake Zeta</h1>"
            + "<p>Lake Zeta is a glacial lake at 1,234 m elevation in the fictional Omega range.</p>" * 3
            + "</article><footer>Cookie policy</footer></body></html>")
    text = html_to_text(page)
    assert "1,234 m elevation" in text and "Cookie policy" not in text


def test_config_rejects_unknown_backend_and_keys():
    import pytest as _pytest

    from crucible.pipelines.config import ConfigError, load_config

    with _pytest.raises(ConfigError):
        load_config("defaults", ["search.backend=bing"])
    with _pytest.raises(ConfigError):
        load_config("defaults", ["search.leak.ngramm=5"])
    cfg = load_config("defaults", ["search.backend=brave"])
    assert cfg.search.brave.api_key_env == "BRAVE_API_KEY" and cfg.search.leak.ngram == 13


def test_search_r1_retrieve_route_speaks_verls_search_tool_contract(server, local):
    """verl's SearchTool posts {queries, topk, return_scores} to /retrieve and reads
    result[i][j]["document"]["contents"] as '"title"\\ntext' (search_r1_like_utils)."""
    import requests

    queries = ["capital of Belgium", "Reykjavik Airport RKV"]
    r = requests.post(server.url + "/retrieve", json={"queries": queries, "topk": 3, "return_scores": True}, timeout=5)
    assert r.status_code == 200
    result = r.json()["result"]
    assert len(result) == 2
    for query, docs in zip(queries, result):
        expected = local.search(query, 3)
        assert [d["document"]["id"] for d in docs] == [e["url"] for e in expected]
        first = docs[0]["document"]["contents"].split("\n")
        assert first[0] == f'"{expected[0]["title"]}"' and "\n".join(first[1:]) == expected[0]["snippet"]
        assert docs[0]["score"] >= docs[-1]["score"]
    plain = requests.post(server.url + "/retrieve", json={"queries": ["capital of Belgium"], "topk": 1}, timeout=5)
    assert "contents" in plain.json()["result"][0][0]  # without scores: the documents themselves
    bad = requests.post(server.url + "/retrieve", json={"queries": "capital of Belgium"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["field"] == "queries" and "an array of" in bad.json()["error"]
