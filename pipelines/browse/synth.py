"""Structure first: sample chains of linked facts, turn them into formalized questions.

A *draft* is everything a question is made of before and during hardening:

- ``formalization``: triple patterns over variables/constants, constraints and the target
  (executed against the graph by :mod:`pipelines.browse.kg.executor`),
- ``binding``: the intended entity for every variable (the answer is ``binding[target]``),
- ``lineage``: every hardening operator applied, with its check results.

Evidence (URL + fact sentence per hop and per clue) and the template rendering of the
question are pure functions of the draft, so they stay true after every edit.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipelines.browse.kg.executor import count_answers, execute
from pipelines.browse.kg.model import Graph, Triple

# Relations a chain may follow, with the noun phrase for "the <rel> of X" (X = subject).
# Relations without a phrase (mentions, described_by) are not walked.
REL_PHRASE = {
    "country": "the country where {x} is located",
    "state": "the US state where {x} is located",
    "capital": "the capital of {x}",
    "currency": "the currency of {x}",
    "continent": "the continent of {x}",
    "subregion": "the world region of {x}",
    "timezone": "the time zone of {x}",
    "serves_city": "the city served by {x}",
    "discovered_by": "the discoverer of {x}",
    "discovered_in": "the country where {x} was discovered",
    "language": "a language spoken in {x}",
    "shares_border_with": "a country bordering {x}",
}
# Inverse phrases: "the <subject> whose <rel> is X" (used when a hop is added before the seed).
INV_PHRASE = {
    "capital": "the country whose capital is {x}",
    "serves_city": "the airport serving {x}",
    "currency": "the country using {x}",
    "discovered_by": "the element discovered by {x}",
}
# Low-information relations: allowed, but never as most of a chain.
WEAK_RELATIONS = {"timezone", "continent", "subregion"}
NUMERIC_ATTRS = ("population", "elevation_ft", "area_km2", "discovery_year", "latitude", "longitude")
ATTR_PHRASE = {
    "population": "a population of {v}",
    "elevation_ft": "an elevation of {v} ft",
    "area_km2": "an area of {v} km2",
    "discovery_year": "discovered in {v}",
    "latitude": "a latitude of {v}",
    "longitude": "a longitude of {v}",
}


@dataclass
class Draft:
    formalization: dict
    binding: dict[str, str]
    seed: str
    lineage: list[dict] = field(default_factory=list)
    question: str | None = None

    @property
    def target(self) -> str:
        return self.formalization["target"]

    @property
    def answer_id(self) -> str:
        return self.binding[self.target]

    def copy(self) -> Draft:
        return copy.deepcopy(self)


# ---------------------------------------------------------------- sampling

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


def sample_chain(graph: Graph, rng: random.Random, hops: int, pool: Sequence[str],
                 max_tries: int = 50) -> list[Triple] | None:
    """A chain of ``hops`` functional hops (each subject has exactly one object for the
    relation) from a seed in ``pool``, no entity twice, at most one weak relation, and never a
    weak one last: a time zone, continent or world region is an answer from a handful of values,
    guessable without the chain."""
    if not pool:
        return None
    for _ in range(max_tries):
        cur = rng.choice(pool)
        chain: list[Triple] = []
        seen = {cur}
        for _h in range(hops):
            options = [(r, functional_objects(graph, cur, r)) for r in graph.out.get(cur, {}) if r in REL_PHRASE]
            options = [(r, o[0]) for r, o in options if o and o[0] not in seen and o[0] in graph.entities]
            weak_used = sum(t.relation in WEAK_RELATIONS for t in chain)
            options = [(r, o) for r, o in options
                       if not (r in WEAK_RELATIONS and (weak_used >= 1 or _h == hops - 1))]
            if not options:
                break
            r, o = rng.choice(sorted(options))
            t = graph.triple(cur, r, o)
            if t is None:
                break
            chain.append(t)
            seen.add(o)
            cur = o
        if len(chain) == hops:
            return chain
    return None


def sample_chain_weighted(graph: Graph, rng: random.Random, hops: int, pools: Mapping[str, Sequence[str]],
                          candidates: int = 8) -> list[Triple] | None:
    """Pick a seed type uniformly (variety), draw a few chains from it and keep the one with
    the most long-tail seed."""
    types = [t for t, v in pools.items() if v]
    if not types:
        return None
    pool = pools[rng.choice(types)]
    best, best_w = None, -1.0
    for _ in range(candidates):
        c = sample_chain(graph, rng, hops, pool, max_tries=10)
        if c is not None:
            w = seed_weight(graph, c[0].subject)
            if w > best_w:
                best, best_w = c, w
    return best


def draft_from_chain(chain: Sequence[Triple]) -> Draft:
    """Seed as a named constant, every later node a variable, the last one the target."""
    triples, binding = [], {}
    prev = chain[0].subject
    for i, t in enumerate(chain, 1):
        var = f"?x{i}"
        triples.append([prev, t.relation, var])
        binding[var] = t.object
        prev = var
    form = {"triples": triples, "target": f"?x{len(chain)}", "constraints": [], "distinct": True}
    return Draft(form, binding, chain[0].subject)


def pattern_hash(draft: Draft) -> str:
    """Canonical hash of the relation pattern (structure only: which relations, in which
    shape, which attribute kinds constrain which variable), for structural de-duplication."""
    names: dict[str, str] = {}

    def canon(x: str) -> str:
        if not x.startswith("?"):
            return "C"
        names.setdefault(x, f"v{len(names)}")
        return names[x]

    f = draft.formalization
    canon(f["target"])
    shape = [[canon(s), r, canon(o)] for s, r, o in f["triples"]]
    cons = sorted([canon(c["var"]), c.get("attr") or "type:" + str(c.get("type"))] for c in f.get("constraints", []))
    return hashlib.sha256(json.dumps([shape, cons]).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- checks

def answers(graph: Graph, draft: Draft, cap: int = 2) -> set[str]:
    return execute(graph, draft.formalization, limit=cap)


def is_unique(graph: Graph, draft: Draft) -> bool:
    """Exactly one answer, and it is the intended one; and every intermediate node is pinned
    down too. Without the second part a chain that passes through a hub collapses: "the time
    zone of the capital of the country of *an airport in the US*" has one answer, but the
    airport clue does no work and the question is a shortcut to its last hops."""
    if answers(graph, draft, cap=2) != {draft.answer_id}:
        return False
    for var, eid in draft.binding.items():
        if var == draft.target:
            continue
        if execute(graph, {**draft.formalization, "target": var}, limit=2) != {eid}:
            return False
    return True


def _bound(draft: Draft, term: str) -> str:
    return draft.binding.get(term, term) if term.startswith("?") else term


def check_supported(graph: Graph, draft: Draft) -> tuple[bool, str]:
    """Every triple holds for the intended binding and every constraint is true of its
    entity, so every clue has a page that states it."""
    for s, r, o in draft.formalization["triples"]:
        if graph.triple(_bound(draft, s), r, _bound(draft, o)) is None:
            return False, f"no fact {_bound(draft, s)} -{r}-> {_bound(draft, o)}"
    from pipelines.browse.kg.executor import satisfies

    for c in draft.formalization.get("constraints", []):
        if not satisfies(graph, draft.binding[c["var"]], c):
            return False, f"constraint {c} is false for {draft.binding[c['var']]}"
    return True, "every clue is backed by a fact"


def entity_name(graph: Graph, eid: str) -> str:
    e = graph.entities.get(eid)
    return e.name if e else eid


def answer_aliases(graph: Graph, eid: str) -> list[str]:
    e = graph.entities[eid]
    out = [a for a in dict.fromkeys(e.aliases) if a and a != e.name]
    for attr in ("iso4217", "iata", "icao", "iso2", "iso3", "symbol"):
        v = e.attributes.get(attr)
        if isinstance(v, str) and v and e.type in ("currency", "airport", "element") and v not in out:
            out.append(v)
    return out


def fact_sentence(graph: Graph, t: Triple) -> str:
    try:
        return graph.fact_sentence(t)
    except ImportError:  # corpus renderer unavailable: plain statement
        return f"{entity_name(graph, t.subject)} {t.relation.replace('_', ' ')} {entity_name(graph, t.object)}."


def evidence(graph: Graph, draft: Draft) -> list[dict]:
    """URL + fact for each hop and each attribute clue of the intended binding."""
    out = []
    for i, (s, r, o) in enumerate(draft.formalization["triples"]):
        sb, ob = _bound(draft, s), _bound(draft, o)
        t = graph.triple(sb, r, ob)
        if t is None:
            continue
        out.append({"hop": i, "url": graph.entities[sb].page_url if sb in graph.entities else "",
                    "fact": fact_sentence(graph, t), "subject": entity_name(graph, sb), "relation": r,
                    "object": entity_name(graph, ob)})
    n = len(out)
    for j, c in enumerate(draft.formalization.get("constraints", [])):
        eid = draft.binding[c["var"]]
        e = graph.entities.get(eid)
        if e is None or "attr" not in c:
            continue
        v = e.attributes.get(c["attr"]) if c["attr"] not in ("name", "type") else getattr(e, c["attr"])
        out.append({"hop": n + j, "url": e.page_url, "fact": f"{e.name}: {c['attr'].replace('_', ' ')} {v}",
                    "subject": e.name, "relation": c["attr"], "object": str(v)})
    return out


# ---------------------------------------------------------------- template rendering

def _fmt_num(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:g}"


def describe_constraints(graph: Graph, draft: Draft, var: str) -> str:
    parts = []
    etype = None
    for c in draft.formalization.get("constraints", []):
        if c["var"] != var:
            continue
        if "type" in c and "attr" not in c:
            etype = c["type"]
            continue
        a = c.get("attr")
        if a in ATTR_PHRASE and ("min" in c or "max" in c):
            lo, hi = c.get("min"), c.get("max")
            if lo is not None and hi is not None:
                v = f"between {_fmt_num(lo)} and {_fmt_num(hi)}"
            elif lo is not None:
                v = f"over {_fmt_num(lo)}"
            else:
                v = f"under {_fmt_num(hi)}"
            parts.append(ATTR_PHRASE[a].format(v=v))
        elif a and "equals" in c:
            parts.append(f"{a.replace('_', ' ')} {c['equals']}")
    etype = etype or graph.entities[draft.binding[var]].type if var in draft.binding else etype
    noun = (etype or "entity").replace("_", " ")
    article = "an" if noun[:1].lower() in "aeiou" else "a"
    return f"{article} {noun}" + (" with " + " and ".join(parts) if parts else "")


def render_question(graph: Graph, draft: Draft) -> str:
    """Deterministic English question from the formalization (the template fallback)."""
    f = draft.formalization
    by_obj = {o: (s, r) for s, r, o in f["triples"] if o.startswith("?")}
    extra = {}  # var -> list of clue phrases from triples not on the main path
    path_vars = set()
    node = f["target"]
    while node in by_obj:
        path_vars.add(node)
        node = by_obj[node][0]

    def desc(term: str, depth: int = 0) -> str:
        if not term.startswith("?"):
            return entity_name(graph, term)
        if term in by_obj and depth < 12:
            s, r = by_obj[term]
            base = REL_PHRASE.get(r, "the " + r.replace("_", " ") + " of {x}").format(x=desc(s, depth + 1))
        else:
            base = describe_constraints(graph, draft, term)
        clues = extra.get(term)
        return base + (" (" + "; ".join(clues) + ")" if clues else "")

    for s, r, o in f["triples"]:
        if o.startswith("?") and by_obj.get(o) == (s, r):
            continue
        if s.startswith("?"):  # a clue about a variable: "?v -r-> const"
            extra.setdefault(s, []).append(_clue_phrase(r, desc(o)))
    q = desc(f["target"])
    return "What is " + q + "?"


def _clue_phrase(rel: str, obj: str) -> str:
    return {
        "country": f"located in {obj}", "state": f"in the US state of {obj}", "capital": f"whose capital is {obj}",
        "currency": f"using the {obj}", "continent": f"in {obj}", "subregion": f"in {obj}",
        "timezone": f"in the {obj} time zone", "serves_city": f"serving {obj}",
        "discovered_by": f"discovered by {obj}", "discovered_in": f"discovered in {obj}",
        "language": f"where {obj} is spoken", "shares_border_with": f"bordering {obj}",
    }.get(rel, f"{rel.replace('_', ' ')} {obj}")


def leaks_answer(question: str, answer: str, aliases: Sequence[str]) -> str | None:
    from pipelines.browse.verify import normalize

    nq = f" {normalize(question)} "
    for a in [answer, *aliases]:
        na = normalize(a)
        if len(na) >= 2 and f" {na} " in nq:
            return a
    return None


def _digits(text: str) -> str:
    import re

    return re.sub(r"(?<=\d)[,\s](?=\d{3})", "", text)


def missing_clues(graph: Graph, draft: Draft, text: str) -> list[str]:
    """Clues of the draft that a written question does not state: named entities (by name or
    alias) and the bounds of numeric ranges. A rewrite that drops a clue changes the question."""
    from pipelines.browse.verify import normalize

    nt = f" {normalize(text)} "
    digits = _digits(text)
    missing = []
    for c in dict.fromkeys(named_constants(draft)):
        e = graph.entities.get(c)
        names = [entity_name(graph, c), *(e.aliases if e else ())]
        if not any(f" {normalize(n)} " in nt for n in names if normalize(n)):
            missing.append(entity_name(graph, c))
    for c in draft.formalization.get("constraints", []):
        for bound in ("min", "max"):
            v = c.get(bound)
            if v is None:
                continue
            shown = _fmt_num(v).replace(",", "")
            if shown not in digits:
                missing.append(f"{c.get('attr')} {bound} {shown}")
    return missing


def named_constants(draft: Draft) -> list[str]:
    return [t for s, _, o in draft.formalization["triples"] for t in (s, o) if not t.startswith("?")]


def path_length(draft: Draft) -> int:
    """Hops on the chain that leads to the answer (clue triples that only describe a node do
    not count): follow subject links back from the target."""
    by_obj = {o: s for s, _r, o in draft.formalization["triples"] if o.startswith("?")}
    n, node, seen = 0, draft.target, set()
    while node in by_obj and node not in seen:
        seen.add(node)
        node = by_obj[node]
        n += 1
    return n


def count(graph: Graph, draft: Draft, cap: int = 50) -> int:
    return count_answers(graph, draft.formalization, cap=cap)


def to_jsonable(m: Mapping) -> dict:
    return json.loads(json.dumps(m, default=str))
