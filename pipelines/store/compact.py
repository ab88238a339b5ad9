"""Compaction: many small committed shards of a pipeline -> one shard per table, without losing or
duplicating a row, and safe to kill at any point.

Every commit writes one small shard per table, so a long run leaves hundreds of files and each query reads
every footer. ``compact`` merges the shards of all manifests of a pipeline (in groups of at most
``max_rows`` rows per table file):

1. check each input shard as ``store check`` does (size, sha256, rows, data): a group holding a bad one is
   left as it is, with the file named (an edited shard is never merged, which would hide the edit);
2. write the merged shards ``part-<pipeline>-c<id>.parquet`` (each atomically, with checksums and the
   commit in their footers, by the one commit writer :func:`crucible.pipelines.store.commit.write_commit`);
3. write the merged manifest (items and files of all of them, ``compacted_from`` = their commit ids): this
   is the commit point;
4. delete the old manifests, then the old shards, each only once proven merged
   (:func:`crucible.pipelines.store.integrity.proven_merged`: named in ``compacted_from``, items and tables held,
   merged shards verified by sha256). This step (or ``recover`` finishing it) is the only deletion of
   shards anywhere, and it deletes copies only.

It holds the store's writer lock (:mod:`crucible.pipelines.store.lock`): refused, with the holder named, while a
pipeline writes to the same folder. Readers never see a half-done compaction: they read the files that
live manifests name, and a manifest named in another's ``compacted_from`` is not live
(:mod:`crucible.pipelines.store.manifests`), so the merged rows appear at step 3 all at once, in place of the old
ones. A kill before 3 leaves new shards that no manifest names: :func:`crucible.pipelines.store.commit.recover`
moves them to ``_quarantine/`` (copies of live rows). A kill after 3 leaves superseded manifests (and maybe
their shards): ``recover`` deletes them once proven merged, else moves them aside.

On an object store (``s3://``, ``gs://``) writers take no lock (:mod:`crucible.pipelines.store.lockfree`), so a
compaction there only merges and marks: steps 1 to 3, and the inputs stay where they are, superseded (never
read again: readers skip a manifest a live compaction names). Nothing is deleted; the bucket's lifecycle
rules may expire what ``crucible store check`` lists as superseded, once no reader of an older listing is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from crucible.pipelines.store import fsio, integrity, lock
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import recover_locked, stable_hash, write_commit
from crucible.pipelines.store.records import record_type

log = logging.getLogger(__name__)


@dataclass
class CompactReport:
    pipeline: str
    manifests_before: int = 0
    manifests_after: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    skipped_groups: list[str] = field(default_factory=list)  # why a group was left as it is


def _groups(manifests: list[dict], max_rows: int) -> list[list[dict]]:
    """Consecutive manifests (oldest first) in groups whose largest table stays under ``max_rows``."""
    out, cur, size = [], [], {}
    for m in sorted(manifests, key=lambda m: (m.get("created_at") or "", m["commit_id"])):
        rows = m.get("rows") or {}
        if cur and any(size.get(t, 0) + n > max_rows for t, n in rows.items()):
            out.append(cur)
            cur, size = [], {}
        cur.append(m)
        for t, n in rows.items():
            size[t] = size.get(t, 0) + n
    if cur:
        out.append(cur)
    return out


class UnreadableShard(M.StoreError):
    pass


def _read_shard(out_dir: str, m: dict, table: str) -> pa.Table:
    """The rows of ``m``'s shard in ``table``, checked first as ``store check`` does (size, sha256, rows): an
    edited shard is never merged (its damage would be hidden in the merged file)."""
    path = fsio.join(out_dir, table, m["files"][table])
    _, err = integrity.verify_shard(out_dir, m, table, deep=True)
    if err:
        raise UnreadableShard(f"{path} (table {table}, commit {m['pipeline']}/{m['commit_id']}): {err}")
    schema = record_type(table).arrow_schema
    t = pq.read_table(path) if fsio.is_local(path) else pq.read_table(pa.BufferReader(fsio.read_bytes(path)))
    # shards written by an older schema version: add missing columns as nulls, keep the current order
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(len(t), f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def compact(out_dir: str, pipeline: str, *, max_rows: int = 200_000, compression: str = "zstd") -> CompactReport:
    """Merge the committed shards of ``pipeline`` under ``out_dir`` (see module docstring)."""
    M.check_pipeline_name(pipeline, "--pipeline")
    if type(max_rows) is not int or max_rows < 1:
        raise M.StoreError(f"--max-rows {max_rows!r}: must be a whole number of at least 1 (rows per merged file); "
                           "e.g. --max-rows 200000")
    with lock.writer(out_dir, f"crucible compact of {pipeline}"):
        rep = _compact(out_dir, pipeline, max_rows, compression)

        refresh_catalog(out_dir)  # a writer: crucible.duckdb and README.md list the merged shards (readers never do)
        return rep


def _compact(out_dir: str, pipeline: str, max_rows: int, compression: str) -> CompactReport:
    recover_locked(out_dir, pipeline)  # finish any interrupted compaction / commit first
    manifests = M.committed(out_dir, pipeline).live
    rep = CompactReport(pipeline, manifests_before=len(manifests),
                        files_before=sum(len(m["files"]) for m in manifests))
    for group in _groups(manifests, max_rows):
        if len(group) < 2:
            continue
        ids = sorted(m["commit_id"] for m in group)
        commit_id = "c" + stable_hash(pipeline, ids)
        tables = sorted({t for m in group for t in m["files"]})
        try:
            merged_tables = {table: pa.concat_tables([_read_shard(out_dir, m, table) for m in group
                                                      if table in m["files"]]) for table in tables}
        except UnreadableShard as exc:
            log.warning("not compacting %d commits of %s: %s", len(group), pipeline, exc)
            rep.skipped_groups.append(str(exc))
            continue
        run_id = ",".join(sorted({m.get("run_id") or "" for m in group}))
        items = sorted({k for m in group for k in m["items"]})
        _, counts = write_commit(out_dir, pipeline, run_id, commit_id, items, merged_tables, compression,
                                 compacted_from=ids)
        if fsio.is_local(out_dir):  # an object store: merge and mark only (lockfree.py): nothing is deleted
            drop_superseded(out_dir, pipeline, group)
        log.info("compacted %d commits of %s into %s (%s)", len(group), pipeline, commit_id,
                 ", ".join(f"{t}: {n} rows" for t, n in counts.items()))
    after = M.committed(out_dir, pipeline).live
    rep.manifests_after, rep.files_after = len(after), sum(len(m["files"]) for m in after)
    for m in after:
        for t, n in (m.get("rows") or {}).items():
            rep.rows[t] = rep.rows.get(t, 0) + n
    return rep


def drop_superseded(out_dir: str, pipeline: str, manifests: list[dict]) -> list[str]:
    """Delete the manifests, then the shards, of commits merged into a live compaction, each only once proven
    merged (:func:`integrity.proven_merged`: the merged shards verify by sha256); manifests first, so a reader
    that listed them a moment ago still finds their shards. An unproven one stays (superseded, never read):
    the next ``recover`` moves it to ``_quarantine/``. Returns the deleted paths."""
    res = M.committed(out_dir, pipeline)
    live = {m["commit_id"]: m for m in res.live}
    seen: dict = {}
    proven = []
    for m in manifests:
        merged = [c for c in live.values() if m["commit_id"] in (c.get("compacted_from") or ())]
        why = integrity.proven_merged(out_dir, m, merged[0], seen) if merged else "no live compaction names it"
        if why is None:
            proven.append(m)
        else:
            log.warning("keeping commit %s/%s: %s", pipeline, m["commit_id"], why)
    paths = [M.manifest_path(out_dir, pipeline, m["commit_id"]) for m in proven]
    paths = [p for p in paths if fsio.exists(p)]
    fsio.delete(paths)
    shards = [p for p in (fsio.join(out_dir, t, name) for m in proven for t, name in m["files"].items())
              if fsio.exists(p)]
    fsio.delete(shards)
    return paths + shards
