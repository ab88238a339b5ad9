"""Relation cards: a hop or clue the world does not pin is never asked, whatever the graph says.

Each check has a test where it must reject and a test with it switched off (an empty card list entry,
or the anchor rule patched away) showing the question that would otherwise be written."""

import random
from dataclasses import replace

import pytest

from crucible.pipelines.browse import audit as A
from crucible.pipelines.browse import draft as D
from crucible.pipelines.browse import harden as H
from crucible.pipelines.browse import obfuscate as obfuscate_mod
from crucible.pipelines.browse import sampling
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.kg import cards as C
from crucible.pipelines.browse.kg.model import Entity, Graph, GraphError, Triple


def dc_graph() -> Graph:
    """Two US cities, one in Maryland and one in the District of Columbia."""
    E = [Entity("city/bal", "city", "Baltimore", attributes={"population": 580000}),
         Entity("city/wash", "city", "Washington", attributes={"population": 690000}),
         Entity("us_state/MD", "us_state", "Maryland"), Entity("us_state/DC", "us_state", "District of Columbia"),
         Entity("country/US", "country", "United States")]
    T = [Triple("city/bal", "state", "us_state/MD"), Triple("city/wash", "state", "us_state/DC"),
         Triple("us_state/MD", "country", "country/US"), Triple("us_state/DC", "country", "country/US")]
    return Graph(E, T)


def capitals_graph() -> Graph:
    E = [Entity("country/ZA", "country", "South Africa"), Entity("country/PE", "country", "Peru"),
         Entity("city/pretoria", "city", "Pretoria"), Entity("city/lima", "city", "Lima")]
    T = [Triple("country/ZA", "capital", "city/pretoria"), Triple("country/PE", "capital", "city/lima"),
         Triple("city/pretoria", "country", "country/ZA"), Triple("city/lima", "country", "country/PE")]
    return Graph(E, T)


def airports_graph() -> Graph:
    """Buenos Aires has two airports with IATA codes (Aeroparque 7 km from the centre, Ezeiza 22 km);
    the graph links only one of them to the city. Cusco has one."""
    E = [Entity("city/ba", "city", "Buenos Aires", attributes={"latitude": -34.61, "longitude": -58.38}),
         Entity("city/cusco", "city", "Cusco", attributes={"latitude": -13.53, "longitude": -71.97}),
         Entity("city/nowhere", "city", "Nowhere"),
         Entity("airport/SABE", "airport", "Jorge Newbery Airpark",
                attributes={"iata": "AEP", "latitude": -34.559, "longitude": -58.416}),
         Entity("airport/SAEZ", "airport", "Ministro Pistarini International Airport",
                attributes={"iata": "EZE", "latitude": -34.822, "longitude": -58.536}),
         Entity("airport/SPZO", "airport", "Alejandro Velasco Astete Airport",
                attributes={"iata": "CUZ", "latitude": -13.536, "longitude": -71.939}),
         Entity("airport/XNOW", "airport", "Nowhere Field", attributes={"iata": "NOW"})]
    T = [Triple("airport/SABE", "serves_city", "city/ba"), Triple("airport/SPZO", "serves_city", "city/cusco"),
         Triple("airport/XNOW", "serves_city", "city/nowhere")]
    return Graph(E, T)


@pytest.fixture(scope="module")
def cards():
    return C.load_cards()


def without(cards: C.Cards, relation: str, **changes) -> C.Cards:
    """The cards with one card's lists changed: the check switched off for that relation."""
    return C.Cards({**cards.cards, relation: replace(cards.cards[relation], **changes)}, cards.path)


# ---------------------------------------------------------------- the file

def test_the_shipped_cards_cover_every_walked_and_clue_relation(cards):
    for rel in set(S.REL_PHRASE) | set(D.INV_PHRASE) | set(H.CLUE_RELATIONS):
        assert cards.get(rel) is not None, rel
    assert "us_state/DC" in cards.get("state").excluded_objects
    assert cards.get("serves_city").inverse == "isolated" and cards.get("serves_city").isolation_km > 0


@pytest.mark.parametrize("text,where", [
    ("cards:\n  state:\n    type_word: US state\n", "cards/state: 'forward' is a required property"),
    ("cards:\n  state: {type_word: x, forward: maybe, inverse: one, clue_complete: true, completeness: a, "
     "reviewed: b}\n", "cards/state/forward: 'maybe' is not one of"),
    ("cards:\n  serves_city: {type_word: x, forward: one, inverse: isolated, clue_complete: true, completeness: a, "
     "reviewed: b}\n", "inverse 'isolated' needs isolation_km"),
    ("cards:\n  Bad-Name: {type_word: x, forward: one, inverse: one, clue_complete: true, completeness: a, "
     "reviewed: b}\n", "cards: 'Bad-Name' does not match"),
    ("[1, 2]\n", "(top level)"),
])
def test_a_bad_card_file_names_the_file_the_card_and_the_field(tmp_path, text, where):
    p = tmp_path / "cards.yaml"
    p.write_text(text)
    with pytest.raises(GraphError) as exc:
        C.load_cards(str(p))
    assert str(p) in str(exc.value) and where in str(exc.value)


