"""What makes damage to a store detectable and reversible: checksums, self-describing shards, quarantine.

- **Checksums.** A manifest's ``checksums`` give each shard's size and sha256 at its commit
  (:func:`digest`); :func:`verify_shard` checks a shard against them (size only when ``deep`` is off),
  and against its footer's row count and, deep, its decoded data.
- **Self-describing shards.** Each shard's Parquet key-value metadata holds its commit under
  :data:`META_KEY` (commit id, pipeline, run id, item keys, created_at, its table and all the commit's
  tables, ``compacted_from``): a lost or unreadable manifest is rebuilt from its shards
  (:mod:`crucible.pipelines.store.restore`).
- **Quarantine, never delete.** :func:`move_aside` moves files to ``_quarantine/<time>-<id>/`` keeping their
  paths, after writing ``evidence.json`` there (why, which commit, sizes, sha256); a destination is never
  overwritten and a path outside the store is refused. The only deletions left in the store are a
  writer's own temp files and the inputs of a compaction proven merged (:func:`proven_merged`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import time
import uuid
import zlib

import pyarrow as pa
import pyarrow.parquet as pq

from crucible.pipelines.store import fsio

log = logging.getLogger(__name__)

META_KEY = b"crucible.commit"
DATA_KEY = b"crucible.data_sha256"
QUARANTINE_DIR = "_quarantine"
EVIDENCE_FILE = "evidence.json"


def digest(data: bytes) -> dict:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_digest(path: str) -> dict | None:
    """Size and sha256 of a regular file (streamed), None for anything else (missing, a directory...)."""
    if not fsio.is_local(path):
        try:
            return digest(fsio.read_bytes(path))
        except (FileNotFoundError, OSError):
            return None
    p = fsio._local(path)
    if os.path.islink(p) or not os.path.isfile(p):
        return None
    h, n = hashlib.sha256(), 0
    with open(p, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return {"bytes": n, "sha256": h.hexdigest()}


def shard_bytes(table: pa.Table, compression: str, commit: dict | None) -> bytes:
    """A shard's Parquet bytes whose footer carries ``commit`` (JSON, :data:`META_KEY`) and the sha256 of the
    file's bytes before the footer (:data:`DATA_KEY`: its data pages), so a shard verifies itself even when its
    manifest is lost. ``commit`` None: a plain file (as shards were before)."""
    buf = io.BytesIO()
    writer = pq.ParquetWriter(buf, table.schema, compression=None if compression == "none" else compression)
    try:
        writer.write_table(table)
        data = buf.getvalue()  # the row groups are written: everything before the footer
        if commit is not None:
            writer.add_key_value_metadata({META_KEY.decode(): _encode(commit),
                                           DATA_KEY.decode(): hashlib.sha256(data).hexdigest()})
    finally:
        writer.close()
    blob = buf.getvalue()
    if commit is not None and _data_region(blob) != data:  # the writer buffered past write_table: never seen
        raise RuntimeError("parquet writer wrote data after its footer metadata was set")
    return blob


def _encode(commit: dict) -> str:
    """JSON; a long one (a compaction's item keys) zlib-compressed as ``zlib:<base64>``: each footer is read by
    every query, so it stays small."""
    raw = json.dumps(commit, sort_keys=True, separators=(",", ":"))
    if len(raw) <= 4096:
        return raw
    return "zlib:" + base64.b64encode(zlib.compress(raw.encode(), 9)).decode()


def _decode(value: bytes) -> object:
    if value.startswith(b"zlib:"):
        value = zlib.decompress(base64.b64decode(value[5:]))
    return json.loads(value)


def _data_region(blob: bytes) -> bytes:
    """The bytes of a Parquet file before its footer (the footer length sits before the final ``PAR1``)."""
    n = int.from_bytes(blob[-8:-4], "little")
    return blob[:len(blob) - 8 - n]


def data_intact(path: str, kv: dict | None = None) -> bool | None:
    """Whether a shard's data pages hash to the sha256 its own footer names; None when it names none (a shard
    written before, or a plain file)."""
    kv = kv if kv is not None else (pq.read_metadata(source(path)).metadata or {})
    want = kv.get(DATA_KEY)
    if want is None:
        return None
    return hashlib.sha256(_data_region(fsio.read_bytes(path))).hexdigest() == want.decode()


def source(path: str):
    """What pyarrow reads ``path`` from: the local file, or its bytes (object stores)."""
    return fsio._local(path) if fsio.is_local(path) else pa.BufferReader(fsio.read_bytes(path))


def commit_metadata(path: str) -> dict | None:
    """The commit a shard carries in its footer, None when it has none (written before shards carried it)."""
    kv = pq.read_metadata(source(path)).metadata or {}
    raw = kv.get(META_KEY)
    if raw is None:
        return None
    meta = _decode(raw)
    return meta if isinstance(meta, dict) else None


def commit_metadata_of(blob: bytes) -> dict | None:
    """:func:`commit_metadata` of a shard's bytes in memory."""
    raw = (pq.read_metadata(pa.BufferReader(blob)).metadata or {}).get(META_KEY)
    meta = None if raw is None else _decode(raw)
    return meta if isinstance(meta, dict) else None


