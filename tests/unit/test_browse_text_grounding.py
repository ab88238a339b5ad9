"""Text as the main source (issue #23 item 3): hops a Wikipedia summary sentence states, the sampler's
preference for them, the row's evidence and the audit's recomputation."""

import random

from crucible.pipelines.browse import audit as A
from crucible.pipelines.browse import findable as F
from crucible.pipelines.browse import grounding as G
from crucible.pipelines.browse import planning, sampling
from crucible.pipelines.browse.draft import draft_from_chain
from crucible.pipelines.browse.kg.chains import graph_stats
from crucible.pipelines.browse.kg.model import Entity, Graph
from crucible.pipelines.browse.kg.textlinks import TextIndex, grounded_enough, pick_hop, text_index
from crucible.pipelines.browse.search.env import BrowseEnv
from tests.support.fake_search import FakeBackend
from tests.unit.browse_helpers import E, T, browse_opts


def art(title, text):
    return Entity("wiki/" + title.replace(" ", "_"), "article", title, (), {}, description=text,
                  url="https://en.wikipedia.org/wiki/" + title.replace(" ", "_"), source="test", license="CC-BY-SA-4.0")


def graph(cuba="Cuba is an island country. Havana is the capital of Cuba. Cuba lies north of Jamaica.",
          mexico="Mexico City is the capital and largest city of Mexico.",
          sudan="Sudan is a country in Africa. It borders South Sudan to the south and Chad to the west."):
    ents = [E("country/CU", "country", "Cuba"), E("country/MX", "country", "Mexico"),
            E("country/SD", "country", "Sudan"), E("country/SS", "country", "South Sudan"),
            E("country/TD", "country", "Chad"), E("country/JM", "country", "Jamaica"),
            E("city/havana", "city", "Havana"), E("city/jamaica", "city", "Jamaica"),
            E("city/mexico", "city", "Mexico City"), E("city/khartoum", "city", "Khartoum"),
            E("airport/MUHA", "airport", "José Martí International Airport"),
            art("Cuba", cuba), art("Mexico", mexico), art("Sudan", sudan), art("South Sudan", "South Sudan is a country."),
            art("Jamaica", "Jamaica is an island country.")]
    tris = [T("country/CU", "capital", "city/havana"), T("city/havana", "country", "country/CU"),
            T("city/jamaica", "country", "country/CU"), T("country/MX", "capital", "city/mexico"),
            T("city/mexico", "country", "country/MX"), T("country/SD", "shares_border_with", "country/TD"),
            T("country/SD", "capital", "city/khartoum"), T("airport/MUHA", "serves_city", "city/havana"),
            T("country/CU", "described_by", "wiki/Cuba"), T("country/MX", "described_by", "wiki/Mexico"),
            T("country/SD", "described_by", "wiki/Sudan"), T("country/SS", "described_by", "wiki/South_Sudan"),
            T("country/JM", "described_by", "wiki/Jamaica")]
    return Graph(ents, tris)


# ---------------------------------------------------------------- the hop rule

def test_a_hop_is_grounded_by_a_summary_sentence_that_names_both_ends():
    g = graph()
    ev = TextIndex(g).hop("country/CU", "capital", "city/havana")
    assert ev is not None and ev.sentence == "Havana is the capital of Cuba."
    assert ev.url == "https://en.wikipedia.org/wiki/Cuba" and ev.article == "wiki/Cuba"
    # the inverse reading of the same pair is another triple, stated by the same sentence
    assert TextIndex(g).hop("city/havana", "country", "country/CU").sentence == "Havana is the capital of Cuba."


def test_a_sentence_naming_one_end_only_grounds_nothing():
    g = graph(cuba="Cuba is an island country. Its capital is Havana.")
    assert TextIndex(g).hop("country/CU", "capital", "city/havana") is None


def test_a_longer_name_does_not_name_the_shorter_one_it_contains():
    idx = TextIndex(graph())
    assert idx.hop("country/MX", "capital", "city/mexico").sentence.startswith("Mexico City is the capital")
    # "Mexico City is the largest city." names Mexico City only, not also Mexico
    assert TextIndex(graph(mexico="Mexico City is the largest city.")).hop("country/MX", "capital", "city/mexico") is None


def test_another_articles_title_is_not_a_name_of_this_entity():
    # the city Jamaica (Cuba) is not named by "Jamaica" in Cuba's summary: that is the country's article
    assert TextIndex(graph()).hop("city/jamaica", "country", "country/CU") is None
    # "South Sudan" (an article) hides the Sudan it contains: Sudan's page "borders ... Chad" names Sudan nowhere
    assert TextIndex(graph()).hop("country/SD", "shares_border_with", "country/TD") is None
    g = graph(sudan="Sudan borders Chad to the west.")
    assert TextIndex(g).hop("country/SD", "shares_border_with", "country/TD").sentence == "Sudan borders Chad to the west."


def test_question_rule_half_of_the_hops_and_the_hop_into_the_answer():
    assert grounded_enough([False, True, True]) and grounded_enough([True, False, False, True])
    assert not grounded_enough([True, True, False])  # the hop into the answer is not stated by text
    assert not grounded_enough([False, False, True]) and not grounded_enough([])


