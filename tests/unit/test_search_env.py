import json

import pytest

from crucible.pipelines.agent.tools import call_tool
from crucible.pipelines.browse.api import build_corpus
from crucible.pipelines.browse.corpus import render_pages
from crucible.pipelines.browse.search.backends import FrozenBackend, LocalBackend
from crucible.pipelines.browse.search.cache import ToolCache
from crucible.pipelines.browse.search.env import TOOL_SCHEMAS, BrowseEnv
from crucible.pipelines.browse.search.leak import LeakFilter
from tests.unit.browse_helpers import small_graph


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    build_corpus(render_pages(small_graph()), d)
    return d


@pytest.fixture
def backend(corpus):
    return LocalBackend(corpus)


def test_search_and_visit_show_the_fact(backend):
    s = BrowseEnv(backend).session()
    obs = s.search({"query": "Reykjavik Airport?", "top_k": 3})
    assert not obs.error
    assert obs.meta["results"][0]["url"] == "https://kb.local/airport/BIRK"
    page = s.visit({"url": "https://kb.local/airport/BIRK"})
    assert "Reykjavik Airport serves the city of Reykjavík." in page.content
    assert "Its IATA code is RKV." in page.content and "- Reykjavík: https://kb.local/city/5" in page.content
    assert s.stats.visits_not_from_search == 0 and s.stats.search_calls == 1


def test_wikipedia_pages_keep_their_real_urls(backend):
    s = BrowseEnv(backend).session()
    urls = [r["url"] for r in s.search({"query": "Nordic island country"}).meta["results"]]
    assert "https://en.wikipedia.org/wiki/Iceland" in urls


def test_visits_to_unreturned_urls_are_allowed_but_counted(backend):
    s = BrowseEnv(backend).session()
    obs = s.visit({"url": "https://kb.local/country/BE"})
    assert not obs.error and "The capital of Belgium is Brussels." in obs.content
    assert s.stats.visits_not_from_search == 1 and obs.meta["from_search"] is False


def test_errors_are_observations_not_exceptions(backend):
    s = BrowseEnv(backend).session()
    tools = {t.name: t for t in s.tools}
    bad = s.visit({"url": "https://kb.local/nowhere/1"})
    assert bad.error and "page not found" in bad.content
    assert call_tool(tools, "search", "{not json").error
    assert "top_k" in call_tool(tools, "search", json.dumps({"query": "x", "top_k": 99})).content
    assert call_tool(tools, "browse", "{}").error
    assert s.stats.tool_errors == 1  # only the failed visit reached the tool


def test_truncation_note(backend):
    s = BrowseEnv(backend, max_page_chars=200).session()
    obs = s.visit({"url": "https://kb.local/country/NL"})
    assert obs.meta["truncated"] and obs.content.endswith("characters]") and "[truncated: showing the first 200 of" in obs.content


def test_tool_schemas_are_openai_functions_and_identical_across_backends(backend, tmp_path):
    s1 = BrowseEnv(backend).session()
    (tmp_path / "f.jsonl").write_text("")
    s2 = BrowseEnv(FrozenBackend(tmp_path / "f.jsonl")).session()
    assert s1.schemas == s2.schemas == TOOL_SCHEMAS
    assert [t.openai_schema() for t in s1.tool_map.values()] == TOOL_SCHEMAS  # the agent loop's Tool form
    assert [x["function"]["name"] for x in TOOL_SCHEMAS] == ["search", "visit"]
    assert TOOL_SCHEMAS[0]["function"]["parameters"]["required"] == ["query"]


def test_leak_filter_drops_results_and_redacts_or_blocks_pages(backend):
    question = "Which airport with an elevation of 48 ft serves the capital city of a Nordic island country?"
    page_text = backend.fetch("https://kb.local/airport/BIRK")["text"]
    leaky = "Reykjavik Airport is an airport. Reykjavik Airport serves the city of Reykjavík. Reykjavik Airport is"
    assert leaky.replace(". ", ".\n") in page_text
    s = BrowseEnv(backend).session(forbidden_texts=[question, leaky])
    res = s.search({"query": "Reykjavik Airport", "top_k": 5})
    assert "https://kb.local/airport/BIRK" not in [r["url"] for r in res.meta["results"]]
    assert s.stats.leak_results_dropped >= 1
    page = s.visit({"url": "https://kb.local/airport/BIRK"})
    assert "[redacted]" in page.content and "serves the city" not in page.content
    assert "Its IATA code is RKV." in page.content
    assert s.stats.leak_spans_redacted == 1
    blocked = BrowseEnv(backend, leak_page_action="block").session([leaky])
    obs = blocked.visit({"url": "https://kb.local/airport/BIRK"})
    assert obs.meta["blocked"] and "Reykjavik" not in obs.content.split("https://")[0]
    assert blocked.stats.leak_pages_blocked == 1
    clean = BrowseEnv(backend).session([question])  # a question that no page quotes leaks nothing
    clean.search({"query": "Reykjavik Airport"})
    assert clean.stats.leak_results_dropped == 0


def test_leak_filter_ngram_semantics():
    f = LeakFilter(["one two three four five six seven eight nine ten eleven twelve thirteen fourteen"], n=13)
    assert f.leaks("zero ONE two three, four five six seven eight nine ten eleven twelve thirteen!")
    assert not f.leaks("one two three four five six seven eight nine ten eleven twelve")  # only 12 words
    short = LeakFilter(["What is the capital city of Iceland today"], n=13, min_words=8)
    assert short.leaks("Q: what is the capital city of iceland today?") and not short.leaks("capital of Iceland")
    assert not LeakFilter(["too short"], n=13)
    text, n = f.redact("a one two three four five six seven eight nine ten eleven twelve thirteen b")
    assert text == "a [redacted] b" and n == 1


