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

from pipelines.browse.kg.cards import hop_problem, load_cards
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
# Relations that link pages rather than state facts: never a hop or a shortcut.
UNWALKED = frozenset({"mentions", "described_by", "summary_mentions"})
NUMERIC_ATTRS = ("population", "elevation_ft", "area_km2", "discovery_year", "latitude", "longitude")
ATTR_PHRASE = {
    "population": "a population of {v}",
    "elevation_ft": "an elevation of {v} ft",
    "area_km2": "an area of {v} km2",
    "discovery_year": "discovered in {v}",
    "latitude": "a latitude of {v}",
    "longitude": "a longitude of {v}",
}
# Attribute answers: the question asks for an exact value of the final entity instead of the
# entity itself. entity type -> [(answer attribute, answer_type, question template)]. Every value
# is stated on the entity's page (corpus.ATTR_TEMPLATES); ``count:<rel>`` counts the entity's
# ``rel`` objects (listed in one sentence on its page). Inexact values (population, area,
# coordinates) and messy ones (calling codes) are not asked.
ANSWER_ATTRS: dict[str, list[tuple[str, str, str]]] = {
    "country": [("iso3", "code", "What is the ISO 3166 alpha-3 code of {x}?"),
                ("tld", "code", "What is the internet top-level domain of {x}?"),
                ("count:shares_border_with", "count", "How many countries share a border with {x}?")],
    "currency": [("iso4217", "code", "What is the ISO 4217 code of {x}?")],
    "language": [("iso639_3", "code", "What is the ISO 639-3 code of {x}?")],
    "element": [("discovery_year", "year", "In what year was {x} discovered?"),
                ("symbol", "code", "What is the chemical symbol of {x}?")],
    "airport": [("iata", "code", "What is the IATA code of {x}?"), ("icao", "code", "What is the ICAO code of {x}?")],
}
MIN_COUNT_ANSWER = 2  # a count answer of 0 or 1 is a guess, not a lookup


@dataclass
class Draft:
    formalization: dict
    binding: dict[str, str]
    seed: str
    lineage: list[dict] = field(default_factory=list)
    question: str | None = None
    # set by the question writer: {"origin": "llm" | "template", "reason": why, "rewrite": the LLM text}
    rewrite_check: dict | None = None

    @property
    def target(self) -> str:
        return self.formalization["target"]

    @property
    def answer_id(self) -> str:
        """The target entity (for an attribute answer, the entity whose attribute is asked)."""
        return self.binding[self.target]

    @property
    def answer_attr(self) -> str | None:
        """The attribute of the target entity the question asks for (None: the entity itself)."""
        return self.formalization.get("answer_attr")

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


def path_steps(draft: Draft) -> list[tuple[str, str, str, bool]]:
    """The hops from the start of the path to the target, as (from term, relation, to term,
    inverse). A term is reached forward when it is the object of a triple (``?a -r-> ?b``), or
    inversely when it is a sampled inverse hop: the subject of a triple ``?b -r-> ?a`` with ``r``
    in :data:`INV_PHRASE` and no type constraint of its own (an obfuscated entity has one: its
    triples are clues, not hops). Clue triples that only describe a node are not hops."""
    f = draft.formalization
    fwd: dict[str, list[tuple[str, str]]] = {}
    for s, r, o in f["triples"]:
        if o.startswith("?"):
            fwd.setdefault(o, []).append((s, r))
    typed = {c["var"] for c in f.get("constraints", []) if "type" in c and "attr" not in c}
    steps, node, seen = [], f["target"], {f["target"]}
    while True:
        cands = [(s, r) for s, r in fwd.get(node, ()) if s not in seen]
        if cands:
            prev, r = cands[0]
            steps.append((prev, r, node, False))
        else:
            inv = [(o, r) for s, r, o in f["triples"] if s == node and r in INV_PHRASE and o not in seen]
            if not node.startswith("?") or node in typed or not inv:
                break
            prev, r = inv[0]
            steps.append((prev, r, node, True))
        seen.add(prev)
        node = prev
    return list(reversed(steps))


def path_nodes(draft: Draft) -> list[str]:
    """Entity ids along the path to the target (start first), resolved through the binding."""
    steps = path_steps(draft)
    if not steps:
        return [_bound(draft, draft.target)]
    return [_bound(draft, steps[0][0])] + [_bound(draft, t) for _p, _r, t, _i in steps]


def _path_relation(draft: Draft, m: int) -> str:
    return path_steps(draft)[m - 1][1]


def chain_entities(draft: Draft) -> set[str]:
    """Every entity a question passes through: named constants and the bound variables."""
    f = draft.formalization
    out = {x for t in f["triples"] for x in (t[0], t[2]) if not x.startswith("?")}
    return out | set(draft.binding.values())