# ---------------------------------------------------------------- type words: "US state"

def test_a_us_state_hop_never_answers_the_district_of_columbia(cards):
    g = dc_graph()
    assert "federal district" in C.hop_problem(g, cards, "city/wash", "state", "us_state/DC", False)
    assert C.hop_problem(g, cards, "city/bal", "state", "us_state/MD", False) is None
    hops = {o for r, o, _inv in sampling.hop_options(g, "city/wash", inverse=False)}
    assert "us_state/DC" not in hops and {o for r, o, _i in sampling.hop_options(g, "city/bal", False)} == {"us_state/MD"}


def test_switched_off_the_district_of_columbia_is_asked_as_a_state(cards, monkeypatch):
    g = dc_graph()
    monkeypatch.setattr(sampling, "load_cards", lambda: without(cards, "state", excluded_objects={}))
    assert ("state", "us_state/DC", False) in sampling.hop_options(g, "city/wash", inverse=False)
    d = S.draft_from_chain([g.triple("city/wash", "state", "us_state/DC")])
    assert S.render_question(g, d) == "What is the US state where Washington is located?"


def test_a_clue_naming_an_excluded_object_is_refused(cards):
    assert "federal district" in C.clue_problem(cards, "state", "us_state/DC")
    assert C.clue_problem(cards, "state", "us_state/MD") is None


# ---------------------------------------------------------------- several capitals

def test_a_country_with_several_capitals_is_never_a_capital_hop_either_way(cards):
    g = capitals_graph()
    assert "three capitals" in C.hop_problem(g, cards, "country/ZA", "capital", "city/pretoria", False)
    assert "three capitals" in C.hop_problem(g, cards, "country/ZA", "capital", "city/pretoria", True)
    assert C.hop_problem(g, cards, "country/PE", "capital", "city/lima", False) is None
    assert all(r != "capital" for r, _o, _i in sampling.hop_options(g, "country/ZA", inverse=False))
    assert all(r != "capital" for r, _o, _i in sampling.hop_options(g, "city/pretoria", inverse=True))
    assert ("capital", "country/PE", True) in sampling.hop_options(g, "city/lima", inverse=True)


def test_switched_off_pretoria_is_asked_as_the_capital(cards, monkeypatch):
    g = capitals_graph()
    monkeypatch.setattr(sampling, "load_cards", lambda: without(cards, "capital", many_valued={}))
    assert ("capital", "city/pretoria", False) in sampling.hop_options(g, "country/ZA", inverse=False)


# ---------------------------------------------------------------- several airports

def test_the_airport_serving_a_city_with_two_airports_is_not_one_valued(cards):
    g = airports_graph()
    why = C.hop_problem(g, cards, "airport/SABE", "serves_city", "city/ba", True)
    assert why and "airport/SAEZ" in why and "within 80 km" in why
    assert C.hop_problem(g, cards, "airport/SPZO", "serves_city", "city/cusco", True) is None
    assert "cannot decide" in C.hop_problem(g, cards, "airport/XNOW", "serves_city", "city/nowhere", True)
    # "the city served by Jorge Newbery Airpark" is still one city
    assert C.hop_problem(g, cards, "airport/SABE", "serves_city", "city/ba", False) is None
    assert ("serves_city", "airport/SABE", True) not in sampling.hop_options(g, "city/ba", inverse=True)
    assert ("serves_city", "airport/SPZO", True) in sampling.hop_options(g, "city/cusco", inverse=True)


def test_switched_off_the_graph_s_one_airport_is_taken_for_the_world_s(cards, monkeypatch):
    g = airports_graph()
    monkeypatch.setattr(sampling, "load_cards", lambda: without(cards, "serves_city", inverse="one"))
    assert ("serves_city", "airport/SABE", True) in sampling.hop_options(g, "city/ba", inverse=True)


def test_airports_near_uses_great_circle_distance_across_the_grid():
    g = airports_graph()
    assert C.airports_near(g, "city/ba", 80) == ["airport/SABE", "airport/SAEZ"]
    assert C.airports_near(g, "city/ba", 10) == ["airport/SABE"]
    assert C.airports_near(g, "city/nowhere", 500) == []


# ---------------------------------------------------------------- clues the graph cannot complete

def test_clues_by_incomplete_relations_are_refused(cards):
    assert "does not list every subject" in C.clue_problem(cards, "language", "language/por")
    assert "does not list every subject" in C.clue_problem(cards, "currency", "currency/USD")
    assert C.clue_problem(cards, "country", "country/PE") is None
    assert "no relation card" in C.clue_problem(cards, "made_up", "x")


