"""Every input the viewer takes, declared with its type and range, and checked before any query runs.

A request is its path segments and its query parameters. Each route declares its parameters as
:class:`Param` (the same declarations make the OpenAPI description, :mod:`crucible.pipelines.view.openapi`);
:func:`validate` turns the raw strings into typed values or raises :class:`BadRequest` with a message
naming the parameter, what it got and what it takes. Unknown and repeated parameters are refused, so a
typo never silently shows every row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_to_bytes

from crucible.pipelines.view import tables as T

PAGE_SIZE = 50  # rows on a list page
SEARCH_LIMIT = 100  # hits per kind on the search page
FILTER_OPTIONS = 50  # values offered per filter select
MAX_OFFSET = 10_000_000  # a deeper page: narrow the list with a filter instead
MAX_TEXT = 200  # characters of a search text or a drop-reason prefix
MAX_VALUE = 500  # characters of a filter value
MAX_KEY = 500  # characters of a row key in a path
MAX_PARAMS = 32  # query parameters in one request
INT64 = (-(2**63), 2**63 - 1)
_INT = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: int() would take "1_0", " 3" and "٣"


class BadRequest(ValueError):
    """The client's fault: a 400 with this message."""


class NotFound(LookupError):
    """Nothing at this path: a 404."""


@dataclass(frozen=True)
class Param:
    """One query parameter: ``kind`` is ``string``, ``integer`` or ``enum``; an empty value means absent."""

    name: str
    kind: str
    description: str
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] = ()

    def schema(self) -> dict:
        """This parameter's JSON Schema (OpenAPI 3)."""
        if self.kind == "integer":
            return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        if self.kind == "enum":
            return {"type": "string", "enum": list(self.choices)}
        return {"type": "string", "maxLength": self.max_length}

    def parse(self, raw: str) -> int | str:
        if self.kind == "integer":
            if not _INT.fullmatch(raw) or not self.minimum <= int(raw) <= self.maximum:
                raise BadRequest(f"{self.name} must be an integer from {self.minimum} to {self.maximum}, "
                                 f"not {_show(raw)}")
            return int(raw)
        if self.kind == "enum":
            if raw not in self.choices:
                raise BadRequest(f"{self.name} must be one of {', '.join(self.choices)}; not {_show(raw)}")
            return raw
        if len(raw) > self.max_length:
            raise BadRequest(f"{self.name} is {len(raw)} characters; at most {self.max_length}")
        return raw


def _show(raw: str, n: int = 40) -> str:
    return repr(raw if len(raw) <= n else raw[:n] + "…")


def _filter(table: str, col: str) -> Param:
    typ = T.types(table)[col]
    what = f"only rows whose {col} equals this value (empty: any)"
    if typ == "BIGINT":
        return Param(col, "integer", what, minimum=INT64[0], maximum=INT64[1])
    if typ == "BOOLEAN":
        return Param(col, "enum", what, choices=("true", "false"))
    return Param(col, "string", what, max_length=MAX_VALUE)


def list_params(table: str) -> tuple[Param, ...]:
    """The query parameters of ``/<table>``."""
    v = T.VIEWS[table]
    out = [_filter(table, f) for f in v.filters]
    if T.has_reasons(table):
        out.append(Param("reason", "string", "only rows with a drop reason starting with this text",
                         max_length=MAX_TEXT))
    out += [Param("sort", "enum", f"the column to sort by (default {v.sort})", choices=T.sortable(table)),
            Param("desc", "enum", "1: descending", choices=("0", "1")),
            Param("offset", "integer", f"rows to skip ({PAGE_SIZE} a page)", minimum=0, maximum=MAX_OFFSET)]
    return tuple(out)


SEARCH_PARAMS = (Param("q", "string", "text that questions, answers or final answers contain (any characters, "
                                      "matched literally, case-insensitive)", max_length=MAX_TEXT),)


def validate(params: Sequence[Param], query: Mapping[str, str], where: str) -> dict[str, int | str]:
    """Typed values of the non-empty parameters in ``query``; BadRequest on an unknown name or a bad value."""
    known = {p.name: p for p in params}
    for name in query:
        if name not in known:
            hint = f"; it takes {', '.join(known)}" if known else "; it takes none"
            raise BadRequest(f"unknown parameter {_show(name)} for {where}{hint}")
    return {n: known[n].parse(v) for n, v in query.items() if v != ""}


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not UTF-8 after %-decoding") from None


def parse_target(target: str) -> tuple[list[str], dict[str, str]]:
    """(path segments, query) of a request target, both %-decoded as UTF-8. BadRequest on a target that is
    not ASCII, not UTF-8 once decoded, with too many parameters, or with one given twice."""
    if not target.startswith("/"):
        raise BadRequest("the request target must be a path starting with /")
    if not target.isascii() or any(c <= " " or c == "\x7f" for c in target):
        raise BadRequest("the request target must be printable ASCII (%-encode other bytes)")
    path, _, qs = target.partition("?")
    path = path.partition("#")[0]
    parts = [_decode(unquote_to_bytes(p), "the path") for p in path.split("/") if p]
    try:
        pairs = parse_qsl(qs.partition("#")[0], keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=MAX_PARAMS)
    except UnicodeDecodeError:
        raise BadRequest("the query string is not UTF-8 after %-decoding") from None
    except ValueError:
        raise BadRequest(f"more than {MAX_PARAMS} query parameters") from None
    query: dict[str, str] = {}
    for k, v in pairs:
        if k in query:
            raise BadRequest(f"parameter {_show(k)} given twice")
        query[k] = v
    return parts, query


def key(value: str) -> str:
    """A row key from a path segment (any text up to MAX_KEY characters)."""
    if len(value) > MAX_KEY:
        raise BadRequest(f"a row key is at most {MAX_KEY} characters; this one is {len(value)}")
    return value
