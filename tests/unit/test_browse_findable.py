"""Findable clues (#23 item 1): every hidden entity is reached by a link whose own-words query ranks the page
stating it in the top k of the agent's search backend; a question whose entry no search finds is dropped,
one with any unfindable hidden entity is not an RL row; the audit recomputes both from the stored queries."""

from __future__ import annotations

import random

import pytest

from crucible.pipelines.browse import audit as A
from crucible.pipelines.browse import findable as F
from crucible.pipelines.browse import stages
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.kg import wiki as W
from crucible.pipelines.browse.kg.model import Graph
from crucible.pipelines.browse.search.env import BrowseEnv
from crucible.pipelines.config import load_config
from crucible.pipelines.options import PolicyKind, build_options
from tests.support.browse_rows import trajectory
from tests.support.fake_search import FakeBackend
from tests.unit.browse_helpers import E, T, small_graph
from tests.unit.test_browse_summary_links import art
from tests.unit.test_synth_harden import airport_draft, toy_graph

SPZO = "https://kb.local/airport/SPZO"  # states "... serves the city of Cusco": the entry's evidence
PERU = "https://kb.local/country/PE"  # states "The currency of Peru is the Peruvian sol": the last hop's


def _names(g, eid):
    return F.hidden_names(g, eid)


def birk_draft(g):
    """An obfuscated start: an airport reached only by its relation clue (serving Reykjavík)."""
    form = {"triples": [["?y0", "serves_city", "city/5"], ["?y0", "country", "?x1"], ["?x1", "currency", "?x2"]],
            "target": "?x2", "constraints": [{"var": "?y0", "type": "airport"}], "distinct": True}
    d = S.Draft(form, {"?y0": "airport/BIRK", "?x1": "country/IS", "?x2": "currency/ISK"}, "airport/BIRK")
    d.question = S.render_question(g, d)
    return d


# ---------------------------------------------------------------- measuring

def test_links_whose_queries_find_their_pages_make_the_question_findable():
    g = small_graph()
    d = birk_draft(g)
    backend = FakeBackend(g)
    fa = F.measure(g, d, F.env_search(BrowseEnv(backend), d.question), 10)
    assert fa["entry"] == "?y0" and fa["hidden"] == ["?x1", "?x2", "?y0"]
    by_var = {c["var"]: c for c in fa["clues"]}
    clue = by_var["?y0"]  # the entry: its relation clue, from a named entity
    assert clue["kind"] == "clue" and clue["given"] == "city/5" and clue["query"] == "airport serves the city of Reykjavík"
    assert clue["evidence_url"] == "https://kb.local/airport/BIRK" and clue["rank"] == 1
    assert by_var["?x2"]["kind"] == "hop" and by_var["?x2"]["given"] == "?x1"
    assert all(c["rank"] is not None and c["rank"] <= 10 for c in fa["clues"])
    assert fa["entry_findable"] is True and fa["findable"] is True and fa["unfound"] == []
    assert set(backend.queries) == {c["query"] for c in fa["clues"]}  # the backend saw exactly these


def test_the_named_entitys_page_that_lists_the_hidden_one_states_the_link_too():
    g = small_graph()
    d = birk_draft(g)
    fa = F.measure(g, d, F.env_search(BrowseEnv(FakeBackend(g, blind={"https://kb.local/airport/BIRK"})), d.question), 10)
    entry = next(c for c in fa["clues"] if c["var"] == "?y0")
    # "Reykjavík is served by Reykjavik Airport": a reader who finds the city's page reads the airport there
    assert entry["evidence_url"] == "https://kb.local/city/5" and entry["rank"] is not None
    assert F.stating_pages(g, "https://kb.local/airport/BIRK", "airport/BIRK", "city/5") == [
        "https://kb.local/airport/BIRK", "https://kb.local/city/5"]
    assert F.stating_pages(g, "https://kb.local/airport/BIRK", "airport/BIRK", "country/NL") == [
        "https://kb.local/airport/BIRK"]  # a page that does not name it is not one


def test_a_page_no_query_finds_leaves_its_entity_and_everything_behind_it_unfound():
    g = small_graph()
    d = birk_draft(g)
    blind = {"https://kb.local/airport/BIRK", "https://kb.local/city/5"}
    fa = F.measure(g, d, F.env_search(BrowseEnv(FakeBackend(g, blind=blind)), d.question), 10)
    entry = next(c for c in fa["clues"] if c["var"] == "?y0")
    assert entry["rank"] is None and entry["reason"] == "evidence page not in the top 10"
    # the next hop's page is the same airport page: nothing is reached from the named entities
    assert fa["entry_findable"] is False and fa["findable"] is False and fa["unfound"] == ["?x1", "?x2", "?y0"]


