"""`crucible parse FILE | --store DIR`: raw agent text -> rounds (think, tool call, observation) + answer."""

from __future__ import annotations

import argparse
import json
import sys

FIELDS = ("rendered_react", "response", "text", "messages")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse", help="parse raw responses / ReAct text into rounds (JSON lines out)")
    p.add_argument("file", nargs="?", help="a text file (one response) or JSONL (.jsonl: one row per line)")
    p.add_argument("--field", help=f"JSONL field holding the text (default: the first of {', '.join(FIELDS)})")
    p.add_argument("--store", help="instead: round-trip every rendered_react of this store's browse_trajectories")
    p.set_defaults(func=_parse)


def _row_text(row: object, field: str | None, where: str):
    """``(field, value)``: the named field, or the first set one of FIELDS."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    if field:
        if field not in row:
            raise ValueError(f"{where}: no field {field!r} (fields: {', '.join(sorted(row))})")
        return field, row[field]
    for f in FIELDS:
        if row.get(f):
            return f, row[f]
    raise ValueError(f"{where}: none of the fields {', '.join(FIELDS)} is set; name one with --field")


def checked(value: object, where: str, field: str) -> object:
    """What ``parse`` gets: text, or OpenAI messages checked first (schemas/messages_row.json), so a
    message that is not an object is an error naming the line and the field, not an AttributeError. Text
    that is JSON is read under textio's limits (its nesting, its size)."""
    from crucible.pipelines.rowcheck import check_messages
    from crucible.pipelines.textio import JSONSyntaxError, loads

    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{where}: {'field ' + field + ' ' if field else ''}is empty; nothing to parse")
        if value.strip()[:1] not in ("[", "{"):
            return value
        try:
            value = loads(value.strip(), where)
        except JSONSyntaxError:
            return value  # ReAct or tagged text that starts with a bracket
    if isinstance(value, dict) and value.get("messages"):
        check_messages(value["messages"], where, f"{field}.messages" if field else "messages")
    elif isinstance(value, dict):
        check_messages(value, where, field, one=True)
    elif isinstance(value, list):
        check_messages(value, where, field)
    return value


def _parse(args) -> int:
    from crucible.pipelines.agent.parse import ParseError, parse

    if args.store:
        return _check_store(args.store)
    if not args.file:
        print("crucible parse: give a FILE or --store DIR", file=sys.stderr)
        return 2
    from crucible.pipelines.textio import read_jsonl, read_text

    try:
        if not args.file.endswith(".jsonl"):
            items = [(args.file, checked(read_text(args.file, "response text file"), args.file, ""))]
        else:
            items = [(f"{args.file}:{n}", checked(v, f"{args.file}:{n}", f))
                     for n, row in read_jsonl(args.file, "responses file", allow_empty=False)
                     for f, v in [_row_text(row, args.field, f"{args.file}:{n}")]]
        results = []
        for where, text in items:  # all parsed before one line is printed
            try:
                results.append(parse(text).to_dict())
            except ParseError as exc:
                results.append({"error": f"{where}: {exc}"})
            except RecursionError:
                raise ValueError(f"{where}: a tool call nests deeper than the parser can follow; real tool calls "
                                 "nest a few levels: check what wrote this text") from None
    except ValueError as exc:  # textio's InputError, a bad row or message, a row without text
        print(f"crucible parse: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(json.dumps(r, ensure_ascii=False))
    return 1 if any("error" in r for r in results) else 0


def _check_store(out_dir: str) -> int:
    from crucible.pipelines.agent.loop import render_react
    from crucible.pipelines.agent.parse import ParseError, parse, to_messages
    from crucible.pipelines.store import catalog

    cols, rows = catalog.query(out_dir, "SELECT traj_id, rendered_react FROM browse_trajectories "
                                        "WHERE rendered_react IS NOT NULL ORDER BY traj_id")
    bad = []
    for traj_id, text in rows:
        try:
            ok = render_react(to_messages(parse(text))) == text
        except ParseError:
            ok = False
        if not ok:
            bad.append(traj_id)
    print(json.dumps({"trajectories": len(rows), "round_trip_ok": len(rows) - len(bad), "failed": bad[:20]}))
    return 1 if bad else 0
