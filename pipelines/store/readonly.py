"""Readers never write: the DuckDB connection every reader gets, and the gate ``crucible query`` puts before it.

Two layers, each closing what the other leaves open (DuckDB 2.0.1 measured; ``duckdb>=1.2`` has the settings):

- :func:`lock_down` (every :func:`crucible.pipelines.store.catalog.connect`: ``query``, ``stats``, ``report``, ``export``,
  the viewer): after the views are made, DuckDB may open only the files the views read (``allowed_paths``:
  the committed shards and the schema files, nothing else of the store or the host), then
  ``enable_external_access=false`` and ``lock_configuration=true``. ``read_text('/etc/passwd')``, ``read_csv``
  of any other file, ``attach '<store>/crucible.duckdb'``, ``install``/``load``, ``export database``, ``copy
  ... to`` anywhere else, ``set``/``pragma``/``reset`` of any setting and the table functions that change
  settings (``enable_profiling``, ``enable_logging``) all fail. Extensions are neither installed nor loaded on
  demand; DuckDB spills to a folder under the system temp dir, never the working directory.
- :func:`check_select` (every SQL text ``crucible query`` runs): the allow-list leaves the shards
  themselves writable (``copy ... to '<shard>' (use_tmp_file false)``, also hidden in a ``WITH`` clause), so
  the SQL must be SELECT statements only (``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``FROM ...`` and ``WITH ...
  SELECT`` are), whose parse tree (DuckDB's ``json_serialize_sql``) holds no query node but SELECT, set
  operation and CTE nodes (a ``COPY``/``INSERT``/``UPDATE``/``DELETE`` inside ``WITH`` is refused) and calls
  table functions of :data:`TABLE_FUNCTIONS` only (``json_execute_serialized_sql`` would run a serialized
  ``COPY``; ``query()`` runs SQL text).

A refusal is :class:`ReadOnlyRefused` (a :class:`~crucible.pipelines.store.manifests.StoreError`: exit 2, one line).
"""

from __future__ import annotations

import json
import os
import tempfile

import duckdb

from crucible.pipelines.store.manifests import StoreError
from crucible.pipelines.store.records import TABLES

# query nodes a read may hold (json_serialize_sql's "type" of a node)
SAFE_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
# table functions a read may call: generators, JSON and file readers (lock_down limits those to the store's
# committed files), parquet metadata, and DuckDB's catalog listings (read-only)
TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree", "summary",
    "query_table", "histogram", "histogram_values", "glob", "read_parquet", "parquet_scan", "read_text",
    "read_blob", "read_csv", "read_csv_auto", "read_json", "read_json_auto", "read_ndjson", "read_ndjson_auto",
    "read_json_objects", "read_ndjson_objects", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
    "parquet_kv_metadata", "parquet_full_metadata", "parquet_bloom_probe", "pragma_table_info", "pragma_show",
    "pragma_version", "pragma_platform", "pragma_user_agent", "pg_timezone_names", "icu_calendar_names",
    "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies", "duckdb_extensions",
    "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_memory", "duckdb_optimizers",
    "duckdb_schemas", "duckdb_sequences", "duckdb_settings", "duckdb_tables", "duckdb_types", "duckdb_variables",
    "duckdb_views", "duckdb_temporary_files",
})
FIX = (f"crucible query runs SELECT statements over the views only ({', '.join(TABLES)}); to keep a result use "
       "--csv or --json and redirect it, or `crucible export`")


class ReadOnlyRefused(StoreError):
    """SQL a reader will not run (a write, a setting, a file outside the store's committed ones)."""


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def spill_dir() -> str:
    """Where DuckDB may spill a large sort or join: the system temp dir, never the store or the working dir."""
    return os.path.join(tempfile.gettempdir(), f"crucible-duckdb-{os.getuid() if hasattr(os, 'getuid') else 0}")


def lock_down(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """Let ``con`` open ``files`` (absolute paths) and nothing else, and freeze its settings. Call it last: a
    view over a file is bound when it is queried, so ``files`` must hold every file a view reads."""
    for sql in ("SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false",
                f"SET temp_directory = {_quote(spill_dir())}",
                f"SET allowed_paths = [{', '.join(_quote(f) for f in files)}]",
                "SET allowed_directories = []",
                "SET enable_external_access = false",
                "SET lock_configuration = true"):
        con.execute(sql)


def _walk(node, nodes: set[str], functions: set[str]) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE"):
            nodes.add(kind)
        if kind == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            functions.add(str(node["function"].get("function_name", "")).lower())
        for v in node.values():
            _walk(v, nodes, functions)
    elif isinstance(node, list):
        for v in node:
            _walk(v, nodes, functions)


def refusal(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """Why ``sql`` is not a read (None when it is). Parse errors propagate as DuckDB's own."""
    for st in duckdb.extract_statements(sql):
        if st.type != duckdb.StatementType.SELECT:
            kind = "PIVOT (a statement run as several)" if st.type.name == "MULTI" else st.type.name
            return f"{kind} statements are not allowed ({' '.join(st.query.split())[:80]!r})"
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        return f"not a plain SELECT ({' '.join(str(tree.get('error_message')).split())[:120]})"
    nodes: set[str] = set()
    functions: set[str] = set()
    _walk(tree.get("statements"), nodes, functions)
    bad = sorted(nodes - SAFE_NODES)
    if bad:
        return (f"{', '.join(n.removesuffix('_QUERY_NODE').removesuffix('_NODE') for n in bad)} inside a query is "
                "not allowed (a data-modifying WITH clause)")
    bad = sorted(functions - TABLE_FUNCTIONS)
    if bad:
        return f"table function {', '.join(f + '()' for f in bad)} is not allowed in a read"
    return None


def check_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise :class:`ReadOnlyRefused` unless ``sql`` only reads (see module docstring)."""
    try:
        why = refusal(con, sql)
    except ValueError as exc:  # a statement type this duckdb's Python enum does not know (UPDATE EXTENSIONS)
        why = f"unknown statement type ({exc})"
    if why:
        raise ReadOnlyRefused(f"query refused: {why}. {FIX}")


def explain_refusal(exc: duckdb.Error) -> str | None:
    """The one-line message for a DuckDB error the lock-down raised (None for any other error)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, duckdb.PermissionException):
        return (f"query refused: {first}; readers open the store's committed files only, nothing else of the "
                f"store or the host. {FIX}")
    if isinstance(exc, duckdb.InvalidInputException) and "configuration has been locked" in first:
        return f"query refused: {first}; a reader's settings are fixed. {FIX}"
    return None