def test_rank_must_be_within_top_k():
    fa = {"top_k": 3, "entry": "?a", "hidden": ["?a", "?b"],
          "clues": [{"var": "?a", "given": "X", "rank": 3}, {"var": "?b", "given": "?a", "rank": 4}]}
    assert F.verdict(fa) == {"entry_findable": True, "findable": False, "unfound": ["?b"]}
    # a link from a hidden entity counts only once that entity is found (in any order of the links)
    fa["clues"] = [{"var": "?b", "given": "?a", "rank": 1}, {"var": "?a", "given": "X", "rank": 2}]
    assert F.verdict(fa)["findable"] is True
    assert F.verdict(fa, ranks=[1, None]) == {"entry_findable": False, "findable": False, "unfound": ["?a", "?b"]}


def test_a_failed_search_measures_nothing_and_drops_nothing():
    g = small_graph()
    d = birk_draft(g)
    fa = F.measure(g, d, F.env_search(BrowseEnv(FakeBackend(g, fail=True)), d.question), 10)
    assert all(c["rank"] is None and c["reason"].startswith("search failed") for c in fa["clues"])
    assert fa["entry_findable"] is None and fa["findable"] is None


# ---------------------------------------------------------------- queries never name a hidden entity

def test_hidden_names_are_cut_whatever_their_case_accents_or_article():
    q, why = F.clue_query("Reykjavík Airport serves the city of The Reykjavik.", "airport",
                          ["reykjavik airport", "Reykjavik"])
    assert why is None and q == "airport serves the city of The"
    assert F.clue_query("Iceland is in Europe.", "country", ["Iceland", "Europe"]) == \
        (None, "nothing but hidden names in the fact")


def test_a_query_that_would_name_a_hidden_entity_is_never_built(monkeypatch):
    # the type word is added after the cut: an entity named like its type still never reaches a query
    assert F.clue_query("Utrecht is in Netherlands.", "Utrecht", ["Utrecht"]) == \
        (None, "the query would name a hidden entity (Utrecht)")
    monkeypatch.setattr(F, "names_in", lambda text, names: None)  # the guard off: the name gets through
    assert F.clue_query("Utrecht is in Netherlands.", "Utrecht", ["Utrecht"]) == ("Utrecht is in Netherlands", None)


@pytest.mark.parametrize("make", [birk_draft, lambda g: _written(g, airport_draft(g))],
                         ids=["obfuscated-start", "named-start"])
def test_no_query_sent_names_a_hidden_entity_but_the_one_it_starts_from(make):
    g = toy_graph() if make is not birk_draft else small_graph()
    d = make(g)
    backend = FakeBackend(g)
    fa = F.measure(g, d, F.env_search(BrowseEnv(backend), d.question), 10)
    assert backend.queries
    for c in fa["clues"]:
        given = d.binding.get(c["given"])
        others = [n for v, e in d.binding.items() if e != given for n in _names(g, e)]
        assert c["query"] and F.names_in(c["query"], others) is None, c
        if not c["given"].startswith("?"):  # from a named entity: no hidden name at all
            assert F.names_in(c["query"], [n for e in d.binding.values() for n in _names(g, e)]) is None


def _written(g, d):
    d.question = S.render_question(g, d)
    return d


# ---------------------------------------------------------------- the synthesis gate

@pytest.fixture
def gate_ctx(monkeypatch):
    """process_question over the toy graph with a fake search backend and scripted (wrong) rollouts."""
    g = toy_graph()
    monkeypatch.setattr(stages, "roll_out", lambda job, ctx: stages.RolloutOutcome(job.key, job.index, trajectory(
        traj_id=f"{job.key}-{job.index}", question_id=job.key, question=job.question, verdict="incorrect"), None))

    def make(blind=(), **opts):
        o = build_options(load_config("browse", [])).browse.replace(rounds=0, k=2, harden_rounds=0, **opts)
        env = BrowseEnv(FakeBackend(g, blind=blind))
        return stages.Context(graph=g, client=None, env=env, opts=o, run_id="r", model="m", prompts={},
                              policy=PolicyKind.NATIVE, reward=None)

    return make


