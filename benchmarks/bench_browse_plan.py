"""Planning synth-browse at scale: the job graph the driver submits and the driver's memory, for 10k and 1M
seeds. The plan job expands shard ranges on the workers (pipelines/browse/transforms_plan.py), so neither
may grow with the seed count. For contrast, the graph of the old shape (``beam.Create`` of every planned item,
as before the stage graph) at 10k items.

Each measurement runs in a fresh interpreter (``python -m benchmarks.bench_browse_plan --one SEEDS``), so
peaks do not mix: ``graph_bytes`` is the serialized Runner API proto (what Dataflow limits to ~10 MB),
``build_peak_kib`` the tracemalloc peak while building it, ``max_rss_mib`` the process's peak RSS.
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import apache_beam as beam

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.browse.pipeline import build_plan, build_synth
from crucible.pipelines.browse.transforms import WorkerSpec
from crucible.pipelines.config import load_config
from crucible.pipelines.options import build_options

SEEDS = (10_000, 1_000_000)
OLD_ITEMS = 10_000


def _graph_bytes(p: beam.Pipeline) -> int:
    return len(p.to_runner_api().SerializeToString())


def _old_item(i: int) -> dict:
    """A planned item of the default shape (3 hops, content-hash key and pattern), as the old graph embedded
    them."""
    h = hashlib.sha256(str(i).encode()).hexdigest()
    return {"key": f"q-{h[:16]}", "chain": [[f"city/{h[16:24]}", "country", f"country/{h[24:26]}"],
                                            [f"country/{h[24:26]}", "capital", f"city/{h[26:34]}"],
                                            [f"city/{h[26:34]}", "continent", "continent/SA"]],
            "start": f"city/{h[16:24]}", "pattern": h[34:50], "answer_attr": None}


def one(seeds: int) -> dict:
    """Build the plan and synth job graphs for ``seeds`` seeds (nothing runs) and measure them."""
    opts = build_options(load_config("browse", [f"browse.seeds={seeds}", "run.out_dir=/tmp/bench-plan"]))
    tracemalloc.start()
    t0 = time.perf_counter()
    plan = beam.Pipeline(options=pipeline_options(opts.run))
    build_plan(plan, opts, "bench", "/tmp/bench-plan/_plan/todo")
    plan_bytes = _graph_bytes(plan)
    synth = beam.Pipeline(options=pipeline_options(opts.run))
    build_synth(synth, opts, WorkerSpec(opts, None, "bench", 1), "/tmp/bench-plan/_plan/todo*.jsonl", None)
    synth_bytes = _graph_bytes(synth)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"bench": "browse_plan_graph", "seeds": seeds, "plan_graph_bytes": plan_bytes,
            "synth_graph_bytes": synth_bytes, "build_s": round(wall, 3), "build_peak_kib": round(peak / 1024, 1),
            "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def old_shape(n: int) -> dict:
    """The graph of ``Create(all planned items)`` (the shape before the stage graph) for ``n`` items."""
    tracemalloc.start()
    p = beam.Pipeline(options=pipeline_options({"runner": "FnApiRunner"}))
    _ = p | beam.Create([_old_item(i) for i in range(n)], reshuffle=False) | beam.Map(lambda x: x)
    size = _graph_bytes(p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"bench": "browse_plan_graph_old_create", "items": n, "graph_bytes": size,
            "bytes_per_item": round(size / n, 1), "build_peak_kib": round(peak / 1024, 1)}


def _fresh(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_browse_plan", *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> list[dict]:
    results = [_fresh(["--one", str(n)]) for n in SEEDS] + [_fresh(["--old", str(OLD_ITEMS)])]
    small, big = results[0], results[1]
    results.append({"bench": "browse_plan_graph_growth", "seeds": [small["seeds"], big["seeds"]],
                    "plan_graph_bytes_ratio": round(big["plan_graph_bytes"] / small["plan_graph_bytes"], 3),
                    "build_peak_ratio": round(big["build_peak_kib"] / small["build_peak_kib"], 3),
                    "under_1_mb": max(big["plan_graph_bytes"], big["synth_graph_bytes"]) < 1_000_000})
    for r in results:
        print(json.dumps(r), flush=True)
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("--one", "--old"):
        print(json.dumps(one(int(sys.argv[2])) if sys.argv[1] == "--one" else old_shape(int(sys.argv[2]))))
    else:
        main()
