"""The search server's contract, read from ``openapi.json`` beside this file: its limits
(``x-crucible-limits``), its operations, and the validation of every parameter against the declared
schema. One source: the server, its docs and the tests that check the server against it read the same file.

A parameter outside its declared type or range is a :class:`ParamError`, answered as 400 with a JSON
body naming the field, the allowed range (the declared schema) and the value given. Parameters the
description does not declare are ignored, as the live APIs ignore them.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

SPEC_PATH = Path(__file__).with_name("openapi.json")
_INT = re.compile(r"[+-]?\d{1,30}")
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}
_SCHEMA_WORDS = ("type", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "enum")


@lru_cache(maxsize=1)
def spec() -> dict:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Limits:
    """The server's caps (``x-crucible-limits``). A field set to None switches that defense off (tests only)."""

    max_request_line_bytes: int | None
    max_head_bytes: int | None
    max_body_bytes: int | None
    max_response_bytes: int | None
    max_query_fields: int | None
    read_timeout_s: float | None
    request_deadline_s: float | None
    max_connections: int | None
    request_log: int | None

    @classmethod
    def from_spec(cls) -> Limits:
        declared = spec()["x-crucible-limits"]
        names = [f.name for f in fields(cls)]
        if sorted(declared) != sorted(names):
            raise ValueError(f"{SPEC_PATH}: x-crucible-limits must name exactly {names}, got {sorted(declared)}")
        return cls(**declared)