def _item(g):
    return {"key": "q-1", "chain": [["airport/SPZO", "serves_city", "city/cusco"], ["city/cusco", "country", "country/PE"],
                                    ["country/PE", "currency", "currency/PEN"]], "pattern": S.pattern_hash(airport_draft(g))}


def test_a_findable_question_is_kept_with_its_ranks_and_is_an_rl_row(gate_ctx):
    ctx = gate_ctx()
    (q,) = stages.process_question(_item(ctx.graph), ctx).rows["questions"]
    fa = q["findability"]
    assert fa["top_k"] == 10 and fa["entry"] == "?x1" and fa["findable"] is True
    assert [c["kind"] for c in fa["clues"]] == ["hop", "hop", "hop"] and all(c["rank"] for c in fa["clues"])
    assert q["meta"]["verified"]["findable"] is True and q["split"] == "rl"
    from crucible.pipelines.store.records import record_type

    assert record_type("questions").errors(q) == []  # the row builder and the schema agree


def test_a_question_whose_entry_no_search_finds_is_dropped_with_its_reason(gate_ctx):
    ctx = gate_ctx(blind={SPZO})
    res = stages.process_question(_item(ctx.graph), ctx)
    assert "questions" not in res.rows and "browse_trajectories" not in res.rows
    (f,) = res.rows["failures"]
    assert f["stage"] == "findable" and f["kind"] == "filtered"
    assert f["reason"].startswith("entry ?x1 not findable in the top 10: Alejandro Velasco Astete")
    assert "evidence page not in the top 10" in f["reason"]


def test_an_unfindable_later_hop_keeps_the_question_but_not_as_an_rl_row(gate_ctx):
    ctx = gate_ctx(blind={PERU})
    (q,) = stages.process_question(_item(ctx.graph), ctx).rows["questions"]
    assert q["findability"]["entry_findable"] is True and q["findability"]["unfound"] == ["?x3"]
    assert q["meta"]["verified"]["findable"] is False and q["split"] == "none"
    trajs = stages.process_question(_item(ctx.graph), ctx).rows["browse_trajectories"]
    assert all("rl: a clue not findable" in t["drop_reasons"] for t in trajs)


def test_with_the_check_off_the_unfindable_question_becomes_an_rl_row(gate_ctx):
    ctx = gate_ctx(blind={SPZO}, findable_check=False)
    res = stages.process_question(_item(ctx.graph), ctx)
    (q,) = res.rows["questions"]
    assert q["findability"]["entry_findable"] is False  # still measured and stored ...
    assert q["meta"]["verified"]["findable"] is None and q["split"] == "rl"  # ... but neither dropped nor gated
    assert not res.rows.get("failures")


def test_k_is_the_config_key(gate_ctx):
    ctx = gate_ctx(findable_top_k=1)
    (q,) = stages.process_question(_item(ctx.graph), ctx).rows["questions"]
    assert q["findability"]["top_k"] == 1
    assert q["findability"]["findable"] is all(c["rank"] == 1 for c in q["findability"]["clues"])


def test_without_a_search_env_nothing_is_measured(gate_ctx):
    ctx = gate_ctx()
    ctx.env = None
    (q,) = stages.process_question(_item(ctx.graph), ctx).rows["questions"]
    assert q["findability"] is None and q["meta"]["verified"]["findable"] is None


# ---------------------------------------------------------------- the real local index

def test_on_the_real_local_index_the_links_are_found(tmp_path):
    from crucible.pipelines.browse.api import build_corpus
    from crucible.pipelines.browse.corpus import render_pages
    from crucible.pipelines.browse.search.backends import LocalBackend

    g = small_graph()
    build_corpus(list(render_pages(g)), tmp_path / "corpus")
    env = BrowseEnv(LocalBackend(tmp_path / "corpus"))
    d = birk_draft(g)
    fa = F.measure(g, d, F.env_search(env, d.question), 10)
    assert fa["entry_findable"] is True and fa["findable"] is True, fa["clues"]
    entry = next(c for c in fa["clues"] if c["var"] == "?y0")
    # the airport's page, or Reykjavík's ("... is served by Reykjavik Airport"), first
    assert entry["rank"] == 1 and entry["evidence_url"] in ("https://kb.local/airport/BIRK", "https://kb.local/city/5")
    pages = {"https://kb.local/airport/BIRK", "https://kb.local/city/5"}
    blind = F.measure(g, d, lambda q, k: [u for u in F.env_search(env, d.question)(q, k) if u not in pages], 10)
    assert blind["entry_findable"] is False


