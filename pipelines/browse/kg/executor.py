"""Formalization executor: the set of entities a question's structure admits.

A formalization (stored on every synthesized question) is::

    {
      "triples": [["?a", "country", "?c"], ["?c", "capital", "?b"]],   # subject, relation, object
      "constraints": [                                                   # optional
        {"var": "?a", "type": "airport"},
        {"var": "?a", "attr": "elevation_ft", "min": 4000, "max": 6000},
        {"var": "?b", "attr": "population", "min": 1e6},
        {"var": "?a", "attr": "iata", "equals": "RKV"},
        {"var": "?a", "attr": "name", "in": ["A", "B"]}
      ],
      "target": "?b",
      "distinct": true                                                   # optional, default true
    }

Terms starting with ``?`` are variables; anything else is a constant entity id. ``attr`` names a key
of the entity's ``attributes`` (``name`` and ``type`` are also accepted); ``min``/``max`` are
inclusive; an entity without the attribute does not satisfy the constraint. With ``distinct`` all
variables bind pairwise different entities. :func:`execute` returns every binding of the target
for which a full assignment of all variables exists.

Method: unary constraints give initial domains, arc consistency over the patterns prunes them using
the graph's ``out``/``inn`` indexes, then a depth-first search finds one witness per target value
(``limit`` stops early, e.g. ``limit=2`` for an exactly-one-answer check).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crucible.pipelines.browse.kg.model import Graph

_OPS = ("min", "max", "equals", "in", "contains")


class FormalizationError(ValueError):
    """The formalization is malformed; the message names the field and the fix."""


@dataclass(frozen=True)
class Formalization:
    triples: tuple[tuple[str, str, str], ...]
    target: str
    constraints: tuple[Mapping[str, Any], ...] = ()
    distinct: bool = True
    variables: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, obj: Mapping[str, Any] | Formalization) -> Formalization:
        if isinstance(obj, Formalization):
            return obj
        if not isinstance(obj, Mapping):
            raise FormalizationError("formalization must be an object with 'triples' and 'target'")
        raw = obj.get("triples")
        if not isinstance(raw, list | tuple) or not raw:
            raise FormalizationError("formalization.triples: need a non-empty list of [subject, relation, object]")
        triples = []
        for i, t in enumerate(raw):
            if not isinstance(t, list | tuple) or len(t) != 3 or not all(isinstance(x, str) and x for x in t):
                raise FormalizationError(f"formalization.triples[{i}]: need [subject, relation, object] strings, got {t!r}")
            if t[1].startswith("?"):
                raise FormalizationError(f"formalization.triples[{i}]: relation variables are not supported ({t[1]!r})")
            triples.append(tuple(t))
        variables: list[str] = []
        for s, _, o in triples:
            for x in (s, o):
                if x.startswith("?") and x not in variables:
                    variables.append(x)
        target = obj.get("target")
        if target not in variables:
            raise FormalizationError(f"formalization.target: {target!r} is not a variable of the triples {variables}")
        cons = []
        for i, c in enumerate(obj.get("constraints") or ()):
            if not isinstance(c, Mapping) or c.get("var") not in variables:
                raise FormalizationError(f"formalization.constraints[{i}]: 'var' must be one of {variables}, got {c!r}")
            if "type" not in c and "attr" not in c:
                raise FormalizationError(f"formalization.constraints[{i}]: needs 'type' or 'attr'")
            if "attr" in c and not any(op in c for op in _OPS):
                raise FormalizationError(f"formalization.constraints[{i}]: 'attr' needs one of {list(_OPS)}")
            cons.append(dict(c))
        return cls(tuple(triples), target, tuple(cons), bool(obj.get("distinct", True)), tuple(variables))

    def to_dict(self) -> dict:
        return {"triples": [list(t) for t in self.triples], "target": self.target,
                "constraints": [dict(c) for c in self.constraints], "distinct": self.distinct}


def _value(graph: Graph, eid: str, attr: str) -> Any:
    e = graph.entities.get(eid)
    if e is None:
        return None
    if attr == "name":
        return e.name
    if attr == "type":
        return e.type
    return e.attributes.get(attr)


def satisfies(graph: Graph, eid: str, c: Mapping[str, Any]) -> bool:
    e = graph.entities.get(eid)
    if e is None:
        return False
    if "type" in c and e.type != c["type"]:
        return False
    if "attr" not in c:
        return True
    v = _value(graph, eid, c["attr"])
    if v is None:
        return False
    try:
        if "min" in c and not v >= c["min"]:
            return False
        if "max" in c and not v <= c["max"]:
            return False
    except TypeError:
        return False
    if "equals" in c and v != c["equals"]:
        return False
    if "in" in c and v not in c["in"]:
        return False
    if "contains" in c and (not isinstance(v, str) or str(c["contains"]).lower() not in v.lower()):
        return False
    return True


def _initial_domains(graph: Graph, f: Formalization) -> dict[str, set[str] | None]:
    doms: dict[str, set[str] | None] = {v: None for v in f.variables}
    by_var: dict[str, list[Mapping]] = {}
    for c in f.constraints:
        by_var.setdefault(c["var"], []).append(c)
    for v, cs in by_var.items():
        types = {c["type"] for c in cs if "type" in c}
        if len(types) > 1:
            doms[v] = set()
            continue
        base: Iterable[str] = graph.by_type(next(iter(types))) if types else graph.entities.keys()
        doms[v] = {e for e in base if all(satisfies(graph, e, c) for c in cs)}
    return doms


def _prune(graph: Graph, f: Formalization, doms: dict[str, set[str] | None]) -> bool:
    """Arc consistency; returns False when some domain is empty (no answer)."""
    for _ in range(2 * len(f.triples) + 4):
        changed = False
        for s, r, o in f.triples:
            sv, ov = s.startswith("?"), o.startswith("?")
            if not sv and not ov:
                if graph.triple(s, r, o) is None:
                    return False
                continue
            if sv and not ov:
                cand = set(graph.subjects(o, r))
                new = cand if doms[s] is None else doms[s] & cand
                if new != doms[s]:
                    doms[s], changed = new, True
            elif ov and not sv:
                cand = set(graph.objects(s, r))
                new = cand if doms[o] is None else doms[o] & cand
                if new != doms[o]:
                    doms[o], changed = new, True
            else:
                ds, do = doms[s], doms[o]
                if ds is None and do is None:
                    continue
                if ds is not None:
                    reach = {y for x in ds for y in graph.objects(x, r)}
                    new_o = reach if do is None else do & reach
                    if new_o != do:
                        doms[o], do, changed = new_o, new_o, True
                back = {x for y in do for x in graph.subjects(y, r)}  # type: ignore[union-attr]
                new_s = back if ds is None else ds & back
                if new_s != ds:
                    doms[s], changed = new_s, True
            if any(d is not None and not d for d in doms.values()):
                return False
        if not changed:
            break
    for v, d in doms.items():  # a variable only in var-var patterns with no anchor: seed from the relation
        if d is None:
            cand: set[str] = set()
            for s, r, o in f.triples:
                if s == v:
                    cand |= {x for x, rels in graph.out.items() if r in rels}
                elif o == v:
                    cand |= {x for x, rels in graph.inn.items() if r in rels}
            doms[v] = cand
            return _prune(graph, f, doms) if cand else False
    return True


def _witness(graph: Graph, f: Formalization, doms: dict[str, set[str]], assign: dict[str, str]) -> bool:
    """Depth-first search for one complete assignment extending ``assign``."""
    if len(assign) == len(f.variables):
        return True
    best_var, best_cands = None, None
    for v in f.variables:
        if v in assign:
            continue
        cands: set[str] | None = None
        for s, r, o in f.triples:
            if o == v and (not s.startswith("?") or s in assign):
                c = set(graph.objects(assign.get(s, s), r))
            elif s == v and (not o.startswith("?") or o in assign):
                c = set(graph.subjects(assign.get(o, o), r))
            else:
                continue
            cands = c if cands is None else cands & c
        cands = doms[v] if cands is None else cands & doms[v]
        if best_cands is None or len(cands) < len(best_cands):
            best_var, best_cands = v, cands
    used = set(assign.values()) if f.distinct else set()
    for x in sorted(best_cands or ()):
        if x in used:
            continue
        assign[best_var] = x  # type: ignore[index]
        ok = all(
            graph.triple(assign.get(s, s), r, assign.get(o, o)) is not None
            for s, r, o in f.triples
            if (not s.startswith("?") or s in assign) and (not o.startswith("?") or o in assign)
        )
        if ok and _witness(graph, f, doms, assign):
            del assign[best_var]  # type: ignore[arg-type]
            return True
        del assign[best_var]  # type: ignore[arg-type]
    return False


def execute(graph: Graph, formalization: Mapping[str, Any] | Formalization, limit: int | None = None) -> set[str]:
    """Entity ids the target variable can take (at most ``limit`` of them when given)."""
    f = Formalization.parse(formalization)
    doms = _initial_domains(graph, f)
    if any(d is not None and not d for d in doms.values()):
        return set()
    if not _prune(graph, f, doms):
        return set()
    answers: set[str] = set()
    for t in sorted(doms[f.target] or ()):
        if _witness(graph, f, doms, {f.target: t}):  # type: ignore[arg-type]
            answers.add(t)
            if limit is not None and len(answers) >= limit:
                break
    return answers


def count_answers(graph: Graph, formalization, cap: int | None = None) -> int:
    return len(execute(graph, formalization, limit=cap))


def is_unique(graph: Graph, formalization) -> bool:
    """Exactly one answer (stops after finding a second)."""
    return len(execute(graph, formalization, limit=2)) == 1
