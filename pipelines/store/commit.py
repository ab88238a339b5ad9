"""Idempotent, atomic commits of pipeline results into the Parquet store.

Layout under ``out_dir``::

    <table>/_schema.parquet                       0-row file with the table's schema (views work when empty)
    <table>/part-<pipeline>-<commit>.parquet      data shards
    _commits/<pipeline>/<commit>.json             commit manifests (the completion markers)

A commit covers a batch of *items* (one question, one SWE instance...). Each item's rows,
for every table, are written as shards (each atomically), then the manifest listing the
item keys and the shard files is written atomically: the manifest is the commit point.
``commit_id`` is a hash of the pipeline name and the sorted item keys, so a retried bundle
rewrites the same files with the same content.

On start, :func:`recover` reads the manifests: their item keys are finished work (skipped on
rerun), and any shard of this pipeline that no manifest names is an orphan of a killed run
and is deleted, so a rerun never duplicates rows and never loses any. Manifests merged by a
compaction (:mod:`pipelines.store.compact`) that was killed half-way are dropped the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.store import fsio
from pipelines.store.records import TABLES, record_type

log = logging.getLogger(__name__)

COMMITS_DIR = "_commits"
SCHEMA_FILE = "_schema.parquet"
MAX_PAYLOAD_CHARS = 100_000


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stable_hash(*parts: object, n: int = 16) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:n]


@dataclass
class ItemResult:
    """Everything one input item produced: rows per table (valid or not yet validated)."""

    key: str
    rows: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, table: str, row: dict) -> ItemResult:
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
        self.rows.setdefault(table, []).append(row)
        return self


def failure_row(*, pipeline: str, stage: str, kind: str, reason: str, run_id: str,
                table: str | None = None, item_key: str | None = None, path: str | None = None,
                payload: object = None, discriminator: object = None) -> dict:
    """A failure record. ``failure_id`` is deterministic, so a retried item gives the same id."""
    text = None
    if payload is not None:
        text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, default=str)
        text = text[:MAX_PAYLOAD_CHARS]
    return {
        "failure_id": stable_hash(pipeline, stage, table, item_key, path, reason, discriminator),
        "pipeline": pipeline,
        "stage": stage,
        "table_name": table,
        "item_key": item_key,
        "kind": kind,
        "reason": reason,
        "path": path,
        "payload": text,
        "run_id": run_id,
        "created_at": utc_now(),
    }


def split_valid(table: str, rows: Iterable[dict], *, pipeline: str, item_key: str,
                run_id: str) -> tuple[list[dict], list[dict]]:
    """Validate rows against the table's schema: (valid rows, failure rows with path + reason)."""
    rt = record_type(table)
    valid, failures = [], []
    for i, row in enumerate(rows):
        errors = rt.errors(row)
        if not errors:
            valid.append(row)
            continue
        path, msg = errors[0]
        more = f" (+{len(errors) - 1} more: " + "; ".join(f"{p}: {m}" for p, m in errors[1:4]) + ")" if len(errors) > 1 else ""
        failures.append(failure_row(
            pipeline=pipeline, stage="validate", kind="schema", reason=f"{msg}{more}", run_id=run_id,
            table=table, item_key=item_key, path=path, payload=row, discriminator=i,
        ))
    return valid, failures


def _parquet_bytes(table: pa.Table, compression: str) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=None if compression == "none" else compression)
    return buf.getvalue()


def ensure_layout(out_dir: str) -> None:
    """Create every table folder with its 0-row schema file (idempotent)."""
    for table in TABLES:
        path = fsio.join(out_dir, table, SCHEMA_FILE)
        rt = record_type(table)
        if fsio.exists(path):
            try:
                if fsio.is_local(path) and pq.read_schema(path).equals(rt.arrow_schema, check_metadata=False):
                    continue
            except Exception:  # corrupt or stale schema file: rewrite it below
                log.warning("rewriting schema file %s", path)
        fsio.write_bytes_atomic(path, _parquet_bytes(rt.arrow_schema.empty_table(), "zstd"))


@dataclass
class CommitInfo:
    commit_id: str
    n_items: int
    rows: dict[str, int]
    files: dict[str, str]


