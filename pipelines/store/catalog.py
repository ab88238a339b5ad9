"""DuckDB catalog: one view per table over the table's *committed* Parquet shards.

View names are a public contract (``questions``, ``browse_trajectories``, ``swe_instances``,
``swe_validations``, ``swe_trajectories``, ``failures``). A view lists its files explicitly: the files
that live commit manifests name (:mod:`crucible.pipelines.store.manifests`), never a glob, so a run in progress,
a killed run or a half-done compaction is never visible; each table's 0-row ``_schema.parquet`` comes
first, so every view exists with its columns before any data lands.

Before a view is made, each shard is checked (present, footer readable, row count as its manifest
says; cached per process by size and mtime). A damaged shard is left out with a warning that names the
file and table; the other tables and shards keep working (``crucible store check --quarantine`` moves
the damaged commit aside so the next run redoes its items).

Two ways in:

- :func:`connect` (every ``crucible`` command that reads: ``query``, ``stats``, ``report``, ``export``,
  ``view``): an in-memory database whose views are rebuilt from the manifests on each open, with absolute
  paths of the folder it is given (a copied or moved folder reads its own files), then locked down
  (:mod:`crucible.pipelines.store.readonly`): it opens the committed files and nothing else, and its settings are
  frozen. It writes nothing, anywhere: a stale catalog file or a damaged shard is a warning on stderr that
  names ``crucible store check --repair``.
- the catalog file ``<out_dir>/crucible.duckdb`` for plain DuckDB: written by :func:`refresh_catalog`, which
  only writers call (the end of each run, ``crucible compact``) and ``crucible store check --repair``
  (:func:`repair_catalog`), in DuckDB storage version v1.0.0, which DuckDB 1.0 and later (CLI included)
  open, with paths *relative to the data folder*: open it from there (``cd data && duckdb crucible.duckdb``)
  or set ``file_search_path`` (``duckdb -cmd "SET file_search_path='data'" data/crucible.duckdb``). It shows
  the commits as of its last refresh.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from crucible.pipelines.store import fsio, integrity, lock, mirror, readonly
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.card import CARD, write_card
from crucible.pipelines.store.commit import ensure_layout
from crucible.pipelines.store.records import TABLES, record_type

log = logging.getLogger(__name__)
DEFAULT_CATALOG = "crucible.duckdb"
SCHEMA_FILE = "_schema.parquet"
STORAGE_VERSION = "v1.0.0"


@dataclass
class Shard:
    table: str
    name: str
    rows: int | None  # as the manifest says
    pipeline: str
    commit_id: str

    @property
    def rel(self) -> str:
        return f"{self.table}/{self.name}"


@dataclass
class StoreView:
    """What the views read: per table, the committed shards that passed the checks."""

    out_dir: str
    shards: dict[str, list[Shard]] = field(default_factory=dict)
    skipped: list[tuple[Shard, str]] = field(default_factory=list)  # (shard, why)
    schema_files: dict[str, bool] = field(default_factory=dict)

    def files(self, table: str) -> list[str]:
        """Relative paths the view of ``table`` reads, schema file first."""
        head = [f"{table}/{SCHEMA_FILE}"] if self.schema_files.get(table) else []
        return head + [s.rel for s in self.shards.get(table, [])]

    def signature(self) -> str:
        return json.dumps({"v": 2, "tables": {t: self.files(t) for t in sorted(TABLES)}}, sort_keys=True)

    def warnings(self) -> list[str]:
        return [f"skipped unreadable shard {s.rel} (table {s.table}, commit {s.pipeline}/{s.commit_id}): {why}"
                for s, why in self.skipped]


_WARNED: set[str] = set()
MISSING = integrity.MISSING
_one_line, _source, check_footer = integrity.one_line, integrity.source, integrity.check_footer


def store_view(out_dir: str, attempts: int = 5) -> StoreView:
    """The committed shards of every pipeline, checked (see module docstring). Reads, never writes.

    A shard that vanished while its manifest vanished too was removed by a compaction between listing
    and checking: the listing is redone (the merged manifest names the rows now), so a reader racing a
    compaction sees every row once, never a false "missing"."""
    out_dir = mirror.readable(out_dir)  # an object store: its committed files, mirrored (crucible.pipelines.store.mirror)
    M.require_store(out_dir)
    for _ in range(attempts - 1):
        view = _store_view(out_dir)
        raced = [s for s, why in view.skipped if why == MISSING and
                 not fsio.exists(M.manifest_path(out_dir, s.pipeline, s.commit_id))]
        if not raced:
            break
    else:
        view = _store_view(out_dir)
    for w in view.warnings():
        if w not in _WARNED:  # once per process: a command builds its views more than once
            _WARNED.add(w)
            log.warning("%s", w)
    return view



def _store_view(out_dir: str) -> StoreView:
    view = StoreView(out_dir)
    for table in TABLES:
        view.schema_files[table] = fsio.exists(fsio.join(out_dir, table, SCHEMA_FILE))
    for pipeline in M.pipelines_of(out_dir):
        for m in M.committed(out_dir, pipeline).live:
            for table, name in sorted(m["files"].items()):
                shard = Shard(table, name, (m.get("rows") or {}).get(table), pipeline, m["commit_id"])
                if table not in TABLES:
                    view.skipped.append((shard, f"unknown table {table!r}"))
                    continue
                n, err = check_footer(fsio.join(out_dir, table, name))
                if err is None and shard.rows is not None and n != shard.rows:
                    err = f"holds {n} rows, its manifest says {shard.rows}"
                if err:
                    view.skipped.append((shard, err))
                else:
                    view.shards.setdefault(table, []).append(shard)
    for t in view.shards.values():
        t.sort(key=lambda s: s.name)
    return view


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def view_sql(table: str, paths: list[str], added: list[tuple[str, str]] = ()) -> str:
    """The view over ``paths``; ``added``: (column, DuckDB type) pairs no file has, selected as typed NULLs."""
    extra = "".join(f", CAST(NULL AS {typ}) AS \"{name}\"" for name, typ in added)
    return (f"CREATE OR REPLACE VIEW {table} AS SELECT *{extra} FROM "
            f"read_parquet([{', '.join(_quote(p) for p in paths)}], union_by_name = true)")


@functools.cache
def column_types(table: str) -> tuple[tuple[str, str], ...]:
    """(column, DuckDB type) of ``table``'s record type, in schema order."""
    con = duckdb.connect(":memory:")
    try:
        con.register("empty", record_type(table).arrow_schema.empty_table())
        return tuple((r[0], r[1]) for r in con.execute("DESCRIBE empty").fetchall())
    finally:
        con.close()


