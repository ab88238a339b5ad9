"""Store throughput: committing trajectories through the Beam sink, and catalog query latency."""

from __future__ import annotations

import json
import statistics
import tempfile
import time

import apache_beam as beam

from pipelines.beam_options import pipeline_options
from pipelines.store import catalog
from pipelines.store.commit import ItemResult, ensure_layout
from pipelines.store.sinks import CommitResults
from tests.support import samples


def _item(i: int) -> ItemResult:
    it = ItemResult(f"b{i:06d}")
    t = samples.browse_trajectory(i)
    t["traj_id"] = f"t{i:06d}"
    it.add("browse_trajectories", t)
    return it


def main() -> list[dict]:
    results = []
    for n, every in ((2000, 64), (2000, 8)):
        with tempfile.TemporaryDirectory() as d:
            ensure_layout(d)
            t0 = time.perf_counter()
            with beam.Pipeline(options=pipeline_options({"runner": "FnApiRunner"})) as p:
                (p | beam.Create(list(range(n))) | beam.Map(_item)
                 | CommitResults(d, "bench", "bench", every_items=every, every_s=3600, progress_every_s=0))
            wall = time.perf_counter() - t0
            lat = []
            for _ in range(20):
                q0 = time.perf_counter()
                catalog.query(d, "select verdict, count(*), avg(reward_total) from browse_trajectories group by 1")
                lat.append(time.perf_counter() - q0)
            r = {"bench": "store_commit", "items": n, "commit_every_items": every, "wall_s": round(wall, 3),
                 "items_per_s": round(n / wall, 1),
                 "query_p50_ms": round(statistics.median(lat) * 1000, 2)}
            print(json.dumps(r), flush=True)
            results.append(r)
    return results


if __name__ == "__main__":
    main()
