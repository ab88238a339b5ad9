"""Trajectory filters (pure): each returns (keep, reason); :func:`classify` collects every drop reason and
sets the split:

- ``sft+rl``: a model policy's row that passes every check below, the hard filters and the strict SFT checks;
- ``semi``: ``semi_resolved``, a clean row that came close (:func:`semi_resolved`: it edited a file the
  reference fix touches and some F2P tests pass after its patch): for RL or turn-masked SFT (SWE-Lego), never
  in an SFT export unless asked (``crucible export --include-semi``); its reasons say why it is not SFT;
- ``rl``: clean but not SFT (unresolved, or a strict check failed; kept with its reward and the reasons);
- ``none``: dropped by a hard filter (not submitted, too long, tool errors, a loop, tests edited in the
  diff, a tampering grade), reasons listed;
- ``reference``: the ``gold`` policy's resolved replay of the reference patch (a plumbing check of
  rollouts and grading, never a training row; exports leave it out unless ``--include-reference``).

The strict SFT checks read the agent's steps (:mod:`crucible.pipelines.swe.steps`), each a named reason and a
``swe.filters`` switch: ``no_reproduction`` (no test or reproduction run showing the failure before the
first edit of the code), ``non_source_edit`` (an edit of a test or harness file, or of a file outside the
repository), ``no_test_after_edit`` (no test run after the last edit), ``unresolved`` (the tests say the
patch does not fix it), ``repeated_call`` (the same call again with no edit between: nothing changed, the
same answer comes back) and ``idle_reading`` (more reads in a row than ``sft_max_idle_reads`` without an
edit or a run)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from crucible.pipelines.swe.grade import NO_REWARD_GRADES, Grade
from crucible.pipelines.swe.patches import diff_paths, is_test_path
from crucible.pipelines.swe.steps import Step, non_source_edit, setup_failure, shows_failure, steps

# policies that replay the reference fix (rollout.GoldPolicy): their rows check the harness, they teach nothing
REFERENCE_POLICIES = ("gold",)
REFERENCE_SPLIT = "reference"
# clean, unresolved rows that came close (:func:`semi_resolved`): RL or turn-masked SFT, out of SFT exports
SEMI_SPLIT = "semi"


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
    """No call made ``max_repeats`` times (same tool, same arguments) with no edit between: a loop. The tests
    run again after an edit are a new call (the code changed)."""
    worst = max(same_state_counts(steps(row["messages"])).values(), default=0)
    return (True, None) if worst < max_repeats else (False, f"repeated_actions: one call made {worst} times")


def same_state_counts(st: Sequence[Step]) -> Counter:
    """The most times each call (tool, arguments) was made with no successful edit between."""
    best: Counter = Counter()
    cur: Counter = Counter()
    for s in st:
        if s.kind == "edit" and s.ok:
            cur = Counter()
        cur[s.sig] += 1
        best[s.sig] = max(best[s.sig], cur[s.sig])
    return best


def f_test_edits(row: Mapping) -> tuple[bool, str | None]:
    dropped = (row.get("meta") or {}).get("dropped_files") or []
    names = [d if isinstance(d, str) else f"{d['path']} ({d['reason']})" for d in dropped[:3]]
    return (True, None) if not dropped else (False, f"edits_tests: {', '.join(names)}")


def f_tamper(row: Mapping) -> tuple[bool, str | None]:
    """A grade that says the patch fooled or tried to fool the grader (or that the grader could not decide)
    trains nothing."""
    g = row.get("grade")
    if g is not None and Grade(g) in NO_REWARD_GRADES:
        return False, f"{g}: {row.get('grade_reason') or ''}"[:300]
    return True, None


def reward_of(grade: Mapping) -> float:
    """Pure: 1 resolved; tampering/infrastructure 0; else half the share of F2P+P2P tests passing."""
    if grade.get("grade") is not None and Grade(grade["grade"]) in NO_REWARD_GRADES:
        return 0.0
    if grade["resolved"]:
        return 1.0
    tot = max(1, grade["f2p_total"] + grade["p2p_total"])
    return round(0.5 * (grade["f2p_passed"] + grade["p2p_passed"]) / tot, 4)


def f_submitted(row: Mapping) -> tuple[bool, str | None]:
    st = row.get("exit_status")
    return (True, None) if st == "submitted" else (False, f"not_submitted: {st}")


def _first_edit(st: Sequence[Step]) -> int:
    return next((s.i for s in st if s.source_edit and s.ok), len(st))


def f_reproduced(st: Sequence[Step], f2p: Sequence[str] | None = None) -> tuple[bool, str | None]:
    """Before its first edit of the code, the agent ran the tests or a reproduction and saw it fail. With the
    instance's F2P tests known, a failing test run counts when it ran them (:func:`runs_f2p`)."""
    first = _first_edit(st)
    if any(shows_failure(s.obs) and (s.kind == "run" or (s.kind == "test" and runs_f2p(s, f2p)))
           for s in st[:first]):
        return True, None
    runs = sum(s.kind in ("test", "run") for s in st[:first])
    return False, (f"no_reproduction: none of {runs} test/reproduction runs before the first edit showed a failure"
                   if runs else "no_reproduction: no test or reproduction run before the first edit")


def runs_f2p(step: Step, f2p: Sequence[str] | None) -> bool:
    """Did this test run run the failing tests: its command or output names an F2P test (its file or its
    function), or its command names no test file and no test id (the suite, or a folder)? Unknown F2P: yes."""
    if not f2p:
        return True
    cmd = str(step.args.get("command") or "")
    names = {p for t in f2p for p in (t.split("::", 1)[0], t.rsplit("::", 1)[-1].split("[", 1)[0]) if p}
    if any(n in cmd or n in step.obs for n in names):
        return True
    return not re.search(r"\.py\b|::|\s-k\s", cmd)


