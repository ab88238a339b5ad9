"""The bad-input suite: every case runs the real CLI (in process) on one bad file and must exit 2 with a
message naming the file and the field or line, no traceback, and nothing written (the folder tree, the
output folder and the cache folder unchanged). The good-input cases at the end exit 0.

A case is ``(id, files, argv, expect)``: ``files`` maps a name under the case folder to its content (str,
bytes, a list of JSON rows, or DIR for a folder); ``{d}`` in argv and expect is the case folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible.pipelines.cli import main

DIR = object()
DIFF = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"


def swe(**kw):
    r = {"repo": "o/r", "instance_id": "o__r-1", "base_commit": "a" * 40, "patch": DIFF, "test_patch": DIFF,
         "problem_statement": "it breaks", "FAIL_TO_PASS": '["t.py::test_a"]', "PASS_TO_PASS": ["t.py::test_b"]}
    r.update(kw)
    return {k: v for k, v in r.items() if v is not DROP}


def pred(**kw):
    r = {"instance_id": "o__r-1", "model_name_or_path": "m", "model_patch": DIFF}
    r.update(kw)
    return {k: v for k, v in r.items() if v is not DROP}


def judge(**kw):
    r = {"question": "Capital of Peru?", "gold": ["Lima"], "prediction": "Lima"}
    r.update(kw)
    return {k: v for k, v in r.items() if v is not DROP}


DROP = object()
ENT = {"id": "city/a", "type": "city", "name": "Aville"}
ENT_B = {"id": "city/b", "type": "city", "name": "Bville"}
TRI = {"subject": "city/a", "relation": "near", "object": "city/b"}
KG = ["kg", "build", "--out", "{d}/kg", "--set", "search.kg.embedded=false"]


def kg(*files):
    return [*KG, "--set", "search.kg.extra=[" + ",".join("{d}/" + f for f in files) + "]"]


def grade(inst="i.jsonl", preds="p.jsonl"):
    return ["swe", "grade", "--instances", "{d}/" + inst, "--predictions", "{d}/" + preds, "--out", "{d}/out"]


GOOD_I = {"i.jsonl": [swe()]}
GOOD_P = {"p.jsonl": [pred()]}
JUDGE = ["browse", "judge", "{d}/j.jsonl", "--rules-only"]
VALIDATE = ["config", "validate", "-c", "{d}/c.yaml"]

CASES = [
    # ---- configs (config validate; every pipeline command loads its config the same way)
    ("config-not-utf8", {"c.yaml": b"llm:\n  model: caf\xe9\n"}, VALIDATE, ["{d}/c.yaml: line 2, column 13: not UTF-8"]),
    ("config-directory", {"c.yaml": DIR}, VALIDATE, ["{d}/c.yaml: is a directory"]),
    ("config-empty", {"c.yaml": "# nothing\n"}, VALIDATE, ["{d}/c.yaml: the config file is empty"]),
    ("config-missing", {}, VALIDATE, ["{d}/c.yaml: config file not found"]),
    ("config-bad-yaml", {"c.yaml": "llm:\n  model: [a\n"}, VALIDATE, ["{d}/c.yaml: not valid YAML", "line"]),
    ("config-top-level-list", {"c.yaml": "- llm\n"}, VALIDATE, ["{d}/c.yaml: top level must be a mapping"]),
    ("config-unknown-section", {"c.yaml": "lm:\n  model: x\n"}, VALIDATE, ["{d}/c.yaml", "'lm': did you mean 'llm'?"]),
    ("config-unknown-key", {"c.yaml": "llm:\n  max_concurency: 4\n"}, VALIDATE,
     ["{d}/c.yaml: llm", "'max_concurency': did you mean 'max_concurrency'?"]),
    ("config-wrong-type", {"c.yaml": "llm:\n  max_concurrency: eight\n"}, VALIDATE,
     ["{d}/c.yaml: llm.max_concurrency", "type integer"]),
    ("config-below-minimum", {"c.yaml": "llm:\n  max_concurrency: 0\n"}, VALIDATE,
     ["{d}/c.yaml: llm.max_concurrency", ">= 1"]),
    ("config-not-in-enum", {"c.yaml": "llm:\n  engine: gpt\n"}, VALIDATE, ["{d}/c.yaml: llm.engine", "allowed:"]),
    ("config-extends-cycle", {"c.yaml": "extends: c.yaml\n"}, VALIDATE, ["c.yaml: 'extends' forms a cycle"]),
    ("config-extends-missing", {"c.yaml": "extends: nope.yaml\n"}, VALIDATE, ["{d}/nope.yaml: config file not found"]),
    ("config-extends-directory", {"c.yaml": "extends: sub\n", "sub": DIR}, VALIDATE, ["{d}/sub: is a directory"]),
    ("config-parent-not-utf8", {"c.yaml": "extends: p.yaml\n", "p.yaml": b"run:\n  x: \xff\n"}, VALIDATE,
     ["{d}/p.yaml: line 2, column 6: not UTF-8"]),
    ("set-no-equals", {}, ["config", "validate", "--set", "llm.max_concurrency"],
     ["--set 'llm.max_concurrency': expected KEY.PATH=VALUE"]),
    ("set-empty-key", {}, ["config", "validate", "--set", "=3"], ["--set '=3': expected KEY.PATH=VALUE"]),
    ("set-unknown-key", {}, ["config", "validate", "--set", "llm.max_concurency=3"],
     ["(with --set overrides): llm", "did you mean 'max_concurrency'?"]),
    ("set-wrong-type", {}, ["config", "validate", "--set", "run.limit=abc"], ["(with --set overrides): run.limit"]),
    ("set-bad-yaml-value", {}, ["config", "validate", "--set", "llm.max_concurrency=[1"],
     ["(with --set overrides): llm.max_concurrency", "type integer"]),
    # ---- judge rows (browse judge)
    ("judge-gold-numbers", {"j.jsonl": [judge(gold=[1])]}, JUDGE, ["{d}/j.jsonl:1: field gold", "non-empty list"]),
    ("judge-gold-empty-list", {"j.jsonl": [judge(), judge(gold=[])]}, JUDGE, ["{d}/j.jsonl:2: field gold"]),
    ("judge-gold-empty-string", {"j.jsonl": [judge(gold="")]}, JUDGE, ["{d}/j.jsonl:1: field gold"]),
    ("judge-gold-missing", {"j.jsonl": [judge(gold=DROP)]}, JUDGE, ["{d}/j.jsonl:1: field gold: required"]),
    ("judge-row-is-a-list", {"j.jsonl": [["Lima", "Lima"]]}, JUDGE,
     ["{d}/j.jsonl:1: a row must be a JSON object, got a list"]),
    ("judge-row-is-a-string", {"j.jsonl": ['"Lima"']}, JUDGE, ["{d}/j.jsonl:1: a row must be a JSON object"]),
    ("judge-prediction-missing", {"j.jsonl": [judge(prediction=DROP)]}, JUDGE,
     ["{d}/j.jsonl:1: field prediction: required"]),
    ("judge-unknown-field", {"j.jsonl": [judge(gold=DROP, golds=["Lima"])]}, JUDGE,
     ["{d}/j.jsonl:1: field gold: required", "'golds': a misspelling of 'gold'?"]),
    ("judge-extra-field", {"j.jsonl": [judge(expectd="correct")]}, JUDGE,
     ["{d}/j.jsonl:1: field expectd: unknown field; did you mean 'expected'?"]),
    ("judge-bad-expected", {"j.jsonl": [judge(expected="yes")]}, JUDGE, ["{d}/j.jsonl:1: field expected", "'yes'"]),
    ("judge-question-number", {"j.jsonl": [judge(question=7)]}, JUDGE, ["{d}/j.jsonl:1: field question: must be string"]),
    ("judge-gold-id-number", {"j.jsonl": [judge(gold_id=3)]}, JUDGE, ["{d}/j.jsonl:1: field gold_id"]),
    ("judge-evidence-string", {"j.jsonl": [judge(evidence="x")]}, JUDGE, ["{d}/j.jsonl:1: field evidence"]),
    ("judge-bad-json", {"j.jsonl": [judge(), "{oops"]}, JUDGE, ["{d}/j.jsonl: line 2, column 2: not valid JSON"]),
    ("judge-not-utf8", {"j.jsonl": b'{"question": "\xff"}\n'}, JUDGE, ["{d}/j.jsonl: line 1, column 15: not UTF-8"]),
    ("judge-empty", {"j.jsonl": "\n\n"}, JUDGE, ["{d}/j.jsonl: the judge rows file is empty"]),
    ("judge-directory", {"j.jsonl": DIR}, JUDGE, ["{d}/j.jsonl: is a directory"]),
    ("judge-missing", {}, JUDGE, ["{d}/j.jsonl: no such judge rows file"]),
    # ---- KG extras (kg build with search.kg.extra)
    ("kg-row-is-a-list", {"g.jsonl": [ENT, [1, 2]]}, kg("g.jsonl"), ["{d}/g.jsonl:2: a row must be a JSON object"]),
    ("kg-row-is-a-number", {"g.jsonl": ["7"]}, kg("g.jsonl"), ["{d}/g.jsonl:1: a row must be a JSON object"]),
    ("kg-duplicate-id", {"g.jsonl": [ENT, ENT_B, dict(ENT, name="Other")]}, kg("g.jsonl"),
     ["{d}/g.jsonl:3: duplicate entity id 'city/a', already at {d}/g.jsonl:1"]),
    ("kg-duplicate-id-across-files", {"g.jsonl": [ENT], "h.jsonl": [dict(ENT, name="Other")]}, kg("g.jsonl", "h.jsonl"),
     ["{d}/h.jsonl:1: duplicate entity id 'city/a', already at {d}/g.jsonl:1"]),
    ("kg-missing-name", {"g.jsonl": [{"id": "city/a", "type": "city"}]}, kg("g.jsonl"),
     ["{d}/g.jsonl:1: field name: required field missing"]),
    ("kg-unknown-field", {"g.jsonl": [dict(ENT, alias=["A"])]}, kg("g.jsonl"),
     ["{d}/g.jsonl:1: field alias: unknown field; did you mean 'aliases'?"]),
    ("kg-bad-relation", {"g.jsonl": [ENT, ENT_B, dict(TRI, relation="Near By")]}, kg("g.jsonl"),
     ["{d}/g.jsonl:3: field relation", "snake_case"]),
    ("kg-aliases-not-a-list", {"g.jsonl": [dict(ENT, aliases="A")]}, kg("g.jsonl"), ["{d}/g.jsonl:1: field aliases"]),
    ("kg-alias-not-a-string", {"g.jsonl": [dict(ENT, aliases=["A", 3])]}, kg("g.jsonl"),
     ["{d}/g.jsonl:1: field aliases[1]: must be string"]),
    ("kg-triple-missing-object", {"g.jsonl": [ENT, {"subject": "city/a", "relation": "near"}]}, kg("g.jsonl"),
     ["{d}/g.jsonl:2: field object: required"]),
    ("kg-dangling-triple", {"g.jsonl": [ENT, dict(TRI, object="city/zz")]}, kg("g.jsonl"),
     ["{d}/g.jsonl:2: field object: 1 triple(s) point at unknown entities", "'city/zz' is not an entity"]),
    ("kg-empty-id", {"g.jsonl": [dict(ENT, id="")]}, kg("g.jsonl"), ["{d}/g.jsonl:1: field id: must not be empty"]),
    ("kg-not-utf8", {"g.jsonl": b'{"id": "city/\xe9"}\n'}, kg("g.jsonl"), ["{d}/g.jsonl: line 1, column 14: not UTF-8"]),
    ("kg-bad-json", {"g.jsonl": [ENT, '{"id": '] }, kg("g.jsonl"), ["{d}/g.jsonl: line 2", "not valid JSON"]),
    ("kg-empty-file", {"g.jsonl": ""}, kg("g.jsonl"), ["{d}/g.jsonl: the graph rows file is empty"]),
    ("kg-missing-file", {}, kg("g.jsonl"), ["{d}/g.jsonl: graph input file not found"]),
    ("kg-empty-folder", {"g": DIR}, kg("g"), ["{d}/g: a directory without .jsonl or .parquet"]),
    ("kg-bad-parquet", {"g.parquet": b"PAR1 not parquet PAR1"}, kg("g.parquet"), ["{d}/g.parquet: not a readable Parquet"]),
    # ---- SWE-bench rows (swe grade refuses before any container; swe validate alike)
    ("swe-unknown-field", {"i.jsonl": [swe(FAIL_TO_PAS=["t"])], **GOOD_P}, grade(),
     ["{d}/i.jsonl:1 field 'FAIL_TO_PAS': unknown field; did you mean 'FAIL_TO_PASS'?"]),
    ("swe-unknown-field-case", {"i.jsonl": [swe(), swe(instance_id="o__r-2", fail_to_pass=["t"])], **GOOD_P}, grade(),
     ["{d}/i.jsonl:2 field 'fail_to_pass'", "did you mean 'FAIL_TO_PASS'?"]),
    ("swe-missing-required", {"i.jsonl": [swe(base_commit=DROP)], **GOOD_P}, grade(),
     ["{d}/i.jsonl:1 field 'base_commit': required field missing"]),
    ("swe-bad-repo", {"i.jsonl": [swe(repo="just-a-name")], **GOOD_P}, grade(), ["{d}/i.jsonl:1 field 'repo'", "owner/name"]),
    ("swe-bad-commit", {"i.jsonl": [swe(base_commit="main")], **GOOD_P}, grade(),
     ["{d}/i.jsonl:1 field 'base_commit'", "hex"]),
    ("swe-patch-not-a-diff", {"i.jsonl": [swe(patch="fix it")], **GOOD_P}, grade(),
     ["{d}/i.jsonl:1 field 'patch': not a unified diff"]),
    ("swe-labels-bad-json", {"i.jsonl": [swe(FAIL_TO_PASS="[1, 2")], **GOOD_P}, grade(),
     ["{d}/i.jsonl:1 field 'FAIL_TO_PASS': not a JSON list"]),
    ("swe-labels-numbers", {"i.jsonl": [swe(PASS_TO_PASS=[1])], **GOOD_P}, grade(),
     ["{d}/i.jsonl:1 field 'PASS_TO_PASS'", "list of test ids"]),
    ("swe-version-list", {"i.jsonl": [swe(version=[1])], **GOOD_P}, grade(), ["{d}/i.jsonl:1 field 'version'"]),
    ("swe-duplicate-id", {"i.jsonl": [swe(), swe()], **GOOD_P}, grade(),
     ["{d}/i.jsonl:2 field 'instance_id': duplicate of line 1"]),
    ("swe-row-not-object", {"i.jsonl": [swe(), "[1]"], **GOOD_P}, grade(), ["{d}/i.jsonl:2: a row must be a JSON object"]),
    ("swe-bad-json", {"i.jsonl": ["{nope", swe()], **GOOD_P}, grade(), ["{d}/i.jsonl:1: not valid JSON"]),
    ("swe-not-utf8", {"i.jsonl": b'{"repo": "\xff"}\n', **GOOD_P}, grade(), ["{d}/i.jsonl: line 1, column 11: not UTF-8"]),
    ("swe-directory", {"i.jsonl": DIR, **GOOD_P}, grade(), ["{d}/i.jsonl: is a directory"]),
    ("swe-empty", {"i.jsonl": "", **GOOD_P}, grade(), ["{d}/i.jsonl: the file is empty"]),
    ("swe-unknown-format", {"i.csv": "repo,instance_id\n", **GOOD_P}, grade(inst="i.csv"),
     ["{d}/i.csv: unknown format"]),
    ("swe-validate-unknown-field", {"i.jsonl": [swe(PASS_TO_PAS=[])]},
     ["swe", "validate", "--instances", "{d}/i.jsonl", "--out", "{d}/out"],
     ["{d}/i.jsonl:1 field 'PASS_TO_PAS'", "did you mean 'PASS_TO_PASS'?"]),
    ("swe-validate-missing-required", {"i.jsonl": [swe(test_patch=DROP)]},
     ["swe", "validate", "--instances", "{d}/i.jsonl", "--out", "{d}/out"],
     ["{d}/i.jsonl:1 field 'test_patch': required field missing"]),
    # ---- predictions (swe grade)
    ("pred-missing-patch", {**GOOD_I, "p.jsonl": [pred(model_patch=DROP)]}, grade(),
     ["{d}/p.jsonl:1: field model_patch: required field missing"]),
    ("pred-misspelt-patch", {**GOOD_I, "p.jsonl": [pred(model_patch=DROP, model_patc=DIFF)]}, grade(),
     ["{d}/p.jsonl:1: field model_patch", "a misspelling of 'model_patch'?"]),
    ("pred-patch-number", {**GOOD_I, "p.jsonl": [pred(model_patch=3)]}, grade(),
     ["{d}/p.jsonl:1: field model_patch: must be string or null"]),
    ("pred-empty-model", {**GOOD_I, "p.jsonl": [pred(model_name_or_path="")]}, grade(),
     ["{d}/p.jsonl:1: field model_name_or_path: must not be empty"]),
    ("pred-row-is-a-list", {**GOOD_I, "p.jsonl": ["[1]"]}, grade(), ["{d}/p.jsonl:1: a row must be a JSON object"]),
    ("pred-bad-json", {**GOOD_I, "p.jsonl": [pred(), "{x"]}, grade(), ["{d}/p.jsonl:2: not JSON"]),
    ("pred-duplicate", {**GOOD_I, "p.jsonl": [pred(), pred()]}, grade(),
     ["{d}/p.jsonl:2: duplicate prediction of model 'm' for 'o__r-1', already at line 1"]),
    ("pred-not-utf8", {**GOOD_I, "p.jsonl": b"\xfe\n"}, grade(), ["{d}/p.jsonl: line 1, column 1: not UTF-8"]),
    ("pred-empty", {**GOOD_I, "p.jsonl": "\n"}, grade(), ["{d}/p.jsonl: the predictions file is empty"]),
    ("pred-directory", {**GOOD_I, "p.jsonl": DIR}, grade(), ["{d}/p.jsonl: is a directory"]),
    # ---- stores and manifests
    ("stats-not-a-store", {"notes.txt": "x", "sub": DIR}, ["stats", "--out", "{d}"], ["{d}: not a Crucible store"]),
    ("stats-missing-folder", {}, ["stats", "--out", "{d}/nope"], ["{d}/nope: no such output directory"]),
    ("report-not-a-store", {"notes.txt": "x"}, ["report", "--out", "{d}"], ["{d}: not a Crucible store"]),
    ("query-not-a-store", {"notes.txt": "x"}, ["query", "select 1", "--out", "{d}"], ["{d}: not a Crucible store"]),
    ("export-not-a-store", {"notes.txt": "x"}, ["export", "--format", "trl", "--out", "{d}"],
     ["{d}: not a Crucible store"]),
    ("compact-not-a-store", {"notes.txt": "x"}, ["compact", "--out", "{d}"], ["{d}: not a Crucible store"]),
    ("manifest-empty-object", {"_commits/p/0123456789abcdef.json": "{}"}, ["stats", "--out", "{d}"],
     ["{d}/_commits/p/0123456789abcdef.json: commit manifest field 'commit_id' is missing"]),
    ("manifest-a-list", {"_commits/p/0123456789abcdef.json": "[]"}, ["query", "select 1", "--out", "{d}"],
     ["{d}/_commits/p/0123456789abcdef.json: commit manifest is a JSON list"]),
    ("manifest-not-utf8", {"_commits/p/0123456789abcdef.json": b'{"a": "\xff"}'}, ["stats", "--out", "{d}"],
     ["{d}/_commits/p/0123456789abcdef.json: unreadable commit manifest: line 1, column 8: not UTF-8"]),
    ("manifest-bad-json", {"_commits/p/0123456789abcdef.json": '{"commit_id": '}, ["compact", "--out", "{d}"],
     ["{d}/_commits/p/0123456789abcdef.json: unreadable commit manifest: line 1", "not valid JSON"]),
    # ---- other inputs: parse, kg query, llm chat --schema, search pages / frozen corpus
    ("parse-row-not-object", {"r.jsonl": ["[1]"]}, ["parse", "{d}/r.jsonl"], ["{d}/r.jsonl:1: a row must be a JSON object"]),
    ("parse-row-without-text", {"r.jsonl": [{"id": 1}]}, ["parse", "{d}/r.jsonl"], ["{d}/r.jsonl:1: none of the fields"]),
    ("parse-not-utf8", {"r.txt": b"Thought: \xff"}, ["parse", "{d}/r.txt"], ["{d}/r.txt: line 1, column 10: not UTF-8"]),
    ("parse-bad-json", {"r.jsonl": ['{"text": 1', '{}']}, ["parse", "{d}/r.jsonl"], ["{d}/r.jsonl: line 1", "not valid JSON"]),
    ("kg-query-file-not-json", {"f.json": "{triples"}, ["kg", "query", "@{d}/f.json"], ["{d}/f.json: line 1", "not valid JSON"]),
    ("kg-query-file-directory", {"f.json": DIR}, ["kg", "query", "@{d}/f.json"], ["{d}/f.json: is a directory"]),
    ("kg-query-not-an-object", {"f.json": "[1]"}, ["kg", "query", "@{d}/f.json"],
     ["{d}/f.json: formalization must be an object"]),
    ("llm-schema-file-not-json", {"s.json": "{type: object}"}, ["llm", "chat", "hi", "--schema", "{d}/s.json"],
     ["{d}/s.json: line 1, column 2: not valid JSON"]),
    ("search-pages-row-not-object", {"pages.jsonl": ["[1]"]},
     ["search", "index", "--pages", "{d}/pages.jsonl", "--out", "{d}/corpus"],
     ["{d}/pages.jsonl:1: a row must be a JSON object"]),
    ("search-pages-missing-text", {"pages.jsonl": [{"url": "u", "title": "t"}]},
     ["search", "index", "--pages", "{d}/pages.jsonl", "--out", "{d}/corpus"], ["{d}/pages.jsonl:1: field 'text'"]),
    ("search-frozen-bad-row", {"frozen.jsonl": [{"kind": "search", "query": "q"}]},
     ["search", "query", "q", "--set", "search.backend=frozen", "--set", "search.frozen.path={d}/frozen.jsonl"],
     ["{d}/frozen.jsonl:1: a search row needs query, top_k, results"]),
]


def _materialize(d: Path, files: dict) -> None:
    for name, content in files.items():
        p = d / name
        if content is DIR:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            content = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in content)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())


def _tree(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
            for p in sorted(d.rglob("*"))}


def test_the_suite_has_at_least_60_distinct_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("files, argv, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_file_and_field_and_writes_nothing(tmp_path, capsys, monkeypatch, files, argv,
                                                                    expect):
    d = tmp_path / "case"
    d.mkdir()
    cache = tmp_path / "cache"
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    _materialize(d, files)
    before = _tree(tmp_path)
    rc = main([a.replace("{d}", str(d)) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    for e in expect:
        assert e.replace("{d}", str(d)) in err, err
    assert _tree(tmp_path) == before  # nothing written: no output folder, no cache, no file touched
    assert not cache.exists()


# ---- good input still works

GOOD = [
    ("config", {"c.yaml": "extends: " + str(Path(__file__).resolve().parents[2] / "configs" / "defaults.yaml")
                + "\nllm:\n  max_concurrency: 3\n"}, VALIDATE, "ok: "),
    ("config-bom", {"c.yaml": b"\xef\xbb\xbfrun:\n  limit: 3\n"}, VALIDATE, "ok: "),
    ("judge", {"j.jsonl": [judge(), judge(gold="Lima", prediction="Cusco", expected="incorrect", evidence=None)]},
     JUDGE, '"verdict": "correct"'),
    ("kg", {"g.jsonl": [ENT, ENT_B, TRI]}, kg("g.jsonl"), "2 entities, 1 triples"),
    ("parse", {"r.jsonl": [{"text": "<answer>Lima</answer>"}]}, ["parse", "{d}/r.jsonl"], "Lima"),
]


@pytest.mark.parametrize("files, argv, expect", [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_good_input_exits_0(tmp_path, capsys, monkeypatch, files, argv, expect, request):
    # the judge reads the default graph: the session's, built once (the other commands get an empty cache)
    cache = request.getfixturevalue("default_kg_cache") if argv == JUDGE else tmp_path / "cache"
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(cache))
    _materialize(tmp_path, files)
    rc = main([a.replace("{d}", str(tmp_path)) for a in argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert expect in out.out


def test_good_swe_rows_and_predictions_pass_the_checks(tmp_path):
    """The rows the bad cases above start from are good: read with no problem (grading itself needs Docker)."""
    from crucible.pipelines.swe.predictions import read_predictions
    from crucible.pipelines.swe.sources import read_instances

    _materialize(tmp_path, {**GOOD_I, **GOOD_P, "x.jsonl": [swe(pull_number=7, issue_numbers=["3"],
                                                                 merged_at=None, difficulty="<15 min fix")]})
    assert read_instances(tmp_path / "i.jsonl")[1] == [] and read_predictions(tmp_path / "p.jsonl")[1] == []
    good, problems = read_instances(tmp_path / "x.jsonl")  # the crawler's / SWE-bench Verified's extra fields
    assert problems == [] and good[0]["instance_id"] == "o__r-1"
