"""Sandbox benchmark: for real PyPI sdists (no hand-written recipe), env build time cold/warm, test wall
time in the container vs a bare host venv run of the same recipe (target ratio <= 1.3), per-test counts
from both (they must match), and disk per instance beyond the env image. Prints JSON lines.

    python -m benchmarks.bench_sandbox [--sdist NAME==VER ...] [--repeat 3] [--keep-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crucible.pipelines.config import load_config
from crucible.sandbox.api import build_base, exported, plan_env, settings_from_config
from crucible.sandbox.baseline import find_host_python, host_run
from crucible.sandbox.engine import ensure_engine
from crucible.sandbox.envbuild import ensure_env
from crucible.sandbox.images import image_exists
from crucible.sandbox.recipes import funnel_counts, funnel_stage, test_script
from crucible.sandbox.sources import from_sdist
from crucible.sandbox.testrun import reconcile, run_tests

DEFAULT_SDISTS = ("marshmallow==3.19.0", "attrs==23.1.0", "toolz==0.12.0")


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def bench_one(client, settings, spec_str: str, repeat: int, cold: bool) -> dict:
    co = from_sdist(spec_str, settings.cache_dir / "sdists")
    row: dict = {"bench": "sandbox", "sdist": spec_str}
    with exported(co.path) as tree:
        spec = plan_env(settings, tree, co.name)
        row["python"] = spec.recipe["python"]
        row["env_key"] = spec.key
        build_base(client, settings, spec.base.python)
        if cold and image_exists(client, spec.image):
            client.images.remove(spec.image, force=True)
        res = ensure_env(client, spec, tree, ca_bundle=settings.ca_bundle, pip_env=settings.pip_env)
        row["env_build_s"] = round(res["seconds"], 2)
        row["env_build_was_cache_hit"] = res["cache_hit"]
        row["install_rungs"] = {s["name"]: s["rung"] for s in res["steps"]}
        warm = ensure_env(client, spec, tree, ca_bundle=settings.ca_bundle, pip_env=settings.pip_env)
        row["env_warm_s"] = round(warm["seconds"], 3)
        row["env_warm_cache_hit"] = warm["cache_hit"]
        img = client.images.get(spec.image)
        base = client.images.get(spec.base.image)
        row["env_image_mb_beyond_base"] = round((img.attrs["Size"] - base.attrs["Size"]) / 1e6, 1)
        cont = []
        for _ in range(repeat):
            r = run_tests(client, spec.image, tree, spec.recipe, limits=settings.limits, network="none")
            cont.append(r)
        c = cont[-1]
        row["container_status"] = c.status
        row["container_reason"] = c.reason
        row["container_counts"] = {k: v for k, v in c.counts.items() if v}
        row["container_wall_s"] = round(statistics.median(r.seconds for r in cont), 2)

        row["funnel_stage"] = funnel_stage(True, len(c.tests), c.counts.get("PASSED", 0),
                                           c.counts.get("FAILED", 0) + c.counts.get("ERROR", 0))
        row["disk_per_instance_mb"] = round(c.rw_bytes / 1e6, 2)
        py = find_host_python(spec.recipe["python"])
        if py is None:
            row["host"] = f"no python{spec.recipe['python']} on this host; comparison skipped"
            return row
        with tempfile.TemporaryDirectory(prefix="crucible-bench-host-") as tmp:
            hosts = []
            h = host_run(tree, spec.recipe, py, Path(tmp))
            hosts.append(h["run"])
            for _ in range(repeat - 1):
                h2 = host_run_tests_only(Path(tmp), spec.recipe)
                hosts.append(h2)
        hr = hosts[-1]
        row["host_python"] = py
        row["host_status"] = hr.status
        row["host_counts"] = {k: v for k, v in hr.counts.items() if v}
        row["host_wall_s"] = round(statistics.median(r.seconds for r in hosts), 2)
        row["counts_match"] = row["host_counts"] == row["container_counts"]
        row["per_test_outcomes_match"] = hr.tests == c.tests
        common = set(hr.tests) & set(c.tests)
        # ids can differ between runs when a suite parametrizes with the clock (marshmallow does)
        row["common_ids_outcomes_match"] = all(hr.tests[t] == c.tests[t] for t in common)
        row["ids_on_one_side_only"] = len(set(hr.tests) ^ set(c.tests))
        if not row["per_test_outcomes_match"]:
            diff = sorted(t for t in set(hr.tests) | set(c.tests) if hr.tests.get(t) != c.tests.get(t))
            row["outcome_diffs"] = {t: [hr.tests.get(t), c.tests.get(t)] for t in diff[:10]}
        row["wall_ratio_container_vs_host"] = round(row["container_wall_s"] / max(row["host_wall_s"], 1e-6), 2)
    return row


def host_run_tests_only(workdir: Path, recipe: dict):
    """Re-run only the test command in the host venv made by host_run (for a median of timings)."""
    venv, src, junit = workdir / "venv", workdir / "tree", workdir / "junit.xml"
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv),
           "HOME": str(workdir)}
    env.pop("PYTHONPATH", None)
    if junit.exists():
        junit.unlink()
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-c", test_script(recipe, str(junit)).replace("cd /testbed", f"cd {src}")],
                          env=env, capture_output=True, text=True)
    secs = time.monotonic() - t0
    return reconcile(proc.returncode, proc.stdout + proc.stderr, junit.read_text() if junit.exists() else None,
                     seconds=secs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist", action="append", help="NAME==VERSION (repeatable; default: marshmallow, attrs, toolz)")
    ap.add_argument("--repeat", type=int, default=3, help="test runs per side (median reported)")
    ap.add_argument("--warm-only", action="store_true", help="do not delete env images first (no cold build)")
    args = ap.parse_args(argv)
    client, info = ensure_engine(allow_start=True)
    settings = settings_from_config(load_config("defaults", []).sandbox)
    emit({"bench": "sandbox", "engine": info.as_dict()})
    rows = []
    for s in args.sdist or DEFAULT_SDISTS:
        try:
            row = bench_one(client, settings, s, max(1, args.repeat), cold=not args.warm_only)
        except Exception as exc:  # one repo failing must not hide the others
            row = {"bench": "sandbox", "sdist": s, "error": f"{exc.__class__.__name__}: {exc}"}
        rows.append(row)
        emit(row)

    ratios = [r["wall_ratio_container_vs_host"] for r in rows if "wall_ratio_container_vs_host" in r]
    funnel = funnel_counts([r.get("funnel_stage", "attempted") for r in rows])
    emit({"bench": "sandbox", "summary": True, "repos": len(rows),
          "counts_match_all": all(r.get("counts_match") for r in rows),
          "max_wall_ratio": max(ratios) if ratios else None, "target_wall_ratio": 1.3, "funnel": funnel})
    return 0


if __name__ == "__main__":
    sys.exit(main())
