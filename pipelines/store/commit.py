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
them, see :mod:`crucible.pipelines.store.manifests`).

Each shard carries its commit (id, pipeline, run, item keys, tables) in its Parquet footer and the
manifest carries each shard's size and sha256 (:mod:`crucible.pipelines.store.integrity`): damage is detected
by ``crucible store check`` and a lost manifest is rebuilt by ``crucible store restore``.

On start, :func:`recover` takes the store's writer lock (:mod:`crucible.pipelines.store.lock`), reads the
manifests (their item keys are finished work, skipped on rerun) and, safe under the lock, clears away
what killed runs left. It deletes only stale temp files of atomic writes and the inputs of a
compaction proven merged (sha256); shards of this pipeline that no live manifest names, commits whose
shard is missing, and manifests repeating keys of earlier commits are *moved* to ``_quarantine/`` with
their evidence, never deleted. Readers never need this: they read only the files live manifests name.

On an object store (``s3://``, ``gs://``) there is no lock: many writers commit at once, everything is written
create-if-absent and ``recover`` moves aside only what is damage for certain (:mod:`crucible.pipelines.store.lockfree`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from crucible.pipelines.store import fsio, integrity, lock, lockfree
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.progress import Progress  # noqa: F401 - re-exported: callers import it from here
from crucible.pipelines.store.records import TABLES, record_type

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


def schema_bytes(schema: pa.Schema) -> bytes:
    """A Parquet file with the schema and zero row groups (``datasets`` rejects a 0-row row group)."""
    buf = io.BytesIO()
    pq.ParquetWriter(buf, schema, compression="zstd").close()
    return buf.getvalue()


def ensure_layout(out_dir: str) -> None:
    """Create every table folder with its 0-row schema file (idempotent). Writers only: readers never
    create anything (see :func:`crucible.pipelines.store.manifests.require_store`)."""
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
                 tables: dict[str, pa.Table], compression: str = "zstd",
                 compacted_from: list[str] | None = None) -> tuple[dict[str, str], dict[str, int]]:
    """Write one commit: each table's shard (atomic), then the manifest naming them (the commit point).
    ``tables`` are already valid rows in their record type's arrow schema. Each shard carries the commit in
    its footer with the sha256 of its data (:func:`integrity.shard_bytes`: a lost manifest can be rebuilt from
    its shards), the manifest each shard's size and sha256. Returns (paths, row counts)."""
    M.check_pipeline_name(pipeline)
    local = fsio.is_local(out_dir)
    commit = {"commit_id": commit_id, "pipeline": pipeline, "run_id": run_id, "items": keys,
              "created_at": utc_now() if local else lockfree.utc_now_us(), "tables": sorted(tables)}
    if compacted_from is not None:
        commit["compacted_from"] = compacted_from
    if not local:  # an object store: create-if-absent, no lock (crucible.pipelines.store.lockfree)
        return lockfree.write_commit(out_dir, pipeline, commit, tables, compression)
    files, counts, sums = {}, {}, {}
    for table, data in sorted(tables.items()):
        path = fsio.join(out_dir, table, M.shard_name(pipeline, commit_id))
        blob = integrity.shard_bytes(data, compression, {**commit, "table": table})
        fsio.write_bytes_atomic(path, blob)
        files[table], counts[table], sums[table] = path, data.num_rows, integrity.digest(blob)
    manifest = {**{k: v for k, v in commit.items() if k != "tables"},
                "files": {t: M.shard_name(pipeline, commit_id) for t in files}, "rows": counts, "checksums": sums}
    fsio.write_bytes_atomic(
        M.manifest_path(out_dir, pipeline, commit_id),
        json.dumps(manifest, indent=1, sort_keys=True).encode(),
    )
    return files, counts


def _tables(todo: list[ItemResult], pipeline: str, run_id: str) -> dict[str, pa.Table]:
    """The valid rows of ``todo`` per table in their arrow schema; invalid rows become failure rows."""
    by_table: dict[str, list[dict]] = {}
    for it in todo:
        for table, rows in it.rows.items():
            valid, failures = split_valid(table, rows, pipeline=pipeline, item_key=it.key, run_id=run_id)
            by_table.setdefault(table, []).extend(valid)
            if failures:
                by_table.setdefault("failures", []).extend(failures)
    # schema failures of failure rows themselves would loop; failure rows are built by us
    return {t: record_type(t).to_table(rows) for t, rows in sorted(by_table.items()) if rows}


def commit_items(out_dir: str, pipeline: str, run_id: str, items: list[ItemResult],
                 compression: str = "zstd") -> CommitInfo:
    """Validate and atomically commit a batch of items (see module docstring).

    Idempotent per item key: keys already committed (a retried or speculative bundle that batched
    differently) are skipped, and a key given twice in one batch is committed once (the first). On an object
    store, keys the manifest lost to an overlapping commit are committed anew (:mod:`crucible.pipelines.store.lockfree`)."""
    if not items:
        raise ValueError("commit_items needs at least one item")
    first: dict[str, ItemResult] = {}
    for it in items:
        if it.key in first:
            log.warning("item key %r of %s given twice in one commit; keeping the first", it.key, pipeline)
            continue
        first[it.key] = it
    info = CommitInfo(stable_hash(pipeline, sorted(first)), 0, {}, {})
    rounds = 1 if fsio.is_local(out_dir) else lockfree.SETTLE_ROUNDS
    pending = dict(first)
    for _ in range(rounds):
        already = done_keys(out_dir, pipeline)
        info.skipped_keys += sorted(k for k in pending if k in already and k not in info.skipped_keys)
        todo = [pending[k] for k in sorted(pending) if k not in already]
        if not todo:
            break
        tables = _tables(todo, pipeline, run_id)
        keys = [it.key for it in todo]
        info.commit_id = stable_hash(pipeline, keys)
        files, counts = write_commit(out_dir, pipeline, run_id, info.commit_id, keys, tables, compression)
        info.n_items += len(keys)
        info.files.update(files)
        for t, n in counts.items():
            info.rows[t] = info.rows.get(t, 0) + n
        if fsio.is_local(out_dir):
            break
        lost = lockfree.missing_after(out_dir, pipeline, keys)
        if not lost:
            break
        log.warning("%d key(s) of %s lost to an overlapping commit; committing them anew", len(lost), pipeline)
        pending = {k: first[k] for k in lost}
        info.n_items -= len(lost)
    if info.skipped_keys:
        log.info("%d item(s) of %s already committed, not written again", len(info.skipped_keys), pipeline)
    return info


@dataclass
class RecoveryReport:
    done_keys: set[str]
    n_commits: int
    orphans: list[str]  # shards no manifest names, moved to _quarantine/ (restorable: `crucible store restore`)
    duplicate_keys: list[str]
    merged_removed: list[str] = field(default_factory=list)  # inputs of a compaction proven merged: deleted
    temp_files_deleted: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # every path moved aside (orphans included)


def read_manifests(out_dir: str, pipeline: str) -> list[dict]:
    """Every manifest file of ``pipeline``, validated (not resolved: see :func:`manifests.resolve`)."""
    return M.read_manifests(out_dir, pipeline)


def is_shard_of(name: str, pipeline: str) -> bool:
    """``part-<pipeline>-<commit id>.parquet`` exactly (``part-swe-...`` is not a shard of ``swe-curate``)."""
    parsed = M.parse_shard_name(name)
    return parsed is not None and parsed[0] == pipeline


def _stale_temp_files(out_dir: str, pipeline: str) -> list[str]:
    """Temp files of atomic writes (``.<final name>.<random>.tmp``) that a killed writer of ``pipeline`` left."""
    out = []
    for table in TABLES:
        for path in M.glob_in(out_dir, table, f".*{fsio.TMP_SUFFIX}"):
            final = path.replace("\\", "/").rsplit("/", 1)[-1][1:].split(".parquet.", 1)[0] + ".parquet"
            if is_shard_of(final, pipeline) or final == SCHEMA_FILE:
                out.append(path)
    out += M.glob_in(out_dir, M.COMMITS_DIR, pipeline, f".*{fsio.TMP_SUFFIX}")
    return sorted(out)


def recover(out_dir: str, pipeline: str, *, purpose: str | None = None) -> RecoveryReport:
    """Start (or resume) writing ``pipeline`` into ``out_dir``: take the store's writer lock for this process
    (:mod:`crucible.pipelines.store.lock`; refused with the holder named while another writer runs), then return the
    finished item keys and move aside what killed runs left behind. Only with the lock held is it safe to
    touch them: no other live writer can be between its shards and its manifest."""

    M.check_pipeline_name(pipeline)
    if fsio.is_local(out_dir):  # an object store takes no lock: its commits are lock-free (lockfree.py)
        lock.acquire(out_dir, purpose or f"{pipeline} run")
    return recover_locked(out_dir, pipeline)


def _recover_remote(out_dir: str, pipeline: str) -> RecoveryReport:
    """:func:`recover_locked` of an object store, where other writers may be committing right now: only what
    is damage for certain moves aside (:func:`lockfree.clear_leftovers`); nothing is deleted."""
    present = {rel: p for rel, p in M.shard_files(out_dir).items() if is_shard_of(rel.split("/", 1)[1], pipeline)}
    res, moved, orphans = lockfree.clear_leftovers(out_dir, pipeline, present)
    dup = sorted({k for m in res.conflicting for k in m["items"]} & res.done_keys)
    return RecoveryReport(res.done_keys, len(res.live), orphans, dup, [], [], moved)


def _commit_files(out_dir: str, pipeline: str, m: dict) -> list[str]:
    """The manifest (first: the commit point), then the shards of ``m``."""
    return [M.manifest_path(out_dir, pipeline, m["commit_id"])] + [fsio.join(out_dir, t, n)
                                                                    for t, n in sorted(m["files"].items())]


def _finish_compactions(out_dir: str, pipeline: str, res: M.Resolution) -> tuple[list[str], list[tuple]]:
    """Superseded commits: delete those proven merged into a live compaction (manifest first), else return
    them for quarantine as (manifest, why)."""
    by_id = {m["commit_id"]: m for m in res.live}
    removed, aside, seen = [], [], {}
    for m in res.superseded:
        merged = [by_id[c] for c in by_id if m["commit_id"] in (by_id[c].get("compacted_from") or ())]
        why = integrity.proven_merged(out_dir, m, merged[0], seen) if merged else "its compaction is not live"
        if why is None:
            paths = [p for p in _commit_files(out_dir, pipeline, m) if fsio.exists(p)]
            fsio.delete(paths)
            removed += paths
        else:
            aside.append((m, f"merged by an interrupted compaction, not proven merged: {why}"))
    if removed:
        log.info("removed %d file(s) of %s merged by a compaction (verified by sha256)", len(removed), pipeline)
    return removed, aside


def recover_locked(out_dir: str, pipeline: str) -> RecoveryReport:
    """:func:`recover` for a caller that already holds the writer lock. Deletes only stale temp files and the
    inputs of a compaction proven merged; everything else it clears away is moved to ``_quarantine/`` with
    its evidence (:func:`integrity.move_aside`). On an object store: :func:`_recover_remote`."""
    if not fsio.is_local(out_dir):
        return _recover_remote(out_dir, pipeline)
    res = M.committed(out_dir, pipeline)
    removed, aside = _finish_compactions(out_dir, pipeline, res)
    first = {k: m["commit_id"] for m in res.live for k in m["items"]}
    aside += [(m, "repeats item keys of commit " + ", ".join(sorted({first[k] for k in m["items"] if k in first})) +
               " (two attempts of one bundle); its other items are redone") for m in res.conflicting]
    present = {rel: p for rel, p in M.shard_files(out_dir).items() if is_shard_of(rel.split("/", 1)[1], pipeline)}
    # a commit whose shard is gone (outside damage, or a writer that outlived its lock): its rows cannot be
    # read, so its items must not count as done; it is moved aside (kept, not deleted) and redone
    broken = [m for m in res.live if any(f"{t}/{n}" not in present for t, n in m["files"].items())]
    aside += [(m, "a shard it names is missing; its items are redone") for m in broken]
    ids = {m["commit_id"] for m in broken}
    res.live = [m for m in res.live if m["commit_id"] not in ids]
    named = {f"{t}/{n}" for m, _ in aside for t, n in m["files"].items()}
    referenced = {f"{t}/{n}" for m in res.live for t, n in m["files"].items()} | named
    orphans = [p for rel, p in sorted(present.items()) if rel not in referenced]
    entries = [(p, {"why": why, "pipeline": pipeline, "commit_id": m["commit_id"]})
               for m, why in aside for p in _commit_files(out_dir, pipeline, m)]
    entries += [(p, {"why": "no manifest names it (a killed run, or a lost manifest: `crucible store restore` "
                            "rebuilds it)", "pipeline": pipeline}) for p in orphans]
    stamp = integrity.new_stamp()
    quarantined = integrity.move_aside(out_dir, entries, stamp, by=f"recover of {pipeline}")
    if quarantined:
        log.warning("moved %d file(s) of %s to %s/%s/ (nothing deleted; see its %s; `crucible store restore` "
                    "brings back what is intact): %d commit(s) not live, %d shard(s) no manifest names", len(quarantined),
                    pipeline, integrity.QUARANTINE_DIR, stamp, integrity.EVIDENCE_FILE, len(aside), len(orphans))
    temps = _stale_temp_files(out_dir, pipeline)
    if temps:
        log.warning("removing %d temp file(s) left by a killed writer of %s", len(temps), pipeline)
        fsio.delete(temps)
    dup = sorted({k for m in res.conflicting for k in m["items"]} & res.done_keys)
    return RecoveryReport(res.done_keys, len(res.live), orphans, dup, removed, temps, quarantined)


QUARANTINE_DIR = integrity.QUARANTINE_DIR


def quarantine_commits(out_dir: str, pipeline: str, manifests: list[tuple[dict, str]], by: str = "") -> list[str]:
    """Move each ``(manifest, why)`` commit (its manifest first: the commit point, then its shards that exist)
    to ``_quarantine/<time>-<id>/`` keeping their paths, with the evidence. Caller holds the writer lock.
    Returns the moved paths (relative to the store)."""
    entries = [(p, {"why": why, "pipeline": pipeline, "commit_id": m["commit_id"]})
               for m, why in manifests for p in _commit_files(out_dir, pipeline, m)]
    return integrity.move_aside(out_dir, entries, by=by)
