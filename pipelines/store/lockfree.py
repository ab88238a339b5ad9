"""Lock-free commits on object stores (``s3://``, ``gs://``): many writers, retried bundles, no lock.

An object store has no ``flock``, and the runs of a distributed runner (Flink, Dataflow) commit from many
workers at once, each bundle possibly more than once (Beam retries failed bundles). The protocol holds with
no lock at all, because nothing is ever overwritten and readers decide deterministically:

1. **Names from content.** A commit's id is the hash of its pipeline and sorted item keys
   (:func:`crucible.pipelines.store.commit.stable_hash`): two attempts of one bundle name the same shard files and
   the same manifest ``_commits/<pipeline>/<commit_id>.json``.
2. **Create-if-absent, everything.** Each shard and then the manifest is written with
   :func:`crucible.pipelines.store.fsio.put_if_absent` (an S3 conditional put ``If-None-Match: *``; write-then-verify
   where a store has none). An attempt that finds a shard of its commit already there *adopts* it (its footer
   names the same commit and items: another attempt's rows for the same keys) and names it, with its size and
   sha256, in its manifest; one that finds the manifest there stops: the batch is committed. A retried bundle
   writes nothing twice, and no file is ever replaced under a reader.
3. **Check, then settle.** The writer checks which keys live manifests hold right before it encodes and puts
   its rows (one listing of the manifests); the manifest's ``created_at`` is stamped right before its put;
   a moment after it landed (:func:`settle_pause`) the writer resolves again (a second listing), and keys
   its manifest lost to an overlapping commit (two attempts that batched differently, checking at the same
   moment) are committed anew (:func:`missing_after`), up to :data:`SETTLE_ROUNDS` times. What is left after
   that (a race that a writer whose clock runs behind can also win against an earlier manifest) is a
   conflicting manifest whose other keys are not done: the next run redoes them; nothing is read twice.
4. **Readers resolve.** :func:`crucible.pipelines.store.manifests.resolve` reads each key from exactly one manifest:
   compactions first (newest first), then commits oldest first (``created_at`` in microseconds here, then the
   commit id: a total order on the manifests alone, no clock of the reader's). A manifest that repeats a key
   already taken is *conflicting*: never read, never deleted, listed by ``crucible store check``.
5. **Recovery and compaction never remove a live writer's files.** :func:`clear_leftovers` (the start of a
   run) moves to ``_quarantine/`` only a commit whose shard is gone (damage: its items are redone) and shards
   no manifest names that are older than :data:`GRACE_S` (a live writer puts its manifest seconds after its
   shards); superseded and conflicting manifests stay where they are. ``crucible compact`` merges and marks
   (the merged manifest's ``compacted_from``) and deletes nothing on an object store.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from crucible.pipelines.store import fsio, integrity
from crucible.pipelines.store import manifests as M

log = logging.getLogger(__name__)

GRACE_S = 24 * 3600.0  # an unreferenced shard younger than this may be a live writer's commit in flight
SETTLE_ROUNDS = 5  # re-commits of keys lost to overlapping commits before giving up (a rerun redoes them)
SETTLE_PAUSE = (3.0, 0.25, 5.0)  # the settle check waits 3x the manifest put's own time, within [0.25 s, 5 s]


def utc_now_us() -> str:
    """``created_at`` of a manifest on an object store: microseconds, so concurrent commits rarely tie."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class AdoptError(M.StoreError):
    """A file of this commit's name is there but is not another attempt of this commit."""


def _adopt(path: str, commit: dict, table: str) -> tuple[bytes, int]:
    """The bytes and rows of the shard another attempt of ``commit`` put at ``path`` first."""
    blob = fsio.read_bytes(path)
    try:
        meta = integrity.commit_metadata_of(blob)
        rows = pq.read_metadata(pa.BufferReader(blob)).num_rows
    except Exception as exc:  # noqa: BLE001 - any decode error: the file is damaged
        raise AdoptError(f"{path}: a file of this commit's shard name is there but unreadable ({type(exc).__name__}); "
                         "`crucible store check --quarantine` moves it aside, then rerun") from None
    if not meta or meta.get("commit_id") != commit["commit_id"] or meta.get("items") != commit["items"] or \
            meta.get("table") != table:
        raise AdoptError(f"{path}: a shard of this name is there but its footer names another commit; `crucible "
                         "store check` names it")
    return blob, rows


