import random

import pytest

from crucible.pipelines.browse import harden as H
from crucible.pipelines.browse import sampling
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.kg.model import Entity, Graph, Triple


def toy_graph() -> Graph:
    E = [
        Entity("country/PE", "country", "Peru", aliases=("Republic of Peru",), attributes={"population": 34000000}),
        Entity("country/BO", "country", "Bolivia", attributes={"population": 12000000}),
        Entity("country/CL", "country", "Chile", attributes={"population": 19000000}),
        Entity("currency/PEN", "currency", "Peruvian sol", aliases=("sol",), attributes={"iso4217": "PEN"}),
        Entity("currency/BOB", "currency", "Boliviano", attributes={"iso4217": "BOB"}),
        Entity("currency/CLP", "currency", "Chilean peso", attributes={"iso4217": "CLP"}),
        Entity("city/lima", "city", "Lima", attributes={"latitude": -12.046, "longitude": -77.043, "population": 9750000}),
        Entity("city/cusco", "city", "Cusco", attributes={"latitude": -13.532, "longitude": -71.967, "population": 428000}),
        Entity("city/arequipa", "city", "Arequipa", attributes={"latitude": -16.399, "longitude": -71.537, "population": 1008000}),
        Entity("city/lapaz", "city", "La Paz", attributes={"latitude": -16.5, "longitude": -68.15, "population": 757000}),
        Entity("city/santiago", "city", "Santiago", attributes={"latitude": -33.45, "longitude": -70.67, "population": 6300000}),
        Entity("airport/SPZO", "airport", "Alejandro Velasco Astete Airport", attributes={"latitude": -13.536, "longitude": -71.939, "elevation_ft": 10860, "iata": "CUZ"}),
        Entity("airport/SPQU", "airport", "Rodriguez Ballon Airport", attributes={"latitude": -16.341, "longitude": -71.583, "elevation_ft": 8405, "iata": "AQP"}),
        Entity("airport/SLLP", "airport", "El Alto Airport", attributes={"latitude": -16.513, "longitude": -68.192, "elevation_ft": 13325, "iata": "LPB"}),
        # findable text clues: the airports' Wikipedia summaries and what they link to
        Entity("wiki/SPZO", "article", "Alejandro Velasco Astete International Airport",
               description="The airport serves the former capital of the Inca Empire."),
        Entity("wiki/SPQU", "article", "Rodriguez Ballon International Airport",
               description="The airport lies below the volcano Misti."),
        Entity("wiki/Inca_Empire", "article", "Inca Empire", description="The Inca Empire was a state in the Andes."),
        Entity("wiki/Misti", "article", "Misti", description="Misti is a volcano."),
    ]
    T = [
        Triple("country/PE", "capital", "city/lima"), Triple("country/BO", "capital", "city/lapaz"),
        Triple("country/CL", "capital", "city/santiago"),
        Triple("country/PE", "currency", "currency/PEN"), Triple("country/BO", "currency", "currency/BOB"),
        Triple("country/CL", "currency", "currency/CLP"),
        *[Triple(c, "country", k) for c, k in [("city/lima", "country/PE"), ("city/cusco", "country/PE"),
                                                  ("city/arequipa", "country/PE"), ("city/lapaz", "country/BO"),
                                                  ("city/santiago", "country/CL")]],
        Triple("airport/SPZO", "serves_city", "city/cusco"), Triple("airport/SPQU", "serves_city", "city/arequipa"),
        Triple("airport/SLLP", "serves_city", "city/lapaz"),
        Triple("airport/SPZO", "country", "country/PE"), Triple("airport/SPQU", "country", "country/PE"),
        Triple("airport/SLLP", "country", "country/BO"),
        Triple("airport/SPZO", "described_by", "wiki/SPZO"), Triple("airport/SPQU", "described_by", "wiki/SPQU"),
        Triple("airport/SPZO", "summary_mentions", "wiki/Inca_Empire"),
        Triple("airport/SPQU", "summary_mentions", "wiki/Misti"),
    ]
    return Graph(E, T)


