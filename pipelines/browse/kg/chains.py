"""Counting k-hop chains by dynamic programming over edges (numpy, no enumeration).

What is counted (printed by ``crucible kg stats``):

* The typed graph has, for every triple ``s -r-> o`` (relations ``mentions`` and ``described_by``
  excluded), a forward hop ``s -r-> o`` and an inverse hop ``o -r^-1-> s``.
* A hop is **functional** when it has exactly one answer from where it starts: the forward hop if
  ``s`` has exactly one ``r`` object, the inverse hop if ``o`` has exactly one ``r`` subject (e.g.
  ``capital^-1``: the country whose capital is this city). Every other hop is **many-valued**
  (``language``, ``shares_border_with``, "a city in country X" = ``country^-1``).
* A **k-hop chain** is a walk ``e0 -> e1 -> ... -> ek`` of k hops that never steps straight back
  (``e(i+1) != e(i-1)``). ``functional`` counts chains whose every hop is functional;
  ``one_many`` counts chains with exactly one many-valued hop (the hop a question must pin with an
  attribute constraint); ``at_most_one_many`` is their sum.
* ``wiki_links`` counts walks of k hops over ``mentions`` (summary A names article B), forward
  only, never stepping straight back.

The recurrence over edges e = (u -> v): ``N_k(e) = sum_{e' ends at u} N_{k-1}(e') - sum_{e'=(v->u)}
N_{k-1}(e')`` (the subtraction removes immediate reversals), split by the number of many-valued
hops used so far (0 or 1).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from crucible.pipelines.browse.kg.model import Graph
from crucible.pipelines.browse.kg.textlinks import text_index

EXCLUDED = frozenset({"mentions", "described_by", "summary_mentions"})
UNINFORMATIVE = frozenset({"timezone", "continent", "subregion"})  # hubs that make easy, dull hops


def _edge_arrays(graph: Graph, relations=None, inverse: bool = True, exclude: frozenset[str] = EXCLUDED):
    ids: dict[str, int] = {}

    def nid(x: str) -> int:
        i = ids.get(x)
        if i is None:
            i = ids[x] = len(ids)
        return i

    out_deg: Counter = Counter()
    in_deg: Counter = Counter()
    sel = [t for t in graph.triples if (t.relation in relations if relations else t.relation not in exclude)]
    for t in sel:
        out_deg[(t.subject, t.relation)] += 1
        in_deg[(t.object, t.relation)] += 1
    src, dst, func = [], [], []
    for t in sel:
        s, o = nid(t.subject), nid(t.object)
        src.append(s)
        dst.append(o)
        func.append(out_deg[(t.subject, t.relation)] == 1)
        if inverse:
            src.append(o)
            dst.append(s)
            func.append(in_deg[(t.object, t.relation)] == 1)
    return (np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
            np.asarray(func, dtype=bool), len(ids))


class _Backsum:
    """For each edge u->v, sum a per-edge value over all edges v->u."""

    def __init__(self, src, dst, n):
        keys = src * n + dst
        self.uniq, self.inv = np.unique(keys, return_inverse=True)
        rkeys = dst * n + src
        pos = np.searchsorted(self.uniq, rkeys)
        pos = np.clip(pos, 0, len(self.uniq) - 1)
        self.has = self.uniq[pos] == rkeys
        self.pos = pos

    def __call__(self, x):
        sums = np.zeros(len(self.uniq), dtype=np.int64)
        np.add.at(sums, self.inv, x)
        return np.where(self.has, sums[self.pos], 0)


def _insum(dst, x, n):
    s = np.zeros(n, dtype=np.int64)
    np.add.at(s, dst, x)
    return s


def _functional_only(graph: Graph, max_k: int, exclude: frozenset[str]) -> dict[int, int]:
    src, dst, func, n = _edge_arrays(graph, exclude=exclude)
    src, dst = src[func], dst[func]
    out: dict[int, int] = {}
    if not len(src):
        return {k: 0 for k in range(2, max_k + 1)}
    back = _Backsum(src, dst, n)
    x = np.ones(len(src), dtype=np.int64)
    for k in range(2, max_k + 1):
        x = _insum(dst, x, n)[src] - back(x)
        out[k] = int(x.sum())
    return out


def count_chains(graph: Graph, max_k: int = 5) -> dict[int, dict[str, int]]:
    """``{k: {"functional", "functional_informative", "one_many", "at_most_one_many", "wiki_links"}}``
    for k = 2..max_k. ``functional_informative`` excludes timezone, continent and subregion hops."""
    informative = _functional_only(graph, max_k, EXCLUDED | UNINFORMATIVE)
    src, dst, func, n = _edge_arrays(graph)
    back = _Backsum(src, dst, n) if len(src) else None
    n0 = func.astype(np.int64)  # walks of 1 hop ending with this edge, 0 many-valued hops
    n1 = (~func).astype(np.int64)
    res: dict[int, dict[str, int]] = {}
    wsrc, wdst, _, wn = _edge_arrays(graph, relations={"mentions"}, inverse=False)
    wback = _Backsum(wsrc, wdst, wn) if len(wsrc) else None
    w = np.ones(len(wsrc), dtype=np.int64)
    for k in range(2, max_k + 1):
        if back is not None:
            in0, in1 = _insum(dst, n0, n), _insum(dst, n1, n)
            c0 = in0[src] - back(n0)
            c1 = in1[src] - back(n1)
            n0, n1 = np.where(func, c0, 0), np.where(func, c1, c0)
        if wback is not None:
            w = _insum(wdst, w, wn)[wsrc] - wback(w)
        f, m = int(n0.sum()), int(n1.sum())
        res[k] = {"functional": f, "functional_informative": informative[k], "one_many": m, "at_most_one_many": f + m,
                  "wiki_links": int(w.sum()) if wback is not None else 0}
    return res


def graph_stats(graph: Graph, max_k: int = 5) -> dict:
    return {
        "entities": len(graph.entities), "triples": len(graph.triples),
        "entity_types": graph.type_counts(), "relations": graph.relations(),
        "chains": count_chains(graph, max_k),
        "text_grounded_triples": text_index(graph).by_relation(),
        "chain_definition": (
            "k-hop chain = walk of k hops over forward and inverse typed triples (mentions, described_by "
            "excluded) that never steps straight back; functional = every hop has exactly one answer "
            "from its start; functional_informative = the same without timezone/continent/subregion hops; "
            "one_many = exactly one many-valued hop; wiki_links = forward walks over "
            "'summary A names article B' links that never step straight back; text_grounded_triples = fact "
            "triples a sentence of an end's Wikipedia summary names both ends of (kg/textlinks.py), per relation"),
    }
