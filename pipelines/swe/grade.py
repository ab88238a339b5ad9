"""Grading an agent's diff: drop changes to test files and the test harness (conftest.py, sitecustomize.py,
*.pth, pytest/tox config), apply the rest on a fresh checkout of the base commit, re-apply the instance's
test patch (so the tests are exactly the validated ones), run the F2P and P2P tests' files in a fresh
container, and resolve iff the run's verdict is ``ok`` (JUnit, exit code and console summary agree) and
every F2P and P2P test passes.

A canary runs with them: a test file under a random name whose one test must fail. A patch that makes the
test runner report passes (package code monkeypatching pytest's reports at import, say) makes the canary pass
too, and the grade is ``harness_tamper``, whatever the other tests say."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pipelines.swe.patches import PatchError, apply_patch, sanitize_model_patch
from pipelines.swe.validate import PASSING, ValidateContext, checkout_tree, env_for_instance, outcome_map


def test_files_of(ids) -> list[str]:
    return sorted({t.split("::", 1)[0] for t in ids})


def score(tests: Mapping[str, str], f2p, p2p) -> dict:
    """Pure: counts and resolved flag from an outcome map (absent = failed)."""
    f = sum(tests.get(t) in PASSING for t in f2p)
    p = sum(tests.get(t) in PASSING for t in p2p)
    return {"f2p_passed": f, "f2p_total": len(f2p), "p2p_passed": p, "p2p_total": len(p2p),
            "resolved": f == len(f2p) and p == len(p2p) and len(f2p) > 0}


def write_canary(tree: Path) -> tuple[str, str]:
    """A must-fail test at the tree's root under a random name: (file, test function name)."""
    tag = secrets.token_hex(6)
    rel, fn = f"test_crucible_canary_{tag}.py", f"test_canary_{tag}"
    (tree / rel).write_text(f"def {fn}():\n    assert 1 == 2, 'grading canary: this test must fail'\n",
                            encoding="utf-8")
    return rel, fn


def canary_outcome(tests: Mapping[str, str], fn: str) -> str | None:
    """The canary's outcome under any id style (ids end with ``::<fn>``, or are the bare name)."""
    for tid, outcome in tests.items():
        if tid == fn or tid.endswith(f"::{fn}"):
            return outcome
    return None


def grade_patch(ctx: ValidateContext, inst: Mapping, model_patch: str | None, *, sanitize: bool = True,
                canary: bool = True) -> dict:
    """{resolved, f2p_passed, f2p_total, p2p_passed, p2p_total, grade_reason, dropped_files}."""
    from sandbox.testrun import run_tests

    f2p, p2p = list(inst["FAIL_TO_PASS"]), list(inst["PASS_TO_PASS"])
    out = {"resolved": False, "f2p_passed": 0, "f2p_total": len(f2p), "p2p_passed": 0, "p2p_total": len(p2p),
           "grade_reason": None, "dropped_files": []}
    patch = model_patch or ""
    if sanitize:
        patch, out["dropped_files"] = sanitize_model_patch(patch)
    if not patch.strip():
        out["grade_reason"] = "empty_patch" + (" (only test/harness files changed)" if out["dropped_files"] else "")
        return out
    tmp = Path(tempfile.mkdtemp(prefix="crucible-grade-", dir=ctx.workdir))
    try:
        tree = checkout_tree(ctx, inst["repo"], inst["base_commit"], tmp / "tree")
        spec = env_for_instance(ctx, inst, tree, tmp / "env")
        try:
            apply_patch(tree, patch, what="model patch")
            apply_patch(tree, inst.get("test_patch") or "", what="test_patch")
        except PatchError as exc:
            out["grade_reason"] = f"patch_apply: {exc}"[:1000]
            return out
        selection = test_files_of(f2p + p2p)
        canary_file, canary_fn = write_canary(tree) if canary else (None, None)
        run = run_tests(ctx.client, spec.image, tree, spec.recipe, limits=ctx.settings.limits,
                        network=ctx.settings.network, selection=selection + ([canary_file] if canary_file else []))
        tests = outcome_map(run, ctx.id_style) if run.ok else {}
        sc = score(tests, f2p, p2p)
        out.update(sc)
        seen = canary_outcome(tests, canary_fn) if run.ok and canary_fn else "FAILED"
        if seen != "FAILED":
            out["resolved"] = False
            out["grade_reason"] = (f"harness_tamper: the must-fail canary test was {seen or 'not reported'} "
                                   "(the patch changes how tests are run or reported)")
        elif not run.ok:
            out["grade_reason"] = f"run_{run.status}/{run.kind}: {run.reason}"[:1000]
        elif not sc["resolved"]:
            out["grade_reason"] = f"tests_failing: F2P {sc['f2p_passed']}/{sc['f2p_total']}, " \
                                  f"P2P {sc['p2p_passed']}/{sc['p2p_total']}"
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