def test_cache_replay_is_identical_with_zero_backend_calls(corpus, tmp_path):
    cache_dir = tmp_path / "cache"
    calls = [("search", {"query": "capital of Belgium", "top_k": 3}), ("visit", {"url": "https://kb.local/country/BE"}),
             ("search", {"query": "Euro currency"}), ("visit", {"url": "https://kb.local/city/3"})]
    b1 = LocalBackend(corpus)
    s1 = BrowseEnv(b1, ToolCache(cache_dir)).session(["forbidden text that appears nowhere in this corpus at all ok"])
    first = [getattr(s1, t)(a) for t, a in calls]
    assert b1.calls == 4 and s1.stats.backend_calls == 4
    b2 = LocalBackend(corpus)
    s2 = BrowseEnv(b2, ToolCache(cache_dir)).session(["forbidden text that appears nowhere in this corpus at all ok"])
    second = [getattr(s2, t)(a) for t, a in calls]
    assert b2.calls == 0 and s2.stats.cache_hits == 4
    assert [o.content for o in first] == [o.content for o in second]
    assert not list(cache_dir.rglob("*.tmp"))
    # whitespace in the query normalizes to the same key
    s2.search({"query": "  capital   of Belgium ", "top_k": 3})
    assert b2.calls == 0


def test_cache_export_serves_as_a_frozen_backend(corpus, tmp_path):
    cache = ToolCache(tmp_path / "cache")
    b = LocalBackend(corpus)
    s = BrowseEnv(b, cache).session()
    o1 = s.search({"query": "Antwerp", "top_k": 2})
    o2 = s.visit({"url": "https://kb.local/city/4"})
    info = cache.export(tmp_path / "frozen.jsonl", b.snapshot_id)
    assert info == {"searches": 1, "pages": 1, "path": str(tmp_path / "frozen.jsonl")}
    fb = FrozenBackend(tmp_path / "frozen.jsonl")
    fs = BrowseEnv(fb).session()
    assert fs.search({"query": "Antwerp", "top_k": 2}).content == o1.content
    assert fs.visit({"url": "https://kb.local/city/4"}).content == o2.content
    miss = fs.search({"query": "something never asked"})
    assert miss.error and "not in the frozen corpus" in miss.content


def test_snapshot_id_changes_with_the_corpus(tmp_path):
    from crucible.pipelines.browse.corpus import Page

    a = build_corpus([Page("https://kb.local/x/1", "X", "one")], tmp_path / "a")
    b = build_corpus([Page("https://kb.local/x/1", "X", "one!")], tmp_path / "b")
    c = build_corpus([Page("https://kb.local/x/1", "X", "one")], tmp_path / "c")
    assert a != b and a == c


def test_visit_goal_picks_the_relevant_window_of_a_long_page():
    from crucible.pipelines.browse.search.env import truncate_page

    text = "".join(f"line {i} filler words here\n" for i in range(400)) + "The airport elevation is 48 ft.\n"
    text += "".join(f"tail {i}\n" for i in range(50))
    head, t1 = truncate_page(text, 300)
    assert t1 and head.startswith("line 0") and "elevation" not in head
    focused, t2 = truncate_page(text, 300, goal="airport elevation")
    assert t2 and "The airport elevation is 48 ft." in focused and "chosen for the goal" in focused
    same, t3 = truncate_page("short", 300, goal="x")
    assert (same, t3) == ("short", False)


def test_evidence_sentence_is_verbatim_on_the_subject_page():
    from crucible.pipelines.browse.corpus import answer_aliases, evidence, render_entity

    g = small_graph()
    for t in g.triples:
        if g.entities[t.subject].type == "article":
            continue
        ev = evidence(g, t)
        page = render_entity(g, g.entities[t.subject])
        assert ev["url"] == page.url and ev["fact"] in page.text, (t, ev)
    assert answer_aliases(g, "airport/BIRK") == ["Reykjavik Airport", "BIRK", "RKV"]


def test_parallel_sessions_share_one_backend_and_cache_safely(backend, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    env = BrowseEnv(backend, ToolCache(tmp_path / "cache"))
    queries = ["Amsterdam", "Brussels Airport", "Euro", "Iceland capital", "Antwerp", "Utrecht"] * 4
    expected = {q: BrowseEnv(backend).session().search({"query": q}).content for q in set(queries)}

    def run(q):
        s = env.session()
        return q, s.search({"query": q}).content, s.visit({"url": "https://kb.local/country/NL"}).content

    with ThreadPoolExecutor(8) as ex:
        out = list(ex.map(run, queries))
    assert all(content == expected[q] for q, content, _ in out)
    assert len({page for _, _, page in out}) == 1
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_an_incoming_border_reads_as_a_sentence_not_a_relation_name():
    from crucible.pipelines.browse.corpus import render_entity
    from crucible.pipelines.browse.kg.model import Entity, Graph, Triple

    g = Graph([Entity("country/FR", "country", "France"), Entity("country/DE", "country", "Germany")],
              [Triple("country/FR", "shares_border_with", "country/DE")])
    text = render_entity(g, g.entities["country/DE"]).text
    assert "Germany shares a border with France." in text and "shares border with of" not in text
    # without the template the fallback names the relation: "Germany is the shares border with of France"
    from crucible.pipelines.browse import corpus

    saved = corpus.INV_TEMPLATES.pop("shares_border_with")
    try:
        assert "Germany is the shares border with of France" in render_entity(g, g.entities["country/DE"]).text
    finally:
        corpus.INV_TEMPLATES["shares_border_with"] = saved
