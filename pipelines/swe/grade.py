"""Grading an agent's diff, with defenses against patches that fool the grader (each switchable through
:class:`Defenses`, so a test can show what gets through without it):

- ``strict_parse``: the diff is read by a real parser and cross-checked with ``git apply --numstat``; a block
  that is not a ``diff --git`` block, a header whose paths differ from its ``---``/``+++`` lines, a path with
  ``..``/absolute/outside the tree: the patch is rejected whole (grade ``patch_rejected``).
- ``sanitize``: test files and harness files (conftest.py, site/usercustomize, ``*.pth``, pytest/tox/setup
  config, ``setup.py``, ``*.dist-info``/``*.egg-info``, modules shadowing pytest, ``__init__.py`` of test
  packages), symlinks and mode changes are dropped, each listed with its reason.
- the instance's test patch is re-applied on top, so the tests are exactly the validated ones.
- ``no_autoload``: pytest runs with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` and ``-p`` for the plugins installed
  in the env image (outside the tree).
- ``canary_fail``: in every F2P test directory a test file under a random, ordinary-looking name whose test must
  fail; ``canary_pass``: one that must pass and checks that pytest's report path is intact (report functions,
  JUnit path, hooks from no module of the tree but conftest.py). Either canary wrong: ``harness_tamper``.
- the run's verdict (``crucible.sandbox.testrun.reconcile``: JUnit, exit code and console summary agree) must be ok.

Resolved iff all that holds and every F2P and P2P test passes. A tampering or infrastructure grade keeps no
pass counts and earns nothing (:func:`crucible.pipelines.swe.filters.reward_of`)."""

from __future__ import annotations

import posixpath
import random
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from crucible.pipelines.swe.envs import ValidateContext, checkout_tree, task_env
from crucible.pipelines.swe.labels import PASSING, outcome_map
from crucible.pipelines.swe.patches import (
    PatchError,
    apply_patch,
    is_harness_path,
    is_test_path,
    resolve_inside,
    sanitize_model_patch,
    split_diff,
)
from crucible.pipelines.swe.pooled import pool_of, pooled_call
from crucible.sandbox.testrun import run_tests


class Grade(str, Enum):
    RESOLVED = "resolved"
    TESTS_FAILING = "tests_failing"
    EMPTY_PATCH = "empty_patch"
    PATCH_APPLY = "patch_apply"
    PATCH_REJECTED = "patch_rejected"
    HARNESS_TAMPER = "harness_tamper"
    FORGED_SUMMARY = "forged_summary"
    RUN_ERROR = "run_error"
    INFRA = "infra"


# grades that say the patch fooled, or tried to fool, the grader; or that the grader could not decide
TAMPER_GRADES = frozenset({Grade.PATCH_REJECTED, Grade.HARNESS_TAMPER, Grade.FORGED_SUMMARY})
NO_REWARD_GRADES = TAMPER_GRADES | {Grade.INFRA}
TAMPER_RUN_KINDS = frozenset({"forged_summary", "exit_mismatch"})


@dataclass(frozen=True)
class Defenses:
    strict_parse: bool = True
    sanitize: bool = True
    no_autoload: bool = True
    canary_fail: bool = True
    canary_pass: bool = True

    def without(self, *names: str) -> Defenses:
        return replace(self, **dict.fromkeys(names, False))


ALL_DEFENSES = Defenses()
WORDS = ("parse", "format", "value", "items", "merge", "order", "range", "basic", "empty", "nested", "default",
         "simple", "index", "result", "repr", "split", "config", "convert", "update", "handle", "lookup", "keys",
         "types", "check", "load", "dump", "window", "count", "limit", "cache", "state", "group", "extra")


def test_files_of(ids) -> list[str]:
    return sorted({t.split("::", 1)[0] for t in ids})


test_files_of.__test__ = False


def score(tests: Mapping[str, str], f2p, p2p) -> dict:
    """Pure: counts and resolved flag from an outcome map (absent = failed)."""
    f = sum(tests.get(t) in PASSING for t in f2p)
    p = sum(tests.get(t) in PASSING for t in p2p)
    return {"f2p_passed": f, "f2p_total": len(f2p), "p2p_passed": p, "p2p_total": len(p2p),
            "resolved": f == len(f2p) and p == len(p2p) and len(f2p) > 0}


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        n = "_".join(rng.sample(WORDS, 2))
        if n not in taken:
            taken.add(n)
            return n


