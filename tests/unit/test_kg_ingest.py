"""`crucible kg ingest`: Wikidata JSON dumps and Wikipedia text dumps into the graph and the corpus.

Fixtures in tests/data/browse/ are written in the exact dump formats (tests/support/wikidata_dump.py):
wikidata_dump.json (the JSON array framing, 10 entities and 4 bad lines), wikidata_dump.json.gz (the
10 entities, gzip), wikipedia_pages.parquet and wikipedia_pages.jsonl (three pages and bad rows).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crucible.pipelines.browse.kg import finalize as F
from crucible.pipelines.browse.kg import wikidata as W
from crucible.pipelines.browse.kg.build import KGOptions, build_graph
from crucible.pipelines.browse.kg.cards import load_cards
from crucible.pipelines.browse.kg.ingest import IngestInputs, ingest
from crucible.pipelines.browse.kg.model import GraphError
from crucible.pipelines.config import load_config
from crucible.pipelines.store.records import record_type
from tests.support import wikidata_dump as D


def kg_options(**over) -> KGOptions:
    """The shipped defaults (from the schema, through the resolved config) with ``over`` changed."""
    return dataclasses.replace(KGOptions.from_config(load_config("defaults")["search"]["kg"]), **over)

DATA = Path(__file__).resolve().parents[1] / "data" / "browse"
DUMP, DUMP_GZ = str(DATA / "wikidata_dump.json"), str(DATA / "wikidata_dump.json.gz")
PAGES_PQ, PAGES_JSONL = str(DATA / "wikipedia_pages.parquet"), str(DATA / "wikipedia_pages.jsonl")
RUN = {"runner": "FnApiRunner"}
KEPT = {"Q142", "Q90", "Q183", "Q64", "Q456", "Q457", "Q46", "Q4916", "Q1002"}  # typed items of the dump


def _mapping(**changes) -> W.Mapping:
    if not changes:
        return W.load_mapping()
    import yaml

    data = yaml.safe_load(Path(W.DEFAULT_MAPPING).read_text())
    for k, v in changes.items():
        data[k] = v
    return W.parse_mapping(data, "test-mapping.yaml")


def _run(tmp_path, wikidata=(), wikipedia=(), mapping=None) -> tuple[Path, dict]:
    out = tmp_path / "out"
    man = ingest(IngestInputs(tuple(wikidata), tuple(wikipedia)), mapping or _mapping(), load_cards(), out, RUN,
                 "256MB", progress=lambda m: None)
    return out, man


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _line(qid: str) -> str:
    return json.dumps(next(e for e in D.fixture_entities() if e["id"] == qid)) + ","


# -- the mapping and the cards ---------------------------------------------------------------
def test_shipped_mapping_validates_and_every_relation_has_a_card():
    m = W.load_mapping()
    W.check_cards(m, load_cards())
    assert m.relations["P36"] == "capital" and m.classes["Q515"] == "city" and m.rank_filter


def test_mapping_schema_names_the_bad_field():
    with pytest.raises(GraphError, match=r"test-mapping.yaml: mapping field classes"):
        _mapping(classes={"city": "city"})
    with pytest.raises(GraphError, match=r"mapping field attributes/P625"):
        _mapping(attributes={"P625": {"kind": "coordinates", "name": "where"}})


def test_relation_without_a_card_is_refused_before_anything_is_written(tmp_path):
    m = _mapping(relations={"P17": "country", "P131": "located_in"})
    with pytest.raises(GraphError, match=r"'located_in' \(P131\) have no relation card.*add a card"):
        _run(tmp_path, [DUMP], mapping=m)
    assert not (tmp_path / "out").exists()


def test_relation_without_a_card_gets_in_with_the_check_off(tmp_path, monkeypatch):
    """Switch-off: without check_cards a relation nobody reviewed enters the graph."""
    monkeypatch.setattr(W, "check_cards", lambda mapping, cards: None)
    m = _mapping(relations={"P17": "located_in"})
    out, _ = _run(tmp_path, [DUMP], mapping=m)
    assert {t["relation"] for t in _rows(out / "triples.parquet")} == {"located_in"}


# -- one line at a time (pure) -----------------------------------------------------------------
def test_entity_line_maps_type_attributes_and_relations():
    p = W.parse_entity_line(_line("Q142"), _mapping())
    assert not p.problems and p.entity["id"] == "wikidata/Q142" and p.entity["type"] == "country"
    assert p.entity["name"] == "France" and p.entity["aliases"] == ["French Republic"]
    assert json.loads(p.entity["attributes"]) == {"population": 68000000, "iso2": "FR"}
    rels = {(t["relation"], t["object"]) for t in p.triples}
    assert rels == {("capital", "wikidata/Q90"), ("currency", "wikidata/Q4916"), ("continent", "wikidata/Q46"),
                    ("shares_border_with", "wikidata/Q183"), ("shares_border_with", "wikidata/Q31")}


def test_airport_units_and_coordinates():
    p = W.parse_entity_line(_line("Q1002"), _mapping())
    a = json.loads(p.entity["attributes"])
    assert p.entity["type"] == "airport" and a["iata"] == "CDG" and a["icao"] == "LFPG"
    assert a["elevation_ft"] == pytest.approx(390.42, abs=0.01)  # 119 m
    assert (a["latitude"], a["longitude"]) == (49.0097, 2.5479)
    assert {(t["relation"], t["object"]) for t in p.triples} >= {("serves_city", "wikidata/Q90")}


def test_unit_not_in_the_mapping_is_a_problem_not_a_wrong_number():
    e = D.item("Q9", "Somewhere Airport", {"P31": [D.item_value("Q1248784")],
                                             "P2044": [D.quantity(100, "Q828224")]})  # kilometre
    p = W.parse_entity_line(json.dumps(e), _mapping())
    assert "elevation_ft" not in json.loads(p.entity["attributes"])
    assert p.problems == [("claims/P2044/0", "unit Q828224 is not one of the mapping's units (Q11573, Q3710)")]


def test_deprecated_claim_skipped_and_preferred_wins():
    m = _mapping()
    france = W.parse_entity_line(_line("Q142"), m)
    assert ("capital", "wikidata/Q456") not in {(t["relation"], t["object"]) for t in france.triples}
    paris = W.parse_entity_line(_line("Q90"), m)
    assert json.loads(paris.entity["attributes"])["population"] == 2102650  # the preferred claim


def test_rank_filter_off_lets_the_deprecated_claim_through():
    """Switch-off: rank_filter false keeps every claim (the deprecated capital, the normal population)."""
    m = _mapping(rank_filter=False)
    france = W.parse_entity_line(_line("Q142"), m)
    assert ("capital", "wikidata/Q456") in {(t["relation"], t["object"]) for t in france.triples}
    assert json.loads(W.parse_entity_line(_line("Q90"), m).entity["attributes"])["population"] == 2000000


@pytest.mark.parametrize("line, path, reason", [
    ("this is not json,", "", "not JSON"),
    ("[1, 2],", "", "not an entity: a JSON list"),
    ('{"type": "item", "labels": {}},', "id", "missing id"),
    ('{"type": "item", "id": "Q-1"},', "id", "is not a Wikidata id"),
    ('{"type": "item", "id": "Q5", "claims": []},', "claims", "claims must be an object"),
    ('{"type": "item", "id": "Q5", "claims": {"P31": {"x": 1}}},', "claims/P31", "must be a list"),
])
def test_bad_lines_are_problems_never_exceptions(line, path, reason):
    p = W.parse_entity_line(line, _mapping())
    assert p.entity is None and len(p.problems) == 1
    assert p.problems[0][0] == path and reason in p.problems[0][1]


def test_claim_of_unexpected_shape_is_a_problem_and_the_entity_stays():
    p = W.parse_entity_line(D.bad_lines()[3], _mapping())
    assert p.entity["id"] == "wikidata/Q457"
    assert [x[0] for x in p.problems] == ["claims/P1082/0", "claims/P36/0"]
    assert "mainsnak" in p.problems[0][1] and "expected an item" in p.problems[1][1]


def test_framing_properties_and_unmapped_classes_are_skipped_and_counted():
    m = _mapping()
    assert [W.parse_entity_line(x, m).skipped for x in ("[", "]", "", "  ")] == ["frame"] * 4
    assert W.parse_entity_line(_line("P17"), m).skipped == "not_item"
    earth = W.parse_entity_line(_line("Q2"), m)
    assert earth.skipped == "untyped" and earth.entity is None and not earth.problems
    no_label = D.item("Q8", "x", {"P31": [D.item_value("Q515")]})
    no_label["labels"] = {"de": {"language": "de", "value": "Stadt"}}
    assert W.parse_entity_line(json.dumps(no_label), m).problems == [("labels", "no label in en")]


def test_page_rows():
    page, why = W.page_row({"title": "Rhone river", "text": "A river."})
    assert why == "" and page["url"] == "https://en.wikipedia.org/wiki/Rhone_river" and page["type"] == "article"
    assert W.page_row({"title": "x", "text": 3})[1] == "field 'text' must be a non-empty string"
    assert "http(s) URL" in W.page_row({"title": "x", "text": "y", "url": "javascript:1"})[1]


# -- the Beam job on the fixtures ---------------------------------------------------------------
def test_ingest_wikidata_dump(tmp_path):
    out, man = _run(tmp_path, [DUMP])
    ents = {e["record_id"]: e for e in _rows(out / "entities.parquet")}
    assert set(ents) == KEPT
    assert {e["type"] for e in ents.values()} == {"country", "city", "continent", "currency", "airport"}
    tris = {(t["subject"], t["relation"], t["object"]) for t in _rows(out / "triples.parquet")}
    assert ("wikidata/Q142", "capital", "wikidata/Q90") in tris
    assert ("wikidata/Q142", "capital", "wikidata/Q456") not in tris  # deprecated
    assert not any(t[2] == "wikidata/Q31" for t in tris)  # Belgium is not in the dump
    assert man["triples_dropped_object_not_ingested"] == 1 and man["triples"] == len(tris)
    c = man["counters"]
    assert (c["entities"], c["frame"], c["not_item"], c["untyped"]) == (9, 2, 1, 1)
    assert json.loads((out / "manifest.json").read_text())["entities"] == 9
    assert not list(out.glob(".ingest-*"))  # the staging shards are gone


def test_bad_lines_become_failure_rows_naming_file_and_line(tmp_path):
    out, man = _run(tmp_path, [DUMP])
    fails = _rows(out / "failures" / "failures.parquet")
    assert man["failures"] == len(fails) == 5
    at = sorted((f["item_key"], f["path"] or "") for f in fails)
    assert at == [(f"{DUMP}:10", "claims/P1082/0"), (f"{DUMP}:10", "claims/P36/0"), (f"{DUMP}:7", ""),
                  (f"{DUMP}:8", ""), (f"{DUMP}:9", "id")]
    by_line = {f["item_key"]: f for f in fails}
    assert by_line[f"{DUMP}:7"]["reason"].startswith(f"{DUMP}:7: not JSON")
    assert by_line[f"{DUMP}:7"]["payload"] == "this is not json,"  # the raw line
    rt = record_type("failures")
    assert all(not rt.errors(rt.decode(f)) for f in fails) and {f["pipeline"] for f in fails} == {"kg_ingest"}


def test_gzip_dump_gives_the_same_graph(tmp_path):
    out, man = _run(tmp_path, [DUMP_GZ])
    assert {e["record_id"] for e in _rows(out / "entities.parquet")} == KEPT - {"Q457"}
    assert man["failures"] == 0 and man["counters"]["frame"] == 2


def test_ingested_graph_plugs_in_through_search_kg_extra(tmp_path):
    out, _ = _run(tmp_path, [DUMP])
    graph, manifest = build_graph(kg_options(embedded=False, extra=(str(out),)), progress=lambda m: None)
    assert manifest["sources"]["user"]["entities"] == 9
    assert graph.objects("wikidata/Q142", "capital") == ["wikidata/Q90"]
    assert graph.entities["wikidata/Q1002"].attributes["iata"] == "CDG"
    from crucible.pipelines.browse.corpus import render_pages

    page = next(p for p in render_pages(graph) if p.entity_id == "wikidata/Q1002")  # the corpus renders it
    assert "serves the city of Paris" in page.text and "Its IATA code is CDG." in page.text


def test_objects_never_ingested_break_the_graph_with_the_filter_off(tmp_path, monkeypatch):
    """Switch-off: without the object filter the Belgium triple dangles and the graph refuses to load."""
    monkeypatch.setattr(F, "OBJECT_INGESTED", "")
    out, man = _run(tmp_path, [DUMP])
    assert man["triples_dropped_object_not_ingested"] == 0
    with pytest.raises(GraphError, match="point at unknown entities"):
        build_graph(kg_options(embedded=False, extra=(str(out),)), progress=lambda m: None)


def test_duplicate_entities_keep_the_first_and_become_failures(tmp_path):
    out, man = _run(tmp_path, [DUMP, DUMP_GZ])
    assert man["entities"] == 9 and man["duplicate_entities"] == 8
    assert man["triples"] == 14 and man["triples_dropped_duplicate_entity"] == 14  # the gzip copy's triples
    dup = [f for f in _rows(out / "failures" / "failures.parquet") if "duplicate entity id" in f["reason"]]
    assert len(dup) == 8 and all(f["item_key"].startswith(DUMP_GZ + ":") for f in dup)
    assert f"the first, at {DUMP}:2, is kept" in next(f["reason"] for f in dup if "Q142" in f["reason"])
    build_graph(kg_options(embedded=False, extra=(str(out),)), progress=lambda m: None)  # loads


def test_duplicate_entities_break_the_graph_with_the_dedupe_off(tmp_path, monkeypatch):
    """Switch-off: without keeping only the first, the graph refuses the id given twice."""
    monkeypatch.setattr(F, "FIRST_ONLY", "")
    out, _ = _run(tmp_path, [DUMP, DUMP_GZ])
    with pytest.raises(GraphError, match="entity id"):
        build_graph(kg_options(embedded=False, extra=(str(out),)), progress=lambda m: None)


@pytest.mark.parametrize("path, bad", [
    (PAGES_PQ, {f"{PAGES_PQ}:4": "field 'text' must be a non-empty string"}),
    (PAGES_JSONL, {f"{PAGES_JSONL}:4": "not valid JSON", f"{PAGES_JSONL}:5": "field 'title' must be a non-empty"}),
])
def test_ingest_wikipedia_dump(tmp_path, path, bad):
    from crucible.pipelines.browse.corpus import read_pages_jsonl

    out, man = _run(tmp_path, wikipedia=[path])
    pages = {p.title: p for p in read_pages_jsonl(out / "corpus" / "pages.jsonl")}
    assert set(pages) == {"Paris", "Lyon", "Euro"} and man["pages"] == 3
    assert pages["Lyon"].url == "https://en.wikipedia.org/wiki/Lyon" and pages["Paris"].type == "article"
    fails = {f["item_key"]: f["reason"] for f in _rows(out / "failures" / "failures.parquet")}
    assert set(fails) == set(bad) and all(bad[k] in fails[k] for k in bad)
    assert not (out / "entities.parquet").exists()  # pages only: no graph files


def test_missing_or_misnamed_input_is_refused(tmp_path):
    with pytest.raises(GraphError, match="nothing to ingest"):
        _run(tmp_path)
    with pytest.raises(GraphError, match=r"\.json, \.json\.gz or \.json\.bz2"):
        _run(tmp_path, [PAGES_JSONL])
    with pytest.raises(GraphError, match="not found|no such|does not exist"):
        _run(tmp_path, [str(tmp_path / "nope.json")])


def test_cli_refuses_a_relation_without_card_in_one_line(tmp_path, capsys):
    from crucible.pipelines.cli import main

    bad = tmp_path / "m.yaml"
    bad.write_text(Path(W.DEFAULT_MAPPING).read_text().replace("P37: language", "P131: located_in"))
    rc = main(["kg", "ingest", "--wikidata", DUMP, "--mapping", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "located_in" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_ingest_and_reuse(tmp_path, capsys):
    from crucible.pipelines.cli import main

    args = ["kg", "ingest", "--wikidata", DUMP, "--wikipedia", PAGES_JSONL, "--out", str(tmp_path / "o")]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "9 entities" in first and "search.kg.extra" in first and "3 pages" in first
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out


def test_bz2_dump_is_read_like_the_plain_one(tmp_path):
    import bz2

    path = tmp_path / "dump.json.bz2"
    path.write_bytes(bz2.compress(Path(DUMP).read_bytes()))
    out, man = _run(tmp_path, [str(path)])
    assert {e["record_id"] for e in _rows(out / "entities.parquet")} == KEPT
    assert sorted(f["item_key"] for f in _rows(out / "failures" / "failures.parquet"))[-1] == f"{path}:9"


def test_a_fifo_is_refused_by_name_before_the_job_starts(tmp_path):
    import os

    fifo = tmp_path / "dump.json"
    os.mkfifo(fifo)
    with pytest.raises(GraphError, match="dump.json"):
        _run(tmp_path, [str(fifo)])


def test_a_second_ingest_into_the_same_dir_leaves_no_stale_outputs(tmp_path):
    out, _ = _run(tmp_path, [DUMP])
    assert (out / "entities.parquet").exists()
    out, man = _run(tmp_path, wikipedia=[PAGES_PQ])
    assert not (out / "entities.parquet").exists() and not (out / "triples.parquet").exists()
    assert "entities" not in man and man["pages"] == 3


def test_a_path_with_a_quote_and_a_bad_memory_limit(tmp_path):
    quoted = tmp_path / "it's here"
    out, man = _run(quoted, [DUMP])
    assert man["entities"] == 9 and (out / "entities.parquet").exists()
    with pytest.raises(GraphError, match="give a size such as 512MB"):
        ingest(IngestInputs((DUMP,)), _mapping(), load_cards(), tmp_path / "o", RUN, "1GB'; SELECT 1; --")


def test_an_overlong_line_is_a_failure_and_the_next_lines_keep_their_numbers(tmp_path, monkeypatch):
    from crucible.pipelines.browse.kg import ingest as I

    monkeypatch.setattr(I, "MAX_LINE_BYTES", 2500)  # line 2 (France, 2,985 bytes with its newline) is over
    out, man = _run(tmp_path, [DUMP])
    ids = {e["record_id"] for e in _rows(out / "entities.parquet")}
    assert ids == KEPT - {"Q142"}
    fails = {f["item_key"]: f["reason"] for f in _rows(out / "failures" / "failures.parquet")}
    assert "over 2,500 bytes" in fails[f"{DUMP}:2"] and f"{DUMP}:7" in fails  # line 7 is still line 7
