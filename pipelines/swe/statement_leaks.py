"""The leak check of a problem statement (pure): it must not name the tests or pytest, propose a fix, or quote a
line the fix adds, and must say enough. Both the written statements (:mod:`crucible.pipelines.swe.statements`) and the
grounded default (:mod:`crucible.pipelines.swe.statement_repro`) are held to it."""

from __future__ import annotations

import re
from collections.abc import Mapping

from crucible.pipelines.swe.patches import split_diff

MIN_CHARS = 60
TEST_WORDS = re.compile(r"\b(pytest|FAIL_TO_PASS|PASS_TO_PASS|unit ?tests?|test suite|test_\w+)\b", re.I)
# a user report says what goes wrong, never how to fix it (small models like to append the fix)
FIX_WORDS = re.compile(r"\b((?:can|could|should|would) be (?:fixed|resolved|solved)|to (?:fix|resolve|solve) "
                       r"(?:this|the|it)|the fix\b|fixed by|here'?s the (?:updated|fixed|corrected)|"
                       r"(?:updated|fixed|corrected) (?:code|version)|(?:the )?solution is|"
                       r"(?:this|that|a|my|the proposed|the suggested) (?:fix|patch)\b|"
                       r"(?:correct|right|proper) (?:approach|way to|implementation|fix)|"
                       r"(?:simply|just) (?:return|use|check|swap|change|replace)\b)", re.I)


def test_names(ids) -> set[str]:
    """Function names of test ids (``path::Class::test_x[param]`` -> ``test_x``)."""
    return {re.sub(r"\[.*$", "", t.split("::")[-1]) for t in ids}


def added_lines(patch: str, min_len: int = 12) -> list[str]:
    out = []
    for _, text in split_diff(patch):
        for ln in text.splitlines():
            if ln.startswith("+") and not ln.startswith("+++"):
                s = ln[1:].strip()
                if len(s) >= min_len and not s.startswith(("#", '"""', "'''")):
                    out.append(s)
    return out


def leak_check(statement: str, inst: Mapping) -> tuple[bool, str | None]:
    """(ok, reason): the statement must not name tests or pytest, nor quote a line the fix adds."""
    low = statement.lower()
    for name in sorted(test_names(list(inst.get("FAIL_TO_PASS") or []) + list(inst.get("PASS_TO_PASS") or []))):
        if name and name.lower() in low:
            return False, f"leak: names the test {name}"
    m = TEST_WORDS.search(statement)
    if m:
        return False, f"leak: mentions {m.group(0)!r}"
    m = FIX_WORDS.search(statement)
    if m:
        return False, f"leak: proposes a fix ({m.group(0)!r})"
    squashed = re.sub(r"\s+", "", statement)
    for line in added_lines(inst.get("patch") or ""):
        if re.sub(r"\s+", "", line) in squashed:
            return False, f"leak: quotes the fix ({line[:60]!r})"
    if len(statement.strip()) < MIN_CHARS:
        return False, f"too_short: {len(statement.strip())} < {MIN_CHARS} characters"
    return True, None
