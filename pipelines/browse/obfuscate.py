"""Obfuscation: replace a named entity of a question by a description that picks it out alone.

``obfuscate(graph, draft, rng)`` (a hardening operator, see :mod:`crucible.pipelines.browse.harden`) describes a named
constant by its type, then by clues chosen greedily: a relation to another named entity (a fact of the
graph, or a text link ``summary_mentions``: "whose Wikipedia summary mentions X", counted over every page
a reader could take for it, :func:`summary_readings`), or a numeric attribute blurred into a range. The
first clue is always a relation a search can find: numeric ranges may narrow an entity a findable clue
reaches, never pin one alone (:func:`ranges_pin_alone`). Also here, the name checks every edit shares: a
name another entity shares is ambiguous (:func:`ambiguous_names`); a named entity must not give a hidden
one away (:func:`names_hidden`).
"""

from __future__ import annotations

import math
import random
import re
import threading

from crucible.pipelines.browse.kg.cards import clue_problem, load_cards
from crucible.pipelines.browse.kg.model import Graph
from crucible.pipelines.browse.names import entity_name, normalize
from crucible.pipelines.browse.render import leaks_answer
from crucible.pipelines.browse.synth import (
    NUMERIC_ATTRS,
    REL_PHRASE,
    Draft,
    is_unique,
    named_constants,
    path_steps,
)

MAX_CLUES = 4


def replace_term(draft: Draft, old: str, new: str) -> None:
    draft.formalization["triples"] = [[new if x == old else x for x in t] for t in draft.formalization["triples"]]


def fresh_var(draft: Draft) -> str:
    used = {x for t in draft.formalization["triples"] for x in (t[0], t[2]) if x.startswith("?")}
    i = 0
    while f"?y{i}" in used:
        i += 1
    return f"?y{i}"


def numeric_range(value: float, rng: random.Random, rel_width: float) -> tuple[float, float]:
    """A range around ``value`` of about ``rel_width`` relative width, not centred on it, with bounds
    rounded outwards to 2 significant digits of the width (whole numbers for whole values)."""
    if value == 0:
        return -1.0, 1.0
    width = abs(value) * rel_width
    offset = rng.uniform(0.15, 0.85) * width
    lo, hi = value - offset, value - offset + width
    exp = math.floor(math.log10(width)) - 1
    whole = isinstance(value, int) or float(value).is_integer()
    if whole:
        exp = max(0, exp)
    step = 10.0 ** exp
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    if whole:
        return int(round(lo)), int(round(hi))
    digits = max(0, -exp)
    return round(lo, digits), round(hi, digits)


def _name_counts(graph: Graph) -> dict[str, int]:
    counts = getattr(graph, "_crucible_name_counts", None)
    if counts is None:
        counts = {}
        for e in graph.entities.values():
            if e.type in UNNAMED_TYPES:
                continue
            n = normalize(e.name)
            counts[n] = counts.get(n, 0) + 1
        graph._crucible_name_counts = counts
    return counts


def ambiguous_names(graph: Graph, draft: Draft) -> list[str]:
    """Named entities of the question whose name another entity shares ("Freeport": 4 cities). The
    graph check is by id, but a reader has only the name: such a question has several readings,
    and is not accepted until obfuscation replaces the name by a description."""
    counts = _name_counts(graph)
    out = []
    for c in dict.fromkeys(named_constants(draft)):
        e = graph.entities.get(c)
        if e is not None and e.type not in UNNAMED_TYPES and counts.get(normalize(e.name), 0) > 1:
            out.append(entity_name(graph, c))
    return out


# article entities mirror the pages of other entities ("Iceland" the article and the country)
UNNAMED_TYPES = frozenset({"article"})


# relations whose objects are named after a place ("Pacific/Port_Moresby"): as a clue they point
# straight at a hidden country through its capital, so obfuscation never uses them
NAMING_RELATIONS = frozenset({"timezone"})
# relative widths tried for a numeric clue, widest (vaguest) first; rounding widens them a bit
RANGE_WIDTHS = (0.3, 0.1, 0.03, 0.01)


def _hidden_names(graph: Graph, draft: Draft) -> list[str]:
    """Names of every entity the question hides (all variable bindings)."""
    return [entity_name(graph, e) for e in dict.fromkeys(draft.binding.values())]


def names_hidden(graph: Graph, draft: Draft, eid: str) -> bool:
    """True when naming ``eid`` would give away a hidden entity: "America/Chicago" names Chicago,
    "Dublin Airport" names Dublin."""
    name = entity_name(graph, eid)
    return any(len(h) > 3 and leaks_answer(name, h, []) for h in _hidden_names(graph, draft))


