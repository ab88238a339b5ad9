"""Reading text inputs (configs, JSONL rows, manifests) with errors that name the file and the line.

``read_text`` refuses a directory, a missing or unreadable file and bytes that are not UTF-8, saying
which file, line and column and how to fix it; a UTF-8 byte-order mark is dropped; ``.gz`` files are
decompressed. ``read_jsonl`` yields ``(line number, value)`` and names the line of a JSON error;
``read_json`` reads one JSON document. ``decode_text`` is the same decoding for bytes read elsewhere
(a remote file through Beam's FileSystems). Every error is an :class:`InputError` (a ``ValueError``:
the CLI prints it and exits 2, no traceback).

Hostile inputs meet the limits below (the one place they live; raise one here if a real input needs it):

- only a regular file is read: a FIFO, a device, a socket or a directory is refused by name before it is
  opened (a FIFO would hang, ``/dev/zero`` would never end); a file (or a ``.gz`` file's content) over
  :data:`MAX_FILE_BYTES` is refused;
- JSON lines are split on ``\\n`` only (``\\r\\n`` is fine): U+2028, ``\\x1c`` or a form feed inside a
  JSON string are text, not line breaks (``str.splitlines`` would split there);
- a JSON line longer than :data:`MAX_LINE_CHARS`, nested deeper than :data:`MAX_DEPTH`, holding
  ``NaN``/``Infinity`` (not JSON), a number Python will not convert, a key twice in one object, or a lone
  UTF-16 surrogate (``"\\ud800"``: not text, fails when written) is refused naming the line;
- YAML (configs, ``--set`` values) through :func:`load_yaml`: at most :data:`MAX_YAML_BYTES`, nesting at
  most :data:`MAX_DEPTH`, aliases expanding to at most :data:`MAX_YAML_ALIAS_NODES` extra nodes (a
  586-byte "billion laughs" document expands to ~10^9) and no alias inside its own anchor.
"""

from __future__ import annotations

import difflib
import gzip
import io
import json
import os
import re
import stat
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

MAX_FILE_BYTES = 2 * 2**30  # one input file, or a .gz file's content
MAX_LINE_CHARS = 64 * 2**20  # one JSON line
MAX_DEPTH = 100  # JSON and YAML nesting (rows and configs nest a few levels)
MAX_YAML_BYTES = 2**20  # one config file or --set value
MAX_YAML_ALIAS_NODES = 10_000  # nodes YAML aliases (*name) may add by repeating their anchor's node


class InputError(ValueError):
    """A bad input file; the message names the file (and line) and the fix."""


