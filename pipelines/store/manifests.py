"""Commit manifests: reading, validating and resolving them into the set of committed files.

A manifest (``_commits/<pipeline>/<commit_id>.json``) is the commit point of a batch of items: it names
the item keys and, per table, the shard file holding their rows. Everything that reads the store (the
DuckDB views, ``stats``, ``export``, ``report``, ``compact``, ``recover``) starts from
:func:`resolve`, never from a directory glob, so a shard that no live manifest names (a run in progress,
a killed run, a compaction's inputs) is never read.

Resolution is a pure function of the set of manifests present:

1. compactions first, newest first: a compaction is live unless it repeats a key of one taken before (two
   compactions of one object store at once: the newer one stands, the other is *conflicting*); the
   manifests a live (or superseded) compaction names in ``compacted_from`` are *superseded*, not read (a
   compaction is visible at its commit point, all at once, or not at all);
2. *conflicting*: the other manifests are taken oldest first (``created_at``, then ``commit_id``); one
   that shares an item key with an already taken one is dropped whole (two speculative attempts of one
   bundle), so a key is read from one commit only. Its other keys are not done: the writer commits them
   anew (object stores: :mod:`crucible.pipelines.store.lockfree`), else the next run redoes them.

Every name read from the store that becomes a path is checked against a fixed alphabet first
(:func:`validate_manifest`: known tables, ``part-<pipeline>-<commit_id>.parquet`` of the commit itself,
pipeline ``[a-z0-9][a-z0-9_-]*``, commit ids of 16 hex digits), so no manifest can name a file outside its
table's folder. :func:`unreferenced_shards` lists the shards no readable manifest names (readers warn).
"""

from __future__ import annotations

import glob as _glob
import logging
import os
import re
from dataclasses import dataclass, field

from crucible.pipelines.store import fsio
from crucible.pipelines.store.records import TABLES
from crucible.pipelines.textio import InputError, decode_text, parse_json

log = logging.getLogger(__name__)

COMMITS_DIR = "_commits"


class StoreError(ValueError):
    """A store problem the user can act on (the CLI prints it without a traceback, exit 2)."""


class ManifestError(StoreError):
    pass


class NotAStore(StoreError):
    pass


_FIX = ("move it aside with `crucible store check --quarantine` (nothing is deleted), then `crucible store restore` "
        "rebuilds the commit from its shards")

# names read from a store become paths: each from a fixed alphabet, so none can leave its folder
PIPELINE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
COMMIT_ID_RE = re.compile(r"c?[0-9a-f]{16}")  # stable_hash (16 hex); "c" + 16 hex for a compaction
SHARD_RE = re.compile(r"part-([a-z0-9][a-z0-9_-]{0,63})-(c?[0-9a-f]{16})\.parquet")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def shard_name(pipeline: str, commit_id: str) -> str:
    """The one file name a commit's shard has in each of its tables' folders."""
    return f"part-{pipeline}-{commit_id}.parquet"


def parse_shard_name(name: str) -> tuple[str, str] | None:
    """(pipeline, commit id) of a shard file name, None for any other name."""
    m = SHARD_RE.fullmatch(name)
    return (m.group(1), m.group(2)) if m else None


def check_pipeline_name(name: object, what: str = "pipeline") -> str:
    """``name`` if it is a pipeline name (``[a-z0-9][a-z0-9_-]*``, at most 64), else a :class:`StoreError`."""
    if not isinstance(name, str) or not PIPELINE_RE.fullmatch(name):
        raise StoreError(f"{what} {name!r} is not a pipeline name (lower-case letters, digits, '-' and '_', "
                         "starting with a letter or digit); give the name of a folder in _commits/")
    return name


def _fail(path: str, msg: str, fix: str = _FIX) -> ManifestError:
    return ManifestError(f"{path}: commit manifest {msg}; {fix}")


def _check_fields(m: dict, path: str) -> None:
    for key, typ, what in (("commit_id", str, "a string"), ("pipeline", str, "a string"),
                           ("items", list, "a list of item keys"), ("files", dict, "an object {table: shard file}")):
        if key not in m:
            raise _fail(path, f"field {key!r} is missing (expected {what})")
        if not isinstance(m[key], typ):
            raise _fail(path, f"field {key!r} is a {type(m[key]).__name__} (expected {what})")
    for key in ("run_id", "created_at"):
        if m.get(key) is not None and not isinstance(m[key], str):
            raise _fail(path, f"field {key!r} is a {type(m[key]).__name__} (expected a string)")
    if not all(isinstance(k, str) for k in m["items"]):
        raise _fail(path, "field 'items' holds a non-string key")


