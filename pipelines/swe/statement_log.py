"""How the failing test failed in the validation's "before" log (pure functions over pytest's output).

- :func:`full_test_id`: the whole node id a SWE-bench id cut at a space stands for.
- :func:`log_failure`: the test's failure in pytest's summary line (exception, message, or DID NOT RAISE).
- :func:`log_agrees` / :func:`log_disagrees`: whether a reproduction snippet failed the way the log says."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

# a summary line's id may hold spaces (``t[a minute ago]``): it ends at `` - `` or at the line's end
SUMMARY = re.compile(r"^(?:FAILED|ERROR) (\S.*?)(?: - (.*))?$", re.M)


def full_test_id(log: str, test_id: str) -> str | None:
    """The node id a SWE-bench-style id stands for. SWE-bench's ``-rA`` parser splits summary lines on
    whitespace, so ``t[test_input10-a minute ago]`` is labelled ``t[test_input10-a``: a reader cannot run that
    id, and its test function cannot be found by it. A complete id is itself; a cut one is the single id of the
    log's summary lines that it is the first word of (None: absent from the log, or more than one)."""
    if test_id.count("[") <= test_id.count("]"):
        return test_id
    full = {m.group(1).rstrip() for m in SUMMARY.finditer(log or "")}
    cands = {f for f in full if f.startswith(test_id + " ") and f.endswith("]")}
    return cands.pop() if len(cands) == 1 else None


def _same_test(summary_id: str, test_id: str) -> bool:
    a, b = summary_id.split("[", 1)[0], test_id.split("[", 1)[0]
    return a == b or a.endswith("::" + b.split("::")[-1]) and summary_id.endswith(test_id[len(b):])


def log_failure(log: str, test_id: str) -> dict:
    """{exc_type, message, did_not_raise, source} of ``test_id`` in a pytest log (exc_type None: not found).
    pytest writes a failed ``assert`` without its type (``- assert 3 == 4``): that is an AssertionError."""
    text = None
    for m in SUMMARY.finditer(log or ""):
        if _same_test(m.group(1), test_id) or m.group(1) == test_id:
            text = (m.group(2) or "").strip()
            break
    if text is None:
        return {"exc_type": None, "message": None, "did_not_raise": None, "source": "absent"}
    if text.endswith("...") and text != "...":  # cut to the terminal's width: only a prefix is known
        return {"exc_type": None, "message": text, "did_not_raise": None, "source": "truncated"}
    if text == "...":
        return {"exc_type": None, "message": None, "did_not_raise": None, "source": "absent"}
    dnr = re.match(r"(?:Failed: )?DID NOT RAISE <class '([\w.]+)'>", text) or re.match(
        r"AssertionError: (\w+) not raised", text)
    if dnr:
        return {"exc_type": None, "message": text, "did_not_raise": dnr.group(1).rsplit(".", 1)[-1],
                "source": "summary"}
    if text.startswith("assert ") or not text:
        return {"exc_type": "AssertionError", "message": text, "did_not_raise": None, "source": "summary"}
    m = re.match(r"([A-Za-z_][\w.]*)(?:: (.*))?$", text, re.S)
    exc = m.group(1).rsplit(".", 1)[-1] if m else None
    return {"exc_type": exc, "message": (m.group(2) or "") if m else text, "did_not_raise": None, "source": "summary"}


def log_agrees(logged: Mapping, exc: str | None, message: str | None, did_not_raise: str | None = None) -> bool:
    """Is the snippet's failure (``exc``: message, or ``did_not_raise``) the one the before log shows? An
    absent line cannot say no; a line pytest cut short must start like the snippet's failure."""
    if logged["source"] == "absent":
        return True
    if logged["source"] == "summary":
        if did_not_raise:
            return logged["did_not_raise"] in (None, did_not_raise) and logged["exc_type"] is None
        return logged["exc_type"] == exc
    prefix = re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*(?::|\.\.\.|$))", "", logged["message"][:-3])
    if did_not_raise:
        return any(c.startswith(prefix) for c in (f"Failed: DID NOT RAISE <class '{did_not_raise}'>",
                                                   f"AssertionError: {did_not_raise} not raised"))
    if exc == "AssertionError":  # pytest's own words for a failed assert differ from Python's (and unittest's)
        return any(c.startswith(prefix) or prefix.startswith(c) for c in ("assert ", "AssertionError"))
    return (f"{exc}: {message}" if message else f"{exc}").startswith(prefix)


def log_disagrees(logged: Mapping, before: Mapping) -> str | None:
    """Why the snippet's printed value is not the one the test's assertion saw in the before log (pytest's
    ``assert A == B`` with both sides literals; None: it is, or the log cannot tell)."""
    msg, value = (logged or {}).get("message") or "", before.get("value")
    if value is None or not msg.startswith("assert ") or "..." in msg:
        return None
    text = msg[len("assert "):]
    for m in re.finditer(r" == ", text):
        left, right = text[:m.start()], text[m.end():]
        if _literal(left) and _literal(right):
            ok = norm_literal(value) in (norm_literal(left), norm_literal(right))
            return None if ok else f"the snippet prints {value}; the test saw {msg[:200]}"
    return None


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def norm_literal(value: str | None) -> str | None:
    """``value`` as the repr of the Python literal it spells (itself when it is none): ``[1,2]`` and
    ``[1, 2]`` compare equal."""
    try:
        return repr(ast.literal_eval(value)) if value is not None else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
