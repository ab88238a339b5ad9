"""Validation in Docker on a real sdist (toolz 0.12.0) exposed through a local bare mirror."""

import json

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker]
SAMPLE = "/work/shared/fixtures/swe/swebench_format_sample.jsonl"


def test_fixture_labels_recomputed_exactly(swe_ctx, toolz_instance):
    from crucible.pipelines.swe.validate import validate_instance

    row = validate_instance(swe_ctx, toolz_instance, "it")
    assert row["status"] == "valid", row["reason"]
    assert row["fail_to_pass"] == sorted(toolz_instance["FAIL_TO_PASS"])
    assert row["pass_to_pass"] == sorted(toolz_instance["PASS_TO_PASS"])
    assert row["labels_match"] is True and row["labels_hold"] is True and row["labels_not_held"] == []
    xfail = "toolz/tests/test_regress_take_nth.py::test_known_gap"
    assert row["tests_after"][xfail] == "XFAIL" and xfail not in row["pass_to_pass"]
    assert row["n_runs"] == 2 and row["env_image"].startswith("crucible/env-toolz")


def test_cli_writes_swe_validations_view_with_errors_and_mismatches(mirror_root, toolz_instance, tmp_path, capsys):
    from crucible.pipelines.cli import main
    from crucible.pipelines.store import catalog
    from crucible.pipelines.swe.mirror import mirror_template

    # given labels of another env: one P2P test of it (the rest this env runs too) and one it never collects
    gone = "toolz/tests/test_itertoolz.py::test_not_in_this_env"
    wrong = dict(toolz_instance, instance_id="pytoolz__toolz-wrong-labels",
                 PASS_TO_PASS=toolz_instance["PASS_TO_PASS"][:1] + [gone])
    noop_fix = toolz_instance["patch"].replace("-    return itertools.islice(seq, 1, None, n)\n+    return "
                                               "itertools.islice(seq, 0, None, n)\n",
                                               "-    return itertools.islice(seq, 1, None, n)\n+    return "
                                               "itertools.islice(seq, 1, None, n)  # noqa\n")
    noop = dict(toolz_instance, instance_id="pytoolz__toolz-noop-fix", patch=noop_fix,
                FAIL_TO_PASS=None, PASS_TO_PASS=None)
    rows = [toolz_instance, wrong, noop, json.loads(open(SAMPLE).readline())]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"repo": "a/b", "instance_id": "x"}\n')
    out = tmp_path / "out"
    rc = main(["swe", "validate", "--instances", str(inp), "--repo-url-template", mirror_template(mirror_root),
               "--out", str(out), "--skip-bad-rows"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["bad_rows"] == 1 and summary["instances"] == 4
    cols, got = catalog.query(str(out), "select instance_id, status, reason, fail_to_pass, pass_to_pass, "
                              "flaky_tests, labels_match, labels_hold, labels_not_held, meta from swe_validations order by instance_id")
    by = {r[0]: dict(zip(cols, r)) for r in got}
    assert by["pytoolz__toolz-take_nth"]["status"] == "valid" and by["pytoolz__toolz-take_nth"]["labels_match"]
    assert by["pytoolz__toolz-wrong-labels"]["labels_match"] is False
    assert by["pytoolz__toolz-wrong-labels"]["labels_hold"] is False
    assert list(by["pytoolz__toolz-wrong-labels"]["labels_not_held"]) == [gone]
    assert json.loads(by["pytoolz__toolz-wrong-labels"]["meta"])["labels_not_collected"] == [gone]
    assert by["pytoolz__toolz-take_nth"]["labels_hold"] is True
    assert by["pytoolz__toolz-noop-fix"]["status"] == "invalid"
    assert by["pytoolz__toolz-noop-fix"]["reason"].startswith("no_fail_to_pass")
    assert by["sqlfluff__sqlfluff-4764"]["status"] == "error" and "cannot clone" in by["sqlfluff__sqlfluff-4764"]["reason"]
    _, inst = catalog.query(str(out), "select instance_id from swe_instances order by 1")
    assert [r[0] for r in inst] == ["pytoolz__toolz-take_nth", "pytoolz__toolz-wrong-labels"]
    _, fails = catalog.query(str(out), "select stage, reason from failures order by stage")
    assert any(s == "read_input" and ":5 field 'base_commit'" in r for s, r in fails)
    assert sum(s == "validate" for s, _ in fails) == 2
