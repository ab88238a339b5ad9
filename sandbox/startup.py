"""Why a pytest run stopped before its first test: pytest's own deciding line, and what a SyntaxError says
about the Python the code needs. Pure functions over log text, tested on golden logs
(``tests/data/sandbox/startup``: real pytest 4.6, 7.3 and 9.2 runs of tiny trees).

:func:`startup_error` finds, in order: an argparse usage error (``pytest: error: unrecognized arguments: -n``,
``error: argument --import-mode: invalid choice``), a pytest usage error (``ERROR: Missing required plugins:
...``, ``ERROR: Error importing plugin "xdist": ...``), a plugin that failed to import (pytest < 8 prints the
traceback: ``ImportError: Error importing plugin ...``), the exception that stopped a conftest
(``ImportError while loading conftest '...'`` then ``E   ModuleNotFoundError: ...``) or the first test module
that failed to collect, no pytest at all (``No module named pytest``), an internal error, and otherwise the
last exception line or the last line. The verdict of the run (``crucible.sandbox.testrun``) quotes it; the repair
ladder (``crucible.sandbox.ladder``) reads the same lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

USAGE = re.compile(r"^(?:ERROR: )?usage: ")
ARGPARSE_ERROR = re.compile(r": error: \S")
PYTEST_ERROR = re.compile(r"^ERROR: (?!usage: )\S")
PLUGIN_TRACEBACK = re.compile(r"^ImportError: Error importing plugin ")
CONFTEST = re.compile(r"ImportError while loading conftest '[^']*'")
COLLECTING = re.compile(r"^_+ ERROR collecting \S+ _+$")
SECTION = re.compile(r"^(?:_{3,}|={3,}|-{3,}) ")
NO_PYTEST = re.compile(r"(?:No module named '?pytest'?$|\bpytest: (?:command )?not found$)")
INTERNAL = re.compile(r"^INTERNALERROR> (?:E\s+)?([A-Za-z_][\w.]*(?:Error|Exception)\b.*)$")
EXCEPTION = re.compile(r"^(?:E\s+)?[A-Za-z_][\w.]*(?:Error|Exception|Failure)\b(?::.*)?$")


@dataclass(frozen=True)
class StartupError:
    kind: str  # usage | plugin | conftest | collection | no_pytest | internal | other
    line: str  # pytest's deciding line, verbatim (stripped)
    context: str = ""  # where, when pytest says so on a line of its own (the conftest, the module)

    def quote(self) -> str:
        return f"{self.context}: {self.line}" if self.context else self.line


def _after(lines: list[str], start: int, pattern: re.Pattern, stop: re.Pattern | None = None) -> str | None:
    """The last line after ``start`` matching ``pattern`` (up to the next line matching ``stop``)."""
    found = None
    for ln in lines[start + 1:]:
        if stop is not None and stop.search(ln):
            break
        if pattern.search(ln):
            found = ln
    return found


def startup_error(log: str) -> StartupError | None:
    """The line that decided a run which never reached its first test; None for an empty log."""
    lines = [ln.strip() for ln in log.splitlines()]
    for i, ln in enumerate(lines):
        if USAGE.search(ln):
            err = next((x for x in lines[i + 1:] if ARGPARSE_ERROR.search(x)), None)
            if err:
                return StartupError("usage", err)
    for ln in lines:
        if PYTEST_ERROR.search(ln):
            return StartupError("plugin" if "plugin" in ln else "usage", ln)
    for ln in lines:
        if PLUGIN_TRACEBACK.search(ln):
            return StartupError("plugin", ln)
    for i, ln in enumerate(lines):
        if m := CONFTEST.search(ln):
            exc = _after(lines, i, EXCEPTION)
            return StartupError("conftest", exc, m.group(0)) if exc else StartupError("conftest", ln)
    for i, ln in enumerate(lines):
        if COLLECTING.search(ln):
            exc = _after(lines, i, EXCEPTION, SECTION)
            where = ln.strip("_ ")
            return StartupError("collection", exc, where) if exc else StartupError("collection", where)
    for ln in lines:
        if NO_PYTEST.search(ln):
            return StartupError("no_pytest", ln)
    internal = [ln for ln in lines if INTERNAL.search(ln)]
    if internal:
        return StartupError("internal", internal[-1])
    exc = [ln for ln in lines if EXCEPTION.search(ln)]
    rest = [ln for ln in lines if ln]
    if exc or rest:
        return StartupError("other", (exc or rest)[-1])
    return None


# ---------------------------------------------------------------- the Python a SyntaxError asks for

SYNTAX_ERROR = re.compile(r"SyntaxError: .+")
CARET = re.compile(r"^(?:E\s+)?\s*\^+\s*$")
# syntax of a later Python than the one that parsed it, with the first version that has it
NEWER_SYNTAX = (
    (re.compile(r"^\s*type\s+\w+\s*(?:\[[^\]]*\])?\s*="), "3.12"),  # type alias (PEP 695)
    (re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+\w+\s*\["), "3.12"),  # generic def/class (PEP 695)
    (re.compile(r"^\s*except\s*\*"), "3.11"),  # exception groups
    (re.compile(r"^\s*(?:match\s+\S.*|case\s+\S.*):\s*(?:#.*)?$"), "3.10"),  # structural pattern matching
    (re.compile(r":="), "3.8"),  # assignment expressions
    (re.compile(r"^\s*(?:async\s+)?def\s+\w+\(.*(?:,\s*/\s*[,)]|\(\s*/\s*,)"), "3.8"),  # positional-only
)
# syntax only Python 2 (or an older Python 3) accepted
OLDER_SYNTAX = re.compile(r"^\s*(?:print\s+[^\s(=.]|exec\s+[\"'\w])|^\s*except\s+[\w.]+\s*,\s*\w+\s*:|"
                          r"^\s*raise\s+[\w.]+\s*,|`|<>|\bur[\"']|\b0[0-7]+L?\b|\b\d+L\b")
OLDER_MESSAGE = re.compile(r"Missing parentheses in call to|leading zeros in decimal integer literals|"
                           r"multiple exception types must be parenthesized")


def code_line(lines: list[str], i: int) -> str | None:
    """The source line a SyntaxError at ``lines[i]`` shows (the line above its caret line), if any."""
    j = i - 1
    while j >= 0 and CARET.search(lines[j]):
        j -= 1
    return re.sub(r"^E\s+", "", lines[j]).strip() if j >= 0 and j < i - 1 else None


def syntax_needs(code: str | None, message: str) -> tuple[str, str | None] | None:
    """What a SyntaxError asks for: ``("newer", "3.12")`` (a Python with that syntax, its first version),
    ``("older", None)`` (Python 2 syntax and friends) or None (cannot tell)."""
    if OLDER_MESSAGE.search(message) or (code and OLDER_SYNTAX.search(code)):
        return "older", None
    for pattern, version in NEWER_SYNTAX if code else ():
        if pattern.search(code):
            return "newer", version
    return None
