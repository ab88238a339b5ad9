"""DuckDB catalog: one view per table over its Parquet shards.

View names are a public contract (``questions``, ``browse_trajectories``, ``swe_instances``,
``swe_validations``, ``swe_trajectories``, ``failures``). Each table folder always holds a
0-row ``_schema.parquet``, so every view exists and has its columns before any data lands.
The catalog file (``<out_dir>/crucible.duckdb``) stores the view definitions with absolute
paths; ``crucible`` commands refresh them, so a moved data folder heals on the next command.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import duckdb

from pipelines.store.commit import ensure_layout
from pipelines.store.records import TABLES

log = logging.getLogger(__name__)
DEFAULT_CATALOG = "crucible.duckdb"


def view_sql(out_dir: str, table: str) -> str:
    pattern = str(Path(out_dir).resolve() / table / "*.parquet").replace("'", "''")
    return (f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM "
            f"read_parquet('{pattern}', union_by_name = true)")


def _create_views(con: duckdb.DuckDBPyConnection, out_dir: str) -> None:
    for table in TABLES:
        con.execute(view_sql(out_dir, table))


def _stamp(out_dir: str) -> str:
    """What the catalog's views depend on: the data folder's absolute path and the table list (new shards
    need no refresh: the views read a glob)."""
    return json.dumps({"out_dir": str(Path(out_dir).resolve()), "tables": sorted(TABLES), "v": 1})


def _stamp_path(out_dir: str, catalog: str) -> Path:
    return Path(out_dir) / f".{catalog}.views"


def catalog_current(out_dir: str, catalog: str = DEFAULT_CATALOG) -> bool:
    """True when the catalog file exists and its views were made for this folder and these tables."""
    try:
        return (Path(out_dir) / catalog).is_file() and _stamp_path(out_dir, catalog).read_text() == _stamp(out_dir)
    except OSError:
        return False


def refresh_catalog(out_dir: str, catalog: str = DEFAULT_CATALOG) -> str:
    """(Re)write the catalog file's views. Returns its path."""
    ensure_layout(out_dir)
    path = str(Path(out_dir) / catalog)
    tmp = path + f".tmp{os.getpid()}"
    # build in a temp file and rename, so a reader never sees a half-written catalog
    con = duckdb.connect(tmp)
    try:
        _create_views(con, out_dir)
    finally:
        con.close()
    os.replace(tmp, path)
    for leftover in (tmp + ".wal",):
        if os.path.exists(leftover):
            os.unlink(leftover)
    from pipelines.store.fsio import write_bytes_atomic

    write_bytes_atomic(str(_stamp_path(out_dir, catalog)), _stamp(out_dir).encode())
    return path


def connect(out_dir: str, catalog: str = DEFAULT_CATALOG) -> duckdb.DuckDBPyConnection:
    """A connection with every view defined. Uses an in-memory database (never blocked by
    another process holding the catalog file) after refreshing the file when it is missing or was
    made for another folder (a moved data folder heals here)."""
    if not Path(out_dir).exists():
        raise FileNotFoundError(f"{out_dir}: no such output directory (run a pipeline first, or pass --out)")
    if not catalog_current(out_dir, catalog):
        try:
            refresh_catalog(out_dir, catalog)
        except (duckdb.IOException, OSError) as exc:  # read-only media, or a lock held elsewhere
            log.warning("could not refresh %s: %s", Path(out_dir) / catalog, exc)
    con = duckdb.connect(":memory:")
    _create_views(con, out_dir)
    return con


def query(out_dir: str, sql: str, catalog: str = DEFAULT_CATALOG) -> tuple[list[str], list[tuple]]:
    con = connect(out_dir, catalog)
    try:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, cur.fetchall()
    finally:
        con.close()