def missing_columns(con: duckdb.DuckDBPyConnection, table: str, paths: list[str]) -> list[tuple[str, str]]:
    """Columns of ``table``'s schema that none of ``paths`` has: a store written by an older version, read by
    a newer one without a writer (who rewrites the schema file) opening it first."""
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet([{', '.join(_quote(p) for p in paths)}], "
                                      "union_by_name = true)").fetchall()}
    return [(name, typ) for name, typ in column_types(table) if name not in have]


def _create_views(con: duckdb.DuckDBPyConnection, view: StoreView, base: str | None, prefix: str = "") -> None:
    """Views in ``con`` (``prefix`` = ``"cat."`` for an attached file). ``base``: make paths absolute."""
    for table in TABLES:
        paths = view.files(table)
        if base is not None:
            paths = [str(Path(base) / p) for p in paths]
        if paths and view.schema_files.get(table):
            con.execute(view_sql(prefix + table, paths, missing_columns(con, table, paths)))
            continue
        # no schema file (a read-only store from an old version): the schema comes from the record type
        empty = f"__empty_{table}"
        con.register(empty, record_type(table).arrow_schema.empty_table())
        sql = f"CREATE OR REPLACE VIEW {prefix}{table} AS SELECT * FROM {empty}"
        if paths:
            sql += (f" UNION ALL BY NAME SELECT * FROM read_parquet([{', '.join(_quote(p) for p in paths)}], "
                    "union_by_name = true)")
        con.execute(sql)


def _stamp_path(out_dir: str, catalog: str) -> Path:
    return Path(out_dir) / f".{catalog}.views"


def catalog_current(out_dir: str, catalog: str = DEFAULT_CATALOG, view: StoreView | None = None) -> bool:
    """True when the catalog file exists and its views list exactly the files committed now."""
    try:
        view = view or store_view(out_dir)
        return (Path(out_dir) / catalog).is_file() and _stamp_path(out_dir, catalog).read_text() == view.signature()
    except (OSError, M.StoreError):
        return False


