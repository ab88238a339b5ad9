"""Reading text inputs (configs, JSONL rows, manifests) with errors that name the file and the line.

``read_text`` refuses a directory, a missing or unreadable file and bytes that are not UTF-8, saying
which file, line and column and how to fix it; a UTF-8 byte-order mark is dropped; ``.gz`` files are
decompressed. ``read_jsonl`` yields ``(line number, value)`` and names the line of a JSON error;
``read_json`` reads one JSON document. ``decode_text`` is the same decoding for bytes read elsewhere
(a remote file through Beam's FileSystems). Every error is an :class:`InputError` (a ``ValueError``:
the CLI prints it and exits 2, no traceback).
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


def decode_text(data: bytes, path: str | Path, what: str = "input file") -> str:
    """UTF-8 ``data`` of ``path`` as text (BOM dropped); bad bytes name the line and column."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start)
        raise InputError(f"{path}: line {line}, column {col}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                         f"save the {what} as UTF-8") from None
    return text.removeprefix("\ufeff")


def read_bytes(path: str | Path, what: str = "input file") -> bytes:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory; expected a {what} (a file)")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such {what}") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    if p.suffix.lower() == ".gz":
        import gzip
        import zlib

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{p}: not a readable gzip file ({exc}); give the {what} as plain text or .gz") from None
    return data


def read_text(path: str | Path, what: str = "input file") -> str:
    return decode_text(read_bytes(path, what), path, what)


def read_jsonl(path: str | Path, what: str = "JSONL file", allow_empty: bool = True) -> Iterator[tuple[int, object]]:
    """``(line number, value)`` per non-blank line. ``allow_empty=False``: a file without a single row
    is an error (an empty input is nearly always a wrong path or a failed export)."""
    empty = True
    for i, line in enumerate(read_text(path, what).splitlines(), 1):
        if not line.strip():
            continue
        empty = False
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {i}, column {exc.colno}: not valid JSON ({exc.msg}); "
                             f"a {what} holds one JSON object per line") from None
    if empty and not allow_empty:
        raise InputError(f"{path}: the {what} is empty (no JSON rows); expected one JSON object per line")


def read_json(path: str | Path, what: str = "JSON file") -> object:
    """One JSON document."""
    return parse_json(read_text(path, what), path, what)


def parse_json(text: str, path: str | Path, what: str = "JSON file") -> object:
    if not text.strip():
        raise InputError(f"{path}: the {what} is empty; expected a JSON document")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from None
