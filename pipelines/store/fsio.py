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
from pathlib import Path


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


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    if is_local(path):
        p = Path(_local(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=f".{uuid.uuid4().hex[:8]}.tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, p)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as fh:
        fh.write(data)


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
