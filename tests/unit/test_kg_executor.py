import itertools
import random

import pytest

from crucible.pipelines.browse.kg.executor import FormalizationError, execute, is_unique
from crucible.pipelines.browse.kg.model import Entity, Graph, Triple
from tests.unit.browse_helpers import small_graph


@pytest.fixture(scope="module")
def g():
    return small_graph()


def test_two_hop_chain_from_a_constant(g):
    f = {"triples": [["airport/BIRK", "serves_city", "?c"], ["?c", "country", "?k"]], "target": "?k"}
    assert execute(g, f) == {"country/IS"}


def test_capital_of_the_country_of_an_airport_pinned_by_attribute(g):
    f = {"triples": [["?a", "country", "?k"], ["?k", "capital", "?b"]],
         "constraints": [{"var": "?a", "type": "airport"}, {"var": "?a", "attr": "iata", "equals": "RKV"}],
         "target": "?b"}
    assert execute(g, f) == {"city/5"}
    assert is_unique(g, f)


def test_ranges_make_a_many_valued_hop_unique(g):
    base = {"triples": [["?c", "country", "?k"], ["?k", "currency", "currency/EUR"]],
            "constraints": [{"var": "?c", "type": "city"}], "target": "?c"}
    assert execute(g, base) == {"city/1", "city/2", "city/3", "city/4"}
    assert not is_unique(g, base)
    pinned = dict(base, constraints=base["constraints"] + [
        {"var": "?c", "attr": "population", "min": 400_000, "max": 800_000},
        {"var": "?c", "attr": "latitude", "min": 52.0}])
    assert execute(g, pinned) == {"city/1"}
    assert is_unique(g, pinned)


def test_distinct_variables_and_limit(g):
    f = {"triples": [["?x", "shares_border_with", "?y"], ["?y", "shares_border_with", "?z"]], "target": "?z"}
    assert execute(g, f) == set()  # NL->BE->NL would bind ?x and ?z to the same entity
    assert execute(g, dict(f, distinct=False)) == {"country/NL", "country/BE"}
    assert len(execute(g, dict(f, distinct=False), limit=1)) == 1


def test_no_answer_and_unknown_constants(g):
    assert execute(g, {"triples": [["country/IS", "currency", "?c"]],
                       "constraints": [{"var": "?c", "attr": "name", "equals": "Euro"}], "target": "?c"}) == set()
    assert execute(g, {"triples": [["country/XX", "capital", "?c"]], "target": "?c"}) == set()
    assert execute(g, {"triples": [["?a", "capital", "?c"]],
                       "constraints": [{"var": "?a", "type": "country"}, {"var": "?a", "type": "city"}],
                       "target": "?c"}) == set()


def test_bad_formalizations_name_the_field():
    with pytest.raises(FormalizationError, match="triples"):
        execute(small_graph(), {"triples": [], "target": "?a"})
    with pytest.raises(FormalizationError, match="target"):
        execute(small_graph(), {"triples": [["?a", "r", "?b"]], "target": "?z"})
    with pytest.raises(FormalizationError, match=r"constraints\[0\]"):
        execute(small_graph(), {"triples": [["?a", "r", "?b"]], "target": "?a",
                                "constraints": [{"var": "?a", "attr": "population"}]})


def _brute(graph, f):
    vars_ = []
    for s, _, o in f["triples"]:
        for x in (s, o):
            if x.startswith("?") and x not in vars_:
                vars_.append(x)
    ids = sorted(graph.entities)
    out = set()
    for combo in itertools.product(ids, repeat=len(vars_)):
        if len(set(combo)) < len(combo):
            continue
        a = dict(zip(vars_, combo, strict=True))
        if all(graph.triple(a.get(s, s), r, a.get(o, o)) for s, r, o in f["triples"]) and all(
            a[c["var"]] and graph.entities[a[c["var"]]].attributes.get("v", -1) >= c["min"]
            for c in f.get("constraints", [])
        ):
            out.add(a[f["target"]])
    return out


def test_executor_matches_brute_force_on_random_graphs():
    rng = random.Random(7)
    for trial in range(25):
        n = 9
        ents = [Entity(f"e/{i}", "t", f"E{i}", attributes={"v": rng.randint(0, 9)}) for i in range(n)]
        tris = {(f"e/{rng.randrange(n)}", rng.choice("ab"), f"e/{rng.randrange(n)}") for _ in range(22)}
        g = Graph(ents, [Triple(s, r, o) for s, r, o in tris if s != o])
        shapes = [
            [["?x", "a", "?y"], ["?y", "b", "?z"]],
            [["?x", "a", "?y"], ["?z", "b", "?y"]],
            [["?x", "a", "?y"], ["?y", "a", "?z"], ["?z", "b", "?x"]],
            [["e/0", "a", "?y"], ["?y", "b", "?z"]],
        ]
        for shape in shapes:
            for target in ("?y", "?z"):
                f = {"triples": shape, "target": target}
                if trial % 2:
                    f["constraints"] = [{"var": "?y", "attr": "v", "min": 4}]
                assert execute(g, f) == _brute(g, f), (trial, shape, target)


def test_hops_feed_walks_and_patterns_that_the_executor_answers(g):
    hops = {(h.relation, h.inverse, h.target): h.functional for h in g.hops("city/5")}
    assert hops[("country", False, "country/IS")] is True
    assert hops[("capital", True, "country/IS")] is True  # the country whose capital is this city
    assert hops[("serves_city", True, "airport/BIRK")] is True
    walk = [("airport/BIRK", "serves_city", False), ("city/5", "capital", True)]
    triples, term = [], "airport/BIRK"
    for i, (_, rel, inv) in enumerate(walk):
        h = next(h for h in g.hops(walk[i][0]) if h.relation == rel and h.inverse == inv)
        nxt = f"?v{i}"
        triples.append(h.pattern(term, nxt))
        term = nxt
    assert triples == [["airport/BIRK", "serves_city", "?v0"], ["?v1", "capital", "?v0"]]
    assert execute(g, {"triples": triples, "target": "?v1"}) == {"country/IS"}
    inv_country = [h for h in g.hops("country/NL") if h.relation == "country" and h.inverse]
    assert len(inv_country) == 3 and not any(h.functional for h in inv_country)