MISSING = "file is missing"
_CHECKED: dict[str, tuple[tuple[int, int], int | None, str | None]] = {}


def one_line(exc: BaseException, n: int = 200) -> str:
    return " ".join(str(exc).split())[:n]


def check_footer(path: str) -> tuple[int | None, str | None]:
    """(row count, None) for a readable Parquet footer, else (None, what is wrong). Cached by size+mtime."""
    st = fsio.stat(path)
    if st is None:
        return None, MISSING
    hit = _CHECKED.get(path)
    if hit and hit[0] == st:
        return hit[1], hit[2]
    try:
        md = pq.read_metadata(source(path))
        res: tuple[int | None, str | None] = (md.num_rows, None)
    except Exception as exc:  # noqa: BLE001 - any decode error means the same: not a readable Parquet file
        res = (None, f"not a readable Parquet file ({type(exc).__name__}: {one_line(exc)})")
    _CHECKED[path] = (st, *res)
    return res


def inside(out_dir: str, path: str) -> bool:
    """``path`` lies inside ``out_dir``: no ``..`` leads out of it, nor (local) a link of its folders."""
    if not fsio.is_local(out_dir):
        root, p = str(out_dir).rstrip("/") + "/", str(path)
        return p.startswith(root) and ".." not in p[len(root):].split("/")
    base, p = os.path.abspath(fsio._local(out_dir)), os.path.abspath(fsio._local(path))
    if p == base or os.path.commonpath([base, p]) != base:
        return False
    root = os.path.realpath(base)
    return os.path.commonpath([root, os.path.realpath(os.path.dirname(p))]) == root


def kind_of(path: str) -> str:
    """``file``, ``missing``, ``directory``, ``symbolic link`` or ``special file``."""
    if not fsio.is_local(path):
        return "file" if fsio.exists(path) else "missing"
    p = fsio._local(path)
    if os.path.islink(p):
        return "symbolic link"
    if not os.path.exists(p):
        return "missing"
    return "directory" if os.path.isdir(p) else "file" if os.path.isfile(p) else "special file"


def verify_shard(out_dir: str, m: dict, table: str, *, deep: bool) -> tuple[int | None, str | None]:
    """(rows, None) when the shard of ``m`` in ``table`` is as its commit wrote it, else (None, what is wrong):
    a regular file inside the store, size (and sha256 when ``deep``) as its manifest's ``checksums`` say,
    footer rows as its ``rows``, and (deep) its data decodes."""
    path = fsio.join(out_dir, table, m["files"][table])
    kind = kind_of(path)
    if kind != "file":
        return None, "file is missing" if kind == "missing" else f"is a {kind}, not a shard file"
    if not inside(out_dir, path):
        return None, "lies outside the store (a linked folder)"
    want = (m.get("checksums") or {}).get(table)
    if want is not None:
        got = file_digest(path) if deep else {"bytes": (fsio.stat(path) or (None,))[0]}
        if got is None or got["bytes"] != want["bytes"]:
            return None, f"holds {got and got['bytes']} bytes, its manifest says {want['bytes']} (changed since its commit)"
        if deep and got["sha256"] != want["sha256"]:
            return None, "sha256 differs from its manifest's (its content changed since its commit)"
    n, err = check_footer(path)
    rows = (m.get("rows") or {}).get(table)
    if err is None and rows is not None and n != rows:
        err = f"holds {n} rows, its manifest says {rows}"
    if err is None and deep:
        try:
            pq.read_table(source(path))
            if data_intact(path) is False:
                err = "its data pages differ from the sha256 in its own footer (changed since its commit)"
        except Exception as exc:  # noqa: BLE001 - any decode error: name the file
            err = f"data not readable ({type(exc).__name__}: {one_line(exc)})"
    return (None, err) if err else (n, None)