def _check_names(m: dict, path: str, stem: str, pipeline: str | None) -> None:
    if m["commit_id"] != stem:
        raise _fail(path, f"field 'commit_id' is {m['commit_id']!r} but the file is named {stem}.json (a copy of "
                    f"{m['commit_id']}.json, or a damaged one?)",
                    f"move it aside with `crucible store check --quarantine`: only this file moves, the commit "
                    f"{m['commit_id']!r} and its shards stay as they are")
    if not COMMIT_ID_RE.fullmatch(stem):
        raise _fail(path, f"field 'commit_id' is {stem!r}, not a commit id (16 hex digits; 'c' and 16 for a "
                    "compaction)")
    if not PIPELINE_RE.fullmatch(m["pipeline"]):
        raise _fail(path, f"field 'pipeline' is {m['pipeline']!r}, not a pipeline name ([a-z0-9][a-z0-9_-]*)")
    if pipeline is not None and m["pipeline"] != pipeline:
        raise _fail(path, f"field 'pipeline' is {m['pipeline']!r} but the file lies in {COMMITS_DIR}/{pipeline}/")


def _check_files(m: dict, path: str) -> None:
    want = shard_name(m["pipeline"], m["commit_id"])
    for table, name in m["files"].items():
        if table not in TABLES:
            raise _fail(path, f"field 'files' names table {table!r}, not one of {', '.join(TABLES)}")
        if name != want:
            raise _fail(path, f"field 'files.{table}' = {name!r} is not this commit's shard file name ({want})")
    rows = m.get("rows", {})
    if not isinstance(rows, dict) or not all(t in m["files"] and type(n) is int and n >= 0 for t, n in rows.items()):
        raise _fail(path, "field 'rows' must map tables of 'files' to row counts")
    sums = m.get("checksums", {})
    if not isinstance(sums, dict) or not all(
            t in m["files"] and isinstance(c, dict) and set(c) == {"bytes", "sha256"} and type(c["bytes"]) is int
            and c["bytes"] >= 0 and isinstance(c["sha256"], str) and SHA256_RE.fullmatch(c["sha256"])
            for t, c in sums.items()):
        raise _fail(path, "field 'checksums' must map tables of 'files' to {\"bytes\": size, \"sha256\": hex digest}")
    cf = m.get("compacted_from")
    if cf is not None and not (isinstance(cf, list) and all(isinstance(c, str) and COMMIT_ID_RE.fullmatch(c)
                                                            for c in cf)):
        raise _fail(path, "field 'compacted_from' must be a list of commit ids")


def validate_manifest(m: object, path: str, pipeline: str | None = None) -> dict:
    """The manifest if it is well formed, else a :class:`ManifestError` naming the file and the field.

    The one definition of a manifest (no schema file): ``commit_id`` (= the file name), ``pipeline`` (= its
    folder), ``items``, ``files`` {table: ``part-<pipeline>-<commit_id>.parquet``}, optional ``rows``
    {table: count}, ``checksums`` {table: {bytes, sha256}} (commits since shards carry them),
    ``compacted_from`` [commit id], ``run_id``, ``created_at``. Every name that becomes a path is checked
    against a fixed alphabet: no manifest can name a file outside its table's folder."""
    if not isinstance(m, dict):
        raise _fail(path, f"is a JSON {type(m).__name__}, expected an object")
    _check_fields(m, path)
    stem = path.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".json")
    _check_names(m, path, stem, pipeline)
    _check_files(m, path)
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
    except OSError as exc:  # a directory, a FIFO, no permission: named like any unreadable manifest
        raise ManifestError(f"{path}: unreadable commit manifest: {type(exc).__name__}: {exc.strerror or exc}; "
                            f"{_FIX}") from None

    try:
        m = parse_json(decode_text(data, path, "commit manifest"), path, "commit manifest")
    except InputError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise ManifestError(f"{path}: unreadable commit manifest: {detail}; {_FIX}") from None
    validate_manifest(m, path, pipeline)
    if st is not None:
        _CACHE[path] = (st, m)
    return m


def glob_in(out_dir: str, *parts: str) -> list[str]:
    """``fsio.glob`` of ``parts`` (a pattern) under ``out_dir``, the folder's own name taken literally (a
    store named ``a[1]`` never matches ``a1``)."""

    base = _glob.escape(str(out_dir)) if fsio.is_local(out_dir) else str(out_dir)
    return fsio.glob(fsio.join(base, *parts))