# ---------------------------------------------------------------- the sampler's preference

def test_the_last_hop_is_a_grounded_one_whenever_one_is_offered():
    g = graph()
    options = [("capital", "city/havana", False), ("serves_city", "airport/MUHA", True)]
    opts_at_havana = [("country", "country/CU", False), ("serves_city", "airport/MUHA", True)]
    for seed in range(20):
        assert pick_hop(g, random.Random(seed), "country/CU", options, 8.0, last=True)[1] == "city/havana"
        assert pick_hop(g, random.Random(seed), "city/havana", opts_at_havana, 8.0, last=True)[1] == "country/CU"


def test_switched_off_the_sampler_draws_uniformly_on_the_same_random_stream():
    g = graph()
    options = [("capital", "city/havana", False), ("serves_city", "airport/MUHA", True)]
    picks = [pick_hop(g, random.Random(s), "city/havana", options, 1.0, last=True) for s in range(20)]
    assert picks == [random.Random(s).choice(options) for s in range(20)]
    assert {p[1] for p in picks} == {"city/havana", "airport/MUHA"}  # the ungrounded hop gets through


def test_weighted_sampler_prefers_a_text_grounded_chain():
    g = graph()
    g = Graph([*g.entities.values(), E("currency/MXN", "currency", "Mexican peso")],
              [*g.triples, T("country/MX", "currency", "currency/MXN")])
    pools = {"country": ["country/MX"]}  # Mexico -> Mexico City (stated by its summary) or -> the peso (not)
    on = [sampling.sample_chain_weighted(g, random.Random(s), 1, pools, text_weight=8.0) for s in range(10)]
    off = [sampling.sample_chain_weighted(g, random.Random(s), 1, pools) for s in range(10)]
    assert all(c[0].relation == "capital" for c in on)
    assert any(c[0].relation == "currency" for c in off)  # switched off, the ungrounded hop gets through


# ---------------------------------------------------------------- the row and the audit

def _row(g, chain):
    d = draft_from_chain(chain)
    return {"question_id": "q1", "question": "?", "answer": "x", "formalization": {**d.formalization, "binding": d.binding},
            "seed_entity": d.seed, "text_grounding": G.text_grounding(g, d)}


def test_row_evidence_names_page_and_sentence_per_hop_and_the_audit_recomputes_it():
    g = graph()
    row = _row(g, [g.triple("city/jamaica", "country", "country/CU"), g.triple("country/CU", "capital", "city/havana")])
    tg = row["text_grounding"]
    assert [h["sentence"] for h in tg["hops"]] == [None, "Havana is the capital of Cuba."]
    assert tg["text_grounded"] and tg["grounded_hops"] == 1 and tg["path_hops"] == 2
    pages = G.graph_page_text(g)
    assert G.recheck_row(g, row, pages)["text_grounded"] is True


def test_audit_rejects_a_stored_sentence_that_is_not_on_its_page_or_names_one_end():
    g = graph()
    pages = G.graph_page_text(g)
    row = _row(g, [g.triple("city/jamaica", "country", "country/CU"), g.triple("country/CU", "capital", "city/havana")])
    row["text_grounding"]["hops"][1]["sentence"] = "Havana is the capital of Cuba and of the world."
    r = G.recheck_row(g, row, pages)
    assert not r["text_grounded"] and "sentence not on" in r["problems"][0]
    row["text_grounding"]["hops"][1]["sentence"] = "Cuba is an island country."  # on the page, names one end
    assert "does not name both ends" in G.recheck_row(g, row, pages)["problems"][0]
    # the row's own flag is never read: a row claiming grounding without sentences is not grounded
    row["text_grounding"] = {"hops": [], "grounded_hops": 2, "path_hops": 2, "text_grounded": True}
    assert G.recheck_row(g, row, pages)["text_grounded"] is False


def test_audit_text_line_fails_under_half_and_is_not_checked_when_switched_off():
    g = graph()
    good = _row(g, [g.triple("city/jamaica", "country", "country/CU"), g.triple("country/CU", "capital", "city/havana")])
    bad = dict(_row(g, [g.triple("airport/MUHA", "serves_city", "city/havana")]), question_id="q2")
    bad3 = dict(bad, question_id="q3")
    check = lambda row: G.recheck_row(g, row, G.graph_page_text(g))  # noqa: E731
    tg = A.text_grounding_audit([good, bad, bad3], check)
    assert tg["text_grounded"] == 1 and tg["share"] == round(1 / 3, 4)
    audit = {"text_grounding": tg, "range_only": {"entities": 0}, "answer_repeats": {"over": []}}
    assert any("text-grounded" in p for p in A.problems(_audit_stub(audit)))
    off = A.text_grounding_audit([good, bad, bad3], None)
    assert off["checked"] is False and off["share"] is None
    assert not any("text-grounded" in p for p in A.problems(_audit_stub({**audit, "text_grounding": off})))


