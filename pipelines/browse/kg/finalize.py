"""Finalize a `crucible kg ingest` run: Beam's Parquet shards -> the graph dir, the corpus pages and the
failures table (see :mod:`crucible.pipelines.browse.kg.ingest`).

DuckDB does the set work (first of duplicate ids, triples whose object was ingested, the merge of the
shards into one file each) under ``memory_limit``, spilling to the staging folder, so memory does not
grow with the dump. Each output is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import duckdb

from crucible.pipelines.browse.kg.model import ENTITY_FIELDS, TRIPLE_FIELDS
from crucible.pipelines.browse.kg.staging import PAGE_FIELDS, line_failure
from crucible.pipelines.store.fsio import rename
from crucible.pipelines.store.records import record_type

# The two joins of the finalize step (module constants so that a test can switch each off):
FIRST_ONLY = "ANTI JOIN {dups} d USING (_file, _line)"  # rows of a line after the first with its id/url
OBJECT_INGESTED = "SEMI JOIN (SELECT id FROM {ents}) e ON t.object = e.id"  # triples into ingested entities


def _lit(text: str | Path) -> str:
    """A SQL string literal (a path with a quote in it stays one string)."""
    return "'" + str(text).replace("'", "''") + "'"


def _files(stage: Path, name: str) -> str | None:
    found = sorted(glob.glob(glob.escape(str(stage)) + f"/{name}-*.parquet"))
    return f"read_parquet([{', '.join(map(_lit, found))}])" if found else None


def _one(con, sql: str) -> int:
    """The single number a query returns (fetched to the end: DuckDB keeps a partly read result open)."""
    return int(con.execute(sql).fetchall()[0][0])


def _copy(con, select: str, dest: Path, fmt: str) -> int:
    """``COPY (select) TO dest`` through a temporary file moved into place by the one atomic writer's
    :func:`~crucible.pipelines.store.fsio.rename` (replace + directory fsync); the row count."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    opts = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT json"
    n = _one(con, f"COPY ({select}) TO {_lit(tmp)} ({opts})")
    rename(str(tmp), str(dest))
    return int(n)


def _first_of_duplicates(con, src: str, key: str, table: str) -> list[tuple]:
    """Rows sharing ``key`` with an earlier row (by file, line) go to temp table ``table``; returns
    ``(key, file, line, kept file:line)`` of each."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT * FROM (
            SELECT {key} AS k, _file, _line,
                   row_number() OVER (PARTITION BY {key} ORDER BY _file, _line) AS rn,
                   first(_file || ':' || _line) OVER (PARTITION BY {key} ORDER BY _file, _line) AS kept
            FROM {src} WHERE {key} IN (SELECT {key} FROM {src} GROUP BY {key} HAVING count(*) > 1))
        WHERE rn > 1""")
    return con.execute(f"SELECT k, _file, _line, kept FROM {table} ORDER BY _file, _line").fetchall()


def _duplicate_failures(dups: list[tuple], what: str, stage: str, table: str, run_id: str) -> list[dict]:
    return [line_failure(run_id, stage, table, f, line, "", f"duplicate {what} {k!r}; the first, at {kept}, is kept")
            for k, f, line, kept in dups]


def _graph(con, stage: Path, out: Path, run_id: str) -> tuple[dict, list[dict]]:
    ents, tris = _files(stage, "entities"), _files(stage, "triples")
    if ents is None:
        return {}, []
    dups = _first_of_duplicates(con, ents, "id", "dup_entities")
    cols = ", ".join(f'e."{c}"' for c in ENTITY_FIELDS)
    n_e = _copy(con, f"SELECT {cols} FROM {ents} e {FIRST_ONLY.format(dups='dup_entities')}",
                out / "entities.parquet", "parquet")
    total = _one(con, f"SELECT count(*) FROM {tris}")
    tcols = ", ".join(f't."{c}"' for c in TRIPLE_FIELDS)
    n_t = _copy(con, f"SELECT {tcols} FROM {tris} t {FIRST_ONLY.format(dups='dup_entities')} "
                f"{OBJECT_INGESTED.format(ents=ents)}",
                out / "triples.parquet", "parquet")
    of_dups = _one(con, f"SELECT count(*) FROM {tris} t SEMI JOIN dup_entities d USING (_file, _line)")
    of_dups = of_dups if FIRST_ONLY else 0  # (switched off in a test: those triples are kept)
    info = {"entities": n_e, "triples": n_t, "triples_parsed": total, "duplicate_entities": len(dups),
            "triples_dropped_duplicate_entity": of_dups,
            "triples_dropped_object_not_ingested": total - n_t - of_dups}
    return info, _duplicate_failures(dups, "entity id", "wikidata", "kg_entities", run_id)


def _pages(con, stage: Path, out: Path, run_id: str) -> tuple[dict, list[dict]]:
    src = _files(stage, "pages")
    if src is None:
        return {}, []
    dups = _first_of_duplicates(con, src, "url", "dup_pages")
    cols = ", ".join(f'p."{c}"' for c in PAGE_FIELDS)
    n = _copy(con, f"SELECT {cols} FROM {src} p {FIRST_ONLY.format(dups='dup_pages')}",
              out / "corpus" / "pages.jsonl", "json")
    return {"pages": n, "duplicate_pages": len(dups)}, _duplicate_failures(dups, "page url", "wikipedia", "pages",
                                                                             run_id)


def finalize(stage: Path, out: Path, run_id: str, memory_limit: str) -> dict:
    """Write the outputs from the shards under ``stage``; the manifest's counts (the caller writes it)."""
    (stage / "duckdb_tmp").mkdir(exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {_lit(memory_limit)}")
        con.execute(f"SET temp_directory = {_lit(stage / 'duckdb_tmp')}")
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET threads = {min(4, os.cpu_count() or 1)}")
        g, f1 = _graph(con, stage, out, run_id)
        pg, f2 = _pages(con, stage, out, run_id)
        con.register("duplicate_failures", record_type("failures").to_table(f1 + f2))
        src = _files(stage, "failures")
        parts = ([f"SELECT * FROM {src}"] if src else []) + ["SELECT * FROM duplicate_failures"]
        n_f = _copy(con, " UNION ALL BY NAME ".join(parts), out / "failures" / "failures.parquet", "parquet")
    finally:
        con.close()
    return {**g, **pg, "failures": n_f}
