"""A small hand-made graph and corpus for fast browse-environment tests."""

from __future__ import annotations

from crucible.pipelines.browse.kg.model import Entity, Graph, Triple
from crucible.pipelines.config import load_config
from crucible.pipelines.options import BrowseOptions, build_options


def E(eid, typ, name, aliases=(), **attrs):
    return Entity(eid, typ, name, tuple(aliases), attrs, source="test", source_version="1", record_id=eid,
                  license="CC0")


def T(s, r, o, **attrs):
    return Triple(s, r, o, attrs, source="test", source_version="1", record_id=f"{s}|{r}|{o}", license="CC0")


def small_graph() -> Graph:
    ents = [
        E("country/NL", "country", "Netherlands", ["NL", "Holland"], population=17_000_000, area_km2=41_543),
        E("country/BE", "country", "Belgium", ["BE"], population=11_500_000, area_km2=30_528),
        E("country/IS", "country", "Iceland", ["IS"], population=353_574, area_km2=103_000),
        E("city/1", "city", "Amsterdam", population=741_636, latitude=52.37),
        E("city/2", "city", "Utrecht", population=290_529, latitude=52.09),
        E("city/3", "city", "Brussels", population=1_019_022, latitude=50.85),
        E("city/4", "city", "Antwerp", population=459_805, latitude=51.22),
        E("city/5", "city", "Reykjavík", ["Reykjavik"], population=118_918, latitude=64.14),
        E("city/6", "city", "Kópavogur", population=33_000, latitude=64.11),
        E("airport/EHAM", "airport", "Amsterdam Airport Schiphol", ["EHAM", "AMS"], icao="EHAM", iata="AMS",
          elevation_ft=-11),
        E("airport/BIRK", "airport", "Reykjavik Airport", ["BIRK", "RKV"], icao="BIRK", iata="RKV", elevation_ft=48),
        E("airport/EBBR", "airport", "Brussels Airport", ["EBBR", "BRU"], icao="EBBR", iata="BRU", elevation_ft=184),
        E("currency/EUR", "currency", "Euro", ["EUR"]),
        E("currency/ISK", "currency", "Iceland Krona", ["ISK"]),
        E("continent/EU", "continent", "Europe", ["EU"]),
        Entity("wiki/Iceland", "article", "Iceland", (), {"topic": "Geography"},
               description="Iceland is a Nordic island country in the North Atlantic Ocean. Its capital is Reykjavík.",
               url="https://en.wikipedia.org/wiki/Iceland", source="test", license="CC-BY-SA-4.0"),
        Entity("wiki/North_Atlantic_Ocean", "article", "North Atlantic Ocean", (), {},
               description="The North Atlantic Ocean is the northern part of the Atlantic Ocean.",
               url="https://en.wikipedia.org/wiki/North_Atlantic_Ocean", source="test", license="CC-BY-SA-4.0"),
    ]
    tris = [
        T("city/1", "country", "country/NL"), T("city/2", "country", "country/NL"),
        T("city/3", "country", "country/BE"), T("city/4", "country", "country/BE"),
        T("city/5", "country", "country/IS"), T("city/6", "country", "country/IS"),
        T("country/NL", "capital", "city/1"), T("country/BE", "capital", "city/3"), T("country/IS", "capital", "city/5"),
        T("airport/EHAM", "serves_city", "city/1"), T("airport/BIRK", "serves_city", "city/5"),
        T("airport/EBBR", "serves_city", "city/3"),
        T("airport/EHAM", "country", "country/NL"), T("airport/BIRK", "country", "country/IS"),
        T("airport/EBBR", "country", "country/BE"),
        T("country/NL", "currency", "currency/EUR"), T("country/BE", "currency", "currency/EUR"),
        T("country/IS", "currency", "currency/ISK"),
        T("country/NL", "continent", "continent/EU"), T("country/BE", "continent", "continent/EU"),
        T("country/IS", "continent", "continent/EU"),
        T("country/NL", "shares_border_with", "country/BE"), T("country/BE", "shares_border_with", "country/NL"),
        T("country/IS", "described_by", "wiki/Iceland"),
        T("wiki/Iceland", "mentions", "wiki/North_Atlantic_Ocean"),
    ]
    return Graph(ents, tris)


def browse_opts(**over) -> BrowseOptions:
    """The typed ``browse`` section of the default config (schema defaults), with overrides."""
    return build_options(load_config("defaults")).browse.replace(**over)
