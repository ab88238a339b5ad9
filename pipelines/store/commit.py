"""Idempotent, atomic commits of pipeline results into the Parquet store.

Layout under ``out_dir``::

    <table>/_schema.parquet                       0-row file with the table's schema (views work when empty)
    <table>/part-<pipeline>-<commit>.parquet      data shards
    _commits/<pipeline>/<commit>.json             commit manifests (the completion markers)

A commit covers a batch of *items* (one question, one SWE instance...). Each item's rows,
for every table, are written as shards (each atomically), then the manifest listing the
item keys and the shard files is written atomically: the manifest is the commit point.
``commit_id`` is a hash of the pipeline name and the sorted item keys. A commit is idempotent per
item key: keys that a live manifest already holds are skipped, so a retried or speculative bundle
that batched differently never commits a key twice (and if two attempts race, readers take one of
them, see :mod:`pipelines.store.manifests`).

On start, :func:`recover` takes the store's writer lock (:mod:`pipelines.store.lock`), reads the
manifests (their item keys are finished work, skipped on rerun) and, safe under the lock, deletes
what killed runs left: shards of this pipeline that no live manifest names, manifests merged by an
interrupted compaction or repeating keys of earlier commits, and stale temp files. Readers never need
this cleanup: they read only the files that live manifests name.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.store import fsio
from pipelines.store import manifests as M
from pipelines.store.records import TABLES, record_type

log = logging.getLogger(__name__)

COMMITS_DIR = M.COMMITS_DIR
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


def schema_bytes(schema: pa.Schema) -> bytes:
    """A Parquet file with the schema and zero row groups (``datasets`` rejects a 0-row row group)."""
    buf = io.BytesIO()
    pq.ParquetWriter(buf, schema, compression="zstd").close()
    return buf.getvalue()


def ensure_layout(out_dir: str) -> None:
    """Create every table folder with its 0-row schema file (idempotent). Writers only: readers never
    create anything (see :func:`pipelines.store.manifests.require_store`)."""
    for table in TABLES:
        path = fsio.join(out_dir, table, SCHEMA_FILE)
        rt = record_type(table)
        if fsio.exists(path):
            try:
                if not fsio.is_local(path):
                    continue
                f = pq.ParquetFile(path)
                if f.num_row_groups == 0 and f.schema_arrow.equals(rt.arrow_schema, check_metadata=False):
                    continue
            except Exception:  # corrupt or stale schema file: rewrite it below
                log.warning("rewriting schema file %s", path)
        fsio.write_bytes_atomic(path, schema_bytes(rt.arrow_schema))


@dataclass
class CommitInfo:
    commit_id: str
    n_items: int
    rows: dict[str, int]
    files: dict[str, str]
    skipped_keys: list[str] = field(default_factory=list)


def done_keys(out_dir: str, pipeline: str) -> set[str]:
    """Item keys of ``pipeline`` committed so far (live manifests)."""
    return M.committed(out_dir, pipeline).done_keys


def write_commit(out_dir: str, pipeline: str, run_id: str, commit_id: str, keys: list[str],
                 tables: dict[str, pa.Table], compression: str = "zstd") -> tuple[dict[str, str], dict[str, int]]:
    """Write one commit: each table's shard (atomic), then the manifest naming them (the commit point).
    ``tables`` are already valid rows in their record type's arrow schema. Returns (files, row counts)."""
    files, counts = {}, {}
    for table, data in sorted(tables.items()):
        path = fsio.join(out_dir, table, f"part-{pipeline}-{commit_id}.parquet")
        fsio.write_bytes_atomic(path, _parquet_bytes(data, compression))
        files[table] = path
        counts[table] = data.num_rows
    manifest = {
        "commit_id": commit_id,
        "pipeline": pipeline,
        "run_id": run_id,
        "items": keys,
        "files": {t: p.replace("\\", "/").rsplit("/", 1)[-1] for t, p in files.items()},
        "rows": counts,
        "created_at": utc_now(),
    }
    fsio.write_bytes_atomic(
        M.manifest_path(out_dir, pipeline, commit_id),
        json.dumps(manifest, indent=1, sort_keys=True).encode(),
    )
    return files, counts


def commit_items(out_dir: str, pipeline: str, run_id: str, items: list[ItemResult],
                 compression: str = "zstd") -> CommitInfo:
    """Validate and atomically commit a batch of items (see module docstring).

    Idempotent per item key: keys already committed (a retried or speculative bundle that batched
    differently) are skipped, and a key given twice in one batch is committed once (the first)."""
    if not items:
        raise ValueError("commit_items needs at least one item")
    already = done_keys(out_dir, pipeline)
    first: dict[str, ItemResult] = {}
    for it in items:
        if it.key in first:
            log.warning("item key %r of %s given twice in one commit; keeping the first", it.key, pipeline)
            continue
        first[it.key] = it
    skipped = sorted(k for k in first if k in already)
    todo = [first[k] for k in sorted(first) if k not in already]
    if skipped:
        log.info("%d item(s) of %s already committed, not written again", len(skipped), pipeline)
    if not todo:
        return CommitInfo(stable_hash(pipeline, sorted(first)), 0, {}, {}, skipped)
    keys = [it.key for it in todo]
    commit_id = stable_hash(pipeline, keys)
    by_table: dict[str, list[dict]] = {}
    for it in todo:
        for table, rows in it.rows.items():
            valid, failures = split_valid(table, rows, pipeline=pipeline, item_key=it.key, run_id=run_id)
            by_table.setdefault(table, []).extend(valid)
            if failures:
                by_table.setdefault("failures", []).extend(failures)
    # schema failures of failure rows themselves would loop; failure rows are built by us
    tables = {t: record_type(t).to_table(rows) for t, rows in sorted(by_table.items()) if rows}
    files, counts = write_commit(out_dir, pipeline, run_id, commit_id, keys, tables, compression)
    return CommitInfo(commit_id, len(keys), counts, files, skipped)


