"""Chemical elements (optional): mendeleev's 118 elements with discoverers, discovery year and place."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3

from crucible.pipelines.browse.kg import sources as S  # S.package_version: one seam for 'is it installed'
from crucible.pipelines.browse.kg.aliases import alias_fields
from crucible.pipelines.browse.kg.model import Entity, Triple
from crucible.pipelines.browse.kg.sources import INSTALL_HINTS, LICENSES, SourceResult, slug

_PLACE_TO_ISO = {"England": "GB", "Scotland": "GB", "Great Britain": "GB", "USSR": "RU", "Russia": "RU"}


def from_mendeleev(geo: SourceResult) -> SourceResult:
    """118 elements with discoverers, discovery year and place, read from mendeleev's bundled SQLite
    file with the standard library (importing mendeleev would pull pandas and SQLAlchemy)."""
    v = S.package_version("mendeleev")
    res = SourceResult("mendeleev", v or "")
    spec = importlib.util.find_spec("mendeleev") if v else None
    db = os.path.join(os.path.dirname(spec.origin), "elements.db") if spec and spec.origin else ""
    if not v or not os.path.exists(db):
        res.status, res.reason = "absent", f"mendeleev not installed; element hops skipped ({INSTALL_HINTS['mendeleev']})"
        return res
    m = dict(source="mendeleev", source_version=v, license=LICENSES["mendeleev"])
    by_name = {e.name: e.id for e in geo.entities if e.type == "country"}
    for place, iso in _PLACE_TO_ISO.items():
        by_name.setdefault(place, f"country/{iso}")
    people: dict[str, str] = {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT atomic_number, symbol, name, discoverers, discovery_year, discovery_location, "
            "name_origin, period, group_id, block FROM elements ORDER BY atomic_number").fetchall()
    finally:
        con.close()
    for num, sym, name, disc, year, loc, origin, period, group, block in rows:
        eid = f"element/{sym}"
        res.entities.append(Entity(
            eid, "element", name, **alias_fields([(sym, "mendeleev:symbol")]),
            attributes={"atomic_number": num, "symbol": sym, "discovery_year": year, "name_origin": origin,
                        "period": period, "group": group, "block": block},
            record_id=str(num), **m))
        if disc and not disc.lower().startswith("known to the ancients"):
            for person in re.split(r",\s*|\s+and\s+", disc.strip().rstrip(".")):
                person = person.strip()
                if not person:
                    continue
                pid = people.get(person)
                if pid is None:
                    pid = people[person] = f"discoverer/{slug(person)}"
                    res.entities.append(Entity(pid, "discoverer", person, record_id=person, **m))
                res.triples.append(Triple(eid, "discovered_by", pid, record_id=str(num), **m))
        for place in (loc or "").split("/"):
            cid = by_name.get(place.strip())
            if cid:
                res.triples.append(Triple(eid, "discovered_in", cid, attributes={"year": year},
                                          record_id=str(num), **m))
    return res
