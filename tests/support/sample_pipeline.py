"""A real Beam pipeline over the store: each input item yields one row of every record type.

Used by the store tests (every record type through FnApiRunner; SIGKILL + rerun).
Run: python -m tests.support.sample_pipeline OUT_DIR N_ITEMS [--sleep S] [--bad-every K]
     [--commit-every N] [--direct-num-workers W]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import apache_beam as beam

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import ItemResult, ensure_layout, recover
from crucible.pipelines.store.sinks import CommitResults
from tests.support import samples

PIPELINE = "sample"


def make_item(i: int, sleep: float = 0.0, bad_every: int = 0) -> ItemResult:
    if sleep:
        time.sleep(sleep)
    item = ItemResult(key=f"item{i:04d}")
    for table, factory in samples.ALL.items():
        row = factory(i)
        if table == "questions" and bad_every and i % bad_every == 0:
            row["hops"] = "three"  # schema violation: must become a failure row
            del row["answer"]
        item.add(table, row)
    return item


def run(out_dir: str, n: int, sleep: float = 0.0, bad_every: int = 0, commit_every: int = 4,
        workers: int = 1, beam_args: list[str] | None = None) -> dict:
    ensure_layout(out_dir)
    rec = recover(out_dir, PIPELINE)
    todo = [i for i in range(n) if f"item{i:04d}" not in rec.done_keys]
    opts = pipeline_options({"runner": "FnApiRunner", "direct_num_workers": workers,
                             "direct_running_mode": "multi_processing" if workers > 1 else "in_memory",
                             "beam_args": beam_args or []})
    if todo:
        with beam.Pipeline(options=opts) as p:
            (p
             | "Items" >> beam.Create(todo)
             | "Make" >> beam.Map(make_item, sleep=sleep, bad_every=bad_every)
             | "Write" >> CommitResults(out_dir, PIPELINE, samples.RUN, every_items=commit_every, every_s=3600,
                                        total_items=len(todo), progress_every_s=0))
    refresh_catalog(out_dir)
    return {"skipped": len(rec.done_keys), "processed": len(todo), "orphans": len(rec.orphans)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("n", type=int)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--bad-every", type=int, default=0)
    ap.add_argument("--commit-every", type=int, default=4)
    ap.add_argument("--direct-num-workers", type=int, default=1)
    a, beam_args = ap.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(run(a.out_dir, a.n, a.sleep, a.bad_every, a.commit_every, a.direct_num_workers, beam_args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
