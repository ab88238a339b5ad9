"""OpenAPI 3 description of ``crucible view``, made from the same declarations the server validates with
(:mod:`crucible.pipelines.view.params`, :mod:`crucible.pipelines.view.tables`), served at ``/openapi.json`` and written to
``docs/view.openapi.json`` (``python -m crucible.pipelines.view.openapi > docs/view.openapi.json``; a test keeps the
file current). ``tests/unit/test_hostile_viewer.py`` checks the server's answers against it.
"""

from __future__ import annotations

import json
import sys

from crucible.pipelines.store.records import record_type
from crucible.pipelines.view import params as V
from crucible.pipelines.view.tables import VIEWS

HTML = {"text/html": {"schema": {"type": "string"}}}
ERRORS = {
    "400": "a parameter is unknown, given twice, out of its range or of the wrong type; the request target is not "
           "ASCII, not UTF-8 once %-decoded, or has more than 32 parameters; a request body was sent; the page "
           "names the parameter and what it takes",
    "408": "the request line and headers did not arrive in time",
    "413": "a request body was sent (the viewer takes none)",
    "414": "the request line is over 65,536 bytes",
    "421": "the Host header is not a loopback name or the bound address (DNS rebinding)",
    "431": "a header line is too long or there are too many headers",
    "500": "the store could not be read (the page names the unreadable shards and the fix) or the page failed",
    "503": "too many connections at once",
    "505": "an HTTP version other than 1.0 or 1.1",
}


def _responses(ok: str, *extra: str) -> dict:
    out = {"200": {"description": ok, "content": HTML}}
    if "404" in extra:
        out["404"] = {"description": "no such table or row", "content": HTML}
    out.update({code: {"$ref": f"#/components/responses/E{code}"} for code in ERRORS})
    return out


def _query(p: V.Param) -> dict:
    return {"name": p.name, "in": "query", "required": False, "allowEmptyValue": True, "description": p.description,
            "schema": p.schema()}


KEY = {"name": "key", "in": "path", "required": True, "description": "the row's key (%-encoded)",
       "schema": {"type": "string", "minLength": 1, "maxLength": V.MAX_KEY}}


def _get(summary: str, params: list[dict], ok: str, *extra: str) -> dict:
    return {"get": {"summary": summary, "parameters": params, "responses": _responses(ok, *extra)}}


def document() -> dict:
    """The OpenAPI 3.0 document of every route."""
    paths = {"/": _get("rows per table", [], "the tables and their row counts"),
             "/search": _get("questions and final answers containing a text", [_query(p) for p in V.SEARCH_PARAMS],
                             f"up to {V.SEARCH_LIMIT} questions and {V.SEARCH_LIMIT} trajectories")}
    for table in VIEWS:
        paths[f"/{table}"] = _get(f"a filtered, sorted page of {table}", [_query(p) for p in V.list_params(table)],
                                  f"up to {V.PAGE_SIZE} rows, the filter form and the pager", "404")
        paths[f"/{table}/{{key}}"] = _get(f"one row of {table} by {record_type(table).key}", [KEY],
                                          "the row", "404")
    paths["/questions/{key}/compare"] = _get("a question's rollouts side by side", [KEY], "the rollouts", "404")
    paths["/openapi.json"] = {"get": {"summary": "this document", "responses": {"200": {
        "description": "OpenAPI 3", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "crucible view", "version": "1",
                 "description": "A read-only loopback viewer over a Crucible store (docs/view.md). Every answer, "
                                "errors included, has a status, a body and Content-Length, and closes the "
                                "connection. Only GET and HEAD are served: any other method is a 405 with "
                                "`Allow: GET, HEAD`. An empty query value means the parameter is absent; a "
                                "parameter not listed is a 400."},
        "servers": [{"url": "http://127.0.0.1:8765"}],
        "paths": paths,
        "components": {"responses": {f"E{code}": {"description": why, "content": HTML}
                                     for code, why in ERRORS.items()}},
    }


if __name__ == "__main__":
    json.dump(document(), sys.stdout, indent=1)
    sys.stdout.write("\n")
