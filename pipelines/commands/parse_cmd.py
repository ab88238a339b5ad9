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
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    if field:
        if field not in row:
            raise ValueError(f"{where}: no field {field!r} (fields: {', '.join(sorted(row))})")
        return row[field]
    for f in FIELDS:
        if row.get(f):
            return row[f]
    raise ValueError(f"{where}: none of the fields {', '.join(FIELDS)} is set; name one with --field")


def _parse(args) -> int:
    from pipelines.agent.parse import ParseError, parse

    if args.store:
        return _check_store(args.store)
    if not args.file:
        print("crucible parse: give a FILE or --store DIR", file=sys.stderr)
        return 2
    from pipelines.textio import read_jsonl, read_text

    try:
        if not args.file.endswith(".jsonl"):
            items = [(args.file, read_text(args.file, "response text file"))]
        else:
            items = [(f"{args.file}:{n}", _row_text(row, args.field, f"{args.file}:{n}"))
                     for n, row in read_jsonl(args.file, "responses file", allow_empty=False)]
    except ValueError as exc:  # textio's InputError or a row without text
        print(f"crucible parse: {exc}", file=sys.stderr)
        return 2
    bad = 0
    for where, text in items:
        try:
            print(json.dumps(parse(text).to_dict(), ensure_ascii=False))
        except ParseError as exc:
            bad += 1
            print(json.dumps({"error": f"{where}: {exc}"}))
    return 1 if bad else 0


def _check_store(out_dir: str) -> int:
    from pipelines.agent.loop import render_react
    from pipelines.agent.parse import ParseError, parse, to_messages
    from pipelines.store import catalog

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
