"""Chain sampling: seeds, one-valued hops and chains of linked facts a question is built on.

A chain walks functional hops (one object in the graph and, by the relation cards, in the world),
never the same entity twice, at most one weak relation and never a hop a reader does not need
(:func:`trivial_hop`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from crucible.pipelines.browse.draft import INV_PHRASE, REL_PHRASE, Draft, chain_start, path_nodes, path_steps
from crucible.pipelines.browse.kg.cards import hop_problem, load_cards
from crucible.pipelines.browse.kg.model import Graph, Triple
from crucible.pipelines.browse.kg.textlinks import (
    TEXT_DRAWS,
    chain_preference,
    pick_hop,
    pick_seed,
    text_index,
)

# Low-information relations: allowed, but never as most of a chain.
WEAK_RELATIONS = {"timezone", "continent", "subregion"}
# Relations that link pages rather than state facts: never a hop or a shortcut.
UNWALKED = frozenset({"mentions", "described_by", "summary_mentions"})


def functional_objects(graph: Graph, s: str, r: str) -> list[str]:
    objs = graph.objects(s, r)
    return objs if len(objs) == 1 else []


def seed_weight(graph: Graph, eid: str) -> float:
    """Prefer long-tail seeds: fewer incoming links and smaller populations weigh more."""
    indeg = sum(len(v) for v in graph.inn.get(eid, {}).values())
    pop = graph.entities[eid].attributes.get("population") or 0
    pop = pop if isinstance(pop, int | float) else 0
    return 1.0 / (1.0 + indeg) / (1.0 + (pop / 1e6))


def seed_pools(graph: Graph, seed_types: Sequence[str] = ()) -> dict[str, list[str]]:
    """Seed candidates by entity type: entities with at least one walkable functional relation."""
    pools: dict[str, list[str]] = {}
    for eid, rels in graph.out.items():
        e = graph.entities.get(eid)
        if e is None or (seed_types and e.type not in seed_types):
            continue
        if any(r in REL_PHRASE and len(objs) == 1 for r, objs in rels.items()):
            pools.setdefault(e.type, []).append(eid)
    return {t: sorted(v) for t, v in sorted(pools.items())}


def type_determined(graph: Graph) -> frozenset[tuple[str, str]]:
    """(subject type, relation) pairs whose object is the same for every subject of that type
    (every US state is in the United States): such a hop tells a reader nothing, its answer
    follows from the kind of thing alone. Computed once per graph."""
    cached = getattr(graph, "_synth_type_determined", None)
    if cached is not None:
        return cached
    objs: dict[tuple[str, str], set[str]] = {}
    subjects: dict[tuple[str, str], int] = {}
    for t in graph.triples:
        e = graph.entities.get(t.subject)
        if e is None:
            continue
        k = (e.type, t.relation)
        seen = objs.setdefault(k, set())
        if len(seen) < 2:
            seen.add(t.object)
        subjects[k] = subjects.get(k, 0) + 1
    out = frozenset(k for k, v in objs.items() if len(v) == 1 and subjects[k] >= 2)
    graph._synth_type_determined = out  # type: ignore[attr-defined]
    return out


def trivial_hop(graph: Graph, nodes: Sequence[str], relation: str, obj: str, inverse: bool = False) -> str | None:
    """Why the hop ``nodes[-1] -relation-> obj`` is one a reader does not need, else None:

    - ``type-determined``: every subject of this type has this object (a US state's country);
    - ``shortcut``: an earlier node of the chain states ``obj`` directly by a one-valued relation
      (A in State, State in Country, when A in Country holds too; the country of the city served
      by an airport is the airport's own country), so the chain collapses for a reader.
    """
    cur = graph.entities.get(nodes[-1])
    if not inverse and cur is not None and (cur.type, relation) in type_determined(graph):
        return "type-determined"
    for n in nodes[:-1]:
        for r, objs in graph.out.get(n, {}).items():
            if len(objs) == 1 and objs[0] == obj and r not in UNWALKED:
                return "shortcut"
    return None


def real_hops(graph: Graph, draft: Draft) -> int:
    """Hops a reader needs on the path to the answer: the path's hops, where a type-determined
    hop counts 0 and a node an earlier node states directly (one-valued relation) is reached in
    one hop from there. For a sampled chain with no trivial hop this equals :func:`path_length`."""
    nodes = path_nodes(draft)
    if len(nodes) < 2:
        return 0
    steps = path_steps(draft)
    det = type_determined(graph)
    dist = [0] * len(nodes)
    for m in range(1, len(nodes)):
        prev = graph.entities.get(nodes[m - 1])
        _p, rel, _t, inverse = steps[m - 1]
        step = 0 if prev is not None and not inverse and (prev.type, rel) in det else 1
        best = dist[m - 1] + step
        for j in range(m - 1):
            if any(len(o) == 1 and o[0] == nodes[m] and r not in UNWALKED for r, o in graph.out.get(nodes[j], {}).items()):
                best = min(best, dist[j] + 1)
        dist[m] = best
    return dist[-1]


def hop_options(graph: Graph, cur: str, inverse: bool) -> list[tuple[str, str, bool]]:
    """(relation, next entity, inverse) for every one-valued hop out of ``cur``: forward over
    :data:`REL_PHRASE` relations, and with ``inverse`` back over :data:`INV_PHRASE` relations
    when ``cur`` is the object of exactly one such triple ("the airport serving X"). One-valued in
    the world too: the relation cards (:mod:`crucible.pipelines.browse.kg.cards`) veto hops whose subject has
    several objects in the world, objects the type word does not cover, and inverse hops the world
    does not pin (a city with several airports)."""
    cards = load_cards()
    out = [(r, o[0], False) for r in graph.out.get(cur, {}) if r in REL_PHRASE
           for o in [functional_objects(graph, cur, r)] if o and hop_problem(graph, cards, cur, r, o[0], False) is None]
    if inverse:
        for r in INV_PHRASE:
            subs = graph.subjects(cur, r)
            if len(subs) == 1 and hop_problem(graph, cards, subs[0], r, cur, True) is None:
                out.append((r, subs[0], True))
    return out


def sample_chain(graph: Graph, rng: random.Random, hops: int, pool: Sequence[str],
                 max_tries: int = 50, blocked: frozenset[str] | set[str] = frozenset(),
                 skip_trivial: bool = True, inverse: bool = False, text_weight: float = 1.0) -> list[Triple] | None:
    """A chain of ``hops`` functional hops (each subject has exactly one object for the
    relation) from a seed in ``pool``, no entity twice, at most one weak relation, and never a
    weak one last: a time zone, continent or world region is an answer from a handful of values,
    guessable without the chain. Entities in ``blocked`` (hubs at their cap) are walked around;
    with ``skip_trivial`` no hop is one a reader does not need (:func:`trivial_hop`); with
    ``inverse`` one-valued inverse hops are walked too (the start is :func:`chain_start`). A hop a
    Wikipedia summary sentence states weighs ``text_weight`` (:func:`textlinks.pick_hop`; 1 = uniform)."""
    pool = [p for p in pool if p not in blocked] if blocked else pool
    if not pool:
        return None
    for _ in range(max_tries):
        cur = pick_seed(graph, rng, pool, text_weight)
        chain: list[Triple] = []
        seen = [cur]
        for _h in range(hops):
            options = [(r, o, inv) for r, o, inv in hop_options(graph, cur, inverse and hops > 1)
                       if o not in seen and o in graph.entities and o not in blocked]
            weak_used = sum(t.relation in WEAK_RELATIONS for t in chain)
            options = [(r, o, inv) for r, o, inv in options
                       if not (r in WEAK_RELATIONS and (weak_used >= 1 or _h == hops - 1))]
            if skip_trivial:
                options = [(r, o, inv) for r, o, inv in options if trivial_hop(graph, seen, r, o, inv) is None]
            if not options:
                break
            r, o, inv = pick_hop(graph, rng, cur, sorted(options), text_weight, last=_h == hops - 1)
            t = graph.triple(o, r, cur) if inv else graph.triple(cur, r, o)
            if t is None:
                break
            chain.append(t)
            seen.append(o)
            cur = o
        if len(chain) == hops:
            return chain
    return None


def sample_chain_weighted(graph: Graph, rng: random.Random, hops: int, pools: Mapping[str, Sequence[str]],
                          candidates: int = 8, blocked: frozenset[str] | set[str] = frozenset(),
                          skip_trivial: bool = True, inverse: bool = False,
                          text_weight: float = 1.0) -> list[Triple] | None:
    """Pick a seed type uniformly (variety), draw a few chains from it and keep the one with
    the most long-tail seed; with ``text_weight`` above 1, text-grounded chains first
    (:func:`textlinks.chain_preference`: the question rule, then the share of grounded hops), drawing up
    to ``TEXT_DRAWS`` times as many chains while none is grounded."""
    types = [t for t, v in pools.items() if v]
    if not types:
        return None
    pool = pools[rng.choice(types)]
    best, best_w = None, (False, 0.0, -1.0)
    draws = candidates if text_weight == 1 else candidates * TEXT_DRAWS
    for i in range(draws):
        if i >= candidates and best_w[0]:  # past the usual draws only while no chain is text-grounded
            break
        c = sample_chain(graph, rng, hops, pool, max_tries=10, blocked=blocked, skip_trivial=skip_trivial,
                         inverse=inverse, text_weight=text_weight)
        if c is not None:
            pref = chain_preference(text_index(graph), c) if text_weight != 1 else (False, 0.0)
            w = (*pref, seed_weight(graph, chain_start(c)))
            if w > best_w:
                best, best_w = c, w
    return best
