"""Env reuse benchmark: consecutive releases of one real sdist, each env built from the base (fresh) and
on top of the previous release's env (``sandbox.reuse_envs``), timed, with the clean test run of both and
their per-test outcomes compared. Images are built under a name of their own (``bench-reuse-<name>``) with
``force``, so no earlier image of the repo is touched or taken. Prints JSON lines.

    python -m benchmarks.bench_env_reuse [--sdist requests==2.25.1 --sdist requests==2.26.0 ...] [--no-tests]
"""

from __future__ import annotations

import argparse
import json
import sys

from crucible.pipelines.config import load_config
from crucible.sandbox.api import build_base, exported, plan_env, settings_from_config
from crucible.sandbox.asof import source_date
from crucible.sandbox.engine import ensure_engine
from crucible.sandbox.envbuild import ensure_env
from crucible.sandbox.images import base_dists
from crucible.sandbox.recipes import parse_freeze
from crucible.sandbox.reuse import carried_packages
from crucible.sandbox.sources import from_sdist, index_upload_date
from crucible.sandbox.testrun import run_tests

DEFAULT_SDISTS = ("requests==2.25.1", "requests==2.26.0", "requests==2.27.1")


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def _build(client, settings, spec, tree, date, reuse: bool) -> dict:
    res = ensure_env(client, spec, tree, ca_bundle=settings.ca_bundle, pip_env=settings.pip_env,
                     timeout_s=settings.build_timeout_s, force=True, date=date, reuse=reuse)

    # carried_packages over a fresh build's log should be empty: a check of its false positives
    return {"seconds": round(res["seconds"], 1), "reused_from": res["reused_from"],
            "reuse_failed": res["reuse_failed"], "packages": parse_freeze(res["log"]),
            "carried": carried_packages(res["log"], base_dists(spec.base))}


def _test(client, settings, spec, tree) -> dict:
    r = run_tests(client, spec.image, tree, spec.recipe, limits=settings.limits, network="none")
    return {"status": r.status, "kind": r.kind, "counts": {k: v for k, v in r.counts.items() if v},
            "tests": r.tests, "seconds": round(r.seconds, 1)}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist", action="append", help="NAME==VERSION in release order (repeatable; default: "
                    + ", ".join(DEFAULT_SDISTS) + ")")
    ap.add_argument("--no-tests", action="store_true", help="time the builds only")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark's images")
    args = ap.parse_args(argv)
    client, _ = ensure_engine(allow_start=True)
    settings = settings_from_config(load_config("defaults", []).sandbox)
    rows, made = [], set()
    sdists = args.sdist or list(DEFAULT_SDISTS)
    try:
        for s in sdists:
            name, _, version = s.partition("==")
            co = from_sdist(s, settings.cache_dir / "sdists")
            date = source_date(co.path, lambda n=name, v=version: index_upload_date(n, v, remote_env=settings.pip_env))
            with exported(co.path) as tree:
                spec = plan_env(settings, tree, f"bench-reuse-{co.name}", date=date)
                build_base(client, settings, spec.base.python)
                row: dict = {"bench": "env_reuse", "sdist": s, "date": date, "python": spec.recipe["python"],
                             "as_of": spec.recipe.get("as_of")}
                fresh = _build(client, settings, spec, tree, date, reuse=False)
                made.add(spec.image)
                fresh_run = None if args.no_tests else _test(client, settings, spec, tree)
                if not rows:  # the first release: nothing earlier to build on
                    rows.append({**row, "fresh_s": fresh["seconds"], "reused_from": None,
                                 "carried_by_fresh_log": fresh["carried"],
                                 "fresh_packages": len(fresh["packages"]),
                                 "fresh_run": fresh_run and {k: v for k, v in fresh_run.items() if k != "tests"}})
                    emit(rows[-1])
                    continue
                reused = _build(client, settings, spec, tree, date, reuse=True)
                row.update(fresh_s=fresh["seconds"], reused_s=reused["seconds"], reused_from=reused["reused_from"],
                           reuse_failed=reused["reuse_failed"], fresh_packages=len(fresh["packages"]),
                           reused_packages=len(reused["packages"]), carried=reused["carried"],
                           carried_by_fresh_log=fresh["carried"],
                           only_in_reused=sorted(set(reused["packages"]) - set(fresh["packages"])),
                           only_in_fresh=sorted(set(fresh["packages"]) - set(reused["packages"])))
                if fresh_run is not None:
                    reused_run = _test(client, settings, spec, tree)
                    diff = sorted(t for t in set(fresh_run["tests"]) | set(reused_run["tests"])
                                  if fresh_run["tests"].get(t) != reused_run["tests"].get(t))
                    row.update(fresh_run={k: v for k, v in fresh_run.items() if k != "tests"},
                               reused_run={k: v for k, v in reused_run.items() if k != "tests"},
                               outcome_diffs=len(diff), outcome_diff_examples={
                                   t: [fresh_run["tests"].get(t), reused_run["tests"].get(t)] for t in diff[:5]})
            rows.append(row)
            emit(row)
    finally:
        if not args.keep:
            for img in client.images.list(filters={"label": "crucible.kind=env"}):
                if (img.labels or {}).get("crucible.name", "").startswith("bench-reuse-"):
                    try:
                        client.images.remove(img.id, force=True)
                    except Exception:  # a child removed it with its tag already
                        pass
    later = rows[1:]
    hits = sum(1 for r in later if r["reused_from"])
    emit({"bench": "env_reuse_summary", "releases": len(rows), "reuse_hits": hits, "reuse_attempts": len(later),
          "fresh_s": sum(r["fresh_s"] for r in later), "reused_s": sum(r["reused_s"] for r in later),
          "time_saved": round(1 - sum(r["reused_s"] for r in later) / max(sum(r["fresh_s"] for r in later), 1e-6), 3)
          if later else None,
          "outcome_diffs": sum(r.get("outcome_diffs", 0) for r in later)})
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