def _audit_stub(extra):
    base = {"contradicted": 0, "type_mismatch": 0, "unique_in_graph_only": 0, "sft_strict_violations": 0,
            "findability": {}, "hub": {"share": 0.1, "entity": "x"}, "questions": 10, "hardened_share": 1.0}
    return {**base, **extra}


def test_range_only_entities_are_recomputed_from_the_formalization():
    g = graph()
    row = _row(g, [g.triple("city/havana", "country", "country/CU"), g.triple("country/CU", "capital", "city/havana")])
    pinned = dict(row, formalization={"triples": [["?y0", "country", "?x1"]], "target": "?x1", "binding":
                                      {"?y0": "city/havana", "?x1": "country/CU"},
                                      "constraints": [{"var": "?y0", "type": "city"},
                                                      {"var": "?y0", "attr": "population", "min": 1, "max": 9}]})
    r = A.range_only_audit([pinned])
    assert r["entities"] == 1 and r["rows"][0]["entity"] == "city/havana"
    assert any("ranges alone" in p for p in A.problems(_audit_stub({"range_only": r})))
    anchored = dict(pinned, formalization={**pinned["formalization"],
                                           "triples": [["?y0", "country", "?x1"], ["?y0", "summary_mentions", "wiki/X"]]})
    assert A.range_only_audit([anchored])["entities"] == 0  # a findable clue reaches it: ranges only narrow


def test_answer_repeats_over_two_in_ten_fail_the_audit():
    rows = [{"question_id": f"q{i}", "answer": "Madrid", "answer_type": "entity",
             "formalization": {"target": "?x1", "binding": {"?x1": "city/madrid" if i < 3 else f"city/{i}"}}}
            for i in range(10)]
    r = A.answer_repeats(rows)
    assert r["allowed"] == 2 and r["over"] == ["city/madrid"]
    assert any("answers on more than 2" in p for p in A.problems(_audit_stub({"answer_repeats": r})))
    assert A.answer_repeats(rows[1:])["over"] == []  # twice is allowed


def test_hub_share_over_a_fifth_of_chains_fails_the_audit():
    assert any("of chains" in p for p in A.problems(_audit_stub({"hub": {"share": 0.3, "entity": "country/DE"}})))
    assert not any("of chains" in p for p in A.problems(_audit_stub({"hub": {"share": 0.2, "entity": "country/DE"}})))


def test_text_index_is_built_once_per_graph():
    g = graph()
    assert text_index(g) is text_index(g)


def test_kg_stats_counts_text_grounded_triples_per_relation():
    assert graph_stats(graph(), max_k=2)["text_grounded_triples"] == {"capital": 2, "country": 2}


def test_a_text_grounded_hop_is_findable_through_its_wikipedia_summary():
    g = graph()
    d = draft_from_chain([g.triple("city/jamaica", "country", "country/CU"), g.triple("country/CU", "capital", "city/havana")])
    blind = {"https://kb.local/country/CU", "https://kb.local/city/havana"}  # the fact pages no query finds
    fa = F.measure(g, d, F.env_search(BrowseEnv(FakeBackend(g, blind=blind)), "?"), 10)
    hop = next(c for c in fa["clues"] if c["var"] == "?x2")
    assert hop["evidence_url"] == "https://en.wikipedia.org/wiki/Cuba" and hop["rank"] is not None
    # a hop no summary sentence states gets no Wikipedia page: Jamaica -> Cuba stays unfound here
    fa2 = F.measure(g, d, F.env_search(BrowseEnv(FakeBackend(g, blind=blind | {"https://kb.local/city/jamaica"})), "?"), 10)
    first = next(c for c in fa2["clues"] if c["var"] == "?x1")
    assert first["rank"] is None and "wikipedia" not in first["evidence_url"]


def test_planning_requires_text_grounded_chains_until_its_share_is_planned():
    g = graph()
    g = Graph([*g.entities.values(), E("currency/MXN", "currency", "Mexican peso")],
              [*g.triples, T("country/MX", "currency", "currency/MXN")])
    idx = text_index(g)

    def plan(share, seed):
        opts = browse_opts(seeds=2, seed=seed, min_hops=1, max_hops=1, attribute_answer_share=0.0,
                           max_share_per_entity=1.0, max_per_pattern=5, seed_types=("country",),
                           text_grounded_share=share)
        items, _ = planning.plan_items(g, opts)
        return [grounded_enough([idx.hop(*t) is not None for t in it["chain"]]) for it in items]

    assert all(all(plan(1.0, s)) for s in range(6))
    assert any(not all(plan(0.0, s)) for s in range(6))  # switched off, ungrounded chains are planned too


def test_range_only_audit_counts_rows_without_a_binding_as_not_measured():
    row = {"question_id": "q1", "formalization": {"triples": [["?x", "country", "?y"]], "constraints": []}}
    r = A.range_only_audit([row])
    assert r["entities"] == 0 and r["not_measured"] == 1  # never a silent 0 for a row it could not read
    assert any("not measured" in p for p in A.problems(_audit_stub({"range_only": r})))
