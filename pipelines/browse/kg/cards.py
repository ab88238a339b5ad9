"""Relation cards: what a relation means in the world, kept as reviewed data.

The graph says "one object" where its source listed one; the world may have several (South Africa's
three capitals, the two airports of Buenos Aires) or the question's type word may not cover the object
("US state" answered by the District of Columbia). ``configs/relation_cards.yaml`` (schema
``schemas/relation_cards.json``) says, per relation, whether a hop is one-valued in the world, which
subjects are exceptions, which objects the type word excludes, and whether the graph's subject list is
complete enough for a clue to narrow by it. Chain sampling, ``add_hop`` and obfuscation ask
:func:`hop_problem` and :func:`clue_problem`; ``crucible browse audit`` recomputes both from the rows.

Pure functions over a :class:`Cards` value; the file is read once per path.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from crucible.pipelines.browse.kg.model import Graph, GraphError, load_json_schema
from crucible.pipelines.textio import load_yaml, read_text

DEFAULT_CARDS = Path(__file__).resolve().parents[3] / "configs" / "relation_cards.yaml"
EARTH_KM = 6371.0


@dataclass(frozen=True)
class Card:
    relation: str
    type_word: str
    forward: str
    inverse: str
    clue_complete: bool
    completeness: str
    reviewed: str
    isolation_km: float | None = None
    many_valued: dict[str, str] = field(default_factory=dict)
    excluded_objects: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cards:
    cards: dict[str, Card]
    path: str = ""

    def get(self, relation: str) -> Card | None:
        return self.cards.get(relation)


def parse_cards(data: object, path: str) -> Cards:
    """Validated cards; a :class:`GraphError` naming the file, the card and the field otherwise."""
    try:
        jsonschema.validate(data, load_json_schema("relation_cards"))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise GraphError(f"{path}: relation card {where}: {exc.message}; see schemas/relation_cards.json") from None
    out = {}
    for rel, c in data["cards"].items():
        if c["inverse"] == "isolated" and "isolation_km" not in c:
            raise GraphError(f"{path}: relation card cards/{rel}: inverse 'isolated' needs isolation_km "
                             "(the radius, in km, within which no other airport may lie)")
        out[rel] = Card(relation=rel, **c)
    return Cards(out, path)


@functools.lru_cache(maxsize=8)
def load_cards(path: str | None = None) -> Cards:
    p = str(path or DEFAULT_CARDS)
    try:
        data = load_yaml(read_text(p, "relation cards file"), p)
    except yaml.YAMLError as exc:
        raise GraphError(f"{p}: not valid YAML ({exc}); fix the relation cards file") from None
    return parse_cards(data, p)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def _coords(graph: Graph, eid: str) -> tuple[float, float] | None:
    e = graph.entities.get(eid)
    if e is None:
        return None
    lat, lon = e.attributes.get("latitude"), e.attributes.get("longitude")
    if isinstance(lat, int | float) and isinstance(lon, int | float) and not isinstance(lat, bool):
        return float(lat), float(lon)
    return None


def _airport_grid(graph: Graph) -> dict[tuple[int, int], list[tuple[str, float, float]]]:
    """Airports with an IATA code (scheduled service) on a 1-degree grid, built once per graph."""
    grid = getattr(graph, "_cards_airport_grid", None)
    if grid is None:
        grid = {}
        for eid in graph.by_type("airport"):
            if not graph.entities[eid].attributes.get("iata"):
                continue
            c = _coords(graph, eid)
            if c is not None:
                grid.setdefault((math.floor(c[0]), math.floor(c[1])), []).append((eid, *c))
        graph._cards_airport_grid = grid  # type: ignore[attr-defined]
    return grid


def airports_near(graph: Graph, place: str, km: float) -> list[str]:
    """Airports with an IATA code within ``km`` of ``place`` (sorted by id); [] without coordinates."""
    c = _coords(graph, place)
    if c is None:
        return []
    grid = _airport_grid(graph)
    span_lat = int(km / 111.0) + 1
    span_lon = int(km / max(1.0, 111.0 * math.cos(math.radians(c[0])))) + 1
    out = []
    for i in range(math.floor(c[0]) - span_lat, math.floor(c[0]) + span_lat + 1):
        for j in range(math.floor(c[1]) - span_lon, math.floor(c[1]) + span_lon + 1):
            for eid, lat, lon in grid.get((i, (j + 180) % 360 - 180), ()):
                if _km(c[0], c[1], lat, lon) <= km:
                    out.append(eid)
    return sorted(set(out))


def hop_problem(graph: Graph, cards: Cards, subject: str, relation: str, obj: str, inverse: bool) -> str | None:
    """Why the hop may not be asked as one-valued, else None. Forward: "the <relation> of
    <subject>" (answer ``obj``). Inverse: "the <subject> whose <relation> is <obj>" (answer
    ``subject``). A relation without a card is never walked: its meaning was never reviewed."""
    card = cards.get(relation)
    if card is None:
        return f"no relation card for {relation!r} (add one to {cards.path or DEFAULT_CARDS})"
    if obj in card.excluded_objects:
        return f"{relation}: {card.excluded_objects[obj]} (type word {card.type_word!r})"
    if subject in card.many_valued:
        return f"{relation}: many-valued in the world: {card.many_valued[subject]}"
    if not inverse:
        return None if card.forward == "one" else f"{relation}: many-valued in the world (card: forward {card.forward})"
    if card.inverse == "many":
        return f"{relation}: the inverse is many-valued in the world (card: inverse many)"
    if card.inverse == "isolated":
        near = [a for a in airports_near(graph, obj, card.isolation_km or 0.0) if a != subject]
        if near:
            return (f"{relation}: {obj} has {len(near)} other airport(s) with an IATA code within "
                    f"{card.isolation_km:g} km ({', '.join(near[:3])})")
        if _coords(graph, obj) is None:
            return f"{relation}: {obj} has no coordinates, so the isolation test cannot decide"
    return None


def clue_problem(cards: Cards, relation: str, obj: str) -> str | None:
    """Why ``?v -relation-> obj`` may not narrow candidates, else None: the graph's subject list
    must be the world's (``clue_complete``) and the type word must cover the object."""
    card = cards.get(relation)
    if card is None:
        return f"no relation card for {relation!r}"
    if obj in card.excluded_objects:
        return f"{relation}: {card.excluded_objects[obj]}"
    if not card.clue_complete:
        return f"{relation}: the graph does not list every subject the world has ({card.completeness})"
    return None
