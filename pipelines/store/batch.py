"""Resumable parallel work over a fixed list of items, each committed to the store as it finishes.

``run_items(out_dir, pipeline, run_id, keys, work, workers=N)`` takes the store's writer lock and
skips the keys ``pipeline`` already committed (:func:`crucible.pipelines.store.commit.recover`), runs
``work(key) -> ItemResult`` for the others on a thread pool of ``workers`` threads, and commits
whatever has finished after each wake-up (one small commit per batch of finished items; one item
per commit when they finish one at a time), so a killed run loses only its in-flight items and a
rerun does the rest. A ``work`` call that raises is committed as a failure row under a key of its
own (``<key>!error-<time>``), never under ``key``: the item is not done and a rerun tries it again.
Used by ``crucible browse rollout`` and ``crucible swe rollout``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from crucible.pipelines.store.commit import (
    ItemResult,
    Progress,
    commit_items,
    ensure_layout,
    failure_row,
    recover,
)
from crucible.pipelines.store.progress import run_members

log = logging.getLogger(__name__)
ERROR_SEP = "!error-"


@dataclass
class BatchSummary:
    planned: int
    skipped: int
    committed: int = 0
    errors: int = 0
    commits: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    error_reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        per_min = round(60 * self.committed / self.seconds, 2) if self.seconds > 0 and self.committed else None
        return {"planned": self.planned, "skipped": self.skipped, "committed": self.committed, "errors": self.errors,
                "commits": self.commits, "rows": dict(self.rows), "error_reasons": self.error_reasons[:10],
                "seconds": round(self.seconds, 1), "items_per_min": per_min}


def error_item(pipeline: str, stage: str, run_id: str, key: str, exc: BaseException) -> ItemResult:
    """The failure row of a ``work`` call that raised, under a key that does not mark ``key`` done."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:]
    res = ItemResult(f"{key}{ERROR_SEP}{stamp}")
    return res.add("failures", failure_row(pipeline=pipeline, stage=stage, kind="error",
                                           reason=f"{type(exc).__name__}: {exc}"[:1000], run_id=run_id,
                                           item_key=key, discriminator=stamp))


def run_items(out_dir: str, pipeline: str, run_id: str, keys: Sequence[str], work: Callable[[str], ItemResult], *,
              workers: int, stage: str = "work", compression: str = "zstd", progress_every_s: float = 10.0,
              on_result: Callable[[ItemResult], None] | None = None) -> BatchSummary:
    """Run ``work`` for every key not yet committed by ``pipeline`` in ``out_dir``; see the module doc.
    ``on_result`` sees each finished item (in the committing thread) after its commit."""
    t0 = time.monotonic()
    if len(set(keys)) != len(keys):
        raise ValueError(f"{pipeline}: item keys repeat; each item needs its own key")
    ensure_layout(out_dir)
    done = recover(out_dir, pipeline).done_keys
    todo = [k for k in keys if k not in done]
    summary = BatchSummary(planned=len(keys), skipped=len(keys) - len(todo))
    log.info("%s: %d items, %d already committed, %d to run on %d workers", pipeline, len(keys), summary.skipped,
             len(todo), workers)
    progress = Progress(f"{pipeline} items committed", len(todo), progress_every_s, log, members=run_members(out_dir))

    def commit(results: list[ItemResult]) -> None:
        info = commit_items(out_dir, pipeline, run_id, results, compression)
        summary.commits += 1
        for table, n in info.rows.items():
            summary.rows[table] = summary.rows.get(table, 0) + n
        for res in results:
            if ERROR_SEP in res.key:
                summary.errors += 1
                summary.error_reasons.extend(f["reason"] for f in res.rows.get("failures", []))
            else:
                summary.committed += 1
                progress.update(1)
            if on_result is not None:
                on_result(res)

    if todo:
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=pipeline)
        try:
            pending: dict[Future, str] = {pool.submit(work, k): k for k in todo}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                batch = []
                for fut in finished:
                    key = pending.pop(fut)
                    exc = fut.exception()
                    if exc is not None:
                        log.warning("%s: item %s failed: %s: %s", pipeline, key, type(exc).__name__, exc)
                        batch.append(error_item(pipeline, stage, run_id, key, exc))
                    elif fut.result().key != key:
                        batch.append(error_item(pipeline, stage, run_id, key, ValueError(
                            f"work returned the item {fut.result().key!r} for the key {key!r}")))
                    else:
                        batch.append(fut.result())
                commit(batch)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    summary.seconds = time.monotonic() - t0
    return summary
