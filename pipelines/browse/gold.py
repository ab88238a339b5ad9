"""What an answer is checked against, and what the check says.

A :class:`Gold` is the gold's names, its graph entity (if any), the asked answer type and the
:class:`AnswerKind` that decides how numbers compare (:func:`parse_number`, :func:`numbers_match`,
:func:`dates_match`); a :class:`Verdict` is the outcome with its :class:`Source`. Shared by the rules and
the judge (:mod:`crucible.pipelines.browse.verify`) and the graph check of text golds (:mod:`crucible.pipelines.browse.ground`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum

from dateutil import parser

from crucible.pipelines.browse.names import answer_aliases

VERDICTS = ("correct", "incorrect", "not_attempted")


class Source(str, Enum):
    """Who decided a verdict (``verdict_source`` of a trajectory row)."""

    RULE = "rule"    # deterministic rule, including "resolves to the gold entity"
    GRAPH = "graph"  # the answer resolves to another graph entity: incorrect, no judge asked
    JUDGE = "judge"


class AnswerKind(str, Enum):
    """What kind of value a gold is; decides how numbers compare."""

    ENTITY = "entity"          # a graph entity (city, country, airport, ...)
    YEAR = "year"              # exact
    DATE = "date"              # exact (same calendar day)
    COUNT = "count"            # exact
    IDENTIFIER = "identifier"  # exact (codes, numbers that name things)
    QUANTITY = "quantity"      # a measured quantity: relative tolerance applies
    TEXT = "text"              # free text, no graph entity


# attribute names / answer types that are measured quantities (the only ones with a tolerance)
MEASURED = frozenset({"quantity", "population", "area", "area_km2", "elevation", "elevation_ft", "latitude",
                      "longitude", "length", "height", "distance", "mass", "temperature"})
_KIND_WORDS = {"year": AnswerKind.YEAR, "date": AnswerKind.DATE, "count": AnswerKind.COUNT,
               "number": AnswerKind.COUNT, "identifier": AnswerKind.IDENTIFIER, "code": AnswerKind.IDENTIFIER,
               "text": AnswerKind.TEXT}


def kind_for(answer_type: str | None) -> AnswerKind:
    """The answer kind of an answer type: a measured attribute (population, area_km2, elevation_ft)
    is a quantity; year/date/count/identifier are exact; anything else (city, country, ...) an entity."""
    t = (answer_type or "").strip().lower()
    if t in MEASURED:
        return AnswerKind.QUANTITY
    if t.endswith("_year") or t.endswith(" year"):
        return AnswerKind.YEAR
    return _KIND_WORDS.get(t, AnswerKind.ENTITY if t else AnswerKind.TEXT)


@dataclass(frozen=True)
class Gold:
    """What a prediction is checked against.

    ``names``: the gold's name and aliases. ``entity_id``: the graph entity it is (None: a value, or
    an outside gold whose text the graph check resolves). ``answer_type``: what is asked (the entity's type,
    e.g. ``city``, or a value kind, e.g. ``year``, ``population``); shown to the judge.
    ``kind``: how numbers compare. ``tolerance``: relative tolerance, used only when ``kind`` is
    QUANTITY (None there: the caller's ``rel_tol``)."""

    names: tuple[str, ...]
    entity_id: str | None = None
    answer_type: str | None = None
    kind: AnswerKind = AnswerKind.TEXT
    tolerance: float | None = None

    @classmethod
    def of(cls, gold: Gold | Sequence[str], answer_type: str | None = None, entity_id: str | None = None) -> Gold:
        """A Gold from a Gold or a list of gold strings (kind from ``answer_type``)."""
        if isinstance(gold, Gold):
            return gold
        if isinstance(gold, str):
            gold = [gold]
        return cls(tuple(gold), entity_id, answer_type, kind_for(answer_type) if answer_type else
                   (AnswerKind.ENTITY if entity_id else AnswerKind.TEXT))

    def rel_tol(self, default: float | None) -> float:
        if self.kind is not AnswerKind.QUANTITY:
            return 0.0
        return float(self.tolerance if self.tolerance is not None else (default or 0.0))


def gold_for_entity(graph, eid: str) -> Gold:
    """The Gold of a graph entity: its name and answer aliases, its id and its type."""
    e = graph.entities[eid]
    return Gold((e.name, *answer_aliases(graph, eid)), eid, e.type, AnswerKind.ENTITY)


def gold_for_value(value, attr: str, rel_tol: float = 0.0) -> Gold:
    """The Gold of an attribute value (a year, a count, a code, a population): exact unless ``attr``
    is a measured quantity, which gets ``rel_tol``."""
    kind = kind_for(attr)
    text = f"{value:,}" if isinstance(value, int) and kind is not AnswerKind.YEAR else str(value)
    names = tuple(dict.fromkeys([text, str(value)]))
    return Gold(names, None, attr, kind, rel_tol if kind is AnswerKind.QUANTITY else None)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    extracted_answer: str | None
    reason: str
    source: str  # a Source value: "rule", "graph" or "judge"
    resolved_entity: str | None = None  # graph entity the answer resolved to, when the graph decided

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ numbers

_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9,
          "b": 1e9, "trillion": 1e12}
_NUM = re.compile(r"^(?:about |approximately |around |roughly |~)?(-?\d[\d,]*(?:\.\d+)?)\s*([a-z%]*)")


def parse_number(text: str) -> float | None:
    """The number a short answer states ("1,234", "1.2 million", "12k", "48 ft"), else None."""
    t = (text or "").strip().lower().replace("\u2212", "-")
    m = _NUM.match(t)
    if not m:
        return None
    rest = t[m.end():].strip()
    # a number followed by more words that are not a unit/scale is not a numeric answer
    if len(rest.split()) > 2:
        return None
    try:
        value = float(m.group(1).replace(",", ""))
    except ValueError:
        return None
    return value * _SCALE.get(m.group(2), 1.0)


def numbers_match(a: float, b: float, rel_tol: float = 0.0) -> bool:
    """Equal numbers; with ``rel_tol`` > 0 (measured quantities only) within that relative tolerance."""
    if rel_tol <= 0:
        return a == b
    return abs(a - b) <= rel_tol * max(abs(a), abs(b), 1e-9)


def dates_match(a: str, b: str) -> bool | None:
    """Same calendar day (both fully specified dates), False when both parse and differ, None when
    either is not a full date."""

    def parse(t):
        try:
            d1 = parser.parse(t, default=datetime(1, 1, 1))
            d2 = parser.parse(t, default=datetime(2, 2, 2))
        except (ValueError, OverflowError):
            return None
        return d1.date() if d1.date() == d2.date() else None

    da, db = parse(a), parse(b)
    if da is None or db is None:
        return None
    return da == db
