"""The graph check for a gold given as text: rows and questions that carry no ``gold_id``.

A ``crucible browse judge`` row or a ``crucible browse rollout`` question names its gold in words. Both
the gold text and the prediction are resolved against the graph (:mod:`crucible.pipelines.browse.resolve`), and
the check decides only what the graph decides with certainty; the rest goes to the rules and the judge:

- the prediction names the gold's one entity: ``correct`` (source ``rule``);
- the prediction names only entities the gold text does not (another city, the country of a city, the
  city of an airport, the state of a city, the river through a capital): ``incorrect`` (source
  ``graph``), no judge asked, reason ``graph: prediction resolves to <id> (<name>), gold to <id> ...``;
- the prediction's qualifier places the gold's one entity elsewhere ("Dublin, UK"): ``incorrect``;
- the gold names nothing of the asked type and the prediction names only graph entities of another
  type than the one asked ("Tokyo" when an airport is asked): ``incorrect``.

What is never rejected here (precision the other way):

- ambiguous golds: "Springfield" names 12 cities; a prediction naming one of them is left to the rules
  and the judge; one naming none of them is rejected;
- the asked type narrows the gold's candidates ("New York" names no city, so for a city it counts as
  unresolved); a river, lake or mountain gold keeps only articles (the graph has no such type);
- possible duplicates: a Wikipedia article the graph could not tie to a typed entity ("Japanese yen"
  beside the currency "Yen"), or two entities of one non-place type whose names contain one another
  ("Heathrow Airport", a Texas airstrip, and "London Heathrow Airport"). Places are not duplicates of
  each other: "New Delhi" is not "Delhi", "South Sudan" not "Sudan";
- values: years, counts, quantities and codes (an ``answer_type`` that is no entity type) are not names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from crucible.pipelines.browse import gold as G
from crucible.pipelines.browse.names import key
from crucible.pipelines.browse.resolve import NameIndex, resolve_detail

ARTICLE = "article"  # Wikipedia summaries: untyped, may duplicate a typed entity
# places: a modifier makes another place ("New Delhi" / "Delhi"), so same-type containment is no duplicate
PLACE_TYPES = frozenset({"city", "country", "us_state", "continent", "subregion"})
_NATURAL = frozenset()  # the graph has no river/lake/mountain type: only articles can be one
# answer-type words -> the graph types an answer of that kind may have (articles always may)
ANSWER_TYPES: dict[str, frozenset[str]] = {
    **dict.fromkeys(["city", "town", "capital", "capital city"], frozenset({"city"})),
    **dict.fromkeys(["country", "nation", "sovereign state"], frozenset({"country"})),
    **dict.fromkeys(["us state", "u s state", "us_state"], frozenset({"us_state"})),
    "airport": frozenset({"airport"}), "element": frozenset({"element"}),
    "chemical element": frozenset({"element"}), "currency": frozenset({"currency"}),
    "language": frozenset({"language"}), "continent": frozenset({"continent"}),
    **dict.fromkeys(["timezone", "time zone"], frozenset({"timezone"})),
    **dict.fromkeys(["person", "scientist", "chemist", "physicist", "discoverer"], frozenset({"discoverer"})),
    **dict.fromkeys(["river", "lake", "mountain", "sea", "ocean", "island", "body of water"], _NATURAL),
}
# "Which river flows through Paris?": a natural feature asked where the row gives no answer_type
_NATURAL_ASKED = re.compile(r"\b(?:which|what)\s+(river|lake|mountain|sea|ocean|island|body of water)\b", re.I)


def natural_kind(question: str) -> str | None:
    """The natural-feature kind a question asks for ("river"), or None. The graph has no such type, so a
    prediction that resolves only to typed places ("Lisbon" for the Tagus) names another kind of thing."""
    m = _NATURAL_ASKED.search(question or "")
    return m.group(1).lower() if m else None


def _shares_word(names: Iterable[str], answer: str) -> bool:
    """Prediction and gold share a word of 3+ letters ("Congo" / "Congo River"): maybe the same thing."""
    words = {w for w in re.findall(r"\w{3,}", answer.lower())}
    return any(words & set(re.findall(r"\w{3,}", n.lower())) for n in names)
MAX_PAIRS = 12  # candidates per side compared pairwise (an ambiguous name: "Springfield" names 12 cities)
# answer types whose every answer is a typed graph entity: a prediction naming only other types is wrong
TYPE_CHECKED = frozenset({"city", "country", "us_state", "airport", "element", "currency", "language",
                          "continent", "timezone"})


def asked_types(answer_type: str | None) -> frozenset[str] | None:
    """The graph types an answer of ``answer_type`` may have; None: any (no or an unknown answer type)."""
    if not answer_type:
        return None
    return ANSWER_TYPES.get(key(answer_type.replace("_", " ")), ANSWER_TYPES.get(answer_type))


def applies(gold: G.Gold) -> bool:
    """The check applies to a text gold of an entity kind: no graph id, no number, no value answer type."""
    if gold.entity_id or gold.kind not in (G.AnswerKind.ENTITY, G.AnswerKind.TEXT):
        return False
    if gold.answer_type and asked_types(gold.answer_type) is None:
        return False  # an attribute ("iata", "population") or a type the graph cannot check
    return not any(G.parse_number(n) is not None for n in gold.names)


def gold_candidates(index: NameIndex, names: Iterable[str], types: frozenset[str] | None) -> frozenset[str]:
    """Every entity a gold text may name (its names and aliases together; an unknown qualifier keeps the
    head's candidates), narrowed to the asked types (articles kept: they are untyped)."""
    out: set[str] = set()
    for n in names:
        res = resolve_detail(index, n)
        out |= res.ids | res.unconfirmed
    if types is not None:
        out = {e for e in out if index.type_of(e) in types or index.type_of(e) == ARTICLE}
    return frozenset(out)


def _contained(a: str, b: str) -> bool:
    """One key is a run of whole words of the other ("yen" in "japanese yen")."""
    return bool(a) and bool(b) and (f" {a} " in f" {b} " or f" {b} " in f" {a} ")


def _related(index: NameIndex, a: str, b: str) -> bool:
    """One is located in (or serves) the other: a city and its state, an airport and its city."""
    return index.located_in(a, {b}) or index.located_in(b, {a})


def _population(index: NameIndex, ids: Iterable[str]) -> float:
    pops = [index.graph.entities[i].attributes.get("population") for i in ids]
    return max((p for p in pops if isinstance(p, (int, float))), default=0)


def maybe_same(index: NameIndex, gold_ids: Iterable[str], pred_ids: Iterable[str], gold_texts: Iterable[str],
               answer: str) -> bool:
    """Two disjoint sets that may still mean one real thing, so the graph must not reject. Among the
    pairs whose names contain one another ("Oklahoma" / "Oklahoma City"):

    - a related pair (one located in or serving the other: Oklahoma City in Oklahoma, Phoenix Sky Harbor
      serving Phoenix) makes the shorter name the container: a near miss, whatever the other pairs say;
    - else an article, a same-type non-place pair ("Japanese yen" / "Yen"; "Heathrow Airport", a Texas
      airstrip, / "London Heathrow Airport"), or a cross-type pair (the Florida town "Heathrow" for an
      airport "Heathrow Airport") is a namesake: maybe the same.

    Without such a pair, cities only, the prediction at most 1 % of the gold's population is an obscure
    namesake ("Calcutta", a South African town of 36,000, for Kolkata, which lost that alias to it)."""
    gold_ids, pred_ids = sorted(gold_ids)[:MAX_PAIRS], sorted(pred_ids)[:MAX_PAIRS]
    gold_keys, pred_keys = {key(t) for t in gold_texts}, {key(answer)}
    namesake = False
    for g in gold_ids:
        tg, gk = index.type_of(g), gold_keys | {key(index.name_of(g))}
        for p in pred_ids:
            tp = index.type_of(p)
            if not any(_contained(a, b) for a in gk for b in pred_keys | {key(index.name_of(p))}):
                continue
            if _related(index, g, p):
                return False
            namesake = namesake or ARTICLE in (tg, tp) or tg != tp or tg not in PLACE_TYPES
    if namesake:
        return True
    if all(index.type_of(i) == "city" for i in (*gold_ids, *pred_ids)):
        return 0 < _population(index, pred_ids) * 100 <= _population(index, gold_ids)
    return False


def _names(index: NameIndex, ids: Iterable[str], n: int = 3) -> str:
    ids = sorted(ids)
    shown = ", ".join(f"{i} ({index.name_of(i)})" for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _pick(index: NameIndex, pred: frozenset[str], gold_ids: frozenset[str], types) -> str:
    """The entity the prediction most likely meant: one of the asked type, else one a gold candidate is
    located in (or that is located in one), else the first."""
    same = sorted(p for p in pred if types and index.type_of(p) in types)
    golds = sorted(gold_ids)[:MAX_PAIRS]
    related = sorted(p for p in sorted(pred)[:MAX_PAIRS]
                     if any(_related(index, g, p) for g in golds))
    return (same or related or sorted(pred))[0]


def text_gold_verdict(index: NameIndex, gold: G.Gold, answer: str) -> G.Verdict | None:
    """The graph's verdict on ``answer`` for a gold without a graph id, or None when the graph cannot
    decide (see the module docstring for what it decides and what it leaves alone)."""
    if not applies(gold) or G.parse_number(answer) is not None:
        return None
    types = asked_types(gold.answer_type)
    gold_ids = gold_candidates(index, gold.names, types)
    res = resolve_detail(index, answer)
    pred = frozenset(res.ids or res.unconfirmed)
    if gold_ids:
        if pred & gold_ids:
            if res.ids == gold_ids and len(gold_ids) > 1:  # one ambiguous name in two spellings
                return G.Verdict("correct", answer, f"graph: prediction and gold name the same entities "
                                 f"{_names(index, gold_ids)}", G.Source.RULE.value, None)
            if len(gold_ids) == 1 and gold_ids <= res.ids:
                gid = next(iter(gold_ids))
                return G.Verdict("correct", answer, f"graph: prediction and gold resolve to {gid} ({res.how})",
                                 G.Source.RULE.value, gid)
            return None  # an ambiguous gold, or an unchecked qualifier: the rules and the judge decide
        if pred:
            if maybe_same(index, gold_ids, pred, gold.names, answer):
                return None
            return G.Verdict("incorrect", answer, f"graph: prediction resolves to {_names(index, pred)}, gold to "
                             f"{_names(index, gold_ids)}", G.Source.GRAPH.value, _pick(index, pred, gold_ids, types))
        if len(gold_ids) == 1 and gold_ids <= res.contradicted:
            return G.Verdict("incorrect", answer, f"graph: names the gold {_names(index, gold_ids)} but its "
                             f"qualifier places it elsewhere ({res.how})", G.Source.GRAPH.value, None)
        return None
    if (types is not None and not types and res.ids and all(index.type_of(p) != ARTICLE for p in res.ids)
            and not _shares_word(gold.names, answer)):
        asked = gold.answer_type.replace("_", " ")
        return G.Verdict("incorrect", answer, f"graph: prediction resolves to {_names(index, res.ids)}, not a "
                         f"{asked} as asked", G.Source.GRAPH.value, sorted(res.ids)[0])
    checked = (types or frozenset()) & TYPE_CHECKED
    if res.ids and checked and all(index.type_of(p) not in checked | {ARTICLE} for p in res.ids):
        asked = gold.answer_type.replace("_", " ")
        return G.Verdict("incorrect", answer, f"graph: prediction resolves to {_names(index, res.ids)}, no "
                         f"{asked} as asked; the gold names no {asked} in the graph", G.Source.GRAPH.value,
                         sorted(res.ids)[0])
    return None
