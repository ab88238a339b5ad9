"""Input rows checked against their JSON Schema in ``schemas/``: one validator for every row a user gives.

Each input record type (KG extras ``kg_entity``/``kg_triple``, judge rows ``judge_row``, SWE-bench rows
``swebench_row``, predictions ``swe_prediction``) has a schema; :func:`row_problem` runs it and turns the
first error into ``(field, reason)`` with the fix:

- an unknown field names the closest known one (``FAIL_TO_PAS``: did you mean 'FAIL_TO_PASS'?);
- a missing field lists the required ones;
- a wrong type or value says what is allowed (the property's ``x-fix`` or ``description``).

:func:`check_rows` validates ``(line, row)`` pairs and raises :class:`RowError` naming ``file:line``
and the field; :func:`check_unique` makes duplicate ids an error naming both lines. :func:`check_messages`
checks OpenAI ``messages`` (``schemas/messages_row.json``: a list of objects with a role, text content, tool
calls whose string ``arguments`` are JSON under textio's limits) before a reader walks them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from functools import cache

import jsonschema

from crucible.pipelines.store.records import resolved_schema
from crucible.pipelines.textio import InputError, JSONSyntaxError, closest, loads


class RowError(InputError):
    """A bad input row; the message is ``file:line: field F: what is wrong; the fix``."""


@cache
def _validator(schema_name: str) -> jsonschema.protocols.Validator:
    schema = resolved_schema(f"{schema_name}.json")
    return jsonschema.Draft202012Validator(schema)


def schema_of(schema_name: str) -> dict:
    return _validator(schema_name).schema


def _field(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _hint(schema: dict) -> str:
    return schema.get("x-fix") or schema.get("description") or ""


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _describe(err: jsonschema.ValidationError, root: dict) -> tuple[str | None, str]:
    v, s, inst = err.validator, err.schema if isinstance(err.schema, dict) else {}, err.instance
    path = list(err.absolute_path)
    if v == "additionalProperties":
        known = list(s.get("properties", {}))
        extra = sorted(k for k in inst if k not in known)
        name = extra[0]
        near = closest(name, known)
        fix = f"did you mean {near!r}?" if near else f"known fields: {', '.join(known)}"
        return _field([*path, name]), f"unknown field; {fix}"
    if v == "required":
        missing = [r for r in err.validator_value if r not in inst]
        known = s.get("properties", {})
        typo = closest(missing[0], [k for k in inst if k not in known])
        return _field([*path, missing[0]]), (f"required field missing (every row needs "
                                              f"{', '.join(err.validator_value)})"
                                              + (f"; the row has {typo!r}: a misspelling of {missing[0]!r}?"
                                                 if typo else ""))
    field = _field(path) or None
    if field is None and v == "type":
        return None, f"a row must be a JSON object, got {_type_name(inst)}"
    hint = _hint(s) or (_hint(_at(root, path)) if path else "")
    if v == "type":
        want = s["type"] if isinstance(s["type"], str) else " or ".join(s["type"])
        what = f"must be {want}, got {_type_name(inst)}"
    elif v == "minLength":
        what = "must not be empty"
    elif v == "minItems":
        what = f"must hold at least {s['minItems']} item(s), got {len(inst)}"
    elif v == "enum":
        what = f"{_short(inst)} is not allowed (allowed: {', '.join(json.dumps(x) for x in s['enum'])})"
    elif v == "pattern":
        what = f"{inst!r} does not match {s['pattern']}"
    elif v in ("anyOf", "oneOf"):
        what = f"{_short(inst)} is not allowed"
    else:
        what = err.message
    return field, what + (f"; {hint}" if hint else "")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _at(root: dict, path: list) -> dict:
    node = root
    for p in path:
        if not isinstance(node, dict):
            return {}
        node = (node.get("items") if isinstance(p, int) else node.get("properties", {}).get(p)) or {}
    return node


def row_problem(schema_name: str, row: object) -> tuple[str | None, str] | None:
    """``(field, reason)`` of the first schema error of ``row`` (None: valid). Field is None for the row."""
    val = _validator(schema_name)
    errors = list(val.iter_errors(row))
    if not errors:
        return None
    # the row-level problems first (not an object, unknown/missing field), then by field order
    order = {k: i for i, k in enumerate(val.schema.get("properties", {}))}

    def rank(e):
        top = e.absolute_path[0] if e.absolute_path else None
        return (top is not None, order.get(top, len(order)), len(e.absolute_path))

    return _describe(min(errors, key=rank), val.schema)


def format_problem(where: str, field: str | None, reason: str) -> str:
    return f"{where}: field {field}: {reason}" if field else f"{where}: {reason}"


def check_row(schema_name: str, row: object, where: str, error: Callable[[str], Exception] = RowError) -> dict:
    """``row`` if valid, else raise ``error`` with ``where: field F: reason; fix``."""
    prob = row_problem(schema_name, row)
    if prob:
        raise error(format_problem(where, *prob) + f" (format: schemas/{schema_name}.json)")
    return row  # type: ignore[return-value]


def check_rows(schema_name: str, rows: Iterable[tuple[int, object]], path: str,
               error: Callable[[str], Exception] = RowError) -> Iterator[tuple[int, dict]]:
    """Validate ``(line, row)`` pairs of ``path``; the first bad row raises naming ``path:line``."""
    for line, row in rows:
        yield line, check_row(schema_name, row, f"{path}:{line}", error)


def check_unique(items: Iterable[tuple[str, str]], what: str,
                 error: Callable[[str], Exception] = RowError, seen: dict[str, str] | None = None) -> dict[str, str]:
    """``items`` are ``(id, where)``; a second occurrence raises naming both places. ``seen`` (id ->
    where) carries ids from earlier files, or built-in ones; the updated map is returned."""
    seen = {} if seen is None else seen
    for key, where in items:
        if key in seen:
            raise error(f"{where}: duplicate {what} {key!r}, already at {seen[key]}; ids must be unique "
                        "(rename one or drop the repeated row)")
        seen[key] = where
    return seen


def check_messages(messages: object, where: str, field: str = "messages",
                   error: Callable[[str], Exception] = RowError, one: bool = False) -> list:
    """``messages`` if it is a valid list of OpenAI messages, else raise ``error`` naming ``where`` and the
    field (``messages[2]``, ``messages[1].tool_calls[0].function.arguments``: not an object, no role, ...).
    ``one``: ``messages`` is a single message, named ``field`` itself."""
    msgs = [messages] if one else messages
    cut = len("messages[0]") if one else len("messages")

    def name(sub: str) -> str:
        return (field + sub[cut:]).lstrip(".") or "messages"

    prob = row_problem("messages_row", {"messages": msgs})
    if prob:
        sub, reason = prob
        raise error(format_problem(where, name(sub or "messages"), reason) + " (format: schemas/messages_row.json)")
    for i, m in enumerate(msgs):  # type: ignore[arg-type]
        for j, call in enumerate(m.get("tool_calls") or []):
            args = call["function"].get("arguments")
            if not isinstance(args, str) or not args.strip():
                continue
            at = f"{where}: field {name(f'messages[{i}].tool_calls[{j}].function.arguments')}"
            try:
                loads(args, at)
            except JSONSyntaxError as exc:
                e = exc.decode_error
                raise error(f"{at}: not valid JSON ({e.msg} at column {e.colno}); arguments is a JSON object "
                            "or a JSON-encoded string of one") from None
            except InputError as exc:
                raise error(str(exc)) from None
    return messages  # type: ignore[return-value]

