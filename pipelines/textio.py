"""Reading text inputs (configs, JSONL rows, manifests) with errors that name the file and the line.

``read_text`` refuses a directory, a missing or unreadable file and bytes that are not UTF-8, saying
which file, line and column and how to fix it; a UTF-8 byte-order mark is dropped. ``read_jsonl``
yields ``(line number, value)`` and names the line of a JSON error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


class InputError(ValueError):
    """A bad input file; the message names the file (and line) and the fix."""


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, col


def read_text(path: str | Path, what: str = "input file") -> str:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory; expected a {what} (a file)")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such {what}") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start)
        raise InputError(f"{p}: line {line}, column {col}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                         f"save the {what} as UTF-8") from None
    return text.removeprefix("\ufeff")


def read_jsonl(path: str | Path, what: str = "JSONL file") -> Iterator[tuple[int, object]]:
    """``(line number, value)`` per non-blank line."""
    for i, line in enumerate(read_text(path, what).splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {i}, column {exc.colno}: not valid JSON ({exc.msg})") from None