class JSONSyntaxError(InputError):
    """Text that is not JSON at all (as opposed to JSON over a limit); ``decode_error`` is json's own."""

    decode_error: json.JSONDecodeError


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


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str | None:
    return next((name for test, name in _KINDS if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")


def check_regular_file(path: str | Path, what: str = "input file") -> os.stat_result:
    """``os.stat`` of ``path``, refusing anything but a regular file by name (nothing is opened)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{p}: no such {what}") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{p}: is a directory; expected a {what} (a file)")
    kind = _not_regular(st.st_mode)
    if kind:
        raise InputError(f"{p}: is {kind}, not a regular file; give the {what} as a regular file "
                         "(save a stream to a file first)")
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(f"{p}: {st.st_size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for a {what} "
                         "(textio.MAX_FILE_BYTES); split it into smaller files")
    return st


def check_output_file(path: str | Path, what: str = "output file") -> None:
    """An output path that exists must be a regular file (it is replaced): a directory, a FIFO or a device
    is refused by name before any work (``os.replace`` onto ``/dev/null`` would replace the device)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise InputError(f"{p}: cannot use it as the {what}: {exc.strerror or exc}") from None
    kind = "a directory" if stat.S_ISDIR(st.st_mode) else _not_regular(st.st_mode)
    if kind:
        raise InputError(f"{p}: is {kind}; the {what} must be a file path (it is written whole, then renamed)")


def _too_big(p: Path, what: str, inner: str = "") -> InputError:
    return InputError(f"{p}: {inner}more than {MAX_FILE_BYTES:,} bytes, over the limit for a {what} "
                      "(textio.MAX_FILE_BYTES); split it into smaller files")


def read_bytes(path: str | Path, what: str = "input file") -> bytes:
    p = Path(path)
    check_regular_file(p, what)
    try:  # O_NONBLOCK: a FIFO swapped in after the check cannot block the open; fstat refuses it below
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        kind = _not_regular(os.fstat(fd).st_mode)
        if kind:
            raise InputError(f"{p}: is {kind}, not a regular file; give the {what} as a regular file")
        try:
            data = _read_capped(f)
        except OSError as exc:
            raise InputError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    if data is None:
        raise _too_big(p, what)
    if p.suffix.lower() == ".gz":
        data = _gunzip(data, p, what)
    return data


def _gunzip(data: bytes, p: Path, what: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
            out = _read_capped(g)  # a gzip bomb stops here, not at the end of memory
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{p}: not a readable gzip file ({exc}); give the {what} as plain text or .gz") from None
    if out is None:
        raise _too_big(p, what, "unpacks to ")
    return out


def _read_capped(f, chunk: int = 1 << 24) -> bytes | None:
    """All of ``f``, or None once it passes MAX_FILE_BYTES (read in chunks: nothing is allocated ahead)."""
    parts, total = [], 0
    while block := f.read(chunk):
        total += len(block)
        if total > MAX_FILE_BYTES:
            return None
        parts.append(block)
    return b"".join(parts)


def read_text(path: str | Path, what: str = "input file") -> str:
    return decode_text(read_bytes(path, what), path, what)


def split_lines(text: str, keepends: bool = False) -> list[str]:
    """Lines split on ``\n`` only, a ``\r`` before it dropped (``keepends``: both kept); no empty last line
    after a final newline. (``str.splitlines`` also splits on U+2028, ``\x1c``, ``\f``..., which JSON
    strings may hold.)"""
    lines = text.split("\n")
    last = lines.pop()
    if keepends:
        return [ln + "\n" for ln in lines] + ([last] if last else [])
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines + ([last] if last else [])]


def _constant(name: str):
    raise ValueError(f"{name} is not JSON; write null, a number or a string")


def _pairs(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"key {dup!r} appears twice in one object; keep one (JSON readers disagree on which wins)")
    return out


_TOO_DEEP = (f"JSON nested deeper than {MAX_DEPTH} levels (textio.MAX_DEPTH); real rows nest a few levels: "
             "check what wrote this file")
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _walk(value: object, check_text: bool) -> str | None:
    """The first problem of a parsed value: nesting over MAX_DEPTH, or (``check_text``) a lone surrogate."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            items = [*node.keys(), *node.values()] if check_text else node.values()
        elif isinstance(node, list):
            items = node
        else:
            if check_text and isinstance(node, str):
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError as exc:
                    return (f"a lone UTF-16 surrogate (\\u{ord(node[exc.start]):04x}) in a string is not text; "
                            "write the character itself or a surrogate pair")
            continue
        if depth > MAX_DEPTH:
            return _TOO_DEEP
        stack.extend((c, depth + 1) for c in items if check_text or isinstance(c, dict | list))
    return None


def loads(text: str, where: str, fix: str = "") -> object:
    """One JSON value under the limits above. A syntax error raises :class:`JSONSyntaxError`
    ``"{where}, column C: not valid JSON (msg){fix}"``; a limit raises :class:`InputError` naming ``where``."""
    if len(text) > MAX_LINE_CHARS:
        raise InputError(f"{where}: {len(text):,} characters of JSON, over the {MAX_LINE_CHARS:,} limit "
                         "(textio.MAX_LINE_CHARS); split the value into smaller rows")
    try:
        value = json.loads(text, parse_constant=_constant, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        err = JSONSyntaxError(f"{where}, column {exc.colno}: not valid JSON ({exc.msg}){fix}")
        err.decode_error = exc
        raise err from None
    except RecursionError:
        raise InputError(f"{where}: {_TOO_DEEP}") from None
    except ValueError as exc:  # NaN/Infinity, a repeated key, an integer of more than 4300 digits
        msg = str(exc)
        if "integer string conversion" in msg:
            msg = "an integer of more than 4300 digits; write it as a string"
        raise InputError(f"{where}: {msg}") from None
    check_text = _SURROGATE.search(text) is not None
    if check_text or text.count("[") + text.count("{") > MAX_DEPTH:
        problem = _walk(value, check_text)
        if problem:
            raise InputError(f"{where}: {problem}")
    return value


def read_jsonl(path: str | Path, what: str = "JSONL file", allow_empty: bool = True) -> Iterator[tuple[int, object]]:
    """``(line number, value)`` per non-blank line. ``allow_empty=False``: a file without a single row
    is an error (an empty input is nearly always a wrong path or a failed export)."""
    empty = True
    for i, line in enumerate(split_lines(read_text(path, what)), 1):
        if not line.strip():
            continue
        empty = False
        yield i, loads(line, f"{path}: line {i}", f"; a {what} holds one JSON object per line")
    if empty and not allow_empty:
        raise InputError(f"{path}: the {what} is empty (no JSON rows); expected one JSON object per line")


def read_json(path: str | Path, what: str = "JSON file") -> object:
    """One JSON document."""
    return parse_json(read_text(path, what), path, what)


def parse_json(text: str, path: str | Path, what: str = "JSON file") -> object:
    if not text.strip():
        raise InputError(f"{path}: the {what} is empty; expected a JSON document")
    try:
        return loads(text, str(path))
    except JSONSyntaxError as err:
        exc = err.decode_error
        raise JSONSyntaxError(f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from None


# ---- YAML


def load_yaml(text: str, where: str) -> object:
    """``yaml.safe_load`` of ``text`` under the YAML limits; a limit raises :class:`InputError` naming
    ``where``; YAML syntax errors stay ``yaml.YAMLError`` (the caller names the file)."""

    if len(text) > MAX_YAML_BYTES:
        raise InputError(f"{where}: {len(text):,} characters of YAML, over the {MAX_YAML_BYTES:,} limit "
                         "(textio.MAX_YAML_BYTES); a config is a few kilobytes")
    loader = _yaml_loader()(text)
    loader.where = where
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problem = _alias_problem(node)
        if problem:
            raise InputError(f"{where}: {problem}")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_loader():
    class Loader(yaml.SafeLoader):
        """SafeLoader that stops nesting past MAX_DEPTH while composing (the composer recurses per level)."""

        depth = 0
        where = "<yaml>"

        def compose_node(self, parent, index):
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise InputError(f"{self.where}: line {mark.line + 1}: YAML nested deeper than {MAX_DEPTH} "
                                     "levels (textio.MAX_DEPTH); a config nests a few levels")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key, _ in node.value:  # before merge keys (<<) are flattened in: those may be overridden
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in seen:
                        raise InputError(f"{self.where}: line {key.start_mark.line + 1}: key {key.value!r} appears "
                                         f"twice in one mapping (first at line {seen[key.tag, key.value]}); keep one")
                    seen[key.tag, key.value] = key.start_mark.line + 1
            return super().construct_mapping(node, deep)

    return Loader


def _alias_problem(root) -> str | None:
    """Extra nodes the aliases add when expanded (over MAX_YAML_ALIAS_NODES is a problem), or an alias
    inside its own anchor (a recursive document). Iterative: the node graph may be deep or shared."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    distinct: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            open_.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            continue
        if key in size:
            continue
        if key in open_:
            line = node.start_mark.line + 1
            return (f"line {line}: an alias refers to the node that holds it (a recursive document); "
                    "write the value out instead")
        open_.add(key)
        distinct.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)
    extra = size[id(root)] - len(distinct)
    if extra > MAX_YAML_ALIAS_NODES:
        return (f"YAML aliases (*name) expand to {extra:,} extra nodes, over the {MAX_YAML_ALIAS_NODES:,} limit "
                "(textio.MAX_YAML_ALIAS_NODES): an alias bomb? write the values out or use fewer aliases")
    return None


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    return []


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (difflib), or None when none is close."""
    known = list(known)
    got = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not got:  # case slips (fail_to_pass) are close too
        low = {k.lower(): k for k in known}
        got = [low[m] for m in difflib.get_close_matches(name.lower(), list(low), n=1, cutoff=0.6)]
    return got[0] if got else None