# ---------------------------------------------------------------- ranges never pin alone

def range_graph() -> Graph:
    """Two airports in one hidden country: only an elevation range tells them apart, no clue does."""
    E = [Entity("airport/A", "airport", "Alpha Field", attributes={"elevation_ft": 3900}),
         Entity("airport/B", "airport", "Beta Field", attributes={"elevation_ft": 120}),
         Entity("country/X", "country", "Xland"), Entity("currency/X", "currency", "Xland mark")]
    T = [Triple("airport/A", "country", "country/X"), Triple("airport/B", "country", "country/X"),
         Triple("country/X", "currency", "currency/X")]
    return Graph(E, T)


def test_an_entity_pinned_by_ranges_alone_is_not_obfuscated():
    g = range_graph()
    d = S.draft_from_chain([g.triple("airport/A", "country", "country/X"), g.triple("country/X", "currency", "currency/X")])
    assert H.obfuscate(g, d, random.Random(0)) is None


def test_switched_off_the_airport_is_described_by_an_elevation_range_only(monkeypatch):
    g = range_graph()
    d = S.draft_from_chain([g.triple("airport/A", "country", "country/X"), g.triple("country/X", "currency", "currency/X")])
    monkeypatch.setattr(obfuscate_mod, "_anchored", lambda draft, var: True)
    new = H.obfuscate(g, d, random.Random(0))
    assert new is not None and S.is_unique(g, new)
    assert [c["attr"] for c in new.formalization["constraints"] if "attr" in c] == ["elevation_ft"]
    assert "an elevation of between" in S.render_question(g, new)
    monkeypatch.undo()
    assert any("numeric ranges alone" in w for w in H.world_problems(g, new))


# ---------------------------------------------------------------- checks, stages and the audit

def test_checks_call_a_question_unique_in_the_graph_only_not_unique():
    g = dc_graph()
    d = S.draft_from_chain([g.triple("city/wash", "state", "us_state/DC")])
    assert S.is_unique(g, d)
    st = H.checks(g, d, S.render_question(g, d), "District of Columbia", [], None)
    assert st["unique"] is False and "federal district" in st["world_problems"][0]
    ok = S.draft_from_chain([g.triple("city/bal", "state", "us_state/MD")])
    st = H.checks(g, ok, S.render_question(g, ok), "Maryland", [], None)
    assert st["unique"] is True and st["world_problems"] == []


def _row(g, d, qid):
    return {"question_id": qid, "question": S.render_question(g, d), "answer": S.entity_name(g, d.answer_id),
            "answer_aliases": [], "formalization": {**d.formalization, "binding": d.binding},
            "seed_entity": d.seed, "lineage": []}


def test_the_audit_recomputes_the_world_check_from_the_rows():
    g = dc_graph()
    bad = _row(g, S.draft_from_chain([g.triple("city/wash", "state", "us_state/DC")]), "q-dc")
    good = _row(g, S.draft_from_chain([g.triple("city/bal", "state", "us_state/MD")]), "q-md")
    audit = A.audit_rows([bad, good], [], world_check=lambda row: H.row_world_problems(g, row))
    assert audit["unique_in_graph_only"] == 1 and audit["unique_in_graph_only_rows"][0]["question_id"] == "q-dc"
    assert any("unique in the graph only" in p for p in A.problems(audit))
    # without the graph the line is "not checked", never 0
    assert A.audit_rows([bad, good], [])["unique_in_graph_only"] is None


def test_an_inverse_hop_out_of_a_range_described_start_does_not_anchor_it():
    # "the country whose capital is a city with a latitude between -8.7 and -8.5": ?x1 -capital-> ?y0 has
    # ?y0 as its object, yet it is the path's hop out of ?y0, not a clue that reaches it
    E = [Entity("city/dili", "city", "Dili", attributes={"latitude": -8.56}),
         Entity("country/TL", "country", "East Timor")]
    g = Graph(E, [Triple("country/TL", "capital", "city/dili")])
    d = S.Draft({"triples": [["?x1", "capital", "?y0"]], "target": "?x1",
                 "constraints": [{"var": "?y0", "type": "city"},
                                 {"var": "?y0", "attr": "latitude", "min": -8.711, "max": -8.453}]},
                {"?x1": "country/TL", "?y0": "city/dili"}, "city/dili")
    assert [s[3] for s in S.path_steps(d)] == [True]
    assert H.ranges_pin_alone(d, "?y0")
    assert any("numeric ranges alone" in w for w in H.world_problems(g, d))
    # a clue into the start anchors it
    d.formalization["triples"].append(["?y0", "country", "country/TL"])
    assert not H.ranges_pin_alone(d, "?y0")