INTACT_CHECK = '''import os
import sys


def _source(f):
    code = getattr(f, "__code__", None) or getattr(getattr(f, "__func__", None), "__code__", None)
    return os.path.realpath(code.co_filename) if code is not None else ""


def {fn}(request):
    import _pytest
    from _pytest import reports, runner
    root = os.path.realpath({root!r}) + os.sep
    home = os.path.dirname(os.path.realpath(_pytest.__file__)) + os.sep
    funcs = [getattr(reports.TestReport, "from_item_and_call", None), reports.TestReport.__init__,
             getattr(runner, "call_and_report", None), getattr(getattr(runner, "CallInfo", None), "from_call", None)]
    for f in funcs:
        assert f is None or _source(f).startswith(home), f
    assert not os.path.realpath(sys.modules["pytest"].__file__).startswith(root)
    assert AssertionError.__module__ == "builtins" and issubclass(AssertionError, Exception)
    assert os.path.realpath(str(request.config.option.xmlpath)) == os.path.realpath({junit!r})
    pm = request.config.pluginmanager
    for hook in ("pytest_runtest_makereport", "pytest_report_teststatus", "pytest_runtest_logreport",
                 "pytest_runtest_protocol", "pytest_runtest_call", "pytest_sessionfinish", "pytest_unconfigure"):
        for impl in getattr(pm.hook, hook).get_hookimpls():
            for f in (_source(impl.function), getattr(impl.plugin, "__file__", None) or ""):
                f = os.path.realpath(f) if f else ""
                assert not f.startswith(root) or os.path.basename(f) == "conftest.py", (hook, f)
'''


def write_canaries(tree: Path, f2p: list[str], junit_marker: str, *, fail: bool = True, check: bool = True,
                   seed: int | None = None) -> dict[str, tuple[str, str]]:
    """Canary test files, random ordinary names: one must-fail file in each F2P test directory and one
    must-pass report-path check. {"fail:<dir>" | "pass": (file, test function)}. ``junit_marker`` is the
    JUnit path the run will write (the check asserts pytest got it)."""
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    dirs = sorted({posixpath.dirname(f) for f in test_files_of(f2p)}) or [""]
    taken = {p.stem.removeprefix("test_") for p in tree.rglob("test_*.py")}  # module basenames stay unique
    out = {}
    for d in dirs if fail else []:
        stem, fn = _name(rng, taken), _name(rng, taken)
        a, b = rng.randint(2, 9), rng.randint(10, 99)
        rel = posixpath.join(d, f"test_{stem}.py")
        _target(tree, rel).write_text(
            f"def test_{fn}():\n    values = [{a}, {b}]\n    assert sum(values) == {a + b + 1}\n", encoding="utf-8")
        out[f"fail:{d}"] = (rel, f"test_{fn}")
    if check:
        stem, fn = _name(rng, taken), _name(rng, taken)
        rel = posixpath.join(dirs[0], f"test_{stem}.py")
        _target(tree, rel).write_text(
            INTACT_CHECK.format(fn=f"test_{fn}", root="/testbed", junit=junit_marker), encoding="utf-8")
        out["pass"] = (rel, f"test_{fn}")
    return out


def _target(tree: Path, rel: str) -> Path:
    p = resolve_inside(tree, rel, what="canary")
    if p.exists() or p.is_symlink():
        raise PatchError(f"canary: {rel} exists already")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def canary_outcome(tests: Mapping[str, str], fn: str) -> str | None:
    """The canary's outcome under any id style (ids end with ``::<fn>``, or are the bare name)."""
    for tid, outcome in tests.items():
        if tid == fn or tid.endswith(f"::{fn}"):
            return outcome
    return None


def canary_problem(tests: Mapping[str, str], canaries: Mapping[str, tuple[str, str]]) -> str | None:
    """Pure: why the canaries say the run was tampered with (None: they came out as they must)."""
    for key, (rel, fn) in canaries.items():
        seen = canary_outcome(tests, fn)
        want = "PASSED" if key == "pass" else "FAILED"
        if seen != want:
            what = "report-path check" if key == "pass" else "must-fail canary"
            return f"the {what} {rel}::{fn} was {seen or 'not reported'}, expected {want}"
    return None


def result(grade: Grade, reason: str | None, f2p, p2p, dropped=(), counts: Mapping | None = None) -> dict:
    """One grade dict. Tampering and infrastructure grades keep no pass counts."""
    c = dict(counts or {}) if grade not in NO_REWARD_GRADES else {}
    return {"resolved": grade == Grade.RESOLVED, "grade": grade.value, "grade_reason": reason,
            "f2p_passed": c.get("f2p_passed", 0), "f2p_total": len(f2p), "p2p_passed": c.get("p2p_passed", 0),
            "p2p_total": len(p2p), "dropped_files": list(dropped)}


