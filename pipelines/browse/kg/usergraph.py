"""A graph a user brings: JSON lines or Parquet rows of the two record types, validated.

Each row is an entity (``schemas/kg_entity.json``) or, when it has a ``relation`` key, a triple
(``schemas/kg_triple.json``); :func:`read_records` reads files and folders of them (``search.kg.extra``)
and names the file, the line and the field of every problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crucible.pipelines.browse.kg.model import Entity, GraphError, Triple
from crucible.pipelines.rowcheck import check_row, check_unique
from crucible.pipelines.textio import InputError, check_regular_file, read_jsonl


def _entity_from_row(r: dict) -> Entity:
    attrs = r.get("attributes") or "{}"
    return Entity(
        id=r["id"], type=r["type"], name=r["name"], aliases=tuple(r.get("aliases") or ()),
        attributes=json.loads(attrs) if isinstance(attrs, str) else dict(attrs),
        description=r.get("description"), url=r.get("url"), source=r.get("source") or "user",
        source_version=r.get("source_version") or "", record_id=r.get("record_id") or "",
        license=r.get("license") or "", alias_sources=tuple(r.get("alias_sources") or ()),
    )


def _triple_from_row(r: dict) -> Triple:
    attrs = r.get("attributes") or "{}"
    return Triple(
        subject=r["subject"], relation=r["relation"], object=r["object"],
        attributes=json.loads(attrs) if isinstance(attrs, str) else dict(attrs),
        source=r.get("source") or "user", source_version=r.get("source_version") or "",
        record_id=r.get("record_id") or "", license=r.get("license") or "",
    )


def _iter_file_rows(path: Path, allow_empty: bool) -> Iterator[tuple[str, object]]:
    if path.suffix == ".parquet":
        try:  # a FIFO or a device is refused by name before Arrow opens it (it would hang)
            check_regular_file(path, "graph rows file")
        except InputError as exc:
            raise GraphError(str(exc)) from None
        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise GraphError(f"{path}: not a readable Parquet file ({exc}); give JSONL or Parquet graph rows") from None
        for i, r in enumerate(rows):
            yield f"{path}: row {i}", r
        return
    try:
        for i, row in read_jsonl(path, "graph rows file", allow_empty=allow_empty):
            yield f"{path}:{i}", row
    except InputError as exc:
        raise GraphError(str(exc)) from None


def _normalize(kind: str, where: str, row: object) -> dict:
    if isinstance(row, dict):
        row = dict(row)
        for k in ("attributes",):
            if isinstance(row.get(k), dict):
                row[k] = json.dumps(row[k], sort_keys=True, ensure_ascii=False)
        row = {k: v for k, v in row.items() if v is not None or k in ("description", "url")}
    return check_row(kind, row, where, GraphError)


def read_records(paths: Iterable[str | os.PathLike], builtin: dict[str, str] | None = None,
                 where: dict[tuple[str, str, str], str] | None = None) -> tuple[list[Entity], list[Triple]]:
    """Read a user graph. Each path is a ``.jsonl`` or ``.parquet`` file; a record with a ``relation``
    key is a triple (``schemas/kg_triple.json``), otherwise an entity (``schemas/kg_entity.json``).
    A directory is read as ``entities.(jsonl|parquet)`` plus ``triples.(jsonl|parquet)`` (a file named
    directly must hold rows; one found in a directory may be empty).
    Every row is validated against its schema; an entity id given twice (in one file or across files),
    or one that replaces an entity of ``builtin`` (id -> its source), is an error naming both places.
    ``where`` (when given) is filled with ``(subject, relation, object) -> "file:line"`` of each triple."""
    ents: list[Entity] = []
    tris: list[Triple] = []
    files: list[tuple[Path, bool]] = []  # (file, may be empty: one found in a folder, e.g. no triples yet)
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.suffix in (".jsonl", ".parquet"))
            if not found:
                raise GraphError(f"{p}: a directory without .jsonl or .parquet graph files "
                                 "(search.kg.extra lists JSONL/Parquet files or folders holding them)")
            files.extend((x, True) for x in found)
        elif p.exists():
            files.append((p, False))
        else:
            raise GraphError(f"{p}: graph input file not found (search.kg.extra lists JSONL/Parquet files)")
    builtin = builtin or {}
    seen: dict[str, str] = {}
    for f, may_be_empty in files:
        for at, row in _iter_file_rows(f, may_be_empty):
            if isinstance(row, dict) and "relation" in row:
                t = _triple_from_row(_normalize("kg_triple", at, row))
                tris.append(t)
                if where is not None:
                    where.setdefault((t.subject, t.relation, t.object), at)
                continue
            e = _entity_from_row(_normalize("kg_entity", at, row))
            if e.id in builtin:
                raise GraphError(f"{at}: field id: {e.id!r} is an entity of the built-in graph (source "
                                 f"{builtin[e.id]}); a user file may not replace it: give yours another id, "
                                 "or set search.kg.embedded=false to use only your files")
            check_unique([(e.id, at)], "entity id", GraphError, seen)
            ents.append(e)
    return ents, tris
