"""JUnit and the console disagree where JUnit cannot tell test cases apart: several cases on one node id.

Golden logs (tests/support/record_pytest_logs.py, real pytest 7.3.1 runs): ``collide`` is a clean suite whose
parametrize ids collide the way packaging 23.1's do (pytest < 8 suffixes duplicate ids into a real id: 26,431
passed, 26,427 ids, and the clean suite was called forged); ``collide_mixed`` has one passing and one failing
case on one id. Reconciled by id with multiplicity, they are consistent; a spoof is still an error."""

from pathlib import Path

import pytest

import crucible.sandbox.testrun as testrun
from crucible.sandbox.parsers import junit_cases
from crucible.sandbox.testrun import Collisions, collisions, reconcile

DATA = Path(__file__).resolve().parent.parent / "data" / "sandbox"


def parts(case):
    d = DATA / case
    return int((d / "exit_code").read_text()), (d / "console.log").read_text(), (d / "junit.xml").read_text()


def test_a_clean_suite_with_colliding_ids_is_consistent_and_says_so():
    code, log, junit = parts("collide")
    assert log.count("PASSED test_collide.py::test_normalized[1.0dev1]\n") == 2 and "8 passed" in log
    run = reconcile(code, log, junit)
    assert run.status == "ok", run.reason
    assert run.counts["PASSED"] == 6 and len(junit_cases(junit)) == 8  # 8 cases, 6 ids
    assert run.reconciled == ("reconciled: 4 JUnit cases collided on 2 ids, console and JUnit agreeing case by "
                              "case, e.g. test_collide.py::test_normalized[1.0dev1]")
    assert run.reconciled in run.reason and run.reconciled in run.warnings


def test_one_passing_and_one_failing_case_on_an_id_is_no_forgery():
    code, log, junit = parts("collide_mixed")
    run = reconcile(code, log, junit)
    assert run.status == "ok", run.reason
    assert run.tests["test_collide_mixed.py::test_explicit[one0]"] == "FAILED"  # the id fails: worst case wins
    assert "2 JUnit cases collided on 1 ids" in run.reconciled


def test_without_the_reconciliation_the_clean_colliding_suite_is_called_forged(monkeypatch):
    monkeypatch.setattr(testrun, "collisions", lambda cases, lines: Collisions())
    run = reconcile(*parts("collide"))
    assert run.status == "error" and run.kind == "forged_summary"
    assert run.reason == "summary line claims 8 passed, JUnit records 6"
    mixed = reconcile(*parts("collide_mixed"))
    assert mixed.kind == "forged_summary" and "test_explicit[one0]" in mixed.reason


def test_more_passes_claimed_than_the_collisions_explain_is_an_error():
    code, log, junit = parts("collide")
    run = reconcile(code, log.replace("8 passed in", "10 passed in"), junit)
    assert run.status == "error" and run.kind == "forged_summary"
    assert run.reason == "summary line claims 10 passed, JUnit records 6 (+2 on ids shared by several cases)"


def test_a_console_line_repeated_for_an_id_junit_has_once_explains_nothing():
    code, log, junit = parts("collide")
    forged = log.replace("PASSED test_collide.py::test_plain\n", "PASSED test_collide.py::test_plain\n" * 2)
    forged = forged.replace("8 passed in", "9 passed in")
    run = reconcile(code, forged, junit)
    assert run.kind == "forged_summary" and "claims 9 passed" in run.reason


def test_a_blind_reconciliation_would_let_that_spoof_through(monkeypatch):
    """Switched to counting the console's repeats (not JUnit's cases), the repeated line above passes."""
    code, log, junit = parts("collide")
    forged = log.replace("PASSED test_collide.py::test_plain\n", "PASSED test_collide.py::test_plain\n" * 2)
    forged = forged.replace("8 passed in", "9 passed in")

    def blind(cases, lines):
        ids = [t for s, t in lines if s == "PASSED"]
        dup = sorted({t for t in ids if ids.count(t) > 1})
        return Collisions(tuple(dup), len(ids), len(ids) - len(set(ids)))

    monkeypatch.setattr(testrun, "collisions", blind)
    assert reconcile(code, forged, junit).status == "ok"


def test_a_failing_case_reported_passed_on_a_colliding_id_is_an_error():
    code, log, junit = parts("collide_mixed")
    forged = log.replace("FAILED test_collide_mixed.py::test_explicit[one0] - assert 2 == 1",
                         "PASSED test_collide_mixed.py::test_explicit[one0]").replace("1 failed, 2 passed", "3 passed")
    run = reconcile(code, forged, junit)
    assert run.status == "error" and run.kind == "forged_summary"
    assert "test_explicit[one0]" in run.reason
    assert collisions(junit_cases(junit), testrun._summary_lines(forged)).disputed == (
        "test_collide_mixed.py::test_explicit[one0]",)


@pytest.mark.parametrize("case", ["forged", "subtests"])
def test_the_spoofed_report_fixtures_still_fail(case):
    d = DATA / case
    log, junit = (d / "console.log").read_text(), (d / "junit.xml").read_text()
    if case == "subtests":  # a PASSED line for a test with a failed subtest, the SUBFAILED line removed
        log = log.replace("SUBFAILED(", "XSUBFAILED(")
    run = reconcile(int((d / "exit_code").read_text()), log, junit)
    assert run.status == "error" and run.kind == "forged_summary" and not run.reconciled


def test_collisions_count_only_junits_multiplicity():
    cases = [("a", "PASSED"), ("a", "PASSED"), ("b", "PASSED"), ("c", "PASSED"), ("c", "SKIPPED")]
    lines = [("PASSED", "a"), ("PASSED", "a"), ("PASSED", "b"), ("PASSED", "b"), ("PASSED", "c")]
    got = collisions(cases, lines)
    # a: two passes, one counted by its merged outcome; c: merged SKIPPED (worst wins), so its pass is extra
    assert got.agreed == ("a", "c") and got.cases == 4 and got.extra_passes == 2 and got.disputed == ()
    assert collisions(cases, lines[1:]).disputed == ("a",)  # one console line for two passing cases
    assert collisions([("x", "PASSED")], [("PASSED", "x")] * 3) == Collisions()
