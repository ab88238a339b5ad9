"""Validation on the run's internal network vs ``--network none``: the same SWE-bench-format fixtures (toolz
0.12.0 sdist through a local bare mirror: take_nth, and the connect-timeout fixture whose test waits for a
connect to 10.255.255.1 to time out) validated ``--repeat`` times on each, env image and reference cache
warm. Prints one JSON line per network and a summary:

* wall per validation (checkout, copy, container start on the network, runs, parsing);
* ``test_timeouts_s``: the tests' own timeouts (connect timeouts that only an internal network makes wait);
* ``ratio`` = internal wall / (none wall + test timeouts): the acceptance bound is 1.2;
* labels_match per fixture: which network reproduces the given labels.

    python -m benchmarks.bench_swe_network [--repeat 3]
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
from crucible.pipelines.swe.envs import ValidateContext, run_network
from crucible.pipelines.swe.mirror import fixture_instances, mirror_template
from crucible.pipelines.swe.validate import validate_instance
from crucible.sandbox.api import settings_from_config
from crucible.sandbox.engine import ensure_engine
from crucible.sandbox.sources import from_sdist

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "swe"
FIXTURES = {"pytoolz__toolz-take_nth": ("toolz_take_nth.json", 0.0),
            # before and after: one connect that waits its 1 s timeout on the internal network
            "pytoolz__toolz-connect_timeout": ("toolz_connect_timeout.json", 2.0)}


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)


    client, _ = ensure_engine(allow_start=True)
    settings = settings_from_config(load_config("swe", []).sandbox)
    with tempfile.TemporaryDirectory(prefix="bench-swe-net-") as tmp:
        root = Path(tmp) / "mirrors"
        settings = replace(settings, repo_url_template=mirror_template(root))
        co = from_sdist("toolz==0.12.0", settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"))
        insts = [fixture_instances(json.loads((DATA / f).read_text()), co, root, iid)
                 for iid, (f, _) in FIXTURES.items()]
        ctx = ValidateContext(client=client, settings=settings, workdir=Path(tmp) / "work")
        ctx.workdir.mkdir()
        for inst in insts:  # warm: env image built or found, nothing of the first run counted
            validate_instance(ctx, inst, "bench-warm")
        res = {}
        with run_network(client, "internal", "bench-swe-network") as net:
            for mode, network in (("none", "none"), ("internal", net)):
                c = replace(ctx, network=network)
                walls, match = [], {}
                for _ in range(args.repeat):
                    for inst in insts:
                        t0 = time.monotonic()
                        row = validate_instance(c, inst, "bench")
                        walls.append(time.monotonic() - t0)
                        match[inst["instance_id"]] = row["labels_match"]
                res[mode] = {"network": mode, "validations": len(walls), "wall_s": round(sum(walls), 2),
                             "wall_per_validation_s": round(sum(walls) / len(walls), 2), "labels_match": match}
                emit(res[mode])
        timeouts = args.repeat * sum(t for _, t in FIXTURES.values())
        emit({"summary": "internal vs none", "test_timeouts_s": timeouts,
              "ratio": round(res["internal"]["wall_s"] / (res["none"]["wall_s"] + timeouts), 3),
              "raw_ratio": round(res["internal"]["wall_s"] / res["none"]["wall_s"], 3)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