# relations a clue may use: the walkable ones plus the text links of Wikipedia summaries
CLUE_RELATIONS = frozenset(REL_PHRASE) | {"summary_mentions"}


_TABLES_LOCK = threading.Lock()


def _summary_tables(graph: Graph) -> tuple[dict[str, str], frozenset[str]]:
    """(lower-cased summary text per entity, entities with no summary), built once per graph and published
    whole: the stage threads of a worker share the graph, and a half-filled table read by a second thread
    would count too few readings."""
    tables = graph.__dict__.get("_crucible_summary_tables")
    if tables is None:
        with _TABLES_LOCK:
            tables = graph.__dict__.get("_crucible_summary_tables")
            if tables is None:
                texts = {}
                for eid, rels in graph.out.items():
                    arts = rels.get("described_by")
                    if arts and arts[0] in graph.entities:
                        texts[eid] = (graph.entities[arts[0]].description or "").lower()
                none = frozenset(eid for eid, e in graph.entities.items() if eid not in texts and e.type != "article")
                tables = graph.__dict__["_crucible_summary_tables"] = (texts, none)
    return tables


def summary_readings(graph: Graph, obj: str) -> set[str]:
    """Every entity a reader could take for "an X whose Wikipedia summary mentions <obj>": the
    graph's own ``summary_mentions`` subjects plus every entity whose summary contains the object's
    title, or that title without its parenthesis, in any case (the graph's mention links match the
    exact title only). Uniqueness is counted over this wider set, so a clue never relies on a
    mention the reader sees and the graph missed.

    An entity with no summary in the corpus is a reading too: its Wikipedia page exists in the world and
    may mention the object (a city "whose summary mentions Caribbean" among the corpus's 2,689 pages is not
    unique among the world's Caribbean cities), so the clue narrows only among entities whose summary the
    corpus holds and reads."""
    cache, no_summary = _summary_tables(graph)
    title = graph.entities[obj].name if obj in graph.entities else obj
    forms = {title.lower(), re.sub(r"\s*\([^)]*\)$", "", title).lower()}
    pats = [re.compile(r"(?<!\w)" + re.escape(f) + r"(?!\w)") for f in forms if f]
    out = set(graph.subjects(obj, "summary_mentions"))
    out.update(eid for eid, text in cache.items() if any(p.search(text) for p in pats))
    return out | no_summary


PLACE_TYPES = frozenset({"city", "airport"})


def _country_of(graph: Graph, eid: str) -> str | None:
    if graph.entities[eid].type == "country":
        return eid
    countries = graph.out.get(eid, {}).get("country") or []
    return countries[0] if countries else None


def incidental_mention(graph: Graph, subject: str, obj: str) -> bool:
    """A summary naming a city or airport of another country than the subject's ("Seoul ... after Tokyo, New
    York and Los Angeles"): true of the text, but no clue a reader would search by; "a capital whose summary
    mentions Los Angeles" reads as a riddle, not research."""
    if obj in graph.entities and graph.entities[obj].type == "article":  # the page: the places it describes
        return any(incidental_mention(graph, subject, e) for e in graph.subjects(obj, "described_by"))
    if obj not in graph.entities or graph.entities[obj].type not in PLACE_TYPES:
        return False
    mine, theirs = _country_of(graph, subject), _country_of(graph, obj)
    return mine is not None and theirs is not None and mine != theirs


def _candidate_pool(graph: Graph, draft: Draft, var: str, etype: str) -> set[str]:
    """Entities that could stand for ``var`` before any clue: its type, with every relation the
    chain needs it to have."""
    pool = set(graph.by_type(etype))
    for s, r, _o in draft.formalization["triples"]:
        if s == var:
            pool = {x for x in pool if r in graph.out.get(x, {})}
    return pool


def _attr_matches(graph: Graph, pool: set[str], attr: str, lo: float, hi: float) -> set[str]:
    out = set()
    for x in pool:
        v = graph.entities[x].attributes.get(attr)
        if isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi:
            out.add(x)
    return out


def obfuscate(graph: Graph, draft: Draft, rng: random.Random) -> Draft | None:
    """Replace a named entity by a unique description. Tries every named constant (random order)
    and returns the first that can be described uniquely within ``MAX_CLUES`` clues."""
    consts = list(dict.fromkeys(c for c in named_constants(draft) if c in graph.entities))
    rng.shuffle(consts)
    ambiguous = set(ambiguous_names(graph, draft))
    consts.sort(key=lambda c: graph.entities[c].name not in ambiguous)  # ambiguous names first
    for target in consts:
        d = _obfuscate_one(graph, draft, target, rng)
        if d is not None:
            return d
    return None