@pytest.fixture
def g():
    return toy_graph()


def airport_draft(g):
    chain = [g.triple("airport/SPZO", "serves_city", "city/cusco"), g.triple("city/cusco", "country", "country/PE"),
             g.triple("country/PE", "currency", "currency/PEN")]
    return S.draft_from_chain(chain)


def test_sampled_chains_are_functional_and_simple(g):
    rng = random.Random(0)
    for _ in range(20):
        chain = sampling.sample_chain(g, rng, 3, [e for v in S.seed_pools(g).values() for e in v])
        if chain is None:
            continue
        assert len(chain) == 3
        nodes = [chain[0].subject] + [t.object for t in chain]
        assert len(set(nodes)) == 4
        for t in chain:
            assert g.objects(t.subject, t.relation) == [t.object]
        assert chain[i := 0].subject == nodes[i]


def test_draft_from_chain_is_unique_supported_and_rendered(g):
    d = airport_draft(g)
    assert S.is_unique(g, d) and d.answer_id == "currency/PEN" and S.path_length(d) == 3
    clued = d.copy()
    clued.formalization["triples"].append(["?x1", "country", "country/PE"])
    assert S.path_length(clued) == 3  # a clue about a node is not a hop
    assert S.check_supported(g, d)[0]
    q = S.render_question(g, d)
    assert q == ("What is the currency of the country where the city served by "
                 "Alejandro Velasco Astete Airport is located?")
    assert S.leaks_answer(q, "Peruvian sol", ["sol", "PEN"]) is None
    ev = S.evidence(g, d)
    assert [e["relation"] for e in ev] == ["serves_city", "country", "currency"]
    assert ev[0]["url"] == "https://kb.local/airport/SPZO"


def test_obfuscate_removes_the_name_and_keeps_one_answer(g):
    d = airport_draft(g)
    new = H.obfuscate(g, d, random.Random(1))
    assert new is not None
    assert "airport/SPZO" not in S.named_constants(new)
    assert S.is_unique(g, new) and S.check_supported(g, new)[0]
    q = S.render_question(g, new)
    assert "Alejandro" not in q and q.startswith("What is the currency")


def test_obfuscation_needing_a_clue_adds_one(g):
    # "an airport" alone is ambiguous (Peru and Bolivia both have some): a clue must be added
    d = H.obfuscate(g, airport_draft(g), random.Random(3))
    assert d is not None and S.is_unique(g, d)
    bare = d.copy()
    bare.formalization["constraints"] = [c for c in bare.formalization["constraints"] if "attr" not in c]
    bare.formalization["triples"] = bare.formalization["triples"][:3]
    assert S.answers(g, bare) == {"currency/PEN", "currency/BOB"}
    n_clues = len(d.formalization["triples"]) - 3 + sum("attr" in c for c in d.formalization["constraints"])
    assert n_clues >= 1


def test_uniqueness_check_catches_two_answers(g):
    d = S.Draft({"triples": [["?a", "serves_city", "?c"], ["?c", "country", "?k"], ["?k", "currency", "?x"]],
                 "target": "?x", "constraints": [{"var": "?a", "type": "airport"}]},
                {"?a": "airport/SPZO", "?c": "city/cusco", "?k": "country/PE", "?x": "currency/PEN"}, "airport/SPZO")
    assert S.answers(g, d) == {"currency/PEN", "currency/BOB"}
    assert not S.is_unique(g, d)