# ---------------------------------------------------------------- the audit

def _row(qid, fa):
    return {"question_id": qid, "question": f"question {qid}?", "findability": fa}


def _fa(ranks, claimed=True):
    clues = [{"kind": "hop", "var": f"?x{i}", "entity": f"e/{i}", "given": "N" if i == 0 else f"?x{i - 1}",
              "clue": "a -r-> b", "query": f"query {i}", "evidence_url": f"https://kb.local/e/{i}", "rank": r,
              "reason": None} for i, r in enumerate(ranks)]
    return {"top_k": 10, "entry": "?x0", "hidden": [c["var"] for c in clues], "clues": clues,
            "entry_findable": claimed, "findable": claimed, "unfound": []}


def test_the_audit_recomputes_findability_from_the_stored_ranks_not_the_flags():
    rows = [_row("a", _fa([1, 2])), _row("b", _fa([None, 1])), _row("c", _fa([3, 11])), {"question_id": "d"}]
    fa = F.audit_findability(rows)
    assert fa["source"] == "stored" and fa["clues"] == 6 and fa["clues_findable"] == 4 and fa["clue_share"] == 0.6667
    # b and c claim findable; the ranks say b has no entry and c is not findable (11 > top 10)
    assert fa["without_findable_entry"] == 1 and fa["without_findable_entry_rows"][0]["question_id"] == "b"
    assert fa["not_findable"] == 2 and fa["questions_not_measured"] == 1
    a = A.audit_rows(rows, [], [])
    assert a["findability"] == fa
    assert "1 questions have no findable entry" in A.problems(a)
    assert any(p.startswith("only 67% of clues are findable") for p in A.problems(a))
    assert "findable clues (stored): 4/6 (67%)" in A.format_audit(a)


def test_the_audit_reruns_the_stored_queries_when_a_backend_is_given():
    rows = [_row("a", _fa([1, 2]))]
    asked = []

    def search_for(question):
        def search(query, k):
            asked.append((question, query, k))
            return ["https://kb.local/e/9"]  # the corpus changed: no evidence page comes back now
        return search

    fa = F.audit_findability(rows, search_for)
    assert fa["source"] == "rerun" and fa["clues_findable"] == 0 and fa["without_findable_entry"] == 1
    assert asked == [("question a?", "query 0", 10), ("question a?", "query 1", 10)]

    def broken(question):
        def search(query, k):
            raise RuntimeError("down")
        return search

    assert F.audit_findability(rows, broken)["source"] == "stored"  # said so, not silently rerun


def test_without_findability_rows_the_audit_reports_not_measured():
    a = A.audit_rows([{"question_id": "q", "question": "x?"}], [], [])
    assert a["findability"]["without_findable_entry"] is None and a["findability"]["clue_share"] is None
    assert not any("findable" in p for p in A.problems(a))
    assert "findable clues: not measured" in A.format_audit(a)


def test_rerun_through_the_env_uses_the_tool_cache(tmp_path):
    from crucible.pipelines.browse.search.cache import ToolCache

    g = small_graph()
    d = birk_draft(g)
    backend = FakeBackend(g)
    env = BrowseEnv(backend, cache=ToolCache(tmp_path / "cache"))
    first = F.measure(g, d, F.env_search(env, d.question), 10)
    calls = backend.calls
    again = F.audit_findability([{"question_id": "q", "question": d.question, "findability": first}],
                                lambda question: F.env_search(env, question))
    assert backend.calls == calls and again["source"] == "rerun" and again["clues_findable"] == 3


def test_hardened_questions_over_the_toy_graph_measure_every_link():
    """Every link of a hardened question gets a record: a query or the reason there is none."""
    from crucible.pipelines.browse import harden as H

    g = toy_graph()
    d = airport_draft(g)
    final, st = H.harden(g, d, random.Random(2), rounds=2, writer=lambda x: (S.render_question(g, x), "template"),
                         answer="Peruvian sol", aliases=["sol"])
    fa = F.measure(g, final, F.env_search(BrowseEnv(FakeBackend(g)), final.question), 10)
    assert len(fa["clues"]) == len(F.links(final)) >= 3
    assert all(c["query"] or c["reason"] for c in fa["clues"])
    assert set(fa["hidden"]) == set(final.binding)


