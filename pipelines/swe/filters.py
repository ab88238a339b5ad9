"""Trajectory filters (pure): each returns (keep, reason); :func:`classify` collects every drop reason and
sets the split: ``sft+rl`` (resolved, clean), ``rl`` (clean but unresolved: kept with its reward),
``none`` (dropped, reasons listed), ``reference`` (the ``gold`` policy's resolved replay of the reference
patch: a plumbing check of rollouts and grading, never a training row; exports leave it out unless
``--include-reference``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping

# policies that replay the reference fix (rollout.GoldPolicy): their rows check the harness, they teach nothing
REFERENCE_POLICIES = ("gold",)
REFERENCE_SPLIT = "reference"


def approx_tokens(messages, tools=()) -> int:
    return len(json.dumps(list(messages), default=str)) // 4 + len(json.dumps(list(tools), default=str)) // 4


def f_context(row: Mapping, max_tokens: int) -> tuple[bool, str | None]:
    n = approx_tokens(row["messages"], row.get("tools") or [])
    return (True, None) if n <= max_tokens else (False, f"too_long: ~{n} tokens > {max_tokens}")


def f_tool_errors(row: Mapping, max_rate: float) -> tuple[bool, str | None]:
    calls = row.get("n_tool_calls") or 0
    rate = (row.get("n_tool_errors") or 0) / calls if calls else 0.0
    return (True, None) if rate <= max_rate else (False, f"tool_errors: rate {rate:.2f} > {max_rate}")


def f_repeats(row: Mapping, max_repeats: int) -> tuple[bool, str | None]:
    c = Counter((tc["function"]["name"], tc["function"].get("arguments"))
                for m in row["messages"] if m.get("role") == "assistant" for tc in (m.get("tool_calls") or []))
    worst = max(c.values(), default=0)
    return (True, None) if worst < max_repeats else (False, f"repeated_actions: one call made {worst} times")


def f_test_edits(row: Mapping) -> tuple[bool, str | None]:
    dropped = (row.get("meta") or {}).get("dropped_files") or []
    names = [d if isinstance(d, str) else f"{d['path']} ({d['reason']})" for d in dropped[:3]]
    return (True, None) if not dropped else (False, f"edits_tests: {', '.join(names)}")


def f_tamper(row: Mapping) -> tuple[bool, str | None]:
    """A grade that says the patch fooled or tried to fool the grader (or that the grader could not decide)
    trains nothing."""
    from pipelines.swe.grade import NO_REWARD_GRADES, Grade

    g = row.get("grade")
    if g is not None and Grade(g) in NO_REWARD_GRADES:
        return False, f"{g}: {row.get('grade_reason') or ''}"[:300]
    return True, None


def reward_of(grade: Mapping) -> float:
    """Pure: 1 resolved; tampering/infrastructure 0; else half the share of F2P+P2P tests passing."""
    from pipelines.swe.grade import NO_REWARD_GRADES, Grade

    if grade.get("grade") is not None and Grade(grade["grade"]) in NO_REWARD_GRADES:
        return 0.0
    if grade["resolved"]:
        return 1.0
    tot = max(1, grade["f2p_total"] + grade["p2p_total"])
    return round(0.5 * (grade["f2p_passed"] + grade["p2p_passed"]) / tot, 4)


def f_submitted(row: Mapping) -> tuple[bool, str | None]:
    st = row.get("exit_status")
    return (True, None) if st == "submitted" else (False, f"not_submitted: {st}")


def classify(row: Mapping, cfg: Mapping) -> tuple[str, list[str]]:
    """(split, drop reasons) of one trajectory. A reference policy's row is ``reference`` when it resolved
    (the SFT filters do not apply: it is no training row) and ``none`` with its reasons when it did not
    (``curate`` then rejects the instance)."""
    checks = [f_submitted(row), f_context(row, int(cfg["max_context_tokens"])),
              f_tool_errors(row, float(cfg["max_tool_error_rate"])),
              f_repeats(row, int(cfg["max_repeated_actions"])), f_test_edits(row), f_tamper(row)]
    reasons = [r for ok, r in checks if not ok]
    if row.get("policy") in REFERENCE_POLICIES:
        return (REFERENCE_SPLIT, []) if row.get("resolved") else ("none", reasons)
    if reasons:
        return "none", reasons
    return ("sft+rl" if row.get("resolved") else "rl"), []


def reason_key(reason: str) -> str:
    return reason.split(":", 1)[0]
