"""Trustworthy test runs: JUnit XML is the primary source of per-test outcomes, cross-checked with the
``-rA`` summary and the exit code. A run is ``ok`` only if they agree; otherwise it is ``error`` (the suite
misbehaved: never started, forged summary, exit code contradicts outcomes, crashed at collection) or
``infra`` (timeout, OOM, daemon error), always with a reason. Nothing here counts a run as passing because
of what its console output claims.

:func:`reconcile` is pure (log, XML, exit code in; verdict out) and is tested on recorded logs. A run that stopped
before its tests quotes pytest's deciding line (:mod:`crucible.sandbox.startup`); JUnit cases that share a node id are
counted with their multiplicity (:func:`collisions`).
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crucible.sandbox.container import Limits, run_in_container
from crucible.sandbox.ladder import trigger_lines
from crucible.sandbox.parsers import (
    OLD_INSTANCE_RE,
    count_statuses,
    get_parser,
    junit_cases,
    junit_teardown_errors,
    parse_junit_xml,
    parse_pytest_rA,
    parse_summary_counts,
    subtest_failures,
)
from crucible.sandbox.recipes import test_script
from crucible.sandbox.startup import startup_error

PASSING = ("PASSED", "XPASS")
FAILING = ("FAILED", "ERROR")
STATUS_LINE = re.compile(r"^(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) (\S.*?)(?: - .*)?$")
COLLECTION_RE = re.compile(r"(ERROR collecting|errors? during collection|ImportError while importing test module)")
INFRA_LOG_PATTERNS = (
    (re.compile(r"No space left on device"), "disk_full"),
    (re.compile(r"(Temporary failure in name resolution|Name or service not known)"), "dns"),
    (re.compile(r"MemoryError"), "oom"),
)


@dataclass
class TestRun:
    __test__ = False  # not a pytest test class

    status: str  # ok | error | infra
    reason: str
    kind: str = ""  # "" for ok; error kinds: never_started, no_tests, collection, exit_mismatch, forged_summary,
    # interrupted, crashed; infra kinds: timeout, oom, daemon, disk_full, dns
    tests: dict[str, str] = field(default_factory=dict)  # JUnit node id -> status
    tests_swebench: dict[str, str] = field(default_factory=dict)  # -rA ids, SWE-bench convention
    counts: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    log_tail: str = ""
    rw_bytes: int = 0
    trigger_lines: list[str] = field(default_factory=list)  # lines of the whole log the repair ladder acts on
    deciding_line: str = ""  # a run stopped before its tests: pytest's line that says why (crucible.sandbox.startup)
    reconciled: str = ""  # ok despite JUnit's per-id outcomes: cases that share a node id (:func:`collisions`)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict:
        return asdict(self)


def _summary_lines(log: str) -> list[tuple[str, str]]:
    """Every ``STATUS id`` line anywhere in the log (a forger may print several for one id)."""
    out = []
    for line in log.splitlines():
        line = line.rstrip()
        if line.startswith("PASSED "):
            # pytest appends no " - message" to PASSED lines, so the whole rest is the id
            out.append(("PASSED", line[len("PASSED "):].strip()))
            continue
        m = STATUS_LINE.match(line)
        if m and not (m.group(1) == "SKIPPED" and m.group(2).startswith("[")):
            out.append((m.group(1), m.group(2).strip()))
    subfailed = subtest_failures(log) if "SUBFAILED" in log else set()
    # a PASSED line for a test whose subtest failed is pytest's own report (>= 9), not a forgery; pytest < 4's
    # class-instance step in node ids is dropped (parsers.OLD_INSTANCE_RE), JUnit ids never have it
    return [("FAILED" if s == "PASSED" and t in subfailed else s, OLD_INSTANCE_RE.sub("", t)) for s, t in out]


def _xpass_id(text: str, tests: dict) -> str:
    """The id of an XPASS summary line: the whole text, or its longest prefix ending at a space that JUnit
    knows (the rest is the xfail reason)."""
    if text in tests:
        return text
    cuts = [i for i, ch in enumerate(text) if ch == " "]
    return next((text[:i] for i in reversed(cuts) if text[:i] in tests), text)


@dataclass(frozen=True)
class Collisions:
    """Node ids JUnit holds more than one test case under (:func:`collisions`)."""

    agreed: tuple[str, ...] = ()  # ids whose cases the console reports with the same statuses, as many times
    cases: int = 0  # JUnit cases on the agreed ids
    extra_passes: int = 0  # passing cases on them that one outcome per id does not count
    disputed: tuple[str, ...] = ()  # ids of several cases the console reports otherwise

    def note(self) -> str:
        return (f"reconciled: {self.cases} JUnit cases collided on {len(self.agreed)} ids, console and JUnit "
                f"agreeing case by case, e.g. {self.agreed[0]}") if self.agreed else ""


def collisions(cases: list[tuple[str, str]], lines: list[tuple[str, str]]) -> Collisions:
    """Where JUnit cannot tell test cases apart: node ids with several testcase elements (pytest < 8 makes a
    duplicate parametrize id unique with a suffix that can meet a real id; packaging 23.1 has 4 such ids in
    26,431 tests), which one outcome per id (``parse_junit_xml``) merges. Such an id is *agreed* when the
    console's status lines for it are the same multiset as its JUnit cases (skips apart: ``-rs`` names no id;
    XPASS is a pass in JUnit). Only JUnit's multiplicity counts: a console line repeated for an id JUnit has
    once explains nothing."""
    junit: dict[str, list[str]] = defaultdict(list)
    for tid, status in cases:
        junit[tid].append(status)
    console: dict[str, list[str]] = defaultdict(list)
    for status, tid in lines:
        console[tid].append("PASSED" if status == "XPASS" else status)
    agreed, disputed, n, extra = [], [], 0, 0
    for tid, statuses in junit.items():
        if len(statuses) < 2:
            continue
        if sorted(s for s in statuses if s != "SKIPPED") != sorted(s for s in console.get(tid, ()) if s != "SKIPPED"):
            disputed.append(tid)
            continue
        agreed.append(tid)
        n += len(statuses)
        passes = statuses.count("PASSED")
        extra += passes - (1 if passes == len(statuses) else 0)  # the merged outcome is a pass only if all are
    return Collisions(tuple(agreed), n, extra, tuple(disputed))


def reconcile(exit_code: int | None, log: str, junit: str | None, *, timed_out: bool = False,
              oom_killed: bool = False, daemon_error: str = "", seconds: float = 0.0) -> TestRun:
    """The verdict on one pytest run. Order matters: infra first, then whether the suite ran at all, then
    agreement between JUnit, exit code and the console summary."""
    tail = log[-4000:]

    def result(status, kind, reason, **kw):
        return TestRun(status=status, kind=kind, reason=reason, exit_code=exit_code, seconds=seconds,
                       log_tail=tail, **kw)

    if daemon_error:
        return result("infra", "daemon", f"docker daemon error: {daemon_error}")
    if timed_out:
        return result("infra", "timeout", f"wall-clock timeout after {seconds:.0f}s; container killed")
    if oom_killed:
        return result("infra", "oom", "killed by the kernel OOM killer (memory limit reached)")
    for pat, kind in INFRA_LOG_PATTERNS:
        if pat.search(log) and exit_code not in (0, 1):
            return result("infra", kind, f"infrastructure failure in log: {pat.pattern}")

    def stopped(status, kind, reason, **kw):  # a run that stopped before its tests: quote pytest's own line
        said = startup_error(log)
        if said is None:
            return result(status, kind, reason, **kw)
        return result(status, kind, f"{reason}: {said.quote()}", deciding_line=said.line, **kw)

    if junit is None or not junit.strip():
        if ">>>>> crucible reinstall failed" in log:
            return result("error", "reinstall", "the per-run offline reinstall (pip install -e . --no-deps "
                          "--no-build-isolation) failed before the tests; see log_tail")
        if COLLECTION_RE.search(log):
            return stopped("error", "collection", "suite crashed at collection and wrote no JUnit XML")
        return stopped("error", "never_started", f"suite never started: no JUnit XML written (exit code {exit_code})")
    try:
        tests, cases = parse_junit_xml(junit), junit_cases(junit)
    except ValueError as exc:
        return result("error", "never_started", f"JUnit XML unreadable: {exc}")
    rA = parse_pytest_rA(log)
    counts = count_statuses(tests)
    kw = {"tests": tests, "tests_swebench": rA, "counts": counts}
    if exit_code == 5 or not tests:
        return result("error", "no_tests", f"no tests collected (exit code {exit_code})", **kw)
    if exit_code == 2 and COLLECTION_RE.search(log):
        n = sum(1 for t, s in tests.items() if s == "ERROR" and "::" not in t)
        return stopped("error", "collection",
                       f"collection crashed ({n or 'some'} module(s) failed to import); pytest interrupted (exit 2)",
                       **kw)
    if exit_code in (2, 3, 4):
        what = {2: "interrupted", 3: "internal error", 4: "usage error"}[exit_code]
        return stopped("error", "interrupted", f"pytest {what} (exit code {exit_code})", **kw)
    if exit_code not in (0, 1):
        return result("error", "crashed", f"test process died with exit code {exit_code} (signal or crash)", **kw)
    failing = [t for t, s in tests.items() if s in FAILING]
    if exit_code == 1 and not failing:
        return result("error", "exit_mismatch",
                      "JUnit reports no failures but pytest exited 1: claimed passes disagree with the exit code",
                      **kw)
    if exit_code == 0 and failing:
        return result("error", "exit_mismatch",
                      f"exit code 0 but JUnit reports {len(failing)} failing test(s), e.g. {failing[0]}", **kw)
    return _console_check(log, tests, cases, result, kw, junit_teardown_errors(junit))


def _console_check(log: str, tests: dict, cases: list[tuple[str, str]], result, kw: dict,
                   teardown: set[str] = frozenset()) -> TestRun:
    """The console's status lines and summary count against JUnit (after exit code and JUnit agreed).
    ``teardown``: ids JUnit records as a teardown error; their call passed, so the console prints PASSED and
    ERROR for them and counts them among the passed (JUnit's error stays the outcome: no pass is gained)."""
    counts = kw["counts"]
    # Cross-check the console summary against JUnit: a PASSED line for a test JUnit has failing, or for a
    # test JUnit never saw, is a forgery (or a broken harness) -> error, never a pass.
    lines = _summary_lines(log)
    # pytest < 7 writes an XPASS line's reason after the id with a plain space ("XPASS t.py::test why")
    lines = [(s, _xpass_id(t, tests) if s == "XPASS" else t) for s, t in lines]
    coll = collisions(cases, lines)
    # a PASSED line for an id whose cases JUnit and the console report alike (one passed, one failed) is true
    torn = {t for t in teardown if tests.get(t) == "ERROR" and ("ERROR", t) in lines and ("PASSED", t) in lines}
    contradicted = sorted({t for s, t in lines if s in PASSING and tests.get(t) in FAILING
                           and t not in coll.agreed and t not in torn})
    unknown = sorted({t for s, t in lines if s in PASSING and t not in tests})
    summary_ids = {t for _, t in lines}
    known = summary_ids & set(tests)
    warnings = []
    reverse = sorted({t for s, t in lines if s in FAILING and tests.get(t) == "PASSED"
                      and not any(s2 in PASSING and t2 == t for s2, t2 in lines)})
    if reverse and not contradicted:  # JUnit rewritten after the console printed the truth
        return result("error", "forged_summary",
                      f"console reports {len(reverse)} test(s) failing that JUnit records as passed, e.g. "
                      f"{reverse[0]}", **kw)
    if contradicted:
        return result("error", "forged_summary",
                      f"console claims PASSED for {len(contradicted)} test(s) JUnit records as failing, e.g. "
                      f"{contradicted[0]}", **kw)
    if unknown:
        # trust the comparison only when the id conventions line up for (almost) every other summary line
        if known and len(known) >= 0.9 * len(summary_ids - set(unknown)):
            return result("error", "forged_summary",
                          f"console claims PASSED for {len(unknown)} test(s) absent from JUnit, e.g. {unknown[0]}",
                          **kw)
        warnings.append(f"{len(unknown)} summary ids do not map to JUnit ids (id convention differs)")
    summary = parse_summary_counts(log)
    if summary is not None:
        junit_passed = counts["PASSED"] + counts["XPASS"]
        claimed = summary.get("passed", 0) + summary.get("xpassed", 0)
        if "SUBFAILED" in log:  # pytest >= 9 counts a test whose subtests failed as passed too
            claimed -= sum(1 for t in subtest_failures(log) if tests.get(t) in FAILING)
        claimed -= len(torn)  # a passed call whose teardown failed: counted passed by the summary, an error here
        if claimed != junit_passed + coll.extra_passes:
            more = f" (+{coll.extra_passes} on ids shared by several cases)" if coll.extra_passes else ""
            disputed = f"; {len(coll.disputed)} shared id(s) the console reports otherwise, e.g. " \
                       f"{coll.disputed[0]}" if coll.disputed else ""
            return result("error", "forged_summary",
                          f"summary line claims {claimed} passed, JUnit records {junit_passed}{more}{disputed}", **kw)
    else:
        warnings.append("no pytest summary line in the log")
    note = coll.note()
    return result("ok", "", f"{counts['PASSED']} passed, {counts['FAILED']} failed, {counts['ERROR']} errors"
                  + (f"; {note}" if note else ""), warnings=warnings + ([note] if note else []), reconciled=note, **kw)


# ---------------------------------------------------------------- running in Docker

def run_tests(client, image: str, repo_dir: Path, recipe: dict, *, limits=None, network: str = "none",
              selection: list[str] | None = None, extra_args: list[str] | None = None,
              autoload: bool = False, junit_path: str | None = None) -> TestRun:
    """One test run of ``recipe`` in a fresh container from ``image`` with ``repo_dir`` copied to /testbed.
    The JUnit path is random per run so the suite cannot pre-write it by name."""

    limits = limits or Limits()
    junit_path = junit_path or f"/tmp/crucible-junit-{secrets.token_hex(8)}.xml"
    script = test_script(recipe, junit_path, extra_args=extra_args, selection=selection, autoload=autoload)
    out = run_in_container(client, image, script, tree=repo_dir, limits=limits, network=network,
                           fetch=(junit_path,), env={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"})
    junit = out.files.get(junit_path)
    run = reconcile(out.exit_code, out.log, junit.decode(errors="replace") if junit is not None else None,
                    timed_out=out.timed_out, oom_killed=out.oom_killed, daemon_error=out.daemon_error,
                    seconds=out.seconds)
    run.rw_bytes = out.rw_bytes
    if not run.ok or run.counts.get("FAILED", 0) + run.counts.get("ERROR", 0):
        run.trigger_lines = trigger_lines(out.log)
    parser = recipe.get("log_parser")
    if parser and parser != "pytest_rA" and run.tests_swebench:
        # SWE-bench grades some repos with a variant of its -rA parser (ids normalised differently)

        run.tests_swebench = get_parser(parser)(out.log)
    return run


def flaky_tests(runs: list[TestRun]) -> list[str]:
    """Tests whose outcome differs between ok runs (absent in one run counts as a different outcome)."""
    ok = [r for r in runs if r.ok]
    if len(ok) < 2:
        return []
    ids = set().union(*(r.tests for r in ok))
    return sorted(t for t in ids if len({r.tests.get(t, "ABSENT") for r in ok}) > 1)


def network_dependent(offline: TestRun, online: TestRun) -> list[str]:
    """Tests that pass only with network."""
    return sorted(t for t, s in online.tests.items()
                  if s in PASSING and offline.tests.get(t) not in PASSING)


def run_suite(client, image: str, repo_dir: Path, recipe: dict, *, k: int = 1, limits=None,
              network: str = "none", label_network: str | None = None,
              selection: list[str] | None = None) -> dict:
    """Run the suite ``k`` times (flaky = outcome flips) and, if ``label_network`` is a network mode
    (``internal``/``bridge``), once more with it to label network-dependent tests."""
    if k < 1:
        raise ValueError(f"k={k}: the suite must run at least once")
    runs = [run_tests(client, image, repo_dir, recipe, limits=limits, network=network, selection=selection)
            for _ in range(k)]
    flaky = flaky_tests(runs)
    first_ok = next((r for r in runs if r.ok), None)
    out = {"runs": runs, "flaky": flaky, "network_dependent": [], "status": runs[0].status,
           "reason": runs[0].reason}
    if first_ok is not None:
        out["status"], out["reason"] = "ok", first_ok.reason
        out["tests"] = {t: s for t, s in first_ok.tests.items() if t not in flaky}
    if label_network and first_ok is not None:
        online = run_tests(client, image, repo_dir, recipe, limits=limits, network=label_network,
                           selection=selection)
        if online.ok:
            out["network_dependent"] = network_dependent(first_ok, online)
    return out