def proven_merged(out_dir: str, old: dict, merged: dict, _seen: dict | None = None) -> str | None:
    """None when every row of commit ``old`` is provably in the live compacted commit ``merged`` (it names
    ``old`` in ``compacted_from``, holds its items and tables, and each merged shard verifies by size and
    sha256 against its manifest); else why not. Only then may ``old``'s files be deleted."""
    if old["commit_id"] not in (merged.get("compacted_from") or ()):
        return f"{merged['commit_id']} does not name it in compacted_from"
    if not set(old["items"]) <= set(merged["items"]):
        return f"{merged['commit_id']} lacks some of its items"
    for table in old["files"]:
        if table not in merged["files"]:
            return f"{merged['commit_id']} has no {table} shard"
        if table not in (merged.get("checksums") or {}):
            return f"{merged['commit_id']} has no checksum for its {table} shard (written by an older version)"
        if (merged.get("rows") or {}).get(table, 0) < (old.get("rows") or {}).get(table, 0):
            return f"{merged['commit_id']} holds fewer {table} rows"
        key = (merged["commit_id"], table)
        seen = _seen if _seen is not None else {}
        if key not in seen:
            seen[key] = verify_shard(out_dir, merged, table, deep=True)[1]
        if seen[key]:
            return f"its merged shard {table}/{merged['files'][table]} {seen[key]}"
    return None


def new_stamp() -> str:
    """A fresh quarantine folder name: UTC time and a random suffix (two in one second never share one)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def _rel(out_dir: str, path: str) -> str:
    root = str(fsio._local(out_dir) if fsio.is_local(out_dir) else out_dir).rstrip("/") + "/"
    p = fsio._local(path) if fsio.is_local(path) else path
    return p[len(root):] if p.startswith(root) else p


def move_aside(out_dir: str, entries: list[tuple[str, dict]], stamp: str | None = None, by: str = "") -> list[str]:
    """Quarantine: move each ``(path, evidence)`` to ``_quarantine/<stamp>/<its path in the store>``, after
    writing ``evidence.json`` (each entry: path, why, commit, kind, bytes, sha256). Never deletes, never
    overwrites (an existing destination or a path outside the store is refused and logged). Caller holds
    the writer lock. Returns the moved paths (relative to the store)."""
    todo = []
    for path, ev in entries:
        rel = _rel(out_dir, path)
        kind = kind_of(path)
        if kind == "missing":
            continue
        if not inside(out_dir, path) or rel.startswith(QUARANTINE_DIR + "/"):
            log.warning("not moving %s: it is not a file of the store %s", path, out_dir)
            continue
        todo.append((path, rel, {"path": rel, "kind": kind, **(file_digest(path) or {}), **ev}))
    if not todo:
        return []
    stamp = stamp or new_stamp()
    base = fsio.join(out_dir, QUARANTINE_DIR, stamp)
    ev_path = fsio.join(base, EVIDENCE_FILE)
    try:
        old = json.loads(fsio.read_bytes(ev_path)) if fsio.exists(ev_path) else []
    except (ValueError, OSError):
        old = []
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record = old + [{**e, "moved_to": f"{QUARANTINE_DIR}/{stamp}/{rel}", "at": now, "by": by} for _, rel, e in todo]
    fsio.write_bytes_atomic(ev_path, json.dumps(record, indent=1, sort_keys=True).encode())
    moved = []
    for path, rel, _ in todo:
        dst = fsio.join(base, rel)
        if fsio.exists(dst):
            log.warning("not moving %s: %s exists already", rel, dst)
            continue
        fsio.rename(path, dst)
        moved.append(rel)
    return moved


def quarantined(out_dir: str) -> list[tuple[str, str, str]]:
    """``(stamp, path in the store, path now)`` of every file and link under ``_quarantine/`` (links are listed,
    never followed), evidence files aside, newest stamp first."""
    root = fsio.join(out_dir, QUARANTINE_DIR)
    if not fsio.is_local(root):  # a bucket: objects under the prefix (no links, no folders)
        out = []
        for path in fsio.glob(fsio.join(root, "*", "**")):
            stamp, _, rel = path[len(root) + 1:].partition("/")
            if rel and rel != EVIDENCE_FILE and not rel.endswith(fsio.TMP_SUFFIX):
                out.append((stamp, rel, path))
        return sorted(out, key=lambda e: e[0], reverse=True)
    if not os.path.isdir(fsio._local(root)) or os.path.islink(fsio._local(root)):
        return []
    out = []
    for stamp in sorted(os.listdir(fsio._local(root)), reverse=True):
        base = os.path.join(fsio._local(root), stamp)
        if os.path.islink(base) or not os.path.isdir(base):
            continue
        for dirpath, dirs, files in os.walk(base):  # os.walk does not follow links to folders
            rel_dir = os.path.relpath(dirpath, base)
            for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
                if rel != EVIDENCE_FILE and not name.endswith(fsio.TMP_SUFFIX):
                    out.append((stamp, rel, os.path.join(dirpath, name)))
    return out
