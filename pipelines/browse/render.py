"""Template questions: the deterministic English of a draft, and the checks of a written question
(it names no answer, it states every clue).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from crucible.pipelines.browse.draft import (
    ANSWER_ATTRS,
    INV_PHRASE,
    REL_PHRASE,
    Draft,
    named_constants,
    path_steps,
)
from crucible.pipelines.browse.kg.model import Graph
from crucible.pipelines.browse.names import entity_name, normalize

ATTR_PHRASE = {
    "population": "a population of {v}",
    "elevation_ft": "an elevation of {v} ft",
    "area_km2": "an area of {v} km2",
    "discovery_year": "discovered in {v}",
    "latitude": "a latitude of {v}",
    "longitude": "a longitude of {v}",
}


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
            extra.setdefault(s, []).append(clue_phrase(r, desc(o)))
    q = desc(f["target"])
    attr = f.get("answer_attr")
    if attr:
        etype = graph.entities[draft.answer_id].type
        tpl = next(t for n, _a, t in ANSWER_ATTRS[etype] if n == attr)
        return tpl.format(x=q)
    return "What is " + q + "?"


def clue_phrase(rel: str, obj: str) -> str:
    """How a question states clue ``?v -rel-> obj`` about a hidden entity (``obj`` as the question names it)."""
    return {
        "country": f"located in {obj}", "state": f"in the US state of {obj}", "capital": f"whose capital is {obj}",
        "currency": f"using the {obj}", "continent": f"in {obj}", "subregion": f"in {obj}",
        "timezone": f"in the {obj} time zone", "serves_city": f"serving {obj}",
        "discovered_by": f"discovered by {obj}", "discovered_in": f"discovered in {obj}",
        "language": f"where {obj} is spoken", "shares_border_with": f"bordering {obj}",
        "summary_mentions": f"whose Wikipedia summary mentions {obj}",
    }.get(rel, f"{rel.replace('_', ' ')} {obj}")


def leaks_answer(question: str, answer: str, aliases: Sequence[str]) -> str | None:
    nq = f" {normalize(question)} "
    for a in [answer, *aliases]:
        na = normalize(a)
        if len(na) >= 2 and f" {na} " in nq:
            return a
    return None


def _digits(text: str) -> str:
    return re.sub(r"(?<=\d)[,\s](?=\d{3})", "", text)


def missing_clues(graph: Graph, draft: Draft, text: str) -> list[str]:
    """Clues of the draft that a written question does not state: named entities (by name or
    alias) and the bounds of numeric ranges. A rewrite that drops a clue changes the question."""
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
