"""The default `make synth-browse` run as a benchmark: kept rows per CPU-minute.

Runs `crucible browse run -c browse` (embedded model, shipped config) into a fresh folder, counts the
rows it kept (trajectories with split != none, SFT rows, questions) and divides by the CPU time of the
run (user + sys of the process and its children, which covers the in-process llama.cpp server).
The LLM cache is per output folder, so the run does all of its model calls.
Before issue 12 (seeds=10, k=2, 2 shared cores): 11 kept trajectories, 8 SFT, in 32.9 CPU-minutes
(0.33 kept/CPU-min, 0.24 SFT/CPU-min; 40.7 min wall under heavy contention). After: 0 kept in 40.4
CPU-min (25.3 min wall): the weak model gives no rows rather than wrong ones (docs/browse-env.md, Audit).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crucible.pipelines.store import catalog

REPO = Path(__file__).resolve().parents[1]


def main() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-browse-") as d:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "crucible.pipelines.cli", "browse", "run", "-c", "browse", "--out", d],
                             cwd=REPO, capture_output=True, text=True)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise RuntimeError(f"default run failed: {res.stderr[-2000:]}")
        cpu_min = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / 60

        _, rows = catalog.query(d, "SELECT count(*) FILTER (WHERE split <> 'none'), "
                                   "count(*) FILTER (WHERE split LIKE '%sft%'), count(*) FROM browse_trajectories")
        kept, sft, total = rows[0]
        _, q = catalog.query(d, "SELECT count(*) FROM questions")
    out = {"bench": "browse_default_run", "questions": q[0][0], "trajectories": total, "kept": kept, "sft": sft,
           "cpu_min": round(cpu_min, 2), "wall_min": round(wall / 60, 2),
           "kept_per_cpu_min": round(kept / cpu_min, 3) if cpu_min else None,
           "sft_per_cpu_min": round(sft / cpu_min, 3) if cpu_min else None}
    print(out, flush=True)
    return [out]


if __name__ == "__main__":
    main()