class ParamError(ValueError):
    """A request the server will not run: ``status`` (400 unless said), the ``field`` and what it allows."""

    def __init__(self, field: str, message: str, allowed: dict | None = None, value=None, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.allowed, self.value, self.status = field, allowed or {}, value, status

    def body(self) -> dict:
        return {"error": str(self), "status": self.status, "field": self.field, "allowed": self.allowed,
                "value": shown(self.value)}


def shown(value):
    """The value as echoed in an error: scalars as given (long strings cut), containers summarized."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):  # beyond 64 bits as text: some JSON readers lose such numbers
        text = str(value)
        return value if abs(value) < 2**63 else text if len(text) <= 40 else f"{text[:40]}... ({len(text)} digits)"
    if isinstance(value, float):
        return value
    if isinstance(value, str):  # lone surrogates (from JSON escapes) as \udxxx text: the answer must encode
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value if len(value) <= 200 else f"{value[:200]}... ({len(value)} characters)"
    if isinstance(value, list):
        return f"<array of {len(value)} items>"
    if isinstance(value, dict):
        return f"<object with {len(value)} keys>"
    return f"<{type(value).__name__}>"


def describe(schema: dict) -> str:
    """``schema`` in words, for the error message."""
    t = schema.get("type")
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if t == "integer":
        return f"an integer from {schema.get('minimum', '-inf')} to {schema.get('maximum', 'inf')}"
    if t == "string":
        return f"a string of {schema.get('minLength', 0)} to {schema.get('maxLength', 'any number of')} characters"
    if t == "array":
        return (f"an array of {schema.get('minItems', 0)} to {schema.get('maxItems', 'any number of')} items, "
                f"each {describe(schema.get('items', {}))}")
    if t == "boolean":
        return "true or false"
    return f"of type {t}"


def allowed_of(schema: dict) -> dict:
    out = {k: schema[k] for k in _SCHEMA_WORDS if k in schema}
    if "items" in schema:
        out["items"] = allowed_of(schema["items"])
    return out


@dataclass(frozen=True)
class Operation:
    """One declared (path, method): its parameters as one object schema, read from the query or the body."""

    path: str
    method: str
    operation_id: str
    source: str  # "query", "body" or "none"
    schema: dict

    def check(self, obj: dict) -> dict:
        """``obj`` validated against the declared schema, with the declared defaults filled in."""
        try:
            errors = list(Draft202012Validator(self.schema).iter_errors(obj))
        except RecursionError:
            raise ParamError("body", "is nested too deeply", {"type": "object"}, "<deeply nested>") from None
        if errors:
            raise _first_error(self.schema, errors)
        out = dict(obj)
        for name, prop in self.schema.get("properties", {}).items():
            if name not in out and "default" in prop:
                out[name] = prop["default"]
            elif name in out and prop.get("type") == "integer":
                out[name] = int(out[name])  # 3.0 is an integer in JSON Schema
            if prop.get("type") in ("string", "array") and name in out:
                _check_unicode(name, out[name], prop)
        return out

    def from_query(self, query: str, max_fields: int | None) -> dict:
        """The query string's declared parameters, typed by their schema, then :meth:`check`."""
        try:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=max_fields)
        except UnicodeDecodeError as exc:
            raise ParamError("query string", f"is not valid UTF-8 once percent-decoded ({exc.reason})",
                             {"encoding": "utf-8"}, query) from None
        except ValueError:
            raise ParamError("query string", f"has more than {max_fields} fields", {"maxFields": max_fields},
                             f"<{query.count('&') + 1} fields>") from None
        props = self.schema.get("properties", {})
        obj: dict = {}
        for name, raw in pairs:
            if name not in props:
                continue
            if name in obj:
                raise ParamError(name, "is given more than once", allowed_of(props[name]), raw)
            obj[name] = _typed(name, raw, props[name])
        return self.check(obj)

    def from_body(self, raw: bytes) -> dict:
        """The JSON body (an object), then :meth:`check`."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParamError("body", f"is not valid UTF-8 (byte {exc.start})", {"encoding": "utf-8"},
                             f"<{len(raw)} bytes>") from None
        if not text.strip():
            raise ParamError("body", "must be a JSON object, got an empty body", {"type": "object"}, "")
        try:
            obj = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise ParamError("body", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                             {"type": "object"}, shown(text)) from None
        except RecursionError:
            raise ParamError("body", "is nested too deeply", {"type": "object"}, "<deeply nested>") from None
        except ValueError as exc:  # NaN/Infinity (_no_constant), an integer of over 4300 digits
            raise ParamError("body", f"is not valid JSON ({exc})", {"type": "object"}, "<rejected number>") from None
        if not isinstance(obj, dict):
            raise ParamError("body", f"must be a JSON object, got {_JSON_TYPES[type(obj)]}", {"type": "object"},
                             shown(obj))
        return self.check(obj)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _typed(name: str, raw: str, schema: dict):
    t = schema.get("type")
    if t == "integer":
        if not _INT.fullmatch(raw):
            raise ParamError(name, f"must be {describe(schema)}", allowed_of(schema), raw)
        return int(raw)
    if t == "boolean":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ParamError(name, "must be true or false", allowed_of(schema), raw)
        return raw.lower() in ("true", "1")
    return raw


def _check_unicode(name: str, value, schema: dict) -> None:
    for i, s in enumerate(value if isinstance(value, list) else [value]):
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            field = f"{name}[{i}]" if isinstance(value, list) else name
            raise ParamError(field, "is not valid Unicode (a lone surrogate)", allowed_of(schema),
                             s.encode("utf-8", "backslashreplace").decode()) from None


def _first_error(schema: dict, errors: list) -> ParamError:
    err = min(errors, key=lambda e: [str(p) for p in e.absolute_path])
    path = list(err.absolute_path)
    if err.validator == "required":
        missing = next(n for n in err.validator_value if n not in err.instance)
        prop = schema["properties"][missing]
        return ParamError(missing, f"is required: {describe(prop)}", allowed_of(prop), None)
    if not path:
        return ParamError("body", "must be a JSON object", {"type": "object"}, err.instance)
    name = str(path[0])
    prop = schema["properties"][name]
    field = name + "".join(f"[{p}]" for p in path[1:])
    return ParamError(field, f"must be {describe(prop)}", allowed_of(prop), err.instance)


def _param_schema(op: dict) -> tuple[str, dict]:
    if "requestBody" in op:
        return "body", op["requestBody"]["content"]["application/json"]["schema"]
    params = [p for p in op.get("parameters", []) if p["in"] == "query"]
    if not params:
        return "none", {"type": "object", "properties": {}}
    return "query", {"type": "object", "properties": {p["name"]: p["schema"] for p in params},
                     "required": [p["name"] for p in params if p.get("required")]}


@lru_cache(maxsize=1)
def operations() -> dict[tuple[str, str], Operation]:
    """Every declared (path, METHOD) -> :class:`Operation`."""
    out = {}
    for path, item in spec()["paths"].items():
        for method, op in item.items():
            source, schema = _param_schema(op)
            out[(path, method.upper())] = Operation(path, method.upper(), op["operationId"], source, schema)
    return out


def methods_of(path: str) -> list[str]:
    return sorted(m for p, m in operations() if p == path)
