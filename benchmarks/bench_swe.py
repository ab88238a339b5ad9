"""SWE validation benchmark: for real PyPI sdists, inject N bug candidates, validate them in Docker (clean run
once per env, one run per candidate), then grade every valid instance with its gold patch and validate the
SWE-bench-format fixture row a few times. Prints JSON lines:

* validation throughput: candidates/hour and valid instances/hour (wall clock, this machine);
* validation wall / bare test time: wall of the whole validation (checkout, copy, container start, runs,
  parsing) over pytest's own reported durations inside the containers;
* env-image reuse rate: env lookups served by an existing image / all lookups (validation + grading).

    python -m benchmarks.bench_swe [--sdist toolz==0.12.0 ...] [--candidates 6] [--fixture-repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from crucible.pipelines.config import load_config
from crucible.pipelines.swe.bugs import candidates
from crucible.pipelines.swe.grade import grade_patch
from crucible.pipelines.swe.mirror import fixture_instances, mirror_template
from crucible.pipelines.swe.validate import ValidateContext, validate_bugs, validate_instance
from crucible.sandbox.api import settings_from_config
from crucible.sandbox.engine import ensure_engine
from crucible.sandbox.sources import from_sdist

DEFAULT_SDISTS = ("toolz==0.12.0", "marshmallow==3.19.0")
INCLUDE = {"toolz": ["toolz/itertoolz.py", "toolz/dicttoolz.py"],
           "marshmallow": ["src/marshmallow/validate.py", "src/marshmallow/utils.py"]}


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist", action="append", default=None)
    ap.add_argument("--candidates", type=int, default=6)
    ap.add_argument("--fixture-repeat", type=int, default=3)
    args = ap.parse_args(argv)


    client, _ = ensure_engine(allow_start=True)
    settings = settings_from_config(load_config("swe", []).sandbox)
    with tempfile.TemporaryDirectory(prefix="bench-swe-") as tmp:
        root = Path(tmp) / "mirrors"
        settings = replace(settings, repo_url_template=mirror_template(root))
        ctx = ValidateContext(client=client, settings=settings, workdir=Path(tmp) / "work")
        ctx.workdir.mkdir()
        tot = {"wall": 0.0, "pytest": 0.0, "candidates": 0, "valid": 0}
        for spec in args.sdist or DEFAULT_SDISTS:
            co = from_sdist(spec, settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"))
            cands = candidates(co.path, max_candidates=args.candidates, include=INCLUDE.get(co.name.lower()))
            t0 = time.monotonic()
            insts, rows, stats = validate_bugs(ctx, co, f"pypi/{co.name.lower()}", root, cands, "bench")
            wall = time.monotonic() - t0
            pyt = stats["clean_pytest_s"] + sum(r["meta"].get("pytest_s") or 0.0 for r in rows)
            t1 = time.monotonic()
            gold = [grade_patch(ctx, i, i["patch"])["resolved"] for i in insts]
            emit({"bench": "swe_inject_validate", "sdist": spec, "candidates": len(cands), "valid": len(insts),
                  "wall_s": round(wall, 2), "pytest_s": round(pyt, 2),
                  "wall_over_bare_test": round(wall / pyt, 2) if pyt else None,
                  "candidates_per_hour": round(len(cands) / wall * 3600), "valid_per_hour": round(len(insts) / wall * 3600),
                  "gold_resolved": f"{sum(gold)}/{len(gold)}", "grade_s_per_instance":
                  round((time.monotonic() - t1) / max(1, len(gold)), 2)})
            tot["wall"] += wall
            tot["pytest"] += pyt
            tot["candidates"] += len(cands)
            tot["valid"] += len(insts)
        spec = json.loads((Path(__file__).resolve().parent.parent / "tests/data/swe/toolz_take_nth.json").read_text())
        co = from_sdist(spec["sdist"], settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"))
        walls, pyts, match = [], [], 0
        for i in range(args.fixture_repeat):
            inst = fixture_instances(spec, co, root, f"pytoolz__toolz-bench{i}")
            t0 = time.monotonic()
            row = validate_instance(ctx, inst, "bench")
            walls.append(time.monotonic() - t0)
            pyts.append(row["meta"].get("pytest_s") or 0.0)
            match += bool(row["labels_match"])
        emit({"bench": "swe_validate_swebench_format", "instances": args.fixture_repeat, "labels_match": match,
              "median_wall_s": round(sorted(walls)[len(walls) // 2], 2),
              "instances_per_hour": round(len(walls) / sum(walls) * 3600),
              "wall_over_bare_test": round(sum(walls) / sum(pyts), 2) if sum(pyts) else None})
        lookups = ctx.stats["env_hits"] + ctx.stats["env_builds"]
        emit({"bench": "swe_summary", "candidates": tot["candidates"], "valid": tot["valid"],
              "candidates_per_hour": round(tot["candidates"] / tot["wall"] * 3600) if tot["wall"] else None,
              "wall_over_bare_test": round(tot["wall"] / tot["pytest"], 2) if tot["pytest"] else None,
              "env_lookups": lookups, "env_builds": ctx.stats["env_builds"],
              "env_builds_on_earlier_env": ctx.stats.get("env_reuses", 0),
              "env_reuse_rate": round(ctx.stats["env_hits"] / lookups, 3) if lookups else None})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
