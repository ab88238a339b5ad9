"""Record types: JSON Schemas in ``schemas/`` are the single definition.

From each schema we derive
- a validator (jsonschema, Draft 2020-12) used at every pipeline boundary,
- the pyarrow schema used to write Parquet (never inferred from data),
- the encoding of in-flight rows (Python dicts) into Parquet rows: fields marked
  ``"x-arrow": "json"`` are free-form and stored as JSON strings.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
import pyarrow as pa

# Public table name -> schema file. Table names are the DuckDB view names (a public contract).
TABLES: dict[str, str] = {
    "questions": "question.json",
    "browse_trajectories": "browse_trajectory.json",
    "swe_instances": "swe_instance.json",
    "swe_validations": "swe_validation.json",
    "swe_trajectories": "swe_trajectory.json",
    "sandbox_surveys": "sandbox_survey.json",
    "swe_grades": "swe_grade.json",
    "failures": "failure.json",
}


class SchemaError(ValueError):
    """A schema file itself is malformed (a bug in schemas/, not in data)."""


@functools.cache
def _raw_schema(filename: str) -> dict:
    text = resources.files("crucible.schemas").joinpath(filename).read_text(encoding="utf-8")
    return json.loads(text)


def _resolve(node: Any, current: str) -> Any:
    """Inline every ``$ref`` (``file.json#/$defs/x`` or ``#/$defs/x``) so that the
    validator and the arrow converter see one self-contained schema."""
    if isinstance(node, list):
        return [_resolve(n, current) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        file_part, _, pointer = ref.partition("#")
        filename = file_part or current
        target: Any = _raw_schema(filename)
        for part in [p for p in pointer.split("/") if p]:
            try:
                target = target[part]
            except KeyError as exc:
                raise SchemaError(f"schemas/{current}: unresolved $ref {ref!r}") from exc
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, filename)
    return {k: _resolve(v, current) for k, v in node.items() if k != "$defs"}


@dataclass(frozen=True)
class RecordType:
    table: str
    filename: str
    schema: dict  # resolved JSON Schema
    key: str  # the field that identifies a row

    @functools.cached_property
    def validator(self) -> jsonschema.protocols.Validator:
        cls = jsonschema.validators.validator_for(self.schema, default=jsonschema.Draft202012Validator)
        return cls(self.schema)

    @functools.cached_property
    def arrow_schema(self) -> pa.Schema:
        return arrow_schema_for(self.schema, self.table)

    @property
    def columns(self) -> list[str]:
        return list(self.schema["properties"])

    def errors(self, row: dict) -> list[tuple[str, str]]:
        """All validation errors as (json path, message), sorted by path."""
        out = []
        for err in self.validator.iter_errors(row):
            path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
            out.append((path, err.message))
        return sorted(out)

    def encode(self, row: dict) -> dict:
        """Validated in-flight row -> Parquet row (JSON fields to strings, missing optional -> None)."""
        return {name: _encode(self.schema["properties"][name], row.get(name)) for name in self.columns}

    def decode(self, row: dict) -> dict:
        """Parquet row -> in-flight row (JSON strings parsed back)."""
        return {name: _decode(self.schema["properties"][name], row.get(name)) for name in self.columns if name in row}

    def to_table(self, rows: list[dict]) -> pa.Table:
        return pa.Table.from_pylist([self.encode(r) for r in rows], schema=self.arrow_schema)


@functools.cache
def resolved_schema(filename: str) -> dict:
    """The schema ``schemas/<filename>`` with every ``$ref`` inlined (input-row schemas too)."""
    return _resolve(_raw_schema(filename), filename)


@functools.cache
def record_type(table: str) -> RecordType:
    try:
        filename = TABLES[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}") from None
    schema = _resolve(_raw_schema(filename), filename)
    key = schema.get("x-key")
    if key not in schema.get("properties", {}):
        raise SchemaError(f"schemas/{filename}: x-key {key!r} is not a property")
    return RecordType(table=table, filename=filename, schema=schema, key=key)


def all_record_types() -> list[RecordType]:
    return [record_type(t) for t in TABLES]


# ---------------------------------------------------------------- arrow mapping

def _types(node: dict) -> list[str]:
    t = node.get("type")
    if t is None:
        if "const" in node:
            return [type(node["const"]).__name__.replace("str", "string")]
        return []
    return [t] if isinstance(t, str) else list(t)


def _is_json(node: dict) -> bool:
    return node.get("x-arrow") == "json"


def arrow_type(node: dict, where: str) -> pa.DataType:
    if _is_json(node):
        return pa.string()
    kinds = [k for k in _types(node) if k != "null"]
    if len(kinds) != 1:
        raise SchemaError(f"{where}: needs exactly one non-null type or x-arrow: json, got {kinds}")
    kind = kinds[0]
    if kind == "string":
        return pa.string()
    if kind == "integer":
        return pa.int64()
    if kind == "number":
        return pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "array":
        items = node.get("items")
        if not isinstance(items, dict):
            raise SchemaError(f"{where}: array needs an items schema")
        return pa.list_(arrow_type(items, where + "[]"))
    if kind == "object":
        props = node.get("properties")
        if not props:
            raise SchemaError(f"{where}: object without properties must be marked x-arrow: json")
        return pa.struct([pa.field(k, arrow_type(v, f"{where}.{k}")) for k, v in props.items()])
    raise SchemaError(f"{where}: unsupported type {kind}")


def arrow_schema_for(schema: dict, name: str) -> pa.Schema:
    required = set(schema.get("required", []))
    fields = []
    for col, node in schema["properties"].items():
        nullable = col not in required or "null" in _types(node) or _is_json(node)
        fields.append(pa.field(col, arrow_type(node, f"{name}.{col}"), nullable=nullable))
    return pa.schema(fields, metadata={"crucible.table": name})


def _encode(node: dict, value: Any) -> Any:
    if value is None:
        return None
    if _is_json(node):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    kinds = [k for k in _types(node) if k != "null"]
    if kinds == ["array"] and isinstance(value, list):
        return [_encode(node["items"], v) for v in value]
    if kinds == ["object"] and isinstance(value, dict) and node.get("properties"):
        return {k: _encode(sub, value.get(k)) for k, sub in node["properties"].items()}
    return value


def _decode(node: dict, value: Any) -> Any:
    if value is None:
        return None
    if _is_json(node):
        return json.loads(value) if isinstance(value, str) else value
    kinds = [k for k in _types(node) if k != "null"]
    if kinds == ["array"] and isinstance(value, list):
        return [_decode(node["items"], v) for v in value]
    if kinds == ["object"] and isinstance(value, dict) and node.get("properties"):
        # optional keys that are null in the struct column were absent in the record
        required = set(node.get("required", []))
        return {k: _decode(sub, value.get(k)) for k, sub in node["properties"].items()
                if value.get(k) is not None or k in required}
    return value
