import random
from collections import Counter

from crucible.pipelines.browse.kg.chains import EXCLUDED, UNINFORMATIVE, count_chains
from crucible.pipelines.browse.kg.model import Entity, Graph, Triple
from tests.unit.browse_helpers import small_graph


def _brute(graph, max_k, informative=False):
    """Enumerate walks per the documented definition."""
    outd, ind = Counter(), Counter()
    drop = EXCLUDED | (UNINFORMATIVE if informative else frozenset())
    typed = [t for t in graph.triples if t.relation not in drop]
    for t in typed:
        outd[(t.subject, t.relation)] += 1
        ind[(t.object, t.relation)] += 1
    hops = {}
    for t in typed:
        hops.setdefault(t.subject, []).append((t.object, outd[(t.subject, t.relation)] == 1))
        hops.setdefault(t.object, []).append((t.subject, ind[(t.object, t.relation)] == 1))
    links = {}
    for t in graph.triples:
        if t.relation == "mentions":
            links.setdefault(t.subject, []).append(t.object)
    res = {}
    for k in range(2, max_k + 1):
        f = m = w = 0

        def walk(node, prev, depth, many, k=k):
            nonlocal f, m
            if depth == k:
                if many == 0:
                    f += 1
                elif many == 1:
                    m += 1
                return
            for nxt, func in hops.get(node, []):
                if nxt == prev:
                    continue
                nm = many + (0 if func else 1)
                if nm <= 1:
                    walk(nxt, node, depth + 1, nm, k)

        def lwalk(node, prev, depth, k=k):
            nonlocal w
            if depth == k:
                w += 1
                return
            for nxt in links.get(node, []):
                if nxt != prev:
                    lwalk(nxt, node, depth + 1, k)

        for e in graph.entities:
            walk(e, None, 0, 0)
            lwalk(e, None, 0)
        res[k] = {"functional": f, "one_many": m, "at_most_one_many": f + m, "wiki_links": w}
    if not informative:
        inf = _brute(graph, max_k, informative=True)
        for k in res:
            res[k]["functional_informative"] = inf[k]["functional"]
    return res


def test_chain_counts_match_enumeration_on_the_small_graph():
    g = small_graph()
    assert count_chains(g, 4) == _brute(g, 4)


def test_chain_counts_match_enumeration_on_random_graphs():
    rng = random.Random(3)
    for _ in range(10):
        ents = [Entity(f"e/{i}", "t", f"E{i}") for i in range(12)]
        tris = {(f"e/{rng.randrange(12)}", rng.choice(["a", "b", "mentions", "timezone"]), f"e/{rng.randrange(12)}")
                for _ in range(30)}
        g = Graph(ents, [Triple(s, r, o) for s, r, o in tris if s != o])
        assert count_chains(g, 5) == _brute(g, 5)


def test_functional_definition_on_a_known_case():
    # airport -serves_city-> city -country-> country -capital-> city is one functional 3-hop chain per airport
    g = small_graph()
    c = count_chains(g, 3)
    assert c[3]["functional"] > 0 and c[2]["wiki_links"] == 0  # only one mention edge: no 2-hop link walk