def write_commit(out_dir: str, pipeline: str, commit: dict, tables: dict[str, pa.Table],
                 compression: str) -> tuple[dict[str, str], dict[str, int]]:
    """Write one commit create-if-absent (see module docstring): shards (or adopt another attempt's), then the
    manifest. Returns (paths, row counts) of the commit as it stands in the store afterwards."""
    cid = commit["commit_id"]
    files, counts, sums = {}, {}, {}
    for table, data in sorted(tables.items()):
        path = fsio.join(out_dir, table, M.shard_name(pipeline, cid))
        blob = integrity.shard_bytes(data, compression, {**commit, "table": table})
        rows = data.num_rows
        if not fsio.put_if_absent(path, blob):
            blob, rows = _adopt(path, commit, table)
            log.info("adopted %s: another attempt of commit %s/%s wrote it first", path, pipeline, cid)
        files[table], counts[table], sums[table] = path, rows, integrity.digest(blob)
    # created_at is stamped right before the manifest's put (not when the shards were encoded): a manifest that
    # sorts before ours can then land after ours only within one small put's time (see settle_pause)
    manifest = {**{k: v for k, v in commit.items() if k != "tables"}, "created_at": utc_now_us(),
                "files": {t: M.shard_name(pipeline, cid) for t in files}, "rows": counts, "checksums": sums}
    mpath = M.manifest_path(out_dir, pipeline, cid)
    t0 = time.monotonic()
    made = fsio.put_if_absent(mpath, json.dumps(manifest, indent=1, sort_keys=True).encode())
    _LAST_PUT_S[0] = time.monotonic() - t0
    if made:
        return files, counts
    there = M.read_manifest(mpath, pipeline)  # another attempt committed this batch first: it stands
    log.info("commit %s/%s was committed by another attempt; its manifest stands", pipeline, cid)
    if there is None:
        return files, counts
    return ({t: fsio.join(out_dir, t, n) for t, n in there["files"].items()}, dict(there.get("rows") or {}))


_LAST_PUT_S = [0.0]  # how long this process's last manifest put took (the settle pause scales with it)


_pause = time.sleep


def settle_pause() -> float:
    """Seconds to wait after our manifest landed before the settle check. A manifest stamped before ours that
    lands after the check would make ours conflicting unseen; it had to take longer than this pause plus our
    own put for its put, so the pause scales with how slow puts are right now (a loaded server)."""
    factor, low, high = SETTLE_PAUSE
    return min(high, max(low, factor * _LAST_PUT_S[0]))


def missing_after(out_dir: str, pipeline: str, keys: list[str]) -> list[str]:
    """Keys of a commit just written that no live manifest holds (it lost them to an overlapping commit),
    checked after :func:`settle_pause`."""
    _pause(settle_pause())
    return sorted(set(keys) - M.committed(out_dir, pipeline).done_keys)


def age_s(path: str) -> float | None:
    st = fsio.stat(path)
    return None if st is None or not st[1] else time.time() - st[1] / 1e9


def in_flight(path: str) -> bool:
    """An unreferenced shard on an object store young enough to be a live writer's commit in flight."""
    age = age_s(path)
    return age is None or age < GRACE_S


def clear_leftovers(out_dir: str, pipeline: str, shards: dict[str, str]) -> tuple[M.Resolution, list, list]:
    """The start of a run on an object store: move aside what is damage for certain, nothing a live writer may
    still finish. ``shards``: this pipeline's shard files ``{table/name: path}``. Returns (resolution without
    the broken commits, moved paths, orphans moved)."""
    res = M.committed(out_dir, pipeline)
    broken = [m for m in res.live if any(f"{t}/{n}" not in shards for t, n in m["files"].items())]
    entries = [(p, {"why": "a shard it names is missing; its items are redone", "pipeline": pipeline,
                    "commit_id": m["commit_id"]})
               for m in broken for p in [M.manifest_path(out_dir, pipeline, m["commit_id"])] +
               [fsio.join(out_dir, t, n) for t, n in sorted(m["files"].items())]]
    named = {f"{t}/{n}" for m in res.live + res.superseded + res.conflicting for t, n in m["files"].items()}
    orphans = [p for rel, p in sorted(shards.items()) if rel not in named and not in_flight(p)]
    entries += [(p, {"why": f"no manifest names it and it is older than {GRACE_S:.0f} s (a writer that died; "
                            "`crucible store restore` rebuilds a lost manifest)", "pipeline": pipeline})
                for p in orphans]
    moved = integrity.move_aside(out_dir, entries, by=f"recover of {pipeline}") if entries else []
    if moved:
        log.warning("moved %d file(s) of %s to %s/ (nothing deleted): %d commit(s) whose shard is missing, %d "
                    "shard(s) no manifest names", len(moved), pipeline, integrity.QUARANTINE_DIR, len(broken),
                    len(orphans))
    ids = {m["commit_id"] for m in broken}
    res.live = [m for m in res.live if m["commit_id"] not in ids]
    return res, moved, orphans
