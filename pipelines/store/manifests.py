"""Commit manifests: reading, validating and resolving them into the set of committed files.

A manifest (``_commits/<pipeline>/<commit_id>.json``) is the commit point of a batch of items: it names
the item keys and, per table, the shard file holding their rows. Everything that reads the store (the
DuckDB views, ``stats``, ``export``, ``report``, ``compact``, ``recover``) starts from
:func:`resolve`, never from a directory glob, so a shard that no live manifest names (a run in progress,
a killed run, a compaction's inputs) is never read.

Resolution is a pure function of the set of manifests present:

1. *superseded*: a manifest named in another's ``compacted_from`` is dropped (a compaction is visible
   at its commit point, all at once, or not at all);
2. *conflicting*: manifests are taken oldest first (``created_at``, then ``commit_id``); one that shares
   an item key with an already taken one is dropped whole (two speculative attempts of one bundle), so a
   key is read from one commit only. Its other keys are not done: the next run redoes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pipelines.store import fsio

log = logging.getLogger(__name__)

COMMITS_DIR = "_commits"


class StoreError(ValueError):
    """A store problem the user can act on (the CLI prints it without a traceback, exit 2)."""


class ManifestError(StoreError):
    pass


class NotAStore(StoreError):
    pass


_FIX = "delete it and the shards it names to redo those items, or restore it from a copy"


def validate_manifest(m: object, path: str, pipeline: str | None = None) -> dict:
    """The manifest if it is well formed, else a :class:`ManifestError` naming the file and the field."""
    if not isinstance(m, dict):
        raise ManifestError(f"{path}: commit manifest is a JSON {type(m).__name__}, expected an object; {_FIX}")
    for key, typ, what in (("commit_id", str, "a string"), ("pipeline", str, "a string"),
                           ("items", list, "a list of item keys"), ("files", dict, "an object {table: shard file}")):
        if key not in m:
            raise ManifestError(f"{path}: commit manifest field {key!r} is missing (expected {what}); {_FIX}")
        if not isinstance(m[key], typ):
            raise ManifestError(f"{path}: commit manifest field {key!r} is a {type(m[key]).__name__} "
                                f"(expected {what}); {_FIX}")
    if not all(isinstance(k, str) for k in m["items"]):
        raise ManifestError(f"{path}: commit manifest field 'items' holds a non-string key; {_FIX}")
    for table, name in m["files"].items():
        if not isinstance(name, str) or "/" in name or "\\" in name or not name.endswith(".parquet"):
            raise ManifestError(f"{path}: commit manifest field 'files.{table}' = {name!r} is not a shard file "
                                f"name (part-....parquet); {_FIX}")
    rows = m.get("rows", {})
    if not isinstance(rows, dict) or not all(isinstance(v, int) for v in rows.values()):
        raise ManifestError(f"{path}: commit manifest field 'rows' must map tables to row counts; {_FIX}")
    cf = m.get("compacted_from")
    if cf is not None and not (isinstance(cf, list) and all(isinstance(c, str) for c in cf)):
        raise ManifestError(f"{path}: commit manifest field 'compacted_from' must be a list of commit ids; {_FIX}")
    stem = path.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".json")
    if m["commit_id"] != stem:
        raise ManifestError(f"{path}: commit manifest field 'commit_id' is {m['commit_id']!r} but the file is "
                            f"named {stem}.json; {_FIX}")
    if pipeline is not None and m["pipeline"] != pipeline:
        raise ManifestError(f"{path}: commit manifest field 'pipeline' is {m['pipeline']!r} but the file lies in "
                            f"{COMMITS_DIR}/{pipeline}/; {_FIX}")
    return m


# path -> ((size, mtime_ns), manifest): manifests are written once (atomically), so a local cache by
# size and mtime is exact and makes re-reading a big commit folder per commit cheap
_CACHE: dict[str, tuple[tuple[int, int], dict]] = {}


def read_manifest(path: str, pipeline: str | None = None) -> dict | None:
    """One manifest, validated; None when it vanished meanwhile (a compaction removed it)."""
    # remote: no cheap stat; a manifest is immutable once written (a retry rewrites the same keys and files)
    st = fsio.stat(path) if fsio.is_local(path) else (-1, -1)
    if st is not None and path in _CACHE and _CACHE[path][0] == st:
        return _CACHE[path][1]
    try:
        data = fsio.read_bytes(path)
    except FileNotFoundError:
        return None
    from pipelines.textio import InputError, decode_text, parse_json

    try:
        m = parse_json(decode_text(data, path, "commit manifest"), path, "commit manifest")
    except InputError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise ManifestError(f"{path}: unreadable commit manifest: {detail}; {_FIX}") from None
    validate_manifest(m, path, pipeline)
    if st is not None:
        _CACHE[path] = (st, m)
    return m


def pipelines_of(out_dir: str) -> list[str]:
    """Names of the pipelines that have a commit folder."""
    root = fsio.join(out_dir, COMMITS_DIR)
    if fsio.is_local(root):
        import os

        try:
            return sorted(e.name for e in os.scandir(fsio._local(root)) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []
    names = {p.rstrip("/").rsplit("/", 2)[-2] for p in fsio.glob(fsio.join(root, "*", "*.json"))}
    return sorted(names)


def read_manifests(out_dir: str, pipeline: str) -> list[dict]:
    """Every manifest file of ``pipeline`` (validated), unresolved."""
    out = []
    for path in fsio.glob(fsio.join(out_dir, COMMITS_DIR, pipeline, "*.json")):
        m = read_manifest(path, pipeline)
        if m is not None:
            out.append(m)
    return out


def manifest_path(out_dir: str, pipeline: str, commit_id: str) -> str:
    return fsio.join(out_dir, COMMITS_DIR, pipeline, f"{commit_id}.json")


@dataclass
class Resolution:
    live: list[dict] = field(default_factory=list)
    superseded: list[dict] = field(default_factory=list)
    conflicting: list[dict] = field(default_factory=list)

    @property
    def done_keys(self) -> set[str]:
        return {k for m in self.live for k in m["items"]}

    def files(self) -> dict[str, list[str]]:
        """``{table: [shard file name, ...]}`` of the live manifests."""
        out: dict[str, list[str]] = {}
        for m in self.live:
            for table, name in m["files"].items():
                out.setdefault(table, []).append(name)
        return out


def _order(m: dict) -> tuple[str, str]:
    return (str(m.get("created_at") or ""), m["commit_id"])


def resolve(manifests: list[dict]) -> Resolution:
    """Split manifests into live, superseded and conflicting ones (see module docstring)."""
    ids = {m["commit_id"] for m in manifests}
    gone = {cid for m in manifests for cid in m.get("compacted_from") or () if cid != m["commit_id"]} & ids
    res = Resolution()
    seen: set[str] = set()
    for m in sorted(manifests, key=_order):
        if m["commit_id"] in gone:
            res.superseded.append(m)
        elif seen.intersection(m["items"]):
            res.conflicting.append(m)
        else:
            res.live.append(m)
            seen.update(m["items"])
    return res


def committed(out_dir: str, pipeline: str) -> Resolution:
    return resolve(read_manifests(out_dir, pipeline))


def is_store(out_dir: str) -> bool:
    """A folder a pipeline has written to: it has a commit folder or a table folder with its schema file."""
    from pipelines.store.records import TABLES

    if fsio.exists(fsio.join(out_dir, COMMITS_DIR)):
        return True
    return any(fsio.exists(fsio.join(out_dir, t, "_schema.parquet")) for t in TABLES)


def require_store(out_dir: str) -> None:
    if not fsio.exists(out_dir):
        raise NotAStore(f"{out_dir}: no such output directory (run a pipeline first, or pass --out)")
    if not is_store(out_dir):
        raise NotAStore(f"{out_dir}: not a Crucible store (no {COMMITS_DIR}/ folder and no table folder with "
                        "_schema.parquet); pass --out with the output folder of a pipeline run")
