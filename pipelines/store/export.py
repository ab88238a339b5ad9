"""Where an export may write, relative to a store: never inside it (its shards, manifests and catalog are the
writers') except under ``<out>/export/``. The formats themselves (verl, TRL) are the trainers' and live in
:mod:`crucible.pipelines.integrations.export`; the store knows no domain.
"""

from __future__ import annotations

import os
from pathlib import Path

from crucible.pipelines.store.manifests import StoreError

EXPORT_DIR = "export"  # <out>/export/: the one folder inside a store an export may write to (the default --dest)


class ExportDestError(StoreError):
    pass


def check_dest(out_dir: str, dest: str, force: bool = False) -> Path:
    """The file an export may write: never a path inside the store ``out_dir`` (its shards, manifests and
    catalog are the writers') except under ``<out_dir>/export/``, never a folder, never an existing file
    unless ``force``. The folders above ``dest`` are resolved (a symlinked folder into the store is inside
    it); ``dest`` itself is not: a link there is replaced, never written through."""
    p = Path(dest)
    real = Path(os.path.realpath(p.parent)) / p.name
    store = Path(os.path.realpath(out_dir))
    if real == store or store in real.parents:
        if (store / EXPORT_DIR) not in real.parents:
            raise ExportDestError(f"--dest {dest}: inside the store {out_dir}, whose files only its writers write; "
                                  f"give a path outside it, or under {Path(out_dir) / EXPORT_DIR}/ (the default)")
    if p.is_dir():
        raise ExportDestError(f"--dest {dest}: is a directory; give a file path, e.g. {p / 'export.parquet'}")
    for up in p.parents:
        if up.exists() and not up.is_dir():
            raise ExportDestError(f"--dest {dest}: {up} is a file, not a folder; give a path in a folder")
    if (p.exists() or p.is_symlink()) and not force:
        raise ExportDestError(f"--dest {dest}: the file exists; give --force to replace it, or another --dest")
    return p
