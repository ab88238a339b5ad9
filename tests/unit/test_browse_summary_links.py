"""The second structure source: links between Wikipedia summaries and graph entities
(``summary_mentions``), used as obfuscation clues that are checked by reading a page."""

import json
import random

from crucible.pipelines.browse import harden as H
from crucible.pipelines.browse import obfuscate as OB
from crucible.pipelines.browse import qtype as Q
from crucible.pipelines.browse import sampling
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.corpus import render_entity
from crucible.pipelines.browse.kg import wiki as W
from crucible.pipelines.browse.kg.model import Entity, Graph
from tests.unit.browse_helpers import E, T


def art(title, text):
    return Entity("wiki/" + title.replace(" ", "_"), "article", title, (), {}, description=text,
                  url="https://en.wikipedia.org/wiki/" + title.replace(" ", "_"), source="test", license="CC-BY-SA-4.0")


def graph(b_text="Belgium is a country in Western Europe. Its capital is Brussels."):
    ents = [
        E("country/CH", "country", "Switzerland"), E("country/BE", "country", "Belgium"),
        E("country/NL", "country", "Netherlands"),
        E("city/1", "city", "Bern"), E("city/2", "city", "Brussels"), E("city/3", "city", "Amsterdam"),
        art("Switzerland", "Switzerland is a landlocked country. It borders Lake Geneva."),
        art("Belgium", b_text), art("Netherlands", "The Netherlands is a country in Europe."),
        art("Lake Geneva", "Lake Geneva is a lake on the north side of the Alps."),
    ]
    tris = [T("country/CH", "capital", "city/1"), T("country/BE", "capital", "city/2"),
            T("country/NL", "capital", "city/3"),
            T("country/CH", "described_by", "wiki/Switzerland"), T("country/BE", "described_by", "wiki/Belgium"),
            T("country/NL", "described_by", "wiki/Netherlands"),
            T("wiki/Switzerland", "mentions", "wiki/Lake_Geneva")]
    tris += W.summary_mention_triples([e for e in ents if e.type == "article"], tris, {"source": "test"})
    return Graph(ents, tris)


def test_summary_mentions_link_a_graph_entity_to_what_its_own_summary_names_but_not_common_nouns(tmp_path):
    data = {t: {"title": t, "extract": x} for t, x in [
        ("Iceland", "Iceland is a Nordic island country; a Republic in the North Atlantic Ocean."),
        ("North Atlantic Ocean", "An ocean."), ("Republic", "A republic is a form of government.")]}
    p = tmp_path / "summaries_en-us.json"
    p.write_text(json.dumps(data))
    res = W.from_wiki([E("country/IS", "country", "Iceland")], str(p))
    rel = {(t.subject, t.relation, t.object) for t in res.triples}
    assert ("country/IS", "summary_mentions", "wiki/North_Atlantic_Ocean") in rel
    # "Republic" is a title the summaries also use as a common noun: a mention, not a name
    assert ("wiki/Iceland", "mentions", "wiki/Republic") in rel
    assert ("country/IS", "summary_mentions", "wiki/Republic") not in rel
    t = next(t for t in res.triples if t.relation == "summary_mentions")
    assert t.attributes == {"article": "Iceland"}


def test_a_summary_clue_is_rendered_with_its_wikipedia_page_and_sentence_as_evidence():
    g = graph()
    d = S.draft_from_chain([g.triple("country/CH", "capital", "city/1")])
    new = H.obfuscate(g, d, random.Random(0))
    assert new is not None
    var = new.formalization["triples"][0][0]
    assert [var, "summary_mentions", "wiki/Lake_Geneva"] in new.formalization["triples"]
    q = S.render_question(g, new)
    assert q == "What is the capital of a country (whose Wikipedia summary mentions Lake Geneva)?"
    assert S.is_unique(g, new) and Q.relation_backcheck(g, new, q) is None
    ev = [e for e in S.evidence(g, new) if e["relation"] == "summary_mentions"]
    assert ev == [{"hop": 1, "url": "https://en.wikipedia.org/wiki/Switzerland",
                   "fact": "It borders Lake Geneva.", "subject": "Switzerland", "relation": "summary_mentions",
                   "object": "Lake Geneva"}]
    # the fact is on the Wikipedia page the agent can open, not on the entity's fact page
    assert "Lake Geneva" not in render_entity(g, g.entities["country/CH"]).text
    # a rewrite that drops the text link is not the same question
    assert Q.relation_backcheck(g, new, "What is the capital of a country that mentions Lake Geneva?") is not None


def test_a_summary_clue_is_refused_when_a_looser_reading_of_the_text_fits_another_entity():
    """Belgium's summary says "lake geneva" in lower case: the graph's exact-title links miss it, a
    reader does not. The clue must then not be what makes the answer unique."""
    g = graph("Belgium is a country in Western Europe; its bankers retire to lake geneva.")
    assert g.subjects("wiki/Lake_Geneva", "summary_mentions") == ["country/CH"]
    assert {x for x in H.summary_readings(g, "wiki/Lake_Geneva") if x.startswith("country/")} == \
        {"country/CH", "country/BE"}
    d = S.draft_from_chain([g.triple("country/CH", "capital", "city/1")])
    assert H.obfuscate(g, d, random.Random(0)) is None
    # switched off (the graph's exact links only), the ambiguous clue gets through
    orig = OB.summary_readings
    try:
        OB.summary_readings = lambda graph, obj: set(graph.subjects(obj, "summary_mentions"))
        loose_off = H.obfuscate(g, d, random.Random(0))
    finally:
        OB.summary_readings = orig
    assert loose_off is not None
    assert any(t[1:] == ["summary_mentions", "wiki/Lake_Geneva"] for t in loose_off.formalization["triples"])