def hop_options(graph: Graph, cur: str, inverse: bool) -> list[tuple[str, str, bool]]:
    """(relation, next entity, inverse) for every one-valued hop out of ``cur``: forward over
    :data:`REL_PHRASE` relations, and with ``inverse`` back over :data:`INV_PHRASE` relations
    when ``cur`` is the object of exactly one such triple ("the airport serving X"). One-valued in
    the world too: the relation cards (:mod:`pipelines.browse.kg.cards`) veto hops whose subject has
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


def chain_start(chain: Sequence[Triple]) -> str:
    """The seed of a sampled chain: the end of the first triple the second does not touch (a
    one-triple chain is read forward)."""
    if len(chain) < 2:
        return chain[0].subject
    first, second = chain[0], chain[1]
    return first.object if first.subject in (second.subject, second.object) else first.subject


def sample_chain(graph: Graph, rng: random.Random, hops: int, pool: Sequence[str],
                 max_tries: int = 50, blocked: frozenset[str] | set[str] = frozenset(),
                 skip_trivial: bool = True, inverse: bool = False) -> list[Triple] | None:
    """A chain of ``hops`` functional hops (each subject has exactly one object for the
    relation) from a seed in ``pool``, no entity twice, at most one weak relation, and never a
    weak one last: a time zone, continent or world region is an answer from a handful of values,
    guessable without the chain. Entities in ``blocked`` (hubs at their cap) are walked around;
    with ``skip_trivial`` no hop is one a reader does not need (:func:`trivial_hop`); with
    ``inverse`` one-valued inverse hops are walked too (the start is :func:`chain_start`)."""
    pool = [p for p in pool if p not in blocked] if blocked else pool
    if not pool:
        return None
    for _ in range(max_tries):
        cur = rng.choice(pool)
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
            r, o, inv = rng.choice(sorted(options))
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
                          skip_trivial: bool = True, inverse: bool = False) -> list[Triple] | None:
    """Pick a seed type uniformly (variety), draw a few chains from it and keep the one with
    the most long-tail seed."""
    types = [t for t, v in pools.items() if v]
    if not types:
        return None
    pool = pools[rng.choice(types)]
    best, best_w = None, -1.0
    for _ in range(candidates):
        c = sample_chain(graph, rng, hops, pool, max_tries=10, blocked=blocked, skip_trivial=skip_trivial,
                         inverse=inverse)
        if c is not None:
            w = seed_weight(graph, chain_start(c))
            if w > best_w:
                best, best_w = c, w
    return best


def answer_attr_options(graph: Graph, eid: str) -> list[tuple[str, str]]:
    """(answer attribute, answer_type) pairs that can be asked of ``eid``: the value exists, is
    exact, and (for counts) is at least :data:`MIN_COUNT_ANSWER`."""
    e = graph.entities.get(eid)
    if e is None:
        return []
    out = []
    for attr, atype, _tpl in ANSWER_ATTRS.get(e.type, ()):
        v = attribute_answer(graph, eid, attr)
        if v is not None:
            out.append((attr, atype))
    return out


def attribute_answer(graph: Graph, eid: str, attr: str) -> str | None:
    """The gold string of an attribute answer, or None where the entity has no usable value."""
    e = graph.entities[eid]
    if attr.startswith("count:"):
        n = len(graph.objects(eid, attr.split(":", 1)[1]))
        return str(n) if n >= MIN_COUNT_ANSWER else None
    v = e.attributes.get(attr)
    if isinstance(v, bool) or v is None or v == "":
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip() or None


def answer_spec(graph: Graph, draft: Draft) -> tuple[str, list[str], str]:
    """(gold answer, aliases, answer_type) of a draft. An entity answer is its name with its
    aliases (type ``entity``); an attribute answer is the exact value as a string (type ``code``,
    ``year`` or ``count``), with a few harmless spellings (``.pe`` / ``pe`` for a domain)."""
    attr = draft.answer_attr
    if not attr:
        return entity_name(graph, draft.answer_id), answer_aliases(graph, draft.answer_id), "entity"
    v = attribute_answer(graph, draft.answer_id, attr)
    if v is None:
        raise ValueError(f"{draft.answer_id} has no usable value for answer attribute {attr!r}")
    atype = next(a for n, a, _ in ANSWER_ATTRS[graph.entities[draft.answer_id].type] if n == attr)
    aliases = [v.lstrip(".")] if attr == "tld" and v.startswith(".") else []
    return v, aliases, atype


def draft_from_chain(chain: Sequence[Triple], answer_attr: str | None = None, start: str | None = None) -> Draft:
    """Seed (``start``, by default the first triple's subject) as a named constant, every later
    node a variable, the last one the target. A triple whose object is the current node is an
    inverse hop (``?x2 -serves_city-> ?x1``: the airport serving ?x1). With ``answer_attr`` the
    question asks for that attribute of the target (see :data:`ANSWER_ATTRS`)."""
    triples, binding = [], {}
    prev = at = start or chain[0].subject
    for i, t in enumerate(chain, 1):
        var = f"?x{i}"
        if t.subject == at:  # forward: at -r-> next
            triples.append([prev, t.relation, var])
            binding[var], at = t.object, t.object
        else:  # inverse: next -r-> at ("the airport serving X")
            triples.append([var, t.relation, prev])
            binding[var], at = t.subject, t.subject
        prev = var
    form = {"triples": triples, "target": f"?x{len(chain)}", "constraints": [], "distinct": True}
    if answer_attr:
        form["answer_attr"] = answer_attr
    return Draft(form, binding, start or chain[0].subject)


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
    key = [shape, cons] + ([f["answer_attr"]] if f.get("answer_attr") else [])
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


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
        from pipelines.browse.corpus import evidence_url

        out.append({"hop": i, "url": evidence_url(graph, t) if sb in graph.entities else "",
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
    attr = draft.answer_attr
    if attr:  # the answer hop: the target's page states the value
        e = graph.entities[draft.answer_id]
        value = attribute_answer(graph, e.id, attr)
        if attr.startswith("count:"):
            rel = attr.split(":", 1)[1]
            objs = graph.objects(e.id, rel)
            from pipelines.browse.corpus import page_fact

            fact = page_fact(graph, graph.triple(e.id, rel, objs[0]))  # one sentence lists them all
        else:
            from pipelines.browse.corpus import attribute_sentence

            fact = attribute_sentence(e.name, attr, e.attributes.get(attr)) or f"{e.name}: {attr} {value}"
        out.append({"hop": len(out), "url": e.page_url, "fact": fact, "subject": e.name, "relation": attr,
                    "object": value})
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
    steps = path_steps(draft)
    step_of = {t: (p, r, inv) for p, r, t, inv in steps}
    on_path = {x for p, _r, t, _inv in steps for x in (p, t)} | {f["target"]}
    for s, r, o in f["triples"]:
        # off-path branches "a -r-> ?b" from a term off the main path: ?b is described through a
        # ("the capital of Z"); from a term on the path it is a clue of that term, rendered below
        # ("whose capital is a city with ...").
        if o.startswith("?") and o not in step_of and s != o and s not in on_path:
            step_of[o] = (s, r, False)
    path_triples = {(t, r, p) if inv else (p, r, t) for t, (p, r, inv) in step_of.items()}
    extra: dict[str, list[str]] = {}  # var -> clue phrases from triples not on the main path

    def desc(term: str, depth: int = 0) -> str:
        if not term.startswith("?"):
            return entity_name(graph, term)
        if term in step_of and depth < 12:
            p, r, inv = step_of[term]
            if inv:
                base = INV_PHRASE[r].format(x=desc(p, depth + 1))
            else:
                base = REL_PHRASE.get(r, "the " + r.replace("_", " ") + " of {x}").format(x=desc(p, depth + 1))
        else:
            base = describe_constraints(graph, draft, term)
        clues = extra.get(term)
        return base + (" (" + "; ".join(clues) + ")" if clues else "")

    for s, r, o in f["triples"]:
        if (s, r, o) in path_triples:
            continue
        if s.startswith("?"):  # a clue about a variable: "?v -r-> const"
            extra.setdefault(s, []).append(_clue_phrase(r, desc(o)))
    q = desc(f["target"])
    attr = f.get("answer_attr")
    if attr:
        etype = graph.entities[draft.answer_id].type
        tpl = next(t for n, _a, t in ANSWER_ATTRS[etype] if n == attr)
        return tpl.format(x=q)
    return "What is " + q + "?"


def _clue_phrase(rel: str, obj: str) -> str:
    return {
        "country": f"located in {obj}", "state": f"in the US state of {obj}", "capital": f"whose capital is {obj}",
        "currency": f"using the {obj}", "continent": f"in {obj}", "subregion": f"in {obj}",
        "timezone": f"in the {obj} time zone", "serves_city": f"serving {obj}",
        "discovered_by": f"discovered by {obj}", "discovered_in": f"discovered in {obj}",
        "language": f"where {obj} is spoken", "shares_border_with": f"bordering {obj}",
        "summary_mentions": f"whose Wikipedia summary mentions {obj}",
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
    not count): :func:`path_steps` back from the target."""
    return len(path_steps(draft))


def count(graph: Graph, draft: Draft, cap: int = 50) -> int:
    return count_answers(graph, draft.formalization, cap=cap)


def to_jsonable(m: Mapping) -> dict:
    return json.loads(json.dumps(m, default=str))
