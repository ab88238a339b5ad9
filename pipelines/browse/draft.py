"""A draft: the structure of one question before and during hardening.

- ``formalization``: triple patterns over variables/constants, constraints and the target
  (executed against the graph by :mod:`crucible.pipelines.browse.kg.executor`),
- ``binding``: the intended entity for every variable (the answer is ``binding[target]``),
- ``lineage``: every hardening operator applied, with its check results.

Here: the relations a chain may follow (with the phrases a question uses for them), the answer a
draft asks for (the target entity or one of its exact attributes), the draft made from a sampled
chain, and the path from the seed to the answer.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from crucible.pipelines.browse.kg.model import Graph, Triple
from crucible.pipelines.browse.names import answer_aliases, entity_name

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


# ---------------------------------------------------------------- the answer

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


# ---------------------------------------------------------------- chain -> draft

def chain_start(chain: Sequence[Triple]) -> str:
    """The seed of a sampled chain: the end of the first triple the second does not touch (a
    one-triple chain is read forward)."""
    if len(chain) < 2:
        return chain[0].subject
    first, second = chain[0], chain[1]
    return first.object if first.subject in (second.subject, second.object) else first.subject


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


# ---------------------------------------------------------------- the path to the answer

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
        return [bound(draft, draft.target)]
    return [bound(draft, steps[0][0])] + [bound(draft, t) for _p, _r, t, _i in steps]


def path_length(draft: Draft) -> int:
    """Hops on the chain that leads to the answer (clue triples that only describe a node do
    not count): :func:`path_steps` back from the target."""
    return len(path_steps(draft))


def bound(draft: Draft, term: str) -> str:
    """The entity a term stands for: a variable through the binding, a constant itself."""
    return draft.binding.get(term, term) if term.startswith("?") else term


def chain_entities(draft: Draft) -> set[str]:
    """Every entity a question passes through: named constants and the bound variables."""
    f = draft.formalization
    out = {x for t in f["triples"] for x in (t[0], t[2]) if not x.startswith("?")}
    return out | set(draft.binding.values())


def named_constants(draft: Draft) -> list[str]:
    return [t for s, _, o in draft.formalization["triples"] for t in (s, o) if not t.startswith("?")]
