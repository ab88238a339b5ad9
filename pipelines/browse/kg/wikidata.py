"""Wikidata and Wikipedia dump records -> graph rows and corpus pages (pure functions).

``crucible kg ingest`` (:mod:`crucible.pipelines.browse.kg.ingest`) runs these inside a Beam job; they know
nothing of Beam and are tested on single lines.

* A **mapping** (``configs/kg_mappings/wikidata.yaml``, schema ``schemas/kg_mapping.json``) says which
  P31 classes become which entity type, which properties become which relation (each must have a
  relation card: :func:`check_cards`) and which become attributes.
* :func:`parse_entity_line` reads one line of the standard Wikidata JSON dump (one entity per line
  inside a JSON array: ``[`` first, ``]`` last, a ``,`` after each entity) and returns a
  :class:`Parsed`: the entity row (``schemas/kg_entity.json``), its triples (``kg_triple.json``;
  objects are Wikidata ids, kept later only when that entity was ingested too), and the problems,
  each of which becomes a ``failures`` row. A bad line never raises.
* Ranks: with ``rank_filter`` (default) deprecated claims are skipped, and where a property has a
  preferred claim only the preferred ones count.
* Only the claims the mapping uses are checked for shape (P31 and the mapped properties): a dump has
  thousands of properties and the rest are never read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import jsonschema
import yaml

from crucible.pipelines.browse.kg.model import GraphError, load_json_schema
from crucible.pipelines.textio import MAX_LINE_CHARS, load_yaml, read_text

DEFAULT_MAPPING = Path(__file__).resolve().parents[3] / "configs" / "kg_mappings" / "wikidata.yaml"
ENTITY_ID = re.compile(r"^[QPL][1-9][0-9]*$")
ITEM_URI = "http://www.wikidata.org/entity/"
RANKS = ("preferred", "normal", "deprecated")
WIKIPEDIA_URL = "https://en.wikipedia.org/wiki/"


@dataclass(frozen=True)
class Mapping:
    source: str
    license: str
    id_prefix: str
    languages: tuple[str, ...]
    rank_filter: bool
    classes: dict[str, str]
    relations: dict[str, str]
    attributes: dict[str, dict]
    path: str = ""
    source_version: str = ""

    def used_properties(self) -> tuple[str, ...]:
        return ("P31", *self.relations, *self.attributes)


def _schema_defaults(schema: dict, data: dict) -> dict:
    out = dict(data)
    for key, sub in schema["properties"].items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
    return out


def parse_mapping(data: object, path: str, source_version: str = "") -> Mapping:
    """A validated mapping (schema defaults filled); a :class:`GraphError` naming the file and field."""
    schema = load_json_schema("kg_mapping")
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise GraphError(f"{path}: mapping field {where}: {exc.message}; see schemas/kg_mapping.json") from None
    d = _schema_defaults(schema, data)  # type: ignore[arg-type]
    return Mapping(source=d["source"], license=d["license"], id_prefix=d["id_prefix"],
                   languages=tuple(d["languages"]), rank_filter=d["rank_filter"], classes=dict(d["classes"]),
                   relations=dict(d["relations"]), attributes={k: dict(v) for k, v in d["attributes"].items()},
                   path=path, source_version=source_version)


def load_mapping(path: str | None = None, source_version: str = "") -> Mapping:
    p = str(path or DEFAULT_MAPPING)
    try:
        data = load_yaml(read_text(p, "kg mapping file"), p)
    except yaml.YAMLError as exc:
        raise GraphError(f"{p}: not valid YAML ({exc}); fix the mapping file") from None
    return parse_mapping(data, p, source_version)


def check_cards(mapping: Mapping, cards) -> None:
    """Refuse a mapping naming a relation that has no relation card (its meaning was never reviewed)."""
    missing = [(p, r) for p, r in mapping.relations.items() if cards.get(r) is None]
    if missing:
        names = ", ".join(f"{r!r} ({p})" for p, r in missing)
        raise GraphError(f"{mapping.path}: relations {names} have no relation card in {cards.path}; "
                         "add a card for each (configs/relation_cards.yaml) or drop them from the mapping")


@dataclass
class Parsed:
    entity: dict | None = None
    triples: list[dict] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path in the entity, reason)
    skipped: str = ""  # why a well-formed line gives no entity: frame, not_item, untyped


def _pick(mapping: Mapping, by_lang: object) -> str | None:
    if not isinstance(by_lang, dict):
        return None
    for lang in mapping.languages:
        v = by_lang.get(lang)
        if isinstance(v, dict) and isinstance(v.get("value"), str) and v["value"].strip():
            return v["value"].strip()
    return None


def _snak_value(claim: object) -> tuple[str, object, object]:
    """(rank, datavalue type, value) of a well-shaped claim; raises ValueError naming what is wrong.
    A claim without a value (snaktype somevalue/novalue) gives type None."""
    if not isinstance(claim, dict) or not isinstance(claim.get("mainsnak"), dict):
        raise ValueError("a claim must be an object with a mainsnak object")
    rank = claim.get("rank", "normal")
    if rank not in RANKS:
        raise ValueError(f"rank {rank!r} is not one of {', '.join(RANKS)}")
    snak = claim["mainsnak"]
    if snak.get("snaktype") in ("somevalue", "novalue"):
        return rank, None, None
    dv = snak.get("datavalue")
    if snak.get("snaktype") != "value" or not isinstance(dv, dict) or "value" not in dv or "type" not in dv:
        raise ValueError("mainsnak needs snaktype value and a datavalue with value and type")
    return rank, dv["type"], dv["value"]


def _kept_claims(mapping: Mapping, pid: str, claims: object, problems: list) -> list[tuple[str, str, object]]:
    """(path, datavalue type, value) of the claims of ``pid`` that count, after the rank filter."""
    if not isinstance(claims, list):
        problems.append((f"claims/{pid}", "a property's claims must be a list"))
        return []
    ok: list[tuple[str, str, str, object]] = []
    for i, c in enumerate(claims):
        try:
            rank, typ, value = _snak_value(c)
        except ValueError as exc:
            problems.append((f"claims/{pid}/{i}", str(exc)))
            continue
        if typ is not None:
            ok.append((rank, f"claims/{pid}/{i}", typ, value))
    if mapping.rank_filter:
        ok = [x for x in ok if x[0] != "deprecated"]
        if any(x[0] == "preferred" for x in ok):
            ok = [x for x in ok if x[0] == "preferred"]
    return [(path, t, v) for _, path, t, v in ok]


def _item_id(typ: str, value: object) -> str:
    if typ != "wikibase-entityid" or not isinstance(value, dict):
        raise ValueError(f"expected an item (wikibase-entityid), got {typ}")
    qid = value.get("id")
    if not isinstance(qid, str) and isinstance(value.get("numeric-id"), int):
        qid = f"Q{value['numeric-id']}"
    if not isinstance(qid, str) or not ENTITY_ID.match(qid):
        raise ValueError(f"item value without a valid id: {value!r:.80}")
    return qid


def _number(text: object) -> float:
    v = float(text) if isinstance(text, str | int | float) and not isinstance(text, bool) else math.nan
    if not math.isfinite(v):
        raise ValueError(f"quantity amount {text!r:.40} is not a finite number")
    return v


def _attribute(spec: dict, typ: str, value: object) -> dict:
    """The attribute(s) one claim gives; raises ValueError when the claim is not of the expected shape."""
    kind = spec["kind"]
    if kind == "string":
        if typ != "string" or not isinstance(value, str):
            raise ValueError(f"expected a string, got {typ}")
        return {spec["name"]: value}
    if kind == "coordinates":
        if typ != "globecoordinate" or not isinstance(value, dict):
            raise ValueError(f"expected a globecoordinate, got {typ}")
        lat, lon = _number(value.get("latitude")), _number(value.get("longitude"))
        if abs(lat) > 90 or abs(lon) > 180:
            raise ValueError(f"coordinates ({lat}, {lon}) out of range")
        return {"latitude": lat, "longitude": lon}
    if typ != "quantity" or not isinstance(value, dict):
        raise ValueError(f"expected a quantity, got {typ}")
    amount = _number(value.get("amount"))
    units = spec.get("units")
    if units is not None:
        unit = str(value.get("unit", "1")).removeprefix(ITEM_URI)
        if unit not in units:
            raise ValueError(f"unit {unit} is not one of the mapping's units ({', '.join(units)})")
        amount *= units[unit]
    return {spec["name"]: int(round(amount)) if spec.get("integer") else round(amount, 6)}


def _entity_type(mapping: Mapping, classes: list[str]) -> str | None:
    for q, etype in mapping.classes.items():
        if q in classes:
            return etype
    return None


def _frame(line: str) -> str | None:
    """The entity JSON of a dump line, or None for the array framing and blank lines."""
    s = line.strip()
    if s in ("", "[", "]"):
        return None
    return s[:-1] if s.endswith(",") else s


def parse_entity_line(line: str, mapping: Mapping) -> Parsed:
    """One dump line -> :class:`Parsed` (never raises on bad input: problems are returned)."""
    text = _frame(line)
    if text is None:
        return Parsed(skipped="frame")
    if len(text) > MAX_LINE_CHARS:
        return Parsed(problems=[("", f"{len(text):,} characters, over the {MAX_LINE_CHARS:,} limit of one line")])
    try:
        ent = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Parsed(problems=[("", f"not JSON ({str(exc)[:120]})")])
    if not isinstance(ent, dict):
        return Parsed(problems=[("", f"not an entity: a JSON {type(ent).__name__}, expected an object")])
    qid = ent.get("id")
    if not isinstance(qid, str) or not ENTITY_ID.match(qid):
        return Parsed(problems=[("id", "missing id" if qid is None else f"id {qid!r:.40} is not a Wikidata id")])
    if ent.get("type", "item") != "item" or not qid.startswith("Q"):
        return Parsed(skipped="not_item")
    claims = ent.get("claims", {})
    if not isinstance(claims, dict):
        return Parsed(problems=[("claims", "claims must be an object (property -> list of claims)")])
    out = Parsed()
    classes = []
    for path, typ, v in _kept_claims(mapping, "P31", claims.get("P31", []), out.problems):
        try:
            classes.append(_item_id(typ, v))
        except ValueError as exc:
            out.problems.append((path, str(exc)))
    etype = _entity_type(mapping, classes)
    if etype is None:
        out.skipped = "untyped"
        return out
    name = _pick(mapping, ent.get("labels"))
    if name is None:
        out.problems.append(("labels", f"no label in {', '.join(mapping.languages)}"))
        return out
    eid = mapping.id_prefix + qid
    out.entity = _entity_row(mapping, ent, eid, etype, name, claims, out.problems)
    out.triples = _triples(mapping, eid, claims, out.problems)
    return out


def _aliases(mapping: Mapping, ent: dict, name: str) -> list[str]:
    al = ent.get("aliases")
    out: list[str] = []
    if isinstance(al, dict):
        for lang in mapping.languages:
            for a in al.get(lang) or ():
                v = a.get("value") if isinstance(a, dict) else None
                if isinstance(v, str) and v.strip() and v.strip() != name and v.strip() not in out:
                    out.append(v.strip())
    return out


def _entity_row(mapping: Mapping, ent: dict, eid: str, etype: str, name: str, claims: dict,
                problems: list) -> dict:
    attrs: dict = {}
    for pid, spec in mapping.attributes.items():
        for path, typ, v in _kept_claims(mapping, pid, claims.get(pid, []), problems):
            try:
                attrs.update(_attribute(spec, typ, v))
                break  # the first kept claim wins
            except ValueError as exc:
                problems.append((path, str(exc)))
    aliases = _aliases(mapping, ent, name)
    return {
        "id": eid, "type": etype, "name": name, "aliases": aliases,
        "attributes": json.dumps(attrs, sort_keys=True, ensure_ascii=False),
        "description": _pick(mapping, ent.get("descriptions")), "url": None, "source": mapping.source,
        "source_version": mapping.source_version, "record_id": ent["id"], "license": mapping.license,
        "alias_sources": [f"{mapping.source}:aliases"] * len(aliases),
    }


def _triples(mapping: Mapping, eid: str, claims: dict, problems: list) -> list[dict]:
    out: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for pid, rel in mapping.relations.items():
        for path, typ, v in _kept_claims(mapping, pid, claims.get(pid, []), problems):
            try:
                obj = mapping.id_prefix + _item_id(typ, v)
            except ValueError as exc:
                problems.append((path, str(exc)))
                continue
            if obj != eid and (rel, obj) not in seen:  # one triple per (relation, object) of this entity
                seen.add((rel, obj))
                out.append({"subject": eid, "relation": rel, "object": obj,
                            "attributes": json.dumps({"property": pid}), "source": mapping.source,
                            "source_version": mapping.source_version, "record_id": eid.removeprefix(
                                mapping.id_prefix), "license": mapping.license})
    return out


def page_row(row: object) -> tuple[dict | None, str]:
    """A Wikipedia dump record (title, text; optional id, url) -> (page row for the corpus, problem)."""
    if not isinstance(row, dict):
        return None, f"not a page: a JSON {type(row).__name__}, expected an object with title and text"
    title, text = row.get("title"), row.get("text")
    for k, v in (("title", title), ("text", text)):
        if not isinstance(v, str) or not v.strip():
            return None, f"field {k!r} must be a non-empty string"
    url = row.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        return None, "field 'url' must be an http(s) URL when given"
    url = url or WIKIPEDIA_URL + quote(title.strip().replace(" ", "_"), safe="_()',-.")
    return {"url": url, "title": title.strip(), "text": text, "type": "article", "entity_id": ""}, ""
