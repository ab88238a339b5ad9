"""What a `crucible kg ingest` job hands its finalize step: the staged shards' schemas (each row keeps
the ``_file`` and ``_line`` it came from) and the ``failures`` row of one bad input line.

Shared by the Beam job (:mod:`crucible.pipelines.browse.kg.ingest`) and the DuckDB finalize
(:mod:`crucible.pipelines.browse.kg.finalize`), which imports nothing of the job.
"""

from __future__ import annotations

import pyarrow as pa

from crucible.pipelines.browse.kg.model import arrow_schema
from crucible.pipelines.store.commit import failure_row
from crucible.pipelines.store.records import record_type

PIPELINE = "kg_ingest"
PAGE_FIELDS = ("url", "title", "text", "type", "entity_id")
_AT = [pa.field("_file", pa.string()), pa.field("_line", pa.int64())]


def entity_stage_schema() -> pa.Schema:
    return pa.schema(list(arrow_schema("kg_entity")) + _AT)


def triple_stage_schema() -> pa.Schema:
    return pa.schema(list(arrow_schema("kg_triple")) + _AT)


def page_stage_schema() -> pa.Schema:
    return pa.schema([pa.field(k, pa.string()) for k in PAGE_FIELDS] + _AT)


def line_failure(run_id: str, stage: str, table: str, file: str, line: int, path: str, reason: str,
                 payload: object = None) -> dict:
    """The ``failures`` row of input line ``file:line`` (``path``: the field inside it, if any)."""
    at = f"{file}:{line}"
    return record_type("failures").encode(failure_row(
        pipeline=PIPELINE, stage=stage, kind="schema", table=table, item_key=at, path=path or None,
        reason=f"{at}: {path + ': ' if path else ''}{reason}", run_id=run_id, payload=payload,
        discriminator=[file, line, path]))
