"""Small file-system layer for the store: atomic writes, listing, reading.

Local paths use a temp file in the same directory, fsync and ``os.replace`` (atomic on
POSIX). Other schemes (``gs://``, ``s3://``...) go through Beam's ``FileSystems``, whose
object-store writes become visible only on close, so the same sink code runs on
Dataflow or Flink unchanged.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def is_local(path: str) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def _local(path: str) -> str:
    return str(path)[len("file://"):] if str(path).startswith("file://") else str(path)


def join(*parts: str) -> str:
    head, *rest = [str(p) for p in parts]
    if is_local(head):
        return str(Path(_local(head)).joinpath(*rest))
    return "/".join([head.rstrip("/"), *[r.strip("/") for r in rest]])


def makedirs(path: str) -> None:
    if is_local(path):
        os.makedirs(_local(path), exist_ok=True)


def fsync_dir(path: str) -> None:
    """Make a rename or a new file in ``path`` durable (POSIX: the directory entry lives in the directory)."""
    try:
        fd = os.open(_local(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # not supported here (some file systems, Windows): best effort
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TMP_SUFFIX = ".tmp"


def temp_prefix(name: str) -> str:
    """Temp files of an atomic write of ``name`` start with this (``recover`` removes stale ones)."""
    return f".{name}."


def write_atomic(path: str, write: Callable[[BinaryIO], object], mode: int | None = None) -> None:
    """Write ``path`` through ``write(file)`` so that readers see the old file or the whole new one
    (a Parquet writer streams into it: ``lambda f: pq.write_table(table, f)``). ``mode``: the new local
    file's permission bits (unset: mkstemp's 0600; shared caches give 0o644)."""
    if is_local(path):
        p = Path(_local(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(p.name), suffix=f".{uuid.uuid4().hex[:8]}{TMP_SUFFIX}", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                if mode is not None:
                    os.fchmod(fh.fileno(), mode)
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, p)
            fsync_dir(str(p.parent))
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as fh:
        write(fh)


def write_bytes_atomic(path: str, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    write_atomic(path, lambda fh: fh.write(data), mode)


def read_bytes(path: str) -> bytes:
    if is_local(path):
        return Path(_local(path)).read_bytes()
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as fh:
        return fh.read()


def glob(pattern: str) -> list[str]:
    if is_local(pattern):
        import glob as _glob

        return sorted(_glob.glob(_local(pattern)))
    from apache_beam.io.filesystems import FileSystems

    res = FileSystems.match([pattern])[0]
    return sorted(m.path for m in res.metadata_list)


def exists(path: str) -> bool:
    if is_local(path):
        return Path(_local(path)).exists()
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(path)


def delete(paths: list[str]) -> None:
    if not paths:
        return
    local = [p for p in paths if is_local(p)]
    for p in local:
        try:
            os.unlink(_local(p))
        except FileNotFoundError:
            pass
    remote = [p for p in paths if not is_local(p)]
    if remote:
        from apache_beam.io.filesystems import FileSystems

        FileSystems.delete(remote)


def stat(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a local file, or None when it is missing; remote: (size, 0)."""
    if is_local(path):
        try:
            st = os.stat(_local(path))
        except FileNotFoundError:
            return None
        return st.st_size, st.st_mtime_ns
    from apache_beam.io.filesystems import FileSystems

    res = FileSystems.match([path])[0].metadata_list
    return (res[0].size_in_bytes, 0) if res else None


def rename(src: str, dst: str) -> None:
    """Move ``src`` to ``dst`` (used to quarantine damaged files)."""
    if is_local(src):
        Path(_local(dst)).parent.mkdir(parents=True, exist_ok=True)
        os.replace(_local(src), _local(dst))
        fsync_dir(str(Path(_local(src)).parent))
        fsync_dir(str(Path(_local(dst)).parent))
        return
    from apache_beam.io.filesystems import FileSystems

    FileSystems.rename([src], [dst])