def commit_folders(out_dir: str) -> list[str]:
    """Every entry of ``_commits/`` (hidden ones aside), valid pipeline name or not."""
    root = fsio.join(out_dir, COMMITS_DIR)
    if fsio.is_local(root):
        try:
            return sorted(e.name for e in os.scandir(fsio._local(root)) if not e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []
    return sorted({p.rstrip("/").rsplit("/", 2)[-2] for p in glob_in(out_dir, COMMITS_DIR, "*", "*.json")})


def pipelines_of(out_dir: str) -> list[str]:
    """Names of the pipelines that have a commit folder (``store check`` names any other entry there)."""
    root = fsio.join(out_dir, COMMITS_DIR)
    if fsio.is_local(root):
        return [n for n in commit_folders(out_dir) if PIPELINE_RE.fullmatch(n) and
                os.path.isdir(fsio._local(fsio.join(root, n))) and not os.path.islink(fsio._local(fsio.join(root, n)))]
    return [n for n in commit_folders(out_dir) if PIPELINE_RE.fullmatch(n)]


def manifest_files(out_dir: str, pipeline: str) -> list[str]:
    return glob_in(out_dir, COMMITS_DIR, check_pipeline_name(pipeline), "*.json")


def read_manifests(out_dir: str, pipeline: str) -> list[dict]:
    """Every manifest file of ``pipeline`` (validated), unresolved."""
    out = []
    for path in manifest_files(out_dir, pipeline):
        m = read_manifest(path, pipeline)
        if m is not None:
            out.append(m)
    return out


def shard_files(out_dir: str) -> dict[str, str]:
    """``{"<table>/<name>": path}`` of every entry in the table folders named like a shard (any pipeline)."""

    out = {}
    for table in TABLES:
        for path in glob_in(out_dir, table, "part-*.parquet"):
            name = path.replace("\\", "/").rsplit("/", 1)[-1]
            if parse_shard_name(name):
                out[f"{table}/{name}"] = path
    return out


def unreferenced_shards(out_dir: str) -> list[str]:
    """Shards (``<table>/<name>``) that no readable manifest names: rows no reader shows, of a lost or
    damaged manifest, or of a killed run, or in flight. Readers warn with this (``crucible store check``
    names each, ``crucible store restore`` rebuilds their manifests). Pure: lists and reads, never writes."""
    named = set()
    for pipeline in pipelines_of(out_dir):
        for path in manifest_files(out_dir, pipeline):
            try:
                m = read_manifest(path, pipeline)
            except ManifestError:
                continue  # its shards are unreferenced: nothing readable names them
            if m is not None:
                named.update(f"{t}/{n}" for t, n in m["files"].items())
    return sorted(rel for rel in shard_files(out_dir) if rel not in named)


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
    """Split manifests into live, superseded and conflicting ones (see module docstring): a pure function of
    the set of manifests (no clock, no listing order), so every reader and writer decides alike."""
    compactions = sorted((m for m in manifests if m.get("compacted_from")), key=_order, reverse=True)
    commits = sorted((m for m in manifests if not m.get("compacted_from")), key=_order)
    res = Resolution()
    seen: set[str] = set()
    gone: set[str] = set()
    for m in compactions + commits:
        cf = {c for c in m.get("compacted_from") or () if c != m["commit_id"]}
        if m["commit_id"] in gone:
            res.superseded.append(m)
            gone |= cf  # what a superseded compaction merged is superseded too
        elif seen.intersection(m["items"]):
            res.conflicting.append(m)
        else:
            res.live.append(m)
            seen.update(m["items"])
            gone |= cf
    return res


def committed(out_dir: str, pipeline: str) -> Resolution:
    return resolve(read_manifests(out_dir, pipeline))


def is_store(out_dir: str) -> bool:
    """A folder a pipeline has written to: it has a commit folder or a table folder with its schema file."""

    if fsio.exists(fsio.join(out_dir, COMMITS_DIR)):
        return True
    return any(fsio.exists(fsio.join(out_dir, t, "_schema.parquet")) for t in TABLES)


def require_store(out_dir: str) -> None:
    if not fsio.exists(out_dir):
        raise NotAStore(f"{out_dir}: no such output directory (run a pipeline first, or pass --out)")
    if not is_store(out_dir):
        raise NotAStore(f"{out_dir}: not a Crucible store (no {COMMITS_DIR}/ folder and no table folder with "
                        "_schema.parquet); pass --out with the output folder of a pipeline run")
