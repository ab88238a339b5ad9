"""`crucible view` at training-set scale: a synthetic store of N trajectories and N/10 questions; p50/p95
time to serve a filtered list page, a deep page and one trajectory page through the real HTTP server,
and the server's peak memory (target: p95 < 300 ms, memory < 1 GB at 1,000,000 trajectories).

Rows are 1,000 sample rows tiled with fresh keys (pyarrow), written as commits of 100,000 rows through
the store's one commit writer (``write_commit``): the benchmark measures reading, not validation.
N defaults to 1,000,000 (``CRUCIBLE_BENCH_VIEW_N`` changes it).
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
import urllib.request

import pyarrow as pa
import pyarrow.compute as pc

from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import ensure_layout, stable_hash, write_commit
from crucible.pipelines.store.records import record_type
from crucible.pipelines.view.server import ViewServer
from tests.support import samples

TEMPLATE = 1000
PER_COMMIT = 100_000


def _tiled(table: str, factory, n: int, key_cols: dict[str, str], start: int) -> pa.Table:
    rt = record_type(table)
    base = rt.to_table([factory(i) for i in range(TEMPLATE)])
    reps = [base] * (n // TEMPLATE) + ([base.slice(0, n % TEMPLATE)] if n % TEMPLATE else [])
    t = pa.concat_tables(reps)
    idx = pa.array(range(start, start + n), pa.int64())
    for col, prefix in key_cols.items():
        vals = pc.binary_join_element_wise(pa.scalar(prefix), pc.utf8_lpad(pc.cast(idx, pa.string()), 7, "0"), "")
        t = t.set_column(t.schema.get_field_index(col), col, vals)
    return t


def build_store(out: str, n: int) -> None:
    ensure_layout(out)
    for start in range(0, n, PER_COMMIT):
        m = min(PER_COMMIT, n - start)
        trajs = _tiled("browse_trajectories", samples.browse_trajectory, m,
                       {"traj_id": "t", "question_id": "q"}, start)
        # question_id of trajectory i is q<i // 10>: ten rollouts per question
        qids = pc.binary_join_element_wise(pa.scalar("q"), pc.utf8_lpad(pc.cast(
            pa.array([(start + i) // 10 for i in range(m)], pa.int64()), pa.string()), 7, "0"), "")
        trajs = trajs.set_column(trajs.schema.get_field_index("question_id"), "question_id", qids)
        qs = _tiled("questions", samples.question, m // 10, {"question_id": "q"}, start // 10)
        keys = [f"b{start:07d}-{m}"]
        write_commit(out, "bench", "bench", stable_hash("bench", keys), keys,
                     {"browse_trajectories": trajs, "questions": qs})
    refresh_catalog(out)


def _time(url: str, n: int) -> tuple[float, float]:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as r:
            r.read()
            assert r.status == 200
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return round(statistics.median(lat), 1), round(lat[max(0, int(len(lat) * 0.95) - 1)], 1)


def main() -> list[dict]:
    n = int(os.environ.get("CRUCIBLE_BENCH_VIEW_N", "1000000"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-view-") as d:
        t0 = time.perf_counter()
        build_store(d, n)
        results.append({"bench": "view_build_store", "trajectories": n, "questions": n // 10,
                        "seconds": round(time.perf_counter() - t0, 1)})
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with ViewServer(d, port=0) as srv:
            base = srv.url.rstrip("/")
            pages = {
                "list_filtered": "/browse_trajectories?verdict=correct&split=sft",
                "list_deep_page": f"/browse_trajectories?verdict=incorrect&offset={n // 4}",
                "list_sorted": "/browse_trajectories?sort=n_prompt_tokens&desc=1",
                "trajectory": f"/browse_trajectories/t{n // 2:07d}",
                "question": f"/questions/q{n // 20:07d}",
                "search": "/search?q=Currency%2077",
            }
            _time(base + "/", 1)  # first open binds the views
            for name, path in pages.items():
                p50, p95 = _time(base + path, 20)
                results.append({"bench": f"view_{name}", "trajectories": n, "p50_ms": p50, "p95_ms": p95,
                                "target_p95_ms": 300})
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results.append({"bench": "view_memory", "trajectories": n, "peak_rss_mb": round(rss / 1024, 1),
                        "rss_before_server_mb": round(rss0 / 1024, 1), "target_mb": 1024})
    for r in results:
        print(r, flush=True)
    return results


if __name__ == "__main__":
    main()