def test_blur_widens_but_keeps_unique(g):
    d = S.Draft({"triples": [["?a", "country", "?k"], ["?k", "currency", "?x"]], "target": "?x",
                 "constraints": [{"var": "?a", "type": "airport"},
                                 {"var": "?a", "attr": "elevation_ft", "min": 13000, "max": 13500}]},
                {"?a": "airport/SLLP", "?k": "country/BO", "?x": "currency/BOB"}, "airport/SLLP")
    assert S.is_unique(g, d)
    new = H.blur(g, d, random.Random(0))
    c = new.formalization["constraints"][1]
    assert c["max"] - c["min"] > 500 and S.is_unique(g, new)
    assert c["min"] > 10860  # blurring never admits the other airports' elevations


def test_supported_check_catches_a_false_clue(g):
    d = airport_draft(g)
    d.formalization["constraints"].append({"var": "?x3", "attr": "iso4217", "equals": "BOB"})
    ok, why = S.check_supported(g, d)
    assert not ok and "constraint" in why


def test_add_hop_reaches_node_through_new_named_entity(g):
    d = S.Draft({"triples": [["city/cusco", "country", "?k"], ["?k", "currency", "?x"]], "target": "?x",
                 "constraints": []}, {"?k": "country/PE", "?x": "currency/PEN"}, "city/cusco")
    new = H.add_hop(g, d, random.Random(0))
    assert new is not None and len(new.formalization["triples"]) == 3 and S.path_length(new) == 3
    assert new.formalization["triples"][0] == ["airport/SPZO", "serves_city", "?y0"]
    assert new.binding["?y0"] == "city/cusco"
    assert S.render_question(g, new).startswith("What is the currency of the country where the city served by")
    assert S.is_unique(g, new)


def test_drop_clue_removes_unneeded_clue(g):
    d = airport_draft(g)
    d.formalization["constraints"].append({"var": "?x1", "attr": "population", "min": 400000, "max": 450000})
    new = H.drop_clue(g, d, random.Random(0))
    assert new is not None and new.formalization["constraints"] == [] and S.is_unique(g, new)


def test_harden_keeps_lineage_and_checks_every_edit(g):
    d = airport_draft(g)
    asked = []

    def closed_book(q):
        asked.append(q)
        return ["Peruvian sol"] if "Alejandro" in q else ["Boliviano"]

    final, state = H.harden(g, d, random.Random(2), rounds=3,
                            writer=lambda dr: (S.render_question(g, dr), "template"),
                            answer="Peruvian sol", aliases=["sol", "PEN"], closed_book=closed_book)
    assert final.lineage[0]["operator"] == "write" and final.lineage[0]["checks"]["closed_book_solved"] is True
    accepted = [e for e in final.lineage if e["accepted"] and e["operator"] != "write"]
    assert accepted and accepted[0]["operator"] == "obfuscate"
    assert all(e["checks"]["unique"] and e["checks"]["supported"] for e in accepted)
    assert state["closed_book_solved"] is False and S.is_unique(g, final)
    assert "Alejandro" not in final.question


def test_numeric_range_contains_value_and_reads_naturally():
    rng = random.Random(0)
    for v in (428000, 10860, 1946, 35.5):
        lo, hi = H.numeric_range(v, rng, 0.2)
        assert lo <= v <= hi


def test_pattern_hash_ignores_names_but_not_shape(g):
    a = airport_draft(g)
    b = S.draft_from_chain([g.triple("airport/SPQU", "serves_city", "city/arequipa"),
                            g.triple("city/arequipa", "country", "country/PE"),
                            g.triple("country/PE", "currency", "currency/PEN")])
    c = S.draft_from_chain([g.triple("city/lima", "country", "country/PE"),
                            g.triple("country/PE", "currency", "currency/PEN")])
    assert S.pattern_hash(a) == S.pattern_hash(b) != S.pattern_hash(c)


