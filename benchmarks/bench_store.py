"""Store throughput: committing trajectories through the Beam sink, catalog query latency over many small
shards, and the same query after `crucible compact`."""

from __future__ import annotations

import glob
import json
import statistics
import tempfile
import time

import apache_beam as beam

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ItemResult, ensure_layout
from crucible.pipelines.store.compact import compact
from crucible.pipelines.store.sinks import CommitResults
from tests.support import samples


def _item(i: int) -> ItemResult:
    it = ItemResult(f"b{i:06d}")
    t = samples.browse_trajectory(i)
    t["traj_id"] = f"t{i:06d}"
    it.add("browse_trajectories", t)
    return it


def _query_p50_ms(d: str, n: int = 20) -> float:
    lat = []
    for _ in range(n):
        q0 = time.perf_counter()
        catalog.query(d, "select verdict, count(*), avg(reward_total) from browse_trajectories group by 1")
        lat.append(time.perf_counter() - q0)
    return round(statistics.median(lat) * 1000, 2)


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
            p50 = _query_p50_ms(d)
            n_files = len(glob.glob(f"{d}/browse_trajectories/part-*.parquet"))
            c0 = time.perf_counter()
            compact(d, "bench")
            compact_s = time.perf_counter() - c0
            r = {"bench": "store_commit", "items": n, "commit_every_items": every, "wall_s": round(wall, 3),
                 "items_per_s": round(n / wall, 1), "shards": n_files, "query_p50_ms": p50,
                 "compact_s": round(compact_s, 2), "query_p50_ms_compacted": _query_p50_ms(d)}
            print(json.dumps(r), flush=True)
            results.append(r)
    return results


if __name__ == "__main__":
    main()