def _write_catalog_file(path: str, out_dir: str, view: StoreView) -> None:
    """The catalog file at ``path``, so that a reader never sees a half-written one. DuckDB writes a database
    file itself (``ATTACH`` takes a path, not a stream): it builds a scratch file beside ``path``, whose bytes
    the one atomic writer (:func:`crucible.pipelines.store.fsio.write_atomic`) then publishes with the scratch file's
    mode (DuckDB's, the umask's); the scratch file and its WAL are removed either way."""
    tmp = path + f".tmp{os.getpid()}"
    scratch = (tmp, tmp + ".wal")
    _remove(scratch)  # a stale one from a killed writer of this pid
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET file_search_path = {_quote(str(Path(out_dir).resolve()))}")
        con.execute(f"ATTACH {_quote(tmp)} AS cat (STORAGE_VERSION '{STORAGE_VERSION}')")
        _create_views(con, view, None, prefix="cat.")
        con.execute("DETACH cat")
        con.close()
        with open(tmp, "rb") as src:
            mode = os.fstat(src.fileno()).st_mode & 0o777
            fsio.write_atomic(path, lambda out: shutil.copyfileobj(src, out), mode=mode)
    finally:
        con.close()
        _remove(scratch)


def _remove(paths) -> None:
    for p in paths:
        if os.path.exists(p):
            os.unlink(p)


def refresh_catalog(out_dir: str, catalog: str = DEFAULT_CATALOG, view: StoreView | None = None) -> str:
    """(Re)write the catalog file's views (relative paths, storage version v1.0.0) and the card. Returns its
    path. Writers only (the end of a run, ``compact``) and ``store check --repair``: readers never call it."""

    if not fsio.is_local(out_dir):  # an object store: the card in the bucket, the catalog file in the mirror
        ensure_layout(out_dir)
        local = mirror.readable(out_dir)
        view = store_view(local)
        write_card(out_dir, view)
        return refresh_catalog(local, catalog, view)
    if not M.is_store(out_dir):
        ensure_layout(out_dir)  # a writer's first call: make the layout
    view = view or store_view(out_dir)
    if not all(view.schema_files.values()):
        ensure_layout(out_dir)
        view = store_view(out_dir)
    path = str(Path(out_dir) / catalog)
    _write_catalog_file(path, out_dir, view)
    write_card(out_dir, view)
    fsio.write_bytes_atomic(str(_stamp_path(out_dir, catalog)), view.signature().encode())
    return path


def view_paths(view: StoreView, base: str) -> list[str]:
    """Every file the views of ``view`` read, as the views name them (``base``: the folder, absolute)."""
    return [str(Path(base) / p) for table in TABLES for p in view.files(table)]


_STALE_WARNED: set[tuple[str, str]] = set()


def stale_message(out_dir: str, catalog: str = DEFAULT_CATALOG) -> str:
    return (f"{Path(out_dir) / catalog} and {CARD} do not list the commits readable now (a run that did not "
            f"finish, a compaction, or damage): plain DuckDB and `datasets` read their old lists. Readers never "
            f"rewrite them; `crucible store check --out {out_dir} --repair` does")


def warn_stale(out_dir: str, catalog: str = DEFAULT_CATALOG, view: StoreView | None = None) -> bool:
    """Warn (once per process and state) when the catalog file is stale; writes nothing. True if stale."""
    view = view or store_view(out_dir)
    if catalog_current(out_dir, catalog, view):
        return False
    key = (str(Path(out_dir).resolve()), view.signature())
    if key not in _STALE_WARNED:
        _STALE_WARNED.add(key)
        log.warning("%s", stale_message(out_dir, catalog))
    return True