def test_rewrite_that_drops_a_clue_is_rejected(g):
    from crucible.pipelines.browse.stages import validate_question

    d = S.Draft({"triples": [["?a", "country", "?k"], ["?k", "currency", "?x"], ["?a", "serves_city", "city/cusco"]],
                 "target": "?x", "constraints": [{"var": "?a", "type": "airport"},
                                                 {"var": "?a", "attr": "elevation_ft", "min": 10500, "max": 11000}]},
                {"?a": "airport/SPZO", "?k": "country/PE", "?x": "currency/PEN"}, "airport/SPZO")
    ok = "Which currency is used in the country of the airport serving Cusco, at 10,500 to 11000 ft?"
    assert validate_question(g, d, ok, "Peruvian sol", ["sol"]) == (True, "ok")
    dropped = "Which currency is used in the country of an airport serving Cusco?"
    good, why = validate_question(g, d, dropped, "Peruvian sol", ["sol"])
    assert not good and "elevation_ft min 10500" in why
    no_name = "Which currency is used where an airport sits at 10,500 to 11,000 ft?"
    assert "Cusco" in validate_question(g, d, no_name, "Peruvian sol", [])[1]
    assert "names the answer" in validate_question(g, d, "Is the sol used near Cusco at 10500-11000 ft?",
                                                   "Peruvian sol", ["sol"])[1]
    hidden = "Which currency does Peru use, near Cusco at 10500 to 11000 ft?"
    assert "hidden entity (Peru)" in validate_question(g, d, hidden, "Peruvian sol", [])[1]


def test_seed_pools_group_by_type(g):
    pools = S.seed_pools(g)
    assert set(pools) == {"airport", "city", "country"}  # currencies have no outgoing relation
    assert "airport/SPZO" in pools["airport"]


def test_uniqueness_also_pins_intermediate_nodes(g):
    # "the currency of the country of an airport in Peru": one answer (the sol), but the airport
    # is not pinned down (two Peruvian airports), so the airport clue is a shortcut
    d = S.Draft({"triples": [["?a", "country", "?k"], ["?k", "currency", "?x"], ["?a", "country", "country/PE"]],
                 "target": "?x", "constraints": [{"var": "?a", "type": "airport"}]},
                {"?a": "airport/SPZO", "?k": "country/PE", "?x": "currency/PEN"}, "airport/SPZO")
    assert S.answers(g, d) == {"currency/PEN"}
    assert not S.is_unique(g, d)
    d.formalization["constraints"].append({"var": "?a", "attr": "elevation_ft", "min": 10000, "max": 11000})
    assert S.is_unique(g, d)


def test_chains_never_end_in_a_weak_relation():
    from tests.unit.browse_helpers import small_graph

    graph = small_graph()
    pool = [e for v in S.seed_pools(graph).values() for e in v]
    rng = random.Random(1)
    ends, n = set(), 0
    for _ in range(200):
        chain = sampling.sample_chain(graph, rng, 2, pool, max_tries=5)
        if chain is None:
            continue
        n += 1
        ends.add(chain[-1].relation)
        assert sum(t.relation in S.WEAK_RELATIONS for t in chain[:-1]) <= 1
    # continent is walkable as a first hop (airport -> country -> ... ) but never the answer's relation
    assert n > 20 and ends and not ends & S.WEAK_RELATIONS


def test_plan_caps_questions_per_answer_and_records_the_drop():
    from crucible.pipelines.browse.stages import plan_items
    from tests.unit.browse_helpers import browse_opts, small_graph

    graph = small_graph()
    opts = browse_opts(seeds=30, min_hops=1, max_hops=2, max_per_pattern=30, max_per_answer=1,
                       max_share_per_entity=1.0, attribute_answer_share=0.0)
    items, drops = plan_items(graph, opts)
    finals = [S.draft_from_chain([graph.triple(*t) for t in it["chain"]], None, it["start"]).answer_id for it in items]
    assert len(finals) == len(set(finals)) and len(items) >= 2
    dup = [d for d in drops if d["reason"].startswith("answer duplicate")]
    assert dup and all(d["reason"].endswith("already the answer of 1 questions)") for d in dup)
    more, _ = plan_items(graph, opts.replace(max_per_answer=3))
    assert len(more) > len(items)