@dataclass
class RecoveryReport:
    done_keys: set[str]
    n_commits: int
    orphans_deleted: list[str]
    duplicate_keys: list[str]
    manifests_dropped: list[str] = field(default_factory=list)
    temp_files_deleted: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)


def read_manifests(out_dir: str, pipeline: str) -> list[dict]:
    """Every manifest file of ``pipeline``, validated (not resolved: see :func:`manifests.resolve`)."""
    return M.read_manifests(out_dir, pipeline)


_SHARD_ID = re.compile(r"c?[0-9a-f]{16}\.parquet")


def is_shard_of(name: str, pipeline: str) -> bool:
    """``part-<pipeline>-<commit id>.parquet`` exactly (``part-swe-...`` is not a shard of ``swe-curate``)."""
    prefix = f"part-{pipeline}-"
    return name.startswith(prefix) and bool(_SHARD_ID.fullmatch(name[len(prefix):]))


def _stale_temp_files(out_dir: str, pipeline: str) -> list[str]:
    """Temp files of atomic writes (``.<final name>.<random>.tmp``) that a killed writer of ``pipeline`` left."""
    out = []
    for table in TABLES:
        for path in fsio.glob(fsio.join(out_dir, table, f".*{fsio.TMP_SUFFIX}")):
            final = path.replace("\\", "/").rsplit("/", 1)[-1][1:].split(".parquet.", 1)[0] + ".parquet"
            if is_shard_of(final, pipeline) or final == SCHEMA_FILE:
                out.append(path)
    out += fsio.glob(fsio.join(out_dir, M.COMMITS_DIR, pipeline, f".*{fsio.TMP_SUFFIX}"))
    return sorted(out)


def recover(out_dir: str, pipeline: str, *, purpose: str | None = None) -> RecoveryReport:
    """Start (or resume) writing ``pipeline`` into ``out_dir``: take the store's writer lock for this process
    (:mod:`pipelines.store.lock`; refused with the holder named while another writer runs), then return the
    finished item keys and remove what killed runs left behind. Only with the lock held is it safe to
    delete: no other live writer can be between its shards and its manifest."""
    from pipelines.store import lock

    lock.acquire(out_dir, purpose or f"{pipeline} run")
    return recover_locked(out_dir, pipeline)


def recover_locked(out_dir: str, pipeline: str) -> RecoveryReport:
    """:func:`recover` for a caller that already holds the writer lock."""
    res = M.committed(out_dir, pipeline)
    dropped = []
    if res.superseded:
        log.warning("removing %d commit manifest(s) of %s merged by an interrupted compaction",
                    len(res.superseded), pipeline)
    if res.conflicting:
        log.warning("removing %d commit manifest(s) of %s that repeat item keys of earlier commits (their other "
                    "items will be redone)", len(res.conflicting), pipeline)
    for m in res.superseded + res.conflicting:
        dropped.append(M.manifest_path(out_dir, pipeline, m["commit_id"]))
    fsio.delete(dropped)
    present = {}
    for table in TABLES:
        for path in fsio.glob(fsio.join(out_dir, table, f"part-{pipeline}-*.parquet")):
            name = path.replace("\\", "/").rsplit("/", 1)[-1]
            if is_shard_of(name, pipeline):
                present[f"{table}/{name}"] = path
    # a commit whose shard is gone (outside damage, or a writer that outlived its lock): its rows cannot be
    # read, so its items must not count as done; it is moved aside (kept, not deleted) and redone
    broken = [m for m in res.live if any(f"{t}/{n}" not in present for t, n in m["files"].items())]
    quarantined = []
    if broken:
        quarantined = quarantine_commits(out_dir, pipeline, broken)
        log.warning("moved %d commit(s) of %s whose shards are missing to %s/ (their items will be redone): %s",
                    len(broken), pipeline, QUARANTINE_DIR, ", ".join(m["commit_id"] for m in broken))
        ids = {m["commit_id"] for m in broken}
        res.live = [m for m in res.live if m["commit_id"] not in ids]
        present = {k: v for k, v in present.items() if v not in quarantined}
    referenced = {f"{t}/{name}" for m in res.live for t, name in m["files"].items()}
    orphans = [path for rel, path in present.items() if rel not in referenced]
    if orphans:
        log.warning("removing %d uncommitted shard(s) left by an interrupted run of %s", len(orphans), pipeline)
        fsio.delete(orphans)
    temps = _stale_temp_files(out_dir, pipeline)
    if temps:
        log.warning("removing %d temp file(s) left by a killed writer of %s", len(temps), pipeline)
        fsio.delete(temps)
    dup = sorted({k for m in res.conflicting for k in m["items"]} & res.done_keys)
    return RecoveryReport(res.done_keys, len(res.live), orphans, dup, dropped, temps, quarantined)


QUARANTINE_DIR = "_quarantine"


def quarantine_commits(out_dir: str, pipeline: str, manifests: list[dict]) -> list[str]:
    """Move each commit (its manifest first: the commit point, then its shards that exist) to
    ``_quarantine/<time>/`` keeping their paths. Caller holds the writer lock. Returns the moved paths."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = []
    for m in manifests:
        rels = [f"{M.COMMITS_DIR}/{pipeline}/{m['commit_id']}.json"] + [f"{t}/{n}" for t, n in sorted(m["files"].items())]
        for rel in rels:
            src = fsio.join(out_dir, rel)
            if fsio.exists(src):
                fsio.rename(src, fsio.join(out_dir, QUARANTINE_DIR, stamp, rel))
                moved.append(src)
    return moved


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