def commit_items(out_dir: str, pipeline: str, run_id: str, items: list[ItemResult],
                 compression: str = "zstd") -> CommitInfo:
    """Validate and atomically commit a batch of items (see module docstring)."""
    if not items:
        raise ValueError("commit_items needs at least one item")
    keys = sorted({it.key for it in items})
    commit_id = stable_hash(pipeline, keys)
    by_table: dict[str, list[dict]] = {}
    for it in items:
        for table, rows in it.rows.items():
            valid, failures = split_valid(table, rows, pipeline=pipeline, item_key=it.key, run_id=run_id)
            by_table.setdefault(table, []).extend(valid)
            if failures:
                by_table.setdefault("failures", []).extend(failures)
    # schema failures of failure rows themselves would loop; failure rows are built by us
    files, counts = {}, {}
    for table, rows in sorted(by_table.items()):
        if not rows:
            continue
        rt = record_type(table)
        path = fsio.join(out_dir, table, f"part-{pipeline}-{commit_id}.parquet")
        fsio.write_bytes_atomic(path, _parquet_bytes(rt.to_table(rows), compression))
        files[table] = path
        counts[table] = len(rows)
    manifest = {
        "commit_id": commit_id,
        "pipeline": pipeline,
        "run_id": run_id,
        "items": keys,
        "files": {t: p.rsplit("/", 1)[-1] for t, p in files.items()},
        "rows": counts,
        "created_at": utc_now(),
    }
    fsio.write_bytes_atomic(
        fsio.join(out_dir, COMMITS_DIR, pipeline, f"{commit_id}.json"),
        json.dumps(manifest, indent=1, sort_keys=True).encode(),
    )
    return CommitInfo(commit_id, len(keys), counts, files)


@dataclass
class RecoveryReport:
    done_keys: set[str]
    n_commits: int
    orphans_deleted: list[str]
    duplicate_keys: list[str]


def read_manifests(out_dir: str, pipeline: str) -> list[dict]:
    out = []
    for path in fsio.glob(fsio.join(out_dir, COMMITS_DIR, pipeline, "*.json")):
        try:
            out.append(json.loads(fsio.read_bytes(path)))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # manifests are written atomically, so this is outside damage: refuse to guess
            raise ValueError(f"{path}: unreadable commit manifest ({exc}); delete it and the shards it "
                             "names to redo those items") from None
    return out


def recover(out_dir: str, pipeline: str) -> RecoveryReport:
    """Finished item keys of ``pipeline`` and removal of orphan shards left by a killed run."""
    manifests = read_manifests(out_dir, pipeline)
    # a compaction killed after its commit point: the merged manifest supersedes the ones it names
    superseded = {cid for m in manifests for cid in m.get("compacted_from") or ()}
    if superseded & {m["commit_id"] for m in manifests}:
        stale = [m for m in manifests if m["commit_id"] in superseded]
        log.warning("removing %d commit manifest(s) of %s merged by an interrupted compaction", len(stale), pipeline)
        fsio.delete([fsio.join(out_dir, COMMITS_DIR, pipeline, f"{m['commit_id']}.json") for m in stale])
        manifests = [m for m in manifests if m["commit_id"] not in superseded]
    done: set[str] = set()
    dup: list[str] = []
    referenced: set[str] = set()
    for m in manifests:
        for k in m["items"]:
            if k in done:
                dup.append(k)
            done.add(k)
        for table, name in m["files"].items():
            referenced.add(f"{table}/{name}")
    orphans = []
    for table in TABLES:
        for path in fsio.glob(fsio.join(out_dir, table, f"part-{pipeline}-*.parquet")):
            name = path.replace("\\", "/").rsplit("/", 1)[-1]
            if f"{table}/{name}" not in referenced:
                orphans.append(path)
    if orphans:
        log.warning("removing %d uncommitted shard(s) left by an interrupted run of %s", len(orphans), pipeline)
        fsio.delete(orphans)
    if dup:
        log.warning("%d item(s) of %s appear in more than one commit", len(dup), pipeline)
    return RecoveryReport(done, len(manifests), orphans, sorted(set(dup)))


class Progress:
    """Counts, rate and ETA, logged at most every ``every_s`` seconds."""

    def __init__(self, label: str, total: int | None, every_s: float = 10.0, logger: logging.Logger = log):
        self.label, self.total, self.every_s, self.log = label, total, every_s, logger
        self.done = 0
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if self.every_s <= 0 and not force:
            return
        if force or now - self._last >= self.every_s:
            self._last = now
            self.log.info("%s", self.line())

    def line(self) -> str:
        el = max(time.monotonic() - self.t0, 1e-9)
        rate = self.done / el
        parts = [f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else ""), f"{rate:.2f}/s"]
        if self.total and rate > 0:
            parts.append(f"ETA {max(self.total - self.done, 0) / rate:.0f}s")
        parts.append(f"elapsed {el:.0f}s")
        return ", ".join(parts)
