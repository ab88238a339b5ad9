"""Build -> test -> read the logs -> climb one rung -> again, until the clean suite mostly passes or the
ladder has nothing left (``sandbox.ladder`` decides each rung; this module only loops).

:func:`attempt` returns a plain dict (one ``sandbox_surveys`` row without the ids): the funnel stage
reached, the rungs used (each with the log line that triggered it) and, for a source that stopped short,
``stop`` = the last rung and the log line that decided it.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sandbox.ladder import Phase, apply_rung, candidates, deciding_line, trigger_lines


def source_date(checkout: Path, lookup=None) -> str | None:
    """When the source was made (YYYY-MM-DD): the date of the checkout's commit when it is a real one (a git
    repo at an old commit, a one-commit sdist repo dated at its release; a PKG-INFO in a git working tree has
    the checkout's mtime, not the release's), else the sdist's PKG-INFO mtime unless it is a
    reproducible-build fixed date, then ``lookup()`` (the index's upload date,
    ``sources.index_upload_date``); None when none is known. The fixed 2000-01-01 of undated one-commit
    repos (``sources.GIT_ENV``) is never taken."""
    from sandbox.sources import pkg_info_day

    day = commit_date(checkout)
    if day:
        return day
    if (Path(checkout) / "PKG-INFO").is_file():
        return pkg_info_day(checkout) or (lookup() if lookup is not None else None)
    return None


def commit_date(checkout: Path) -> str | None:
    """The committer date (YYYY-MM-DD) of HEAD in ``checkout`` when it is a git repo with a real date."""
    if not (Path(checkout) / ".git").exists():
        return None
    proc = subprocess.run(["git", "log", "-1", "--format=%cI"], cwd=checkout, capture_output=True, text=True)
    date = proc.stdout.strip()[:10]
    return date if proc.returncode == 0 and date and date > "2000-01-02" else None


def default_as_of(date: str | None, min_age_days: int, today: datetime | None = None) -> str | None:
    """As-of-date resolution by default for sources older than ``min_age_days`` (0 disables it)."""
    from sandbox.ladder import as_of_for

    if not date or min_age_days <= 0:
        return None
    today = today or datetime.now(timezone.utc)
    made = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return as_of_for(date) if today - made >= timedelta(days=min_age_days) else None


def local_modules(tree: Path, limit: int = 20000) -> frozenset[str]:
    """Top-level import names the tree provides: every package directory and module file name in it."""
    names: set[str] = set()
    for i, p in enumerate(Path(tree).rglob("*.py")):
        if i >= limit:
            break
        names.add(p.stem)
        names.update(part for part in p.relative_to(tree).parts[:-1])
    return frozenset(n for n in names if n.isidentifier())


def _stage(run) -> tuple[str, int]:
    from sandbox.recipes import funnel_stage

    c = run.counts or {}
    return funnel_stage(True, len(run.tests), c.get("PASSED", 0) + c.get("XPASS", 0),
                        c.get("FAILED", 0) + c.get("ERROR", 0)), len(run.tests)


def _run(client, settings, spec, tree: Path, out: dict):
    from sandbox.testrun import run_tests

    tt = time.monotonic()
    run = run_tests(client, spec.image, tree, spec.recipe, limits=settings.limits, network=settings.network)
    out["test_seconds"] += time.monotonic() - tt
    stage, n = _stage(run) if run.tests else ("installed", 0)
    return run, stage, n


def attempt(client, settings, tree: Path, name: str, *, date: str | None, max_rungs: int) -> dict:
    """Infer, build, test and repair the tree at ``tree``; see the module docstring."""
    from sandbox.api import base_spec, build_base
    from sandbox.images import BuildError, EnvSpec, ensure_env
    from sandbox.recipes import RecipeError, infer_recipe, load_override

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
        spec = EnvSpec(base=base_spec(settings, recipe["python"]), recipe=recipe, inputs=dict(inputs), name=name)
        out["env_key"] = spec.key
        tb = time.monotonic()
        lines, phase, why, said = [], Phase.BUILD, "", ""
        # the image an LLM repair session would start from: the env, else (build failed) the base
        out["image"] = spec.base.image
        try:
            build_base(client, settings, recipe["python"])
            res = ensure_env(client, spec, tree, ca_bundle=settings.ca_bundle, pip_env=settings.pip_env,
                             timeout_s=settings.build_timeout_s, date=date, reuse=settings.reuse_envs)
            out["build_seconds"] += time.monotonic() - tb
            build_lines = trigger_lines(res.get("log", ""))
            run, stage, n = _run(client, settings, spec, tree, out)
            if stage != "mostly_passing" and res.get("reused_from"):
                # an env built on top of an earlier one whose clean run does not pass: the build from the base
                # decides, so no source is lost to reuse (nor a rung climbed for what a stale package did)
                out["reuse_fallbacks"] += 1
                tb = time.monotonic()
                res = ensure_env(client, spec, tree, ca_bundle=settings.ca_bundle, pip_env=settings.pip_env,
                                 timeout_s=settings.build_timeout_s, force=True, date=date, reuse=False)
                out["build_seconds"] += time.monotonic() - tb
                build_lines = trigger_lines(res.get("log", ""))
                run, stage, n = _run(client, settings, spec, tree, out)
        except BuildError as exc:
            out["build_seconds"] += time.monotonic() - tb
            lines, why = trigger_lines(exc.log_tail), f"build failed: {exc}"
            out["log_tail"] = exc.log_tail[-3000:]
            tail = [ln for ln in exc.log_tail.splitlines() if ln.strip()]
            last_line = tail[-1] if tail else str(exc)
        else:
            out["stage"], out["image"] = "installed", spec.image
            out["reused_from"] = res.get("reused_from")
            out.update(stage=stage, tests_collected=n, counts=run.counts, run_kind=run.kind,
                       log_tail=run.log_tail[-3000:])
            if stage == "mostly_passing":
                break
            phase = Phase.TEST
            lines = run.trigger_lines + build_lines
            why = f"test run {run.status}/{run.kind or 'ok'}: {run.reason}"
            said = run.deciding_line  # pytest's own line when the run stopped before its tests
            last_line = next((ln for ln in reversed(run.log_tail.splitlines()) if ln.strip()), run.reason)
        cands = [c for c in candidates(lines, phase, recipe, mods, settings.pythons) if c.key not in tried]
        if not cands or len(out["rungs"]) >= max_rungs:
            last = out["rungs"][-1]["kind"] if out["rungs"] else None
            decided = said or deciding_line(lines) or last_line
            if cands:
                why += f"; rung limit {max_rungs} reached"
            out["stop"] = {"rung": last, "kind": phase.value, "reason": why, "line": decided[:500]}
            break
        rung = cands[0]
        tried.add(rung.key)
        recipe = apply_rung(recipe, rung)
        out["rungs"].append(rung.as_dict())
    out["seconds"] = round(time.monotonic() - t0, 1)
    out["build_seconds"], out["test_seconds"] = round(out["build_seconds"], 1), round(out["test_seconds"], 1)
    out["recipe"] = recipe
    return out