def connect(out_dir: str, catalog: str = DEFAULT_CATALOG, view: StoreView | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection with every view defined over the committed shards of ``out_dir`` (an in-memory
    database: never blocked by another process holding the catalog file), locked down by
    :func:`crucible.pipelines.store.readonly.lock_down`. Refuses a folder that is not a store; writes nothing, anywhere
    (a stale catalog file is a warning: :func:`warn_stale`)."""
    remote, out_dir = not fsio.is_local(out_dir), mirror.readable(out_dir)
    for attempt in range(3):
        if view is None or attempt:
            view = store_view(out_dir)
        if not remote:  # an object store has no catalog file (plain DuckDB cannot read the bucket)
            warn_stale(out_dir, catalog, view)
        base = str(Path(out_dir).resolve())
        con = duckdb.connect(":memory:")
        try:
            _create_views(con, view, base)
            readonly.lock_down(con, view_paths(view, base))
            return con
        except duckdb.IOException:  # a compaction removed listed files meanwhile: list again
            con.close()
            if attempt == 2:
                raise
        except BaseException:
            con.close()
            raise
    raise AssertionError("unreachable")


def query(out_dir: str, sql: str, catalog: str = DEFAULT_CATALOG,
          params: list | None = None) -> tuple[list[str], list[tuple]]:
    """Run ``sql`` (SELECT statements only: :func:`crucible.pipelines.store.readonly.check_select`) over the views. A
    compaction that removed the files while the views were made is answered by rebuilding the views from the
    manifests once."""
    for attempt in (0, 1):
        con = connect(out_dir, catalog)
        try:
            readonly.check_select(con, sql)
            cur = con.execute(sql, params or [])
            cols = [d[0] for d in cur.description] if cur.description else []
            return cols, cur.fetchall()
        except duckdb.IOException:
            if attempt:
                raise
        except duckdb.PermissionException as exc:
            # a shard a compaction removed meanwhile: DuckDB reads the missing file's name as a folder glob
            # ("part-...parquet/**/*.parquet"), which the allow-list refuses; anything else is a real refusal
            if attempt or not _vanished_shard(out_dir, str(exc)):
                raise
        finally:
            con.close()
    raise AssertionError("unreachable")


def _vanished_shard(out_dir: str, message: str) -> bool:
    """The refusal names a committed shard of this store that no longer exists."""
    m = re.search(r'Cannot access file "(.+?\.parquet)/\*\*/\*\.parquet"', message)
    if not m or not fsio.is_local(out_dir):
        return False
    path = os.path.realpath(m.group(1))
    root = os.path.realpath(fsio._local(out_dir))
    return path.startswith(root + os.sep) and os.path.basename(path).startswith("part-") and not os.path.exists(path)


def repair_catalog(out_dir: str, catalog: str = DEFAULT_CATALOG) -> str:
    """``crucible store check --repair``: rewrite the catalog file and the card from the commits readable now,
    under the writer lock. Returns what was done, in one line."""

    M.require_store(out_dir)
    with lock.writer(out_dir, "crucible store check --repair"):
        view = store_view(out_dir)
        path = refresh_catalog(out_dir, catalog, view)
    left = f"; {len(view.skipped)} unreadable shard(s) left out (above)" if view.skipped else ""
    return f"rewrote {path} and {CARD}: {sum(map(len, view.shards.values()))} committed shard(s){left}"


def unreadable_shards(out_dir: str, tables: list[str] | None = None) -> list[tuple[str, str]]:
    """Committed shards whose data (not only the footer) cannot be read: ``[(table/file, why)]``."""
    out_dir = mirror.readable(out_dir)
    view = store_view(out_dir)
    bad = [(s.rel, why) for s, why in view.skipped if tables is None or s.table in tables]
    for table, shards in view.shards.items():
        if tables is not None and table not in tables:
            continue
        for s in shards:
            try:
                pq.read_table(_source(fsio.join(out_dir, s.rel)))
            except Exception as exc:  # noqa: BLE001
                bad.append((s.rel, f"data not readable ({type(exc).__name__}: {_one_line(exc)})"))
    return bad


def explain_error(out_dir: str, exc: Exception) -> str:
    """A query error, with the committed shards that cannot be read named (a TProtocolException names none)."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    try:
        bad = unreadable_shards(out_dir)
    except Exception:  # noqa: BLE001 - the explanation must never hide the original error
        bad = []
    if bad:
        msg += "; unreadable shard(s): " + "; ".join(f"{p}: {why}" for p, why in bad[:5])
        msg += ". Run `crucible store check --out " + out_dir + " --quarantine` to move them aside (their items are redone on the next run)"
    return msg
