"""Suites that never start are a rung, not an end: a validation whose before or after run stopped before its
first test (usage error, a plugin or module missing at conftest import, syntax of another Python, a collection
crash: ``meta.stopped``, pytest's own deciding line with the run's trigger lines) climbs the repair ladder on
those lines (``crucible.sandbox.ladder.candidates``), one rung at a time, each env built with every rung so far, and is
validated again there. Only Crucible's inferred recipes (SWE-bench's own recipe is its labelling env).

:func:`stop_note` is pure (the runs in, the note out); :func:`climb` builds and runs through the caller's
``run_and_label`` (``crucible.pipelines.swe.validate``), so this module never imports the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from crucible.pipelines.swe.envs import decide_env
from crucible.pipelines.swe.records import validation_row
from crucible.sandbox.ladder import Phase, candidates
from crucible.sandbox.ladder_extras import extra_requirements
from crucible.sandbox.repair import local_modules

STOPPED_KINDS = ("never_started", "collection", "interrupted")


def stop_note(runs: Sequence) -> dict | None:
    """``meta.stopped`` for the first run (of the side that failed) that stopped before its tests with a
    deciding line; None for runs that ran, or failed for the infrastructure's sake."""
    r = next((r for r in runs if r.status == "error" and r.kind in STOPPED_KINDS and r.deciding_line), None)
    if r is None:
        return None
    return {"kind": r.kind, "line": r.deciding_line, "exit_code": r.exit_code,
            "trigger_lines": list(r.trigger_lines[:50]) or [r.deciding_line]}


def climb(ctx, inst: Mapping, env, base: Path, tmp: Path, row: dict, run_id: str, *,
          run_and_label: Callable, env_meta: Callable) -> tuple[dict, object]:
    """The row (and env) to keep for an instance whose runs stopped before their tests (``row["meta"]
    ["stopped"]``): the first env of the ladder where they start, with ``meta.start_rungs`` (each rung with its
    trigger line); where none does (no rung left, ``sandbox.repair_max_rungs`` reached, a rung's env did not
    build), the first row, its ``meta.start_rungs`` saying what was tried and ``meta.start_stop`` why it
    ended."""

    if not row["meta"].get("stopped") or env.recipe.get("origin"):
        return row, env
    chain, tried, cur_row, cur_env, mods = [], set(), row, env, local_modules(base)
    extras = extra_requirements(base)
    n_runs, seconds = row["n_runs"], row["test_duration_s"] or 0.0
    stop = "no rung left for the deciding line"
    while cur_row["meta"].get("stopped"):
        if len(chain) >= int(ctx.settings.repair_max_rungs):
            stop = f"rung limit {ctx.settings.repair_max_rungs} reached"
            break
        lines = cur_row["meta"]["stopped"]["trigger_lines"]
        cands = [c for c in candidates(lines, Phase.TEST, cur_env.recipe, mods, ctx.settings.pythons, extras)
                 if c.key not in tried]
        if not cands:
            break
        chain.append(cands[0])
        tried.add(cands[0].key)
        try:
            alt_env = decide_env(ctx, inst, base, tmp / f"start-env-{len(chain)}", tuple(chain))
        except Exception as exc:  # noqa: BLE001 - the rung's env did not build: the first row stands, with why
            stop = f"env with rung {cands[0].kind.value}={cands[0].arg} did not build: {type(exc).__name__}: {exc}"
            break
        alt = validation_row(inst["instance_id"], run_id, env_image=alt_env.image, meta=env_meta(alt_env))
        (tmp / f"start-{len(chain)}").mkdir()
        run_and_label(ctx, inst, alt_env, base, tmp / f"start-{len(chain)}", alt, None)
        n_runs, seconds = n_runs + alt["n_runs"], seconds + (alt["test_duration_s"] or 0.0)
        cur_row, cur_env = alt, alt_env
    rungs = [r.as_dict() for r in chain]
    if cur_row is row or cur_row["meta"].get("stopped"):
        row["meta"].update(start_rungs=rungs, start_stop=stop[:1000])
        row["n_runs"], row["test_duration_s"] = n_runs, round(seconds, 3)
        return row, env
    cur_row["meta"]["start_rungs"] = rungs
    cur_row["meta"]["first_stop"] = row["meta"]["stopped"]["line"]
    cur_row["n_runs"], cur_row["test_duration_s"] = n_runs, round(seconds, 3)
    return cur_row, cur_env