def grade_patch(ctx: ValidateContext, inst: Mapping, model_patch: str | None, *,
                defenses: Defenses = ALL_DEFENSES) -> dict:
    """{resolved, grade, grade_reason, f2p_passed, f2p_total, p2p_passed, p2p_total, dropped_files}. On an
    engine pool (``ctx.pool``) also ``engine`` (where it was graded) and ``engine_retries`` (engines drained
    under it, kind ``infra``): an engine that stops answering mid-grade is no grade, the next engine's is."""
    if pool_of(ctx) is None:
        return grade_here(ctx, inst, model_patch, defenses=defenses)
    g, engine, retries = pooled_call(ctx, inst, f"grade of {inst['instance_id']}",
                                     lambda on: grade_here(on, inst, model_patch, defenses=defenses),
                                     is_infra=lambda g: g["grade"] == Grade.INFRA.value)
    return {**g, "engine": engine, "engine_retries": retries}


def grade_here(ctx: ValidateContext, inst: Mapping, model_patch: str | None, *,
               defenses: Defenses = ALL_DEFENSES) -> dict:
    """:func:`grade_patch` on ``ctx.client``'s engine."""
    f2p, p2p = list(inst["FAIL_TO_PASS"]), list(inst["PASS_TO_PASS"])
    patch = model_patch or ""
    tmp = Path(tempfile.mkdtemp(prefix="crucible-grade-", dir=ctx.workdir))
    try:
        tree = checkout_tree(ctx, inst["repo"], inst["base_commit"], tmp / "tree")
        dropped: list[dict] = []
        try:
            if defenses.strict_parse:
                patch, dropped = sanitize_model_patch(patch, tree)
            elif defenses.sanitize:
                patch, dropped = _lenient_sanitize(patch)
            if not defenses.sanitize:
                patch, dropped = model_patch or "", []
        except PatchError as exc:
            return result(Grade.PATCH_REJECTED, f"patch_rejected: {exc}"[:1000], f2p, p2p)
        if not patch.strip():
            why = (" (every changed file dropped: " + ", ".join(f"{d['path']}: {d['reason']}" for d in dropped[:5])
                   + ")") if dropped else ""
            return result(Grade.EMPTY_PATCH, "empty_patch" + why, f2p, p2p, dropped)
        env = task_env(ctx, inst, tree, tmp / "env")
        try:
            apply_patch(tree, patch, what="model patch", strict=defenses.strict_parse)
            apply_patch(tree, inst.get("test_patch") or "", what="test_patch")
        except PatchError as exc:
            return result(Grade.PATCH_APPLY, f"patch_apply: {exc}"[:1000], f2p, p2p, dropped)
        junit = f"/tmp/crucible-junit-{secrets.token_hex(8)}.xml"
        canaries = write_canaries(tree, f2p, junit, fail=defenses.canary_fail, check=defenses.canary_pass)
        selection = test_files_of(f2p + p2p) + [rel for rel, _ in canaries.values()]
        run = run_tests(ctx.client, env.image, tree, env.recipe, limits=ctx.settings.limits,
                        network=ctx.network_for(env.network), selection=selection,
                        autoload=not defenses.no_autoload, junit_path=junit)
        tests = outcome_map(run, env.id_style) if run.ok else {}
        sc = score(tests, f2p, p2p)
        problem = canary_problem(tests, canaries) if run.ok else None
        if run.status == "infra":
            return result(Grade.INFRA, f"run_infra/{run.kind}: {run.reason}"[:1000], f2p, p2p, dropped)
        if run.kind in TAMPER_RUN_KINDS:
            return result(Grade.FORGED_SUMMARY, f"run_error/{run.kind}: {run.reason}"[:1000], f2p, p2p, dropped)
        if not run.ok:
            return result(Grade.RUN_ERROR, f"run_{run.status}/{run.kind}: {run.reason}"[:1000], f2p, p2p, dropped)
        if problem:
            return result(Grade.HARNESS_TAMPER, f"harness_tamper: {problem} (the patch changes how tests are run "
                          "or reported)", f2p, p2p, dropped)
        if not sc["resolved"]:
            return result(Grade.TESTS_FAILING, f"tests_failing: F2P {sc['f2p_passed']}/{sc['f2p_total']}, "
                          f"P2P {sc['p2p_passed']}/{sc['p2p_total']}", f2p, p2p, dropped, sc)
        return result(Grade.RESOLVED, None, f2p, p2p, dropped, sc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _lenient_sanitize(diff: str) -> tuple[str, list[dict]]:
    """The old splitter (``diff --git`` headers by regex, no cross-check): what ``strict_parse=False`` grades
    with, to show what the strict parse stops."""
    kept, dropped = [], []
    for path, text in split_diff(diff):
        if is_test_path(path) or is_harness_path(path):
            dropped.append({"path": path, "reason": "test_or_harness_file"})
        else:
            kept.append(text)
    return "".join(kept), dropped
