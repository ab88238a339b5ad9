"""Tar streams in and out of containers: a tree (:func:`tar_tree`), named files (:func:`tar_bytes`) and the
files of an archive read back (:func:`untar_files`). Every entry is owned by the unprivileged sandbox user
(uid :data:`SANDBOX_UID`)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

SANDBOX_UID = 1000
SKIP_DIRS = {".git", ".tox", ".nox", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache"}


def tar_tree(src: Path, dest: str, uid: int = SANDBOX_UID, include_git: bool = False) -> bytes:
    """A tar of ``src`` placed under ``dest`` (relative), every entry owned by ``uid``; skips caches and
    (unless asked) ``.git``. Symlinks are kept as links."""
    src = Path(src)
    buf = io.BytesIO()
    skip = set(SKIP_DIRS) - ({".git"} if include_git else set())

    def fix(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(ti.name).parts
        if any(p in skip for p in parts):
            return None
        ti.uid = ti.gid = uid
        ti.uname = ti.gname = ""
        return ti

    with tarfile.open(fileobj=buf, mode="w") as tf:
        dinfo = tarfile.TarInfo(dest)
        dinfo.type = tarfile.DIRTYPE
        dinfo.mode = 0o755
        dinfo.uid = dinfo.gid = uid
        tf.addfile(dinfo)
        for entry in sorted(os.listdir(src)):
            tf.add(src / entry, arcname=f"{dest}/{entry}", filter=fix)
    return buf.getvalue()


def untar_files(stream) -> dict[str, bytes]:
    data = b"".join(stream)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            if m.isfile():
                f = tf.extractfile(m)
                out[m.name] = f.read() if f else b""
    return out


def tar_bytes(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid = info.gid = SANDBOX_UID
            info.mode = mode
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
