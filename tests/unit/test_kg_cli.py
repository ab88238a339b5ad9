import json

from crucible.pipelines.cli import main


def _user_graph(tmp_path):
    f = tmp_path / "g.jsonl"
    rows = [
        {"id": "city/a", "type": "city", "name": "Aville", "attributes": {"population": 100}},
        {"id": "city/b", "type": "city", "name": "Bville", "attributes": {"population": 900}},
        {"id": "country/x", "type": "country", "name": "Xland"},
        {"subject": "city/a", "relation": "country", "object": "country/x"},
        {"subject": "city/b", "relation": "country", "object": "country/x"},
        {"subject": "country/x", "relation": "capital", "object": "city/b"},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return ["--set", "search.kg.embedded=false", "--set", f"search.kg.extra=[{f}]"]


def test_kg_build_stats_and_query_on_a_user_graph(tmp_path, capsys):
    sets = _user_graph(tmp_path)
    out = tmp_path / "kg"
    assert main(["kg", "build", "--out", str(out), *sets]) == 0
    assert "3 entities, 3 triples" in capsys.readouterr().out
    assert main(["kg", "build", "--out", str(out), *sets]) == 0
    assert "(reused)" in capsys.readouterr().out
    assert main(["kg", "stats", "--out", str(out), "--json", *sets]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["entities"] == 3 and st["relations"] == {"country": 2, "capital": 1}
    # functional 2-hop walks: only a -country-> x -capital-> b (b -> x -> b steps straight back)
    # one-many (country^-1 from x is many-valued): a->x->b, and b->x->a twice, since b reaches x by two
    # hops (country, capital^-1); chains are sequences of typed hops
    assert st["chains"]["2"]["functional"] == 1 and st["chains"]["2"]["one_many"] == 3
    form = {"triples": [["?c", "country", "country/x"]], "constraints": [{"var": "?c", "attr": "population", "min": 500}],
            "target": "?c"}
    assert main(["kg", "query", "--out", str(out), json.dumps(form), *sets]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res == {"count": 1, "answers": [{"id": "city/b", "name": "Bville"}]}


def test_bad_user_graph_is_a_clear_cli_error(tmp_path, capsys):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"id": "a"}\n')
    rc = main(["kg", "build", "--out", str(tmp_path / "kg"), "--set", "search.kg.embedded=false",
               "--set", f"search.kg.extra=[{f}]"])
    assert rc == 2
    assert "bad.jsonl:1: field type: required field missing" in capsys.readouterr().err
