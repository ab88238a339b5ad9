"""Chemical elements (optional): mendeleev's 118 elements with discoverers, discovery year and place."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3

from crucible.pipelines.browse.kg import sources as S  # S.package_version: one seam for 'is it installed'
from crucible.pipelines.browse.kg.aliases import alias_fields
from crucible.pipelines.browse.kg.model import Entity, Triple
from crucible.pipelines.browse.kg.sources import INSTALL_HINTS, LICENSES, SourceResult, fold, slug

_PLACE_TO_ISO = {"England": "GB", "Scotland": "GB", "Great Britain": "GB", "USSR": "RU", "Russia": "RU"}
# mendeleev's discoverer strings misspell some people and name others twice (by initials and in full): each
# maps to the one name its Wikipedia article uses, so a question names a person a search finds, and
# "discovered by X" counts every element X discovered (keys after initials are spaced: "S.Tenant" -> "S. Tenant")
DISCOVERER_NAMES = {
    "Sir William Ramsey": "William Ramsay", "Sir William Ramsay": "William Ramsay", "M. W. Travers": "Morris Travers",
    "Nils Langet": "Nils Langlet", "P. T. Cleve": "Per Teodor Cleve", "Per Theodor Cleve": "Per Teodor Cleve",
    "Fredrich Wöhler": "Friedrich Wöhler", "Fredrich Stromeyer": "Friedrich Stromeyer",
    "Fredrich Ernst Dorn": "Friedrich Ernst Dorn", "Fredrich Soddy": "Frederick Soddy",
    "Sir H. Davy": "Humphry Davy", "Sir Humphrey Davy": "Humphry Davy", "Joseph Priestly": "Joseph Priestley",
    "J. Berzelius": "Jöns Jacob Berzelius", "Jöns Berzelius": "Jöns Jacob Berzelius",
    "M. Klaproth": "Martin Heinrich Klaproth", "Martin Klaproth": "Martin Heinrich Klaproth",
    "R. Bunsen": "Robert Bunsen", "G. Kirchoff": "Gustav Kirchhoff", "Gustov Kirchoff": "Gustav Kirchhoff",
    "Charles Hatchet": "Charles Hatchett", "Émillo Segrè": "Emilio Segrè", "E. Segré": "Emilio Segrè",
    "C. F. Aver von Welsbach": "Carl Auer von Welsbach", "Smithson Tenant": "Smithson Tennant",
    "S. Tenant": "Smithson Tennant", "A. F. Fourcory": "Antoine François Fourcroy",
    "L. N. Vauquelin": "Louis Nicolas Vauquelin", "Louis Vauquelin": "Louis Nicolas Vauquelin",
    "H. V. Collet-Descoltils": "Hippolyte-Victor Collet-Descotils", "Marguerite Derey": "Marguerite Perey",
    "E. M. McMillan": "Edwin McMillan", "S. G. Tompson": "Stanley G. Thompson", "Karl Klaus": "Karl Ernst Claus",
    "G. T. Seaborg": "Glenn T. Seaborg", "A. Ghiorso": "Albert Ghiorso", "Baron Rayleigh": "Lord Rayleigh",
    "Sir William Crookes": "William Crookes", "Hans Christian Oersted": "Hans Christian Ørsted",
    "U of Calif": "University of California, Berkeley", "U. of Cal at Berkeley": "University of California, Berkeley",
    "Soviet Nuclear Research": "Joint Institute for Nuclear Research",
    "Heavy Ion Research Laboratory (HIRL)": "GSI Helmholtz Centre for Heavy Ion Research",
}
# "A. Ghiorso, et al": others, unnamed; Julius Scaliger described platinum in 1557, its discovery is credited to
# Antonio de Ulloa (1735): a clue that says "discovered by" him would be wrong by the usual account
NOT_A_DISCOVERER = frozenset({"et al", "Julius Scaliger"})
_PARTICLES = frozenset({"de", "von", "van", "du", "da", "di", "le", "la"})


def discoverer_names(text: str) -> list[str]:
    """The people (or laboratories) of one mendeleev ``discoverers`` string, each by its one name:
    split at commas, semicolons, slashes and "and"; a lone given name takes its partner's surname
    ("Pierre and Marie Curie" -> Pierre Curie, Marie Curie); initials spaced; :data:`DISCOVERER_NAMES` applied;
    "et al" left out."""
    out = []
    for part in re.split(r"[,;/]\s*", text.strip().rstrip(".")):
        pair = [p.strip() for p in re.split(r"\s+and\s+", part) if p.strip()]
        if len(pair) == 2 and " " not in pair[0] and len(words := pair[1].split()) >= 2:
            at = next((i for i, w in enumerate(words[:-1]) if w in _PARTICLES), len(words) - 1)
            pair[0] = f"{pair[0]} {' '.join(words[at:])}"
        for name in pair:
            name = re.sub(r"\.(?=[^\W\d_])", ". ", name).rstrip(".").strip()
            name = DISCOVERER_NAMES.get(name, name)
            if name and name not in NOT_A_DISCOVERER and name not in out:
                out.append(name)
    return out


def person_key(name: str) -> tuple[str, str]:
    """(surname, first initial), accents folded and titles left out: two names with one key may be one
    person ("S. Tennant", "Smithson Tennant")."""
    words = [w for w in re.findall(r"[^\W\d_][\w'-]*", name) if w.lower() not in {"sir", "jr", "baron", "lord"}]
    return (fold(words[-1]), fold(words[0])[:1]) if len(words) >= 2 else (fold(name), "")


def one_person_names(names: list[str]) -> set[str]:
    """The names that share a :func:`person_key` with another name: one person named twice, or two people no
    one can tell apart by name. Their ``discovered_by`` links are left out (a clue that counts only
    some of a person's elements would be unique in the graph and not in the world)."""
    keys: dict[tuple[str, str], set[str]] = {}
    for n in names:
        keys.setdefault(person_key(n), set()).add(n)
    return {n for group in keys.values() if len(group) > 1 for n in group}


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
    links: list[tuple[int, str, str]] = []
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
            links += [(num, eid, person) for person in discoverer_names(disc)]
        for place in (loc or "").split("/"):
            cid = by_name.get(place.strip())
            if cid:
                res.triples.append(Triple(eid, "discovered_in", cid, attributes={"year": year},
                                          record_id=str(num), **m))
    unsure = one_person_names(list(dict.fromkeys(p for _n, _e, p in links)))
    for num, eid, person in links:
        if person in unsure:
            continue
        pid = people.get(person)
        if pid is None:
            pid = people[person] = f"discoverer/{slug(person)}"
            res.entities.append(Entity(pid, "discoverer", person, record_id=person, **m))
        res.triples.append(Triple(eid, "discovered_by", pid, record_id=str(num), **m))
    if unsure:
        res.reason = f"discovered_by left out for names one person may share: {', '.join(sorted(unsure))}"[:500]
    return res
