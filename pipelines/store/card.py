"""The store's ``README.md``: a Hugging Face dataset card listing the committed files of each table.

Written with the catalog file (:func:`crucible.pipelines.store.catalog.refresh_catalog`: writers and ``crucible store
check --repair`` only), never by a reader. A ``README.md`` without :data:`CARD_MARK` is the user's: never
overwritten."""

from __future__ import annotations

import json

from crucible.pipelines.store import fsio
from crucible.pipelines.store.records import TABLES

CARD = "README.md"
CARD_MARK = "<!-- written by crucible: rewritten with the committed file lists; delete this line to keep edits -->"


def card_text(view) -> str:
    """A Hugging Face dataset card whose ``configs`` (one per table) list the committed files, so
    ``datasets.load_dataset(<folder>, <table>)`` reads exactly what the views read."""
    lines = ["---", "configs:"]
    for table in TABLES:
        lines += [f"- config_name: {table}", "  data_files:", "  - split: train", "    path:"]
        lines += [f"    - {json.dumps(p)}" for p in view.files(table)]
    lines += ["---", "", CARD_MARK, "", "# Crucible store", "",
              "Tables (one config each): " + ", ".join(f"`{t}`" for t in TABLES) + ".",
              "Load one with `datasets.load_dataset(\"<this folder>\", \"questions\", split=\"train\")`; query all",
              "with `crucible query --out <this folder> \"select ...\"` or `cd <this folder> && duckdb crucible.duckdb`.", ""]
    return "\n".join(lines)


def write_card(out_dir: str, view) -> bool:
    """Write the card unless the folder has a README.md that crucible did not write. True if written."""
    path = fsio.join(out_dir, CARD)
    if fsio.exists(path):
        try:
            if CARD_MARK not in fsio.read_bytes(path).decode("utf-8", errors="replace"):
                return False
        except OSError:
            return False
    fsio.write_bytes_atomic(path, card_text(view).encode())
    return True
