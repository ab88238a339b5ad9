"""Entities in the Wikidata JSON dump format, for the ingest fixtures and the ingest benchmark.

The real dump is one JSON array with one entity per line: ``[`` on the first line, ``]`` on the last,
and each entity line ends with ``,`` (but the last). Claims look like::

    {"mainsnak": {"snaktype": "value", "property": "P36",
                  "datavalue": {"value": {"entity-type": "item", "numeric-id": 90, "id": "Q90"},
                                "type": "wikibase-entityid"}, "datatype": "wikibase-item"},
     "type": "statement", "id": "Q142$...", "rank": "normal"}

``python -m tests.support.wikidata_dump`` rewrites the fixtures in ``tests/data/browse/``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "browse"


def _claim(qid: str, pid: str, n: int, datavalue: dict, datatype: str, rank: str = "normal") -> dict:
    return {"mainsnak": {"snaktype": "value", "property": pid, "datavalue": datavalue, "datatype": datatype},
            "type": "statement", "id": f"{qid}${pid}-{n}", "rank": rank, "qualifiers": {}, "references": []}


def item_value(q: str) -> dict:
    return {"value": {"entity-type": "item", "numeric-id": int(q[1:]), "id": q}, "type": "wikibase-entityid"}


def quantity(amount: float, unit: str = "1") -> dict:
    u = unit if unit == "1" else f"http://www.wikidata.org/entity/{unit}"
    return {"value": {"amount": f"{amount:+}", "unit": u}, "type": "quantity"}


def coords(lat: float, lon: float) -> dict:
    return {"value": {"latitude": lat, "longitude": lon, "altitude": None, "precision": 0.0001,
                      "globe": "http://www.wikidata.org/entity/Q2"}, "type": "globecoordinate"}


def string(s: str) -> dict:
    return {"value": s, "type": "string"}


DATATYPE = {"wikibase-entityid": "wikibase-item", "quantity": "quantity", "globecoordinate": "globe-coordinate",
            "string": "external-id"}


def item(qid: str, label: str, claims: dict[str, list], aliases: tuple[str, ...] = (), description: str = "",
         kind: str = "item") -> dict:
    """``claims``: property -> list of datavalues or (datavalue, rank) pairs."""
    out: dict[str, list] = {}
    for pid, values in claims.items():
        for n, v in enumerate(values):
            dv, rank = v if isinstance(v, tuple) else (v, "normal")
            out.setdefault(pid, []).append(_claim(qid, pid, n, dv, DATATYPE[dv["type"]], rank))
    return {
        "type": kind, "id": qid,
        "labels": {"en": {"language": "en", "value": label}, "fr": {"language": "fr", "value": label + " (fr)"}},
        "descriptions": {"en": {"language": "en", "value": description}} if description else {},
        "aliases": {"en": [{"language": "en", "value": a} for a in aliases]},
        "claims": out,
        "sitelinks": {"enwiki": {"site": "enwiki", "title": label, "badges": []}},
        "lastrevid": 1,
    }


def write_dump(fh, lines) -> int:
    """Write the array framing around ``lines`` (entity dicts or raw strings); returns the count."""
    fh.write("[\n")
    n = 0
    prev = None
    for line in lines:
        if prev is not None:
            fh.write(prev + ",\n")
        prev = line if isinstance(line, str) else json.dumps(line, separators=(",", ":"))
        n += 1
    if prev is not None:
        fh.write(prev + "\n")
    fh.write("]\n")
    return n


def fixture_entities() -> list[dict]:
    Q = item_value
    return [
        item("Q142", "France", {"P31": [Q("Q6256"), Q("Q3624078")], "P36": [(Q("Q90"), "preferred"),
             (Q("Q456"), "deprecated")], "P38": [Q("Q4916")], "P30": [Q("Q46")], "P47": [Q("Q183"), Q("Q31")],
             "P1082": [quantity(68000000)], "P297": [string("FR")]}, aliases=("French Republic",),
             description="country in Western Europe"),
        item("Q90", "Paris", {"P31": [Q("Q515"), Q("Q5119")], "P17": [Q("Q142")],
             "P1082": [quantity(2000000), (quantity(2102650), "preferred")], "P625": [coords(48.8566, 2.3522)]},
             aliases=("City of Light",), description="capital of France"),
        item("Q183", "Germany", {"P31": [Q("Q6256")], "P36": [Q("Q64")], "P38": [Q("Q4916")], "P30": [Q("Q46")],
             "P47": [Q("Q142")]}),
        item("Q64", "Berlin", {"P31": [Q("Q515")], "P17": [Q("Q183")], "P1082": [quantity(3850809)]}),
        item("Q456", "Lyon", {"P31": [Q("Q515")], "P17": [Q("Q142")], "P1082": [quantity(522250)]}),
        item("Q46", "Europe", {"P31": [Q("Q5107")]}),
        item("Q4916", "euro", {"P31": [Q("Q8142")]}, aliases=("EUR",)),
        item("Q1002", "Paris Charles de Gaulle Airport", {"P31": [Q("Q1248784")], "P931": [Q("Q90")],
             "P17": [Q("Q142")], "P238": [string("CDG")], "P239": [string("LFPG")],
             "P2044": [quantity(119, "Q11573")], "P625": [coords(49.0097, 2.5479)]}),
        item("Q2", "Earth", {"P31": [Q("Q3504248")]}),  # a planet: no mapped class, skipped
        item("P17", "country", {}, kind="property"),  # a property entity: not an item, skipped
    ]


def bad_lines() -> list[str]:
    lyon_bad = item("Q457", "Villeurbanne", {"P31": [item_value("Q515")], "P17": [item_value("Q142")]})
    lyon_bad["claims"]["P1082"] = [{"rank": "normal"}]  # a claim without a mainsnak
    lyon_bad["claims"]["P36"] = [{"mainsnak": {"snaktype": "value", "property": "P36",
                                               "datavalue": string("Lyon")}, "rank": "normal"}]
    return ["this is not json", json.dumps([1, 2]), json.dumps({"type": "item", "labels": {}}),
            json.dumps(lyon_bad, separators=(",", ":"))]


PAGES = [
    {"id": 1, "title": "Paris", "text": "Paris is the capital and largest city of France.",
     "url": "https://en.wikipedia.org/wiki/Paris"},
    {"id": 2, "title": "Lyon", "text": "Lyon is the third-largest city of France, on the Rhone.", "url": None},
    {"id": 3, "title": "Euro", "text": "The euro is the currency of twenty member states of the European Union."},
]


def main() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(DATA / "wikidata_dump.json", "w", encoding="utf-8") as fh:
        write_dump(fh, [*fixture_entities()[:5], *bad_lines(), *fixture_entities()[5:]])
    with gzip.open(DATA / "wikidata_dump.json.gz", "wt", encoding="utf-8") as fh:
        write_dump(fh, fixture_entities())
    rows = [{**p, "url": p.get("url")} for p in PAGES]
    bad = {"id": 4, "title": "No text", "text": None, "url": None}
    pq.write_table(pa.Table.from_pylist([*rows, bad]), DATA / "wikipedia_pages.parquet")
    with open(DATA / "wikipedia_pages.jsonl", "w", encoding="utf-8") as fh:
        for p in PAGES:
            fh.write(json.dumps({k: v for k, v in p.items() if v is not None}) + "\n")
        fh.write("{not json\n")
        fh.write(json.dumps({"title": "", "text": "a page without a title"}) + "\n")


if __name__ == "__main__":
    main()
