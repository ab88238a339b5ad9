"""`crucible swe grade`: reading predictions, the per-prediction lines and the report (grading faked)."""

import json

import pytest

from crucible.pipelines.swe.predictions import PredictionsError, grade_line, read_predictions, summarize


def test_read_predictions_keeps_good_rows_and_names_bad_ones(tmp_path):
    p = tmp_path / "preds.jsonl"
    p.write_text("\n".join([
        json.dumps({"instance_id": "a-1", "model_name_or_path": "m", "model_patch": "diff --git a/x b/x\n"}),
        json.dumps({"instance_id": "a-1", "model_name_or_path": "m2", "model_patch": None}),
        "{not json",
        json.dumps({"instance_id": "a-2", "model_patch": ""}),
        json.dumps([1]),
    ]) + "\n")
    good, problems = read_predictions(p)
    assert [(g["instance_id"], g["model_name_or_path"], g["model_patch"]) for g in good] == [
        ("a-1", "m", "diff --git a/x b/x\n"), ("a-1", "m2", "")]
    assert len(problems) == 3 and problems[0].startswith(f"{p}:3: not JSON")
    assert "model_name_or_path" in problems[1] and f"{p}:4" in problems[1]
    with pytest.raises(PredictionsError, match="no such file"):
        read_predictions(tmp_path / "missing.jsonl")


def test_lines_and_report():
    g = {"resolved": False, "grade": "harness_tamper", "grade_reason": "harness_tamper: x", "f2p_passed": 0,
         "f2p_total": 2, "p2p_passed": 0, "p2p_total": 3, "dropped_files": []}
    ln = grade_line({"instance_id": "a-1", "model_name_or_path": "m"}, g)
    assert ln["fail_to_pass"] == {"passed": 0, "failed": 2} and ln["pass_to_pass"] == {"passed": 0, "failed": 3}
    ok = dict(ln, instance_id="a-2", resolved=True, grade="resolved")
    empty = dict(ln, instance_id="a-3", grade="empty_patch")
    rep = summarize([ln, ok, empty], n_instances=4)["m"]
    assert rep["resolved"] == 1 and rep["resolved_ids"] == ["a-2"] and rep["unresolved_ids"] == ["a-1"]
    assert rep["empty_patch_ids"] == ["a-3"] and rep["submitted"] == 3 and rep["total_instances"] == 4


def test_cli_grades_each_prediction(tmp_path, monkeypatch, capsys):
    from crucible.pipelines.cli import main
    from tests.support import samples

    diff = "diff --git a/pkg/x.py b/pkg/x.py\n--- a/pkg/x.py\n+++ b/pkg/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    inst = dict(samples.swe_instance(1), patch=diff, test_patch=diff.replace("pkg/x.py", "tests/test_x.py"))
    (tmp_path / "inst.jsonl").write_text(json.dumps(inst) + "\n")
    preds = [{"instance_id": inst["instance_id"], "model_name_or_path": "gold", "model_patch": inst["patch"]},
             {"instance_id": inst["instance_id"], "model_name_or_path": "empty", "model_patch": ""},
             {"instance_id": "nope-1", "model_name_or_path": "gold", "model_patch": ""}]
    (tmp_path / "preds.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))

    def fake_grade(ctx, i, patch, defenses=None):
        ok = bool(patch)
        return {"resolved": ok, "grade": "resolved" if ok else "empty_patch", "grade_reason": None if ok else
                "empty_patch", "f2p_passed": len(i["FAIL_TO_PASS"]) if ok else 0, "f2p_total": len(i["FAIL_TO_PASS"]),
                "p2p_passed": 0, "p2p_total": 0, "dropped_files": []}

    monkeypatch.setattr("crucible.pipelines.swe.predictions.grade_patch", fake_grade)
    monkeypatch.setattr("crucible.pipelines.commands.swe_cmd._docker", lambda: None)
    out = tmp_path / "out"
    rc = main(["swe", "grade", "--instances", str(tmp_path / "inst.jsonl"), "--predictions",
               str(tmp_path / "preds.jsonl"), "--out", str(out), "--json", "--set", f"swe.workdir={tmp_path / 'w'}",
               "--set", "swe.network=none"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(ln.get("model_name_or_path"), ln.get("grade")) for ln in lines[:3]] == [
        ("gold", "resolved"), ("empty", "empty_patch"), ("gold", "no_instance")]
    report = lines[3]
    assert report["gold"]["resolved_ids"] == [inst["instance_id"]] and report["gold"]["error_ids"] == ["nope-1"]
    assert len((out / "swe_grades.jsonl").read_text().splitlines()) == 3 and (out / "report.json").exists()


def test_grades_go_to_the_store_one_row_per_prediction_and_a_rerun_grades_only_new_ones(tmp_path, monkeypatch):
    """`crucible swe grade --store DIR`: each graded prediction is a swe_grades row (schema-valid, committed
    as it finishes); a rerun grades nothing twice and still reports every prediction."""
    import jsonschema

    from crucible.pipelines.config import load_config
    from crucible.pipelines.store import catalog
    from crucible.pipelines.store.records import record_type
    from crucible.pipelines.swe import grade as G
    from crucible.pipelines.swe import grade_store
    from crucible.pipelines.swe.predictions import summarize

    calls = []

    def fake_grade(ctx, inst, patch, defenses=None):
        calls.append(patch)
        ok = "fix" in patch
        return {"resolved": ok, "grade": "resolved" if ok else "unresolved", "grade_reason": "fake grader",
                "f2p_passed": 1 if ok else 0, "f2p_total": 1, "p2p_passed": 2, "p2p_total": 2, "dropped_files": []}

    monkeypatch.setattr(G, "grade_patch", fake_grade)
    cfg = load_config("swe")
    insts = {"a__b-1": {"instance_id": "a__b-1"}}
    preds = [{"instance_id": "a__b-1", "model_name_or_path": "m1", "model_patch": "diff fix"},
             {"instance_id": "a__b-1", "model_name_or_path": "m2", "model_patch": "diff nothing"},
             {"instance_id": "zz__missing-9", "model_name_or_path": "m1", "model_patch": "diff fix"}]
    out = str(tmp_path / "store")
    lines, summary = grade_store.grade_into_store(out, None, insts, preds[:2], "r1", cfg)
    assert (summary.planned, summary.committed) == (2, 2)
    assert [ln["resolved"] for ln in lines] == [True, False] and len(calls) == 2
    cols, rows = catalog.query(out, "select * from swe_grades order by model_name_or_path")
    rows = [dict(zip(cols, r)) for r in rows]
    schema = record_type("swe_grades").schema
    for r in rows:
        jsonschema.validate({k: v for k, v in r.items() if k != "created_at"} | {"created_at": "2026-01-01T00:00:00Z"},
                            schema)
    assert [(r["model_name_or_path"], r["grade"], r["f2p_passed"], r["f2p_failed"]) for r in rows] == [
        ("m1", "resolved", 1, 0), ("m2", "unresolved", 0, 1)]
    calls.clear()
    again, _ = grade_store.grade_into_store(out, None, insts, preds, "r2", cfg)
    assert calls == []  # the two graded ones are not graded again; the unknown instance needs no grader
    assert [ln["grade"] for ln in again] == ["resolved", "unresolved", "no_instance"]
    assert summarize(again, 1)["m1"]["resolved_ids"] == ["a__b-1"]
    _, n = catalog.query(out, "select count(*) from swe_grades")
    assert n == [(3,)]
