"""Statements grounded in the observed failure, on real injected bugs of a real sdist (toolz 0.12.0) in Docker:
the reproduction snippet, reduced from a failing test, fails in the "before" env the way the statement says and
does not in the "after" env; the statement names no file path nor a private name of the fix."""

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_injected_bug_statement_reproduces_before_and_not_after(swe_ctx, toolz_checkout, mirror_root):
    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe.bugs import candidates
    from crucible.pipelines.swe.statement_facts import name_leaks
    from crucible.pipelines.swe.statements import statement_for
    from crucible.pipelines.swe.validate import validate_bugs

    scfg = load_config("swe", []).to_dict()["swe"]["statements"]
    cands = candidates(toolz_checkout.path, seed=0, max_candidates=4, include=["toolz/itertoolz.py"])
    insts, rows, _ = validate_bugs(swe_ctx, toolz_checkout, "pypi/toolz", mirror_root, cands, "it",
                                   source_ref="sdist:toolz==0.12.0")
    assert insts, [r["reason"] for r in rows]
    kept = 0
    for inst in insts:
        out, fails, dropped = statement_for(swe_ctx, inst, scfg, None, None, run_id="it", pipeline="swe-curate")
        rep = out["statement_repro"]
        print(inst["instance_id"], inst["meta"]["function"], "->", dropped or out["problem_statement"], rep)
        if dropped:  # a drop always says why, with the record
            assert fails and fails[-1]["reason"] == dropped and rep["reproduced"] is False
            continue
        kept += 1
        assert rep["reproduced"] is True and out["statement_origin"] == "observed"
        b, a = rep["before"], rep["after"]
        if rep["kind"] == "raise":
            assert b["exc_type"] and a["exit_code"] == 0
            assert b["exc_type"] in out["problem_statement"]
        elif rep["kind"] == "value":
            assert b["exit_code"] == a["exit_code"] == 0 and b["value"] != a["value"]
            assert b["value"] in out["problem_statement"] and a["value"] in out["problem_statement"]
        assert rep["snippet"].strip() in out["problem_statement"]
        # only the public call the user makes may be named: no path, line or private name, nothing else of the fix
        public = set(out["statement_repro"]["snippet"].replace("(", " ").replace(".", " ").split())
        assert name_leaks(out["problem_statement"], inst, public) == []
        assert "itertoolz.py" not in out["problem_statement"] and "toolz/" not in out["problem_statement"]
    assert kept >= 1
