"""Build -> test -> read the logs -> climb one rung -> again, until the clean suite mostly passes or the
ladder has nothing left (``crucible.sandbox.ladder`` decides each rung; this module only loops).

:func:`attempt` returns a plain dict (one ``sandbox_surveys`` row without the ids): the funnel stage
reached, the rungs used (each with the log line that triggered it) and, for a source that stopped short,
``stop`` = the last rung and the log line that decided it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from crucible.sandbox import api, envbuild, testrun
from crucible.sandbox.asof import default_as_of
from crucible.sandbox.images import BuildError, EnvSpec
from crucible.sandbox.ladder import Phase, apply_rung, candidates, deciding_line, trigger_lines
from crucible.sandbox.recipes import RecipeError, funnel_stage, infer_recipe, load_override


def local_modules(tree: Path, limit: int = 20000) -> frozenset[str]:
    """Top-level import names the tree provides: every package directory and module file name in it."""
    names: set[str] = set()
    for i, p in enumerate(Path(tree).rglob("*.py")):
        if i >= limit:
            break
        names.add(p.stem)
        names.update(part for part in p.relative_to(tree).parts[:-1])
    return frozenset(n for n in names if n.isidentifier())


def stage_of(run) -> tuple[str, int]:
    """(funnel stage, tests collected) of a test run that collected tests."""
    c = run.counts or {}
    return funnel_stage(True, len(run.tests), c.get("PASSED", 0) + c.get("XPASS", 0),
                        c.get("FAILED", 0) + c.get("ERROR", 0)), len(run.tests)


def _run(client, settings, spec, tree: Path, out: dict):
    tt = time.monotonic()
    run = testrun.run_tests(client, spec.image, tree, spec.recipe, limits=settings.limits, network=settings.network)
    out["test_seconds"] += time.monotonic() - tt
    stage, n = stage_of(run) if run.tests else ("installed", 0)
    return run, stage, n


@dataclass
class _Try:
    """What one build + clean run of a recipe said: passed, or the log lines a rung is chosen from."""

    passed: bool
    phase: Phase = Phase.BUILD
    lines: list[str] = field(default_factory=list)
    why: str = ""
    said: str = ""  # pytest's own deciding line when the run stopped before its tests
    last_line: str = ""


def _build(client, settings, spec: EnvSpec, tree: Path, date: str | None, force: bool, reuse: bool, out: dict):
    tb = time.monotonic()
    try:
        return envbuild.ensure_env(client, spec, tree, ca_bundle=settings.ca_bundle, pip_env=settings.pip_env,
                                   timeout_s=settings.build_timeout_s, force=force, date=date, reuse=reuse)
    finally:
        out["build_seconds"] += time.monotonic() - tb


def _build_and_run(client, settings, spec: EnvSpec, tree: Path, date: str | None, out: dict) -> _Try:
    """Build the env (base first) and run its clean suite once; ``out`` gets the stage, counts and timings."""
    # the image an LLM repair session would start from: the env, else (build failed) the base
    out["image"] = spec.base.image
    try:
        tb = time.monotonic()
        try:
            api.build_base(client, settings, spec.base.python)
        finally:
            out["build_seconds"] += time.monotonic() - tb
        res = _build(client, settings, spec, tree, date, False, settings.reuse_envs, out)
        build_lines = trigger_lines(res.get("log", ""))
        run, stage, n = _run(client, settings, spec, tree, out)
        if stage != "mostly_passing" and res.get("reused_from"):
            # an env built on top of an earlier one whose clean run does not pass: the build from the base
            # decides, so no source is lost to reuse (nor a rung climbed for what a stale package did)
            out["reuse_fallbacks"] += 1
            res = _build(client, settings, spec, tree, date, True, False, out)
            build_lines = trigger_lines(res.get("log", ""))
            run, stage, n = _run(client, settings, spec, tree, out)
    except BuildError as exc:
        out["log_tail"] = exc.log_tail[-3000:]
        tail = [ln for ln in exc.log_tail.splitlines() if ln.strip()]
        return _Try(False, Phase.BUILD, trigger_lines(exc.log_tail), f"build failed: {exc}",
                    last_line=tail[-1] if tail else str(exc))
    out["stage"], out["image"] = "installed", spec.image
    out["reused_from"] = res.get("reused_from")
    out.update(stage=stage, tests_collected=n, counts=run.counts, run_kind=run.kind, log_tail=run.log_tail[-3000:])
    if stage == "mostly_passing":
        return _Try(True)
    last_line = next((ln for ln in reversed(run.log_tail.splitlines()) if ln.strip()), run.reason)
    return _Try(False, Phase.TEST, run.trigger_lines + build_lines,
                f"test run {run.status}/{run.kind or 'ok'}: {run.reason}", run.deciding_line, last_line)


def attempt(client, settings, tree: Path, name: str, *, date: str | None, max_rungs: int) -> dict:
    """Infer, build, test and repair the tree at ``tree``; see the module docstring."""
    t0 = time.monotonic()
    out = {"stage": "attempted", "rungs": [], "stop": None, "python": None, "as_of": None, "env_key": None,
           "tests_collected": 0, "counts": {}, "build_seconds": 0.0, "test_seconds": 0.0, "attempts": 0,
           "reused_from": None, "reuse_fallbacks": 0, "image": None, "log_tail": ""}
    try:
        recipe, inputs = infer_recipe(tree, settings.pythons, load_override(name, settings.repos_dir),
                                      as_of=default_as_of(date, settings.as_of_min_age_days), source_date=date)
    except RecipeError as exc:
        out["stop"] = {"rung": None, "kind": "no_recipe", "reason": str(exc), "line": str(exc)}
        return out
    mods, tried = local_modules(tree), set()
    while True:
        out["attempts"] += 1
        out["python"], out["as_of"] = recipe["python"], recipe.get("as_of")
        spec = EnvSpec(base=api.base_spec(settings, recipe["python"]), recipe=recipe, inputs=dict(inputs), name=name)
        out["env_key"] = spec.key
        t = _build_and_run(client, settings, spec, tree, date, out)
        if t.passed:
            break
        cands = [c for c in candidates(t.lines, t.phase, recipe, mods, settings.pythons) if c.key not in tried]
        if not cands or len(out["rungs"]) >= max_rungs:
            last = out["rungs"][-1]["kind"] if out["rungs"] else None
            why = t.why + (f"; rung limit {max_rungs} reached" if cands else "")
            decided = t.said or deciding_line(t.lines) or t.last_line
            out["stop"] = {"rung": last, "kind": t.phase.value, "reason": why, "line": decided[:500]}
            break
        rung = cands[0]
        tried.add(rung.key)
        recipe = apply_rung(recipe, rung)
        out["rungs"].append(rung.as_dict())
    out["seconds"] = round(time.monotonic() - t0, 1)
    out["build_seconds"], out["test_seconds"] = round(out["build_seconds"], 1), round(out["test_seconds"], 1)
    out["recipe"] = recipe
    return out