def _obfuscate_one(graph: Graph, draft: Draft, target: str, rng: random.Random) -> Draft | None:
    """Greedy description of ``target``: its type, then the clue that leaves the fewest candidates
    (a relation to another named entity, or a numeric attribute blurred into the widest range
    that still narrows the field), until the whole question is unique again."""
    e = graph.entities[target]
    d = draft.copy()
    var = fresh_var(d)
    replace_term(d, target, var)
    d.binding[var] = target
    cons = d.formalization.setdefault("constraints", [])
    cons.append({"var": var, "type": e.type})
    if is_unique(graph, d):
        return d
    pool = _candidate_pool(graph, d, var, e.type)
    present = {tuple(t) for t in d.formalization["triples"]}
    rel_clues: list[tuple[list[str], set[str]]] = []
    cards = load_cards()
    for r, objs in sorted(graph.out.get(target, {}).items()):
        if r not in CLUE_RELATIONS or r in NAMING_RELATIONS:
            continue
        for o in objs:
            if o == target or o not in graph.entities or o in d.binding.values() or (var, r, o) in present:
                continue
            if names_hidden(graph, d, o) or clue_problem(cards, r, o):
                continue
            if r == "summary_mentions" and incidental_mention(graph, target, o):
                continue
            match = summary_readings(graph, o) if r == "summary_mentions" else set(graph.subjects(o, r))
            rel_clues.append(([var, r, o], match))
    attrs = [a for a in NUMERIC_ATTRS if isinstance(e.attributes.get(a), int | float)
             and not isinstance(e.attributes.get(a), bool)]
    for _ in range(MAX_CLUES):
        options = []  # (remaining candidates, preference, kind, clue, matching)
        for i, (clue, match) in enumerate(rel_clues):
            options.append((len(pool & match), 0, i, "rel", clue, match))
        for a in attrs:
            v = e.attributes[a]
            for w_i, width in enumerate(RANGE_WIDTHS):
                lo, hi = numeric_range(v, rng, width)
                if not lo <= v <= hi:
                    continue
                match = _attr_matches(graph, pool, a, lo, hi)
                options.append((len(match), 1 + w_i, len(options), "attr",
                                {"var": var, "attr": a, "min": lo, "max": hi}, match))
        options = [o for o in options if o[0] < len(pool)]  # a clue must narrow the field
        if not _anchored(d, var):  # the first clue is one a search can find: a relation, never a range
            options = [o for o in options if o[3] == "rel"]
        if not options:
            return None
        # a clue that finishes the job: the vaguest such (relations first, then the widest range);
        # otherwise the clue that leaves the fewest candidates
        n_left, _pref, _i, kind, clue, match = min(
            options, key=lambda o: (0, o[1], o[0], o[2]) if o[0] <= 1 else (1, o[0], o[1], o[2]))
        if kind == "rel":
            d.formalization["triples"].append(clue)
            rel_clues = [rc for rc in rel_clues if rc[0] != clue]
        else:
            cons.append(clue)
            attrs.remove(clue["attr"])
        pool = pool & match
        # a text clue counts only once its wider reading leaves the target alone
        loose_ok = len(pool) == 1 or not any(t[1] == "summary_mentions" for t in d.formalization["triples"]
                                              if t[0] == var)
        if loose_ok and not ranges_pin_alone(d, var) and is_unique(graph, d):
            return d
    return None


def _anchored(draft: Draft, var: str) -> bool:
    """``var`` is reached by a relation: a clue (?v -r-> named entity) or a hop into it. The path's
    own hop out of ?v describes nothing, forward (?v -r-> ?x) or inverse ("the country whose capital
    is ?v": ?x -capital-> ?v, whose object is ?v all the same)."""
    out_of_var = {(n, r, p) for p, r, n, inv in path_steps(draft) if inv and p == var}
    return any(((t[0] == var and not t[2].startswith("?")) or t[2] == var) and tuple(t) not in out_of_var
               for t in draft.formalization["triples"])


def ranges_pin_alone(draft: Draft, var: str) -> bool:
    """True when ``var`` is described by numeric ranges and no relation clue: "an airport with an
    elevation between 3,891 and 3,931 ft" is a database filter no search engine answers. Ranges
    may narrow an entity that a clue a search can find reaches; they never pin one alone."""
    f = draft.formalization
    has_range = any(c.get("var") == var and "attr" in c for c in f.get("constraints", []))
    return has_range and not _anchored(draft, var)
