"""Committed rows/s into an ``s3://`` store (moto's S3 server on loopback: the protocol's request count, not a
real bucket's latency) vs a local folder, through the one Beam sink (``CommitResults``, FnApiRunner), and the
first and second read (``crucible query``) of the s3 store through its local mirror."""

from __future__ import annotations

import json
import os
import tempfile
import time

import apache_beam as beam

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.store import catalog, mirror
from crucible.pipelines.store.commit import ItemResult, ensure_layout
from crucible.pipelines.store.manifests import read_manifests
from crucible.pipelines.store.sinks import CommitResults
from tests.support import s3server, samples

N_ITEMS = 600
EVERY = (32, 8)


def _item(i: int) -> ItemResult:
    t = samples.browse_trajectory(i)
    t["traj_id"] = f"t{i:06d}"
    return ItemResult(f"b{i:06d}").add("browse_trajectories", t)


def _commit(out: str, n: int, every: int) -> float:
    ensure_layout(out)
    t0 = time.perf_counter()
    with beam.Pipeline(options=pipeline_options({"runner": "FnApiRunner"})) as p:
        (p | beam.Create(list(range(n))) | beam.Map(_item)
         | CommitResults(out, "bench", "bench", every_items=every, every_s=3600, progress_every_s=0))
    return time.perf_counter() - t0


def _query_s(out: str) -> float:
    t0 = time.perf_counter()
    _, rows = catalog.query(out, "select count(*) from browse_trajectories")
    assert rows == [(N_ITEMS,)], rows
    return time.perf_counter() - t0


def main() -> list[dict]:
    results = []
    proc, endpoint = s3server.start_server()
    try:
        s3server.point_env_at(endpoint, os.environ.__setitem__)
        with tempfile.TemporaryDirectory() as cache:
            os.environ["CRUCIBLE_CACHE_DIR"] = cache
            for every in EVERY:
                bucket = f"bench-{every}-{int(time.time())}"
                s3server.client(endpoint).create_bucket(Bucket=bucket)
                s3server.reset_filesystems()
                url = f"s3://{bucket}/store"
                with tempfile.TemporaryDirectory() as d:
                    for where, out in (("local", d), ("s3", url)):
                        wall = _commit(out, N_ITEMS, every)
                        r = {"bench": "store_s3_commit", "store": where, "items": N_ITEMS, "rows": N_ITEMS,
                             "commit_every_items": every, "commits": len(read_manifests(out, "bench")), "wall_s": round(wall, 2),
                             "rows_per_s": round(N_ITEMS / wall, 1), "first_query_s": round(_query_s(out), 2),
                             "second_query_s": round(_query_s(out), 2)}
                        print(json.dumps(r), flush=True)
                        results.append(r)
                mirror.drop(url)
    finally:
        proc.terminate()
        proc.wait(10)
    return results


if __name__ == "__main__":
    main()
