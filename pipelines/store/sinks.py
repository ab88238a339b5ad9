"""Beam adapters over :mod:`crucible.pipelines.store.commit` (thin: the logic lives there)."""

from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam.metrics import Metrics

from crucible.pipelines.store.commit import CommitInfo, ItemResult, Progress, commit_items
from crucible.pipelines.store.progress import run_members

log = logging.getLogger(__name__)


class _CommitDoFn(beam.DoFn):
    def __init__(self, out_dir: str, pipeline: str, run_id: str, every_items: int, every_s: float,
                 compression: str, total_items: int | None, progress_every_s: float):
        self.out_dir, self.pipeline, self.run_id = out_dir, pipeline, run_id
        self.every_items, self.every_s, self.compression = every_items, every_s, compression
        self.total_items, self.progress_every_s = total_items, progress_every_s
        self.items_committed = Metrics.counter("crucible.store", "items_committed")
        self.commits = Metrics.counter("crucible.store", "commits")
        self.rows = {}

    def setup(self):
        self.progress = Progress(f"{self.pipeline} items committed", self.total_items, self.progress_every_s, log,
                                 members=run_members(self.out_dir))

    def start_bundle(self):
        self.buffer: list[ItemResult] = []
        self.first_at = None

    def process(self, item: ItemResult):
        if not isinstance(item, ItemResult):
            raise TypeError(f"CommitResults expects ItemResult elements, got {type(item).__name__}")
        self.buffer.append(item)
        self.first_at = self.first_at or time.monotonic()
        if len(self.buffer) >= self.every_items or time.monotonic() - self.first_at >= self.every_s:
            self._flush()
        return []

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if not self.buffer:
            return
        info: CommitInfo = commit_items(self.out_dir, self.pipeline, self.run_id, self.buffer, self.compression)
        self.buffer, self.first_at = [], None
        self.commits.inc()
        self.items_committed.inc(info.n_items)
        for table, n in info.rows.items():
            if table not in self.rows:
                self.rows[table] = Metrics.counter("crucible.store", f"rows.{table}")
            self.rows[table].inc(n)
        self.progress.update(info.n_items)


class CommitResults(beam.PTransform):
    """``PCollection[ItemResult]`` -> committed Parquet shards + manifests (idempotent)."""

    def __init__(self, out_dir: str, pipeline: str, run_id: str, *, every_items: int = 16,
                 every_s: float = 30.0, compression: str = "zstd", total_items: int | None = None,
                 progress_every_s: float = 10.0):
        super().__init__()
        self.args = (out_dir, pipeline, run_id, every_items, every_s, compression, total_items, progress_every_s)

    def expand(self, pcoll):
        return pcoll | "Commit" >> beam.ParDo(_CommitDoFn(*self.args))
