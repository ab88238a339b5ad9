"""Compaction: many small committed shards of a pipeline -> one shard per table, without losing or
duplicating a row, and safe to kill at any point.

Every commit writes one small shard per table, so a long run leaves hundreds of files and each query reads
every footer. ``compact`` merges the shards of all manifests of a pipeline (in groups of at most
``max_rows`` rows per table file):

1. write the merged shards ``part-<pipeline>-c<id>.parquet`` (each atomically);
2. write the merged manifest (items and files of all of them, ``compacted_from`` = their commit ids): this
   is the commit point;
3. delete the old manifests, then the old shards.

It holds the store's writer lock (:mod:`pipelines.store.lock`): refused, with the holder named, while a
pipeline writes to the same folder. Readers never see a half-done compaction: they read the files that
live manifests name, and a manifest named in another's ``compacted_from`` is not live
(:mod:`pipelines.store.manifests`), so the merged rows appear at step 2 all at once, in place of the old
ones. A kill before 2 leaves new shards that no manifest names: :func:`pipelines.store.commit.recover`
deletes them as orphans. A kill after 2 leaves superseded manifests (and maybe their shards): ``recover``
removes them. A shard that cannot be read stops the compaction of its group only, with its name (the
other groups are compacted); ``crucible store check --quarantine`` moves it aside.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.store import fsio, lock
from pipelines.store import manifests as M
from pipelines.store.commit import (
    COMMITS_DIR,
    _parquet_bytes,
    recover_locked,
    stable_hash,
    utc_now,
)
from pipelines.store.records import record_type

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


def _read_shard(path: str, table: str) -> pa.Table:
    schema = record_type(table).arrow_schema
    try:
        t = pq.read_table(path) if fsio.is_local(path) else pq.read_table(pa.BufferReader(fsio.read_bytes(path)))
    except Exception as exc:  # noqa: BLE001 - any decode error: name the file
        raise UnreadableShard(f"{path} (table {table}): not a readable Parquet file ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:200]})") from None
    # shards written by an older schema version: add missing columns as nulls, keep the current order
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(len(t), f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def compact(out_dir: str, pipeline: str, *, max_rows: int = 200_000, compression: str = "zstd") -> CompactReport:
    """Merge the committed shards of ``pipeline`` under ``out_dir`` (see module docstring)."""
    with lock.writer(out_dir, f"crucible compact of {pipeline}"):
        return _compact(out_dir, pipeline, max_rows, compression)


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
        files, counts = {}, {}
        tables = sorted({t for m in group for t in m["files"]})
        try:
            merged_tables = {table: pa.concat_tables([_read_shard(fsio.join(out_dir, table, m["files"][table]), table)
                                                      for m in group if table in m["files"]]) for table in tables}
        except UnreadableShard as exc:
            log.warning("not compacting %d commits of %s: %s", len(group), pipeline, exc)
            rep.skipped_groups.append(str(exc))
            continue
        for table, merged in merged_tables.items():
            name = f"part-{pipeline}-{commit_id}.parquet"
            fsio.write_bytes_atomic(fsio.join(out_dir, table, name), _parquet_bytes(merged, compression))
            files[table], counts[table] = name, merged.num_rows
        manifest = {"commit_id": commit_id, "pipeline": pipeline,
                    "run_id": ",".join(sorted({m.get("run_id") or "" for m in group})),
                    "items": sorted({k for m in group for k in m["items"]}), "files": files, "rows": counts,
                    "created_at": utc_now(), "compacted_from": ids}
        fsio.write_bytes_atomic(M.manifest_path(out_dir, pipeline, commit_id),
                                json.dumps(manifest, indent=1, sort_keys=True).encode())
        drop_superseded(out_dir, pipeline, group)
        log.info("compacted %d commits of %s into %s (%s)", len(group), pipeline, commit_id,
                 ", ".join(f"{t}: {n} rows" for t, n in counts.items()))
    after = M.committed(out_dir, pipeline).live
    rep.manifests_after, rep.files_after = len(after), sum(len(m["files"]) for m in after)
    for m in after:
        for t, n in (m.get("rows") or {}).items():
            rep.rows[t] = rep.rows.get(t, 0) + n
    return rep


def drop_superseded(out_dir: str, pipeline: str, manifests: list[dict]) -> None:
    """Delete the manifests, then the shards, of commits merged into another one (manifests first: a
    reader that listed them a moment ago still finds their shards)."""
    paths = [fsio.join(out_dir, COMMITS_DIR, pipeline, f"{m['commit_id']}.json") for m in manifests]
    fsio.delete([p for p in paths if fsio.exists(p)])
    shards = [fsio.join(out_dir, t, name) for m in manifests for t, name in m["files"].items()]
    fsio.delete([p for p in shards if fsio.exists(p)])