def _with_a_country_without_summary():
    g = graph()
    ents = list(g.entities.values()) + [E("country/AT", "country", "Austria"), E("city/4", "city", "Vienna")]
    return Graph(ents, list(g.triples) + [T("country/AT", "capital", "city/4")])


def test_a_summary_clue_is_refused_when_a_candidate_has_no_summary_to_read():
    """Austria has no summary in the corpus: its Wikipedia page may well mention Lake Geneva, so "a country
    whose summary mentions Lake Geneva" is unique only among the pages the corpus holds, not in the world."""
    g = _with_a_country_without_summary()
    assert "country/AT" in H.summary_readings(g, "wiki/Lake_Geneva")
    d = S.draft_from_chain([g.triple("country/CH", "capital", "city/1")])
    assert H.obfuscate(g, d, random.Random(0)) is None


def test_without_the_no_summary_rule_the_corpus_only_clue_gets_through():
    g = _with_a_country_without_summary()
    d = S.draft_from_chain([g.triple("country/CH", "capital", "city/1")])
    orig = OB.summary_readings
    try:
        OB.summary_readings = lambda graph, obj: orig(graph, obj) - {"country/AT", "city/4"} - {
            e for e in graph.entities if e.startswith("city/")}
        off = H.obfuscate(g, d, random.Random(0))
    finally:
        OB.summary_readings = orig
    assert off is not None and any(t[1:] == ["summary_mentions", "wiki/Lake_Geneva"]
                                   for t in off.formalization["triples"])


def _city_graph():
    """Two capitals whose summaries the corpus holds; Seoul's names Los Angeles (a city of another country)."""
    ents = [E("country/KR", "country", "South Korea"), E("country/JP", "country", "Japan"),
            E("country/US", "country", "United States"), E("city/seoul", "city", "Seoul"),
            E("city/tokyo", "city", "Tokyo"), E("city/la", "city", "Los Angeles"),
            art("Seoul", "Seoul is the capital of South Korea; its economy ranks after Tokyo and Los Angeles."),
            art("Tokyo", "Tokyo is the capital of Japan."), art("Los Angeles", "The city lies in southern California.")]
    tris = [T("country/KR", "capital", "city/seoul"), T("country/JP", "capital", "city/tokyo"),
            T("city/seoul", "country", "country/KR"), T("city/tokyo", "country", "country/JP"),
            T("city/la", "country", "country/US"),
            T("city/seoul", "described_by", "wiki/Seoul"), T("city/tokyo", "described_by", "wiki/Tokyo"),
            T("city/la", "described_by", "wiki/Los_Angeles"), T("wiki/Seoul", "mentions", "wiki/Los_Angeles")]
    tris += W.summary_mention_triples([e for e in ents if e.type == "article"], tris, {"source": "test"})
    return Graph(ents, tris)


def test_a_mention_of_another_countrys_city_is_no_clue(monkeypatch):
    g = _city_graph()
    assert OB.incidental_mention(g, "city/seoul", "wiki/Los_Angeles")  # the page of a US city
    assert OB.incidental_mention(g, "city/seoul", "city/la") and not OB.incidental_mention(g, "city/seoul", "country/US")
    d = S.draft_from_chain([g.triple("city/seoul", "country", "country/KR")])
    assert H.obfuscate(g, d, random.Random(0)) is None  # Seoul's one text clue is Los Angeles: refused
    # switched off: "a city (whose Wikipedia summary mentions Los Angeles)" pins Seoul
    monkeypatch.setattr(OB, "incidental_mention", lambda *a: False)
    off = H.obfuscate(g, d, random.Random(0))
    assert off is not None and any(t[1:] == ["summary_mentions", "wiki/Los_Angeles"] for t in off.formalization["triples"])


def test_summary_links_are_never_walked_as_hops():
    g = graph()
    assert "summary_mentions" in sampling.UNWALKED and "summary_mentions" not in S.REL_PHRASE
    assert all(r != "summary_mentions" for r, _o, _inv in sampling.hop_options(g, "country/CH", inverse=False))


def test_summary_readings_from_many_threads_at_once_agree():
    """The stage threads of a worker share one graph: the first call builds the summary tables while others
    read them (a default run died on a half-built table: KeyError, and a half-filled one counts too few)."""
    from concurrent.futures import ThreadPoolExecutor

    g = _with_a_country_without_summary()
    want = OB.summary_readings(_with_a_country_without_summary(), "wiki/Lake_Geneva")
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda _: OB.summary_readings(g, "wiki/Lake_Geneva"), range(64)))
    assert all(r == want for r in got) and "country/AT" in want
