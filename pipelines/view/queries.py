"""The viewer's SQL: parameterized queries over the store's views, one function per question asked.

Table and column names come only from :mod:`crucible.pipelines.view.tables` (declared, checked against the
schemas); every value a request carries is a bound parameter. Text searches are ``ILIKE`` with the
wildcards of the text escaped (:func:`like_pattern`), so ``%`` and ``_`` match themselves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from crucible.pipelines.store.records import record_type
from crucible.pipelines.view import params as V
from crucible.pipelines.view.tables import VIEWS

ESCAPE = "\\"


def _lambda_syntax() -> bool:
    """DuckDB 1.3 added ``lambda x: ...``; 2.0 refuses the ``x -> ...`` arrow older versions need."""
    return tuple(int(p) for p in re.findall(r"\d+", duckdb.__version__)[:2]) >= (1, 3)


# a list filter is ~25x faster than an EXISTS over unnest (1M rows: 0.03 s against 0.8 s)
REASON_SQL = ("len(list_filter(drop_reasons, lambda r: starts_with(r, ?))) > 0" if _lambda_syntax()
              else "len(list_filter(drop_reasons, r -> starts_with(r, ?))) > 0")


def fetch(cur, sql: str, args: Sequence = ()) -> list[dict]:
    res = cur.execute(sql, list(args))
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


def decode(table: str, row: Mapping) -> dict:
    return record_type(table).decode(dict(row))


def like_pattern(text: str) -> str:
    """``%text%`` for ``ILIKE ? ESCAPE '\\'`` with ``\\``, ``%`` and ``_`` of ``text`` matched literally."""
    for ch in (ESCAPE, "%", "_"):
        text = text.replace(ch, ESCAPE + ch)
    return f"%{text}%"


def where_clause(table: str, args: Mapping[str, Any]) -> tuple[str, list]:
    """`` WHERE ...`` and its parameters for a list's validated filters (equality as text; reason prefix)."""
    where, binds = [], []
    for f in VIEWS[table].filters:
        if f in args:
            where.append(f"CAST({f} AS VARCHAR) = ?")
            binds.append(str(args[f]))
    if "reason" in args:  # any drop reason starting with the text
        where.append(REASON_SQL)
        binds.append(args["reason"])
    return (" WHERE " + " AND ".join(where)) if where else "", binds


def list_rows(cur, table: str, args: Mapping[str, Any]) -> tuple[list[dict], bool, int]:
    """(one page of rows, whether there is a next page, rows matching) for a list page."""
    view = VIEWS[table]
    sql_where, binds = where_clause(table, args)
    sort = args.get("sort", view.sort)
    order = "DESC" if args.get("desc") == "1" else "ASC"
    key = record_type(table).key
    offset = int(args.get("offset", 0))
    rows = fetch(cur, f"SELECT {', '.join(view.columns)} FROM {table}{sql_where} ORDER BY {sort} {order}, {key} "
                      f"LIMIT ? OFFSET ?", [*binds, V.PAGE_SIZE + 1, offset])
    total = cur.execute(f"SELECT count(*) FROM {table}{sql_where}", binds).fetchone()[0]
    return rows[:V.PAGE_SIZE], len(rows) > V.PAGE_SIZE, total


def filter_options(cur, table: str, col: str) -> list[tuple[str, int]]:
    """The most common values of ``col`` (as text) with their counts."""
    return [(v, n) for v, n in cur.execute(
        f"SELECT CAST({col} AS VARCHAR) v, count(*) n FROM {table} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?",
        [V.FILTER_OPTIONS]).fetchall() if v is not None]


def get_row(cur, table: str, key_value: str) -> dict:
    key = record_type(table).key
    rows = fetch(cur, f"SELECT * FROM {table} WHERE {key} = ? LIMIT 1", [key_value])
    if not rows:
        raise V.NotFound(f"{table}/{key_value}")
    return decode(table, rows[0])


def neighbours(cur, table: str, key_value: str) -> tuple[Any, Any]:
    """(previous key, next key) around ``key_value`` in key order (None at either end)."""
    key = record_type(table).key
    prev = cur.execute(f"SELECT max({key}) FROM {table} WHERE {key} < ?", [key_value]).fetchone()[0]
    nxt = cur.execute(f"SELECT min({key}) FROM {table} WHERE {key} > ?", [key_value]).fetchone()[0]
    return prev, nxt


def search(cur, text: str) -> tuple[list[dict], list[dict]]:
    """(questions whose question or answer contains ``text``, trajectories whose final answer does)."""
    pat = like_pattern(text)
    esc = f"ESCAPE '{ESCAPE}'"
    qs = fetch(cur, f"SELECT question_id, question, answer FROM questions WHERE question ILIKE ? {esc} OR answer "
                    f"ILIKE ? {esc} ORDER BY question_id LIMIT ?", [pat, pat, V.SEARCH_LIMIT])
    ts = fetch(cur, f"SELECT traj_id, extracted_answer, verdict FROM browse_trajectories WHERE extracted_answer "
                    f"ILIKE ? {esc} OR prediction ILIKE ? {esc} ORDER BY traj_id LIMIT ?", [pat, pat, V.SEARCH_LIMIT])
    return qs, ts


def counts(cur) -> dict[str, int]:
    return {t: cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in VIEWS}
