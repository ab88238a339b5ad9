"""Resolve a short answer against the graph's names and aliases.

The gold of a browse question is a graph entity, so an answer can be checked against the graph
before any judge sees it: an answer that *names another entity* ("Peru" for Lima, "Dublin, Ohio"
for Dublin, Ireland) is wrong whatever a judge says. This module is pure: it builds a name index
from a :class:`~crucible.pipelines.browse.kg.model.Graph` once (cached on the graph object, about 1.5 s
for the 109k-entity embedded graph) and answers lookups.

- :func:`name_index` -- the cached :class:`NameIndex` of a graph.
- :func:`resolve` -- the entity ids an answer names with certainty (a set).
- :func:`resolve_detail` -- the same plus the head candidates of a qualified answer whose
  qualifier could not be checked (what the verifier uses).
- :func:`resolve_answer` -- ``resolve`` as a sorted list, for other code (the audit command).

Matching is exact on a normalized key (lowercase, accents, punctuation and articles dropped, runs of
single letters joined: "D.C." = "DC"). A city's alias that is the name of an entity of another type
(a country, a state, a language, an element) is not indexed: the name wins. An answer with a trailing qualifier ("Lima, Peru", "Dublin
(Ireland)", "Georgia (country)") resolves to the head's entities that the qualifier confirms: a type
word filters by type; a place keeps the entities located in it (country / state / continent /
subregion / served city, up to 3 hops). Article entities (Wikipedia summaries) that describe a graph
entity (``described_by``) resolve to that entity.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from crucible.pipelines.browse.names import CODE_ATTRS, CODED_TYPES, key

# relations along which "X, Q" means "X is located in Q"
CONTAINMENT = ("country", "state", "continent", "subregion", "serves_city")
MAX_CONTAINMENT_HOPS = 3
# qualifier / prefix words naming an entity type
TYPE_WORDS = {
    "city": "city", "town": "city", "village": "city", "capital": "city", "capital city": "city",
    "country": "country", "nation": "country", "state": "us_state", "us state": "us_state",
    "u s state": "us_state", "airport": "airport", "language": "language", "currency": "currency",
    "continent": "continent", "element": "element", "time zone": "timezone", "timezone": "timezone",
    "region": "subregion", "subregion": "subregion",
}
# types whose aliases (GeoNames alternate names) yield to another type's *name*: "Oklahoma" names the state,
# not Oklahoma City; "Kuwait" the country; "Canada" is no alias of La Cañada; "Gold" none of Gold Coast
SHADOWED_TYPES = frozenset({"city"})
_LEAD_IN = re.compile(
    r"^(?:(?:so |thus |therefore )?(?:my |the )?(?:final )?answer(?: is)?\s*:?|it is|it s|it's|this is|that is|"
    r"the (?:correct )?\w+ is)\s+", re.I)
_TYPE_PREFIX = re.compile(r"^(?:the )?(city|town|country|nation|state|us state|airport|language|currency|continent)"
                          r" of (.+)$", re.I)
_PAREN = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")


_CODE = re.compile(r"^(?:[A-Z0-9]{2,4}|[a-z]{2,3}|[A-Z][a-z])$")


def is_code(alias: str) -> bool:
    """A short all-capitals alias (ISO/IATA/ICAO code, "NYC") or a lowercase ISO 639 code ("uk"):
    matched case-sensitively only, so the answer "Lima" is not the airport code LIMA and "UK" is not
    Ukrainian."""
    return _CODE.fullmatch(alias) is not None


@dataclass
class NameIndex:
    """Normalized name/alias -> entity ids (codes: exact string -> ids), plus what qualifier checks need."""

    graph: object
    keys: dict[str, tuple[str, ...]]
    codes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    canonical: dict[str, str] = field(default_factory=dict)  # article id -> the entity it describes

    def lookup(self, text: str) -> set[str]:
        out = set(self.keys.get(key(text), ()))
        raw = re.sub(r"^the\s+", "", text.strip(" .,;:!?\"'"), flags=re.I)
        out.update(self.codes.get(raw, ()))
        return out

    def canon(self, eid: str) -> str:
        return self.canonical.get(eid, eid)

    def type_of(self, eid: str) -> str | None:
        e = self.graph.entities.get(eid)
        return e.type if e else None

    def name_of(self, eid: str) -> str:
        e = self.graph.entities.get(eid)
        return e.name if e else eid

    def located_in(self, eid: str, places: set[str]) -> bool:
        """``eid`` reaches one of ``places`` through containment relations (itself counts)."""
        frontier, seen = {eid}, {eid}
        for _ in range(MAX_CONTAINMENT_HOPS + 1):
            if frontier & places:
                return True
            nxt = set()
            for x in frontier:
                out = self.graph.out.get(x, {})
                for r in CONTAINMENT:
                    nxt.update(out.get(r, ()))
            frontier = nxt - seen
            seen |= nxt
            if not frontier:
                return False
        return bool(frontier & places)


def entity_names(entity) -> list[str]:
    """Every string that names ``entity`` as an answer: name, aliases, code attributes."""
    out = [entity.name, *entity.aliases]
    for attr in CODE_ATTRS:
        v = entity.attributes.get(attr)
        if isinstance(v, str) and v and entity.type in CODED_TYPES:
            out.append(v)
    return out


def _shadowing_names(graph, k) -> frozenset[str]:
    """Keys of the names of entities whose type can shadow a city alias (see ``SHADOWED_TYPES``)."""
    return frozenset(k(e.name) for e in graph.entities.values() if e.type not in SHADOWED_TYPES | {"article"})


def build_index(graph) -> NameIndex:
    k = functools.lru_cache(maxsize=None)(key)  # each distinct name normalized once

    keys: dict[str, list[str]] = {}
    codes: dict[str, list[str]] = {}

    def add(table, kk, eid):
        lst = table.get(kk)
        if lst is None:
            table[kk] = [eid]
        elif eid not in lst:
            lst.append(eid)

    articles = []
    shadowing = _shadowing_names(graph, k)
    for e in graph.entities.values():
        if e.type == "article":
            articles.append(e)
            continue
        for i, n in enumerate(entity_names(e)):
            if i > 0 and is_code(n):
                add(codes, n, e.id)
            elif n and not (i > 0 and e.type in SHADOWED_TYPES and k(n) in shadowing and k(n) != k(e.name)):
                add(keys, k(n), e.id)
    # an article describes a graph entity: by a described_by link, or because its title names
    # exactly one entity ("Phoenix, Arizona", "Georgia (country)" resolve like answers do)
    canonical: dict[str, str] = {}
    plain = NameIndex(graph, keys, codes)
    for e in articles:
        described = graph.inn.get(e.id, {}).get("described_by", ())
        if len(described) == 1:
            canonical[e.id] = described[0]
            continue
        hits = resolve_detail(plain, e.name).ids
        if len(hits) == 1:
            canonical[e.id] = next(iter(hits))
    for e in articles:
        eid = canonical.get(e.id, e.id)
        for n in entity_names(e):
            if n:
                add(keys, k(n), eid)
    return NameIndex(graph, {kk: tuple(v) for kk, v in keys.items()}, {c: tuple(v) for c, v in codes.items()},
                     canonical)


def name_index(graph) -> NameIndex:
    """The graph's name index, built on first use and cached on the graph object."""
    idx = getattr(graph, "_name_index", None)
    if idx is None:
        idx = build_index(graph)
        graph._name_index = idx
    return idx