def f_source_only(st: Sequence[Step]) -> tuple[bool, str | None]:
    """Every edit (tried) is of a source file of the repository: no test, harness or outside file."""
    bad = [why for s in st if (why := non_source_edit(s))]
    return (True, None) if not bad else (False, f"non_source_edit: {', '.join(dict.fromkeys(bad[:3]))}")


def f_tested_after(st: Sequence[Step]) -> tuple[bool, str | None]:
    """After its last edit of the code, the agent ran the tests (a run that started)."""
    edits = [s.i for s in st if s.source_edit and s.ok]
    if not edits:
        return False, "no_test_after_edit: no edit of the code"
    if any(s.kind == "test" and not setup_failure(s.obs) for s in st[edits[-1] + 1:]):
        return True, None
    return False, "no_test_after_edit: no test run after the last edit"


def f_resolved(row: Mapping) -> tuple[bool, str | None]:
    if row.get("resolved"):
        return True, None
    return False, (f"unresolved: F2P {row.get('f2p_passed') or 0}/{row.get('f2p_total') or 0}, "
                   f"P2P {row.get('p2p_passed') or 0}/{row.get('p2p_total') or 0}")


def f_repeated_call(st: Sequence[Step]) -> tuple[bool, str | None]:
    """No call made again (same tool, same arguments) with no edit between: the state is the same, so is the
    answer (the SFT form of :func:`f_repeats`, which drops a loop outright)."""
    (sig, n), = same_state_counts(st).most_common(1) or [(("", ""), 0)]
    return (True, None) if n < 2 else (False, f"repeated_call: {sig[0]} {sig[1][:80]} made {n} times with no "
                                              "edit between")


def f_idle_reading(st: Sequence[Step], max_reads: int) -> tuple[bool, str | None]:
    """At most ``max_reads`` reads (view, cat, grep, ...) in a row without an edit or a run between."""
    worst = run = 0
    for s in st:
        run = run + 1 if s.kind == "read" else 0 if s.kind in ("edit", "test", "run") else run
        worst = max(worst, run)
    return (True, None) if worst <= max_reads else (False, f"idle_reading: {worst} reads in a row > {max_reads}")


def sft_reasons(row: Mapping, cfg: Mapping, inst: Mapping | None = None) -> list[str]:
    """Every reason a clean model-policy row is not an SFT row ([] = SFT), each check switched by its
    ``swe.filters`` key (``inst``: the instance, whose F2P tests a reproducing test run must run)."""
    st = steps(row["messages"])
    f2p = list((inst or {}).get("FAIL_TO_PASS") or [])
    checks = [(cfg["sft_require_reproduction"], lambda: f_reproduced(st, f2p)),
              (cfg["sft_source_edits_only"], lambda: f_source_only(st)),
              (cfg["sft_require_test_after_edit"], lambda: f_tested_after(st)),
              (cfg["sft_require_resolved"], lambda: f_resolved(row)),
              (cfg["sft_drop_repeated_calls"], lambda: f_repeated_call(st)),
              (cfg["sft_max_idle_reads"] is not None, lambda: f_idle_reading(st, int(cfg["sft_max_idle_reads"])))]
    return [r for on, check in checks if on for ok, r in [check()] if not ok]


def semi_resolved(row: Mapping, inst: Mapping | None) -> bool:
    """Close to resolved: graded (tests failing, no tampering), not resolved, some F2P tests pass after the
    patch, and the patch edits a source file the reference fix edits. Without the instance: False."""
    if inst is None or row.get("resolved") or row.get("grade") not in ("tests_failing", None):
        return False
    if not (row.get("f2p_passed") or 0) > 0:
        return False
    gold = {p for p in diff_paths(inst.get("patch") or "") if not is_test_path(p)}
    return bool(gold & set(diff_paths(row.get("model_patch") or "")))


def classify(row: Mapping, cfg: Mapping, inst: Mapping | None = None) -> tuple[str, list[str]]:
    """(split, reasons) of one trajectory (``inst``: its instance, for :func:`semi_resolved`). A reference
    policy's row is ``reference`` when it resolved (no other check applies: it is no training row) and
    ``none`` with its reasons when it did not (``curate`` then rejects the instance). A model policy's row
    failing a hard filter is ``none``; else ``sft+rl`` when the strict checks hold, ``semi`` when it came
    close (``semi_resolved`` on), else ``rl``; the strict checks' reasons are listed on ``semi`` and ``rl``."""
    checks = [f_submitted(row), f_context(row, int(cfg["max_context_tokens"])),
              f_tool_errors(row, float(cfg["max_tool_error_rate"])),
              f_repeats(row, int(cfg["max_repeated_actions"])), f_test_edits(row), f_tamper(row)]
    reasons = [r for ok, r in checks if not ok]
    if row.get("policy") in REFERENCE_POLICIES:
        return (REFERENCE_SPLIT, []) if row.get("resolved") else ("none", reasons)
    if reasons:
        return "none", reasons
    sft = sft_reasons(row, cfg, inst)
    if not sft:
        return "sft+rl", []
    return (SEMI_SPLIT if cfg["semi_resolved"] and semi_resolved(row, inst) else "rl"), sft


def reason_key(reason: str) -> str:
    return reason.split(":", 1)[0]
