"""Readers of a store on object storage: a local, read-only mirror of its committed files.

DuckDB reads local files (its ``httpfs`` extension is not installed, and the read-only lock-down allows
listed local files only), so every reader of an ``s3://`` or ``gs://`` store (``crucible stats``, ``query``,
``report``, ``export``, ``view``) reads a mirror under ``<cache>/store-mirror/<hash of the URL>/``
(``$CRUCIBLE_CACHE_DIR``, else ``~/.cache/crucible``), laid out as a store:

- ``_commits/<pipeline>/<id>.json``: every manifest of the bucket, fetched once (a manifest is written
  create-if-absent and never changes; one the bucket no longer has is dropped from the mirror);
- ``<table>/_schema.parquet`` and the shards the *live* manifests name, fetched by checksum: a shard whose
  mirrored copy has the size and sha256 its manifest names is not fetched again; any other is fetched
  whole. A copy that does not match its manifest (damage in the bucket) is still mirrored, so the readers'
  own checks name it exactly as in a local store (``skipped unreadable shard ...``); it is fetched again
  on the next read.

The mirror is a cache that only :func:`readable` writes: the readers' guarantees (committed rows only,
damage named, nothing written in the store) hold as for a local folder, because the mirror is one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from crucible.pipelines.store import fsio, integrity
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.records import TABLES

log = logging.getLogger(__name__)

SCHEMA_FILE = "_schema.parquet"
STATE_FILE = ".mirror.json"  # rel path -> {"bytes", "sha256", "mtime_ns"} of the verified copies


def cache_root() -> Path:
    env = os.environ.get("CRUCIBLE_CACHE_DIR") or os.environ.get("CRUCIBLE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "crucible"


def mirror_dir(url: str) -> Path:
    return cache_root() / "store-mirror" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def readable(out_dir: str) -> str:
    """A local folder a reader opens for ``out_dir``: itself when local, else its synced mirror."""
    if fsio.is_local(out_dir):
        return out_dir
    return str(sync(out_dir))


def _state(root: Path) -> dict:
    try:
        data = json.loads((root / STATE_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _rel_of(url: str, path: str) -> str:
    return path[len(url.rstrip("/")) + 1:]


def _sync_manifests(url: str, root: Path) -> set[str]:
    """Mirror every manifest of the bucket (new ones fetched, gone ones dropped). Returns their rel paths."""
    remote = {_rel_of(url, p): p for p in M.glob_in(url, M.COMMITS_DIR, "*", "*.json")}
    for rel, path in sorted(remote.items()):
        local = root / rel
        if not local.is_file():
            try:
                fsio.write_bytes_atomic(str(local), fsio.read_bytes(path))
            except FileNotFoundError:
                continue  # moved aside meanwhile
    commits = root / M.COMMITS_DIR
    if commits.is_dir():
        for p in sorted(commits.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and rel not in remote:
                p.unlink()  # the bucket's manifest was moved aside (quarantine): so is the mirror's copy
    return set(remote)


def _fetch(url: str, root: Path, rel: str, want: dict | None, state: dict) -> None:
    """Make ``root/rel`` a copy of ``url/rel``, unless the verified copy there matches ``want`` already."""
    local = root / rel
    known = state.get(rel)
    st = local.stat() if local.is_file() else None
    if want and known and st and known.get("mtime_ns") == st.st_mtime_ns and \
            {"bytes": known.get("bytes"), "sha256": known.get("sha256")} == want:
        return
    try:
        blob = fsio.read_bytes(fsio.join(url, rel))
    except FileNotFoundError:
        if local.exists():
            local.unlink()  # readers name a missing shard as in a local store
        state.pop(rel, None)
        return
    fsio.write_bytes_atomic(str(local), blob)
    got = integrity.digest(blob)
    if want is not None and got == want:
        state[rel] = {**got, "mtime_ns": local.stat().st_mtime_ns}
    else:
        state.pop(rel, None)  # damaged in the bucket (or no checksum): fetched again next time


def sync(url: str) -> Path:
    """Bring the mirror of ``url`` up to the bucket's committed state (see module docstring)."""
    M.require_store(url)
    root = mirror_dir(url)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".source").write_text(url + "\n")
    state = _state(root)
    _sync_manifests(url, root)
    for table in TABLES:
        schema = fsio.join(url, table, SCHEMA_FILE)
        if not (root / table / SCHEMA_FILE).is_file() and fsio.exists(schema):
            fsio.write_bytes_atomic(str(root / table / SCHEMA_FILE), fsio.read_bytes(schema))
    wanted: set[str] = set()
    for pipeline in M.pipelines_of(str(root)):
        for m in M.committed(str(root), pipeline).live:
            for table, name in sorted(m["files"].items()):
                rel = f"{table}/{name}"
                wanted.add(rel)
                _fetch(url, root, rel, (m.get("checksums") or {}).get(table), state)
    for rel in M.shard_files(str(root)):
        if rel not in wanted:
            (root / rel).unlink()  # no longer live (merged by a compaction, moved aside): not the mirror's either
            state.pop(rel, None)
    fsio.write_bytes_atomic(str(root / STATE_FILE), json.dumps(state, sort_keys=True).encode())
    return root


def drop(url: str) -> None:
    """Forget the mirror of ``url`` (tests; a user may delete the folder any time)."""
    shutil.rmtree(mirror_dir(url), ignore_errors=True)