@dataclass(frozen=True)
class Resolution:
    """``ids``: entities the answer names with certainty. ``unconfirmed``: head candidates of a
    qualified answer ("X, Q") whose qualifier could not be checked (the head names one of them,
    but the qualifier is not a known place or type). ``contradicted``: head candidates the
    qualifier rules out ("Dublin, UK": Dublin, Ireland is not in the UK)."""

    ids: frozenset[str] = frozenset()
    unconfirmed: frozenset[str] = frozenset()
    contradicted: frozenset[str] = frozenset()
    how: str = ""


def _strip(text: str) -> tuple[str, str | None]:
    t = " ".join((text or "").split()).strip().rstrip(".!").strip()
    t = _LEAD_IN.sub("", t).strip()
    m = _TYPE_PREFIX.match(t)
    if m:
        return m.group(2).strip(), TYPE_WORDS.get(key(m.group(1)))
    return t, None


def _by_type(index: NameIndex, ids: Iterable[str], etype: str | None) -> set[str]:
    ids = set(ids)
    return ids if etype is None else {i for i in ids if index.type_of(i) == etype}


def resolve_detail(index: NameIndex, text: str) -> Resolution:
    t, type_hint = _strip(text)
    if not t:
        return Resolution()
    whole = _by_type(index, index.lookup(t), type_hint)
    if whole:
        return Resolution(frozenset(whole), how="name")
    m = _PAREN.match(t)
    if m:
        head, qual = m.group(1).strip(" ,"), m.group(2).strip()
    elif "," in t:
        head, qual = (x.strip() for x in t.rsplit(",", 1))
    else:
        return Resolution()
    if not head or not qual:
        return Resolution()
    cands = _by_type(index, index.lookup(head), type_hint)
    if not cands:
        inner = resolve_detail(index, head)  # "Washington, D.C., USA": the head is itself qualified
        cands = set(inner.ids)
        if not cands:
            return Resolution()
    qtype = TYPE_WORDS.get(key(qual))
    if qtype:
        keep = _by_type(index, cands, qtype)
        return Resolution(frozenset(keep), contradicted=frozenset(cands - keep), how=f"type qualifier {qual!r}")
    places = index.lookup(qual)
    if not places:
        return Resolution(unconfirmed=frozenset(cands), how=f"unknown qualifier {qual!r}")
    keep = {c for c in cands if index.located_in(c, places)}
    return Resolution(frozenset(keep), contradicted=frozenset(cands - keep), how=f"place qualifier {qual!r}")


def resolve(index: NameIndex, text: str) -> set[str]:
    """Entity ids that ``text`` names with certainty (empty: it names nothing the graph knows)."""
    return set(resolve_detail(index, text).ids)


def resolve_answer(graph, text: str) -> list[str]:
    """Sorted entity ids an answer resolves to in ``graph`` (the index is cached on the graph)."""
    return sorted(resolve(name_index(graph), text))