def test_an_entry_no_relation_reaches_is_dropped_naming_why():
    """An obfuscated start described by its type (and ranges) only: no link reaches it at all."""
    g = small_graph()
    form = {"triples": [["?y0", "country", "?x1"], ["?x1", "currency", "?x2"]], "target": "?x2",
            "constraints": [{"var": "?y0", "type": "airport"}, {"var": "?y0", "attr": "elevation_ft", "min": 40, "max": 50}],
            "distinct": True}
    d = S.Draft(form, {"?y0": "airport/BIRK", "?x1": "country/IS", "?x2": "currency/ISK"}, "airport/BIRK")
    d.question = S.render_question(g, d)
    opts = {"findable_top_k": 10, "findable_check": True}
    fa, findable, why = F.check(BrowseEnv(FakeBackend(g)), g, d, d.question, opts)
    assert findable is False and fa["entry"] == "?y0" and "?y0" in fa["unfound"]
    assert why == "entry ?y0 not findable in the top 10: no relation or hop reaches it (its type and numeric ranges only)"
    assert F.check(BrowseEnv(FakeBackend(g)), g, d, d.question, {**opts, "findable_check": False})[1:] == (None, None)


# ---------------------------------------------------------------- a summary clue is searched with the question's words

def _summary_draft():
    """Switzerland reached only by "whose Wikipedia summary mentions Lake Geneva"; its summary's sentence holds
    words the question never gives, and two other summaries name the lake beside the word "country"."""
    ents = [E("country/CH", "country", "Switzerland"), E("city/1", "city", "Bern"),
            art("Switzerland", "Switzerland is a landlocked state. Its chocolatiers sell fondue by Lake Geneva."),
            art("Lake Geneva", "Lake Geneva is a lake on the north side of the Alps."),
            art("Geneva", "Geneva is a city on Lake Geneva, the country's second city."),
            art("Lausanne", "Lausanne is a town on Lake Geneva, in the country's west.")]
    tris = [T("country/CH", "capital", "city/1"), T("country/CH", "described_by", "wiki/Switzerland"),
            T("wiki/Switzerland", "mentions", "wiki/Lake_Geneva")]
    tris += W.summary_mention_triples([e for e in ents if e.type == "article"], tris, {"source": "test"})
    g = Graph(ents, tris)
    form = {"triples": [["?y0", "summary_mentions", "wiki/Lake_Geneva"], ["?y0", "capital", "?x1"]],
            "target": "?x1", "constraints": [{"var": "?y0", "type": "country"}], "distinct": True}
    d = S.Draft(form, {"?y0": "country/CH", "?x1": "city/1"}, "country/CH")
    d.question = S.render_question(g, d)
    return g, d


def test_a_summary_clue_is_searched_with_the_questions_words_not_the_sentence_it_hides():
    g, d = _summary_draft()
    assert "Wikipedia summary mentions Lake Geneva" in d.question and "fondue" not in d.question
    fa = F.measure(g, d, F.env_search(BrowseEnv(FakeBackend(g)), d.question), 2)
    clue = next(c for c in fa["clues"] if c["var"] == "?y0")
    assert clue["query"] == "country whose Wikipedia summary mentions Lake Geneva"
    # the Geneva and Lausanne summaries answer those words as well: Switzerland's is third, past k=2
    assert clue["rank"] is None and clue["reason"] == "evidence page not in the top 2"
    assert fa["entry_findable"] is False and "?y0" in fa["unfound"]
    assert F.check(BrowseEnv(FakeBackend(g)), g, d, d.question,
                   {"findable_top_k": 2, "findable_check": True})[2].startswith("entry ?y0 not findable in the top 2")


def test_switched_off_the_hidden_sentence_makes_the_summary_clue_look_findable(monkeypatch):
    """What the check measured before: the summary's own sentence ("chocolatiers sell fondue"), a text the
    question never gives, finds the page at rank 1 and the question passed as findable."""
    monkeypatch.setattr(F, "QUESTION_WORDED", frozenset())
    g, d = _summary_draft()
    fa = F.measure(g, d, F.env_search(BrowseEnv(FakeBackend(g)), d.question), 2)
    clue = next(c for c in fa["clues"] if c["var"] == "?y0")
    assert "fondue" in clue["query"] and clue["rank"] == 1 and fa["findable"] is True
