"""A test whose call passes and whose fixture then fails in teardown: an honest suite, not a forged summary.

Golden logs (tests/support/record_pytest_logs.py; real pytest 9 and 7.3.1 runs): the console prints PASSED and
ERROR for the one id and counts it among the passed ("2 passed, 1 error"); JUnit keeps one case with an
``<error message="failed on teardown with ...">``. The id's outcome stays the error: nothing gains a pass."""

import pytest

import crucible.sandbox.testrun as testrun
from crucible.sandbox.parsers import junit_teardown_errors
from crucible.sandbox.testrun import reconcile
from tests.unit.test_sandbox_collisions import parts

TORN = "test_teardown.py::test_uses_resource"


@pytest.mark.parametrize("case", ["teardown_error", "teardown_error_pytest7"])
def test_a_teardown_error_after_a_passed_call_is_consistent_and_stays_an_error(case):
    code, log, junit = parts(case)
    assert f"PASSED {TORN}\n" in log and f"ERROR {TORN} - RuntimeError" in log and "2 passed, 1 error" in log
    assert junit_teardown_errors(junit) == {TORN}
    run = reconcile(code, log, junit)
    assert run.status == "ok", run.reason
    assert run.tests == {TORN: "ERROR", "test_teardown.py::test_plain": "PASSED"}


def test_switched_off_the_honest_suite_is_called_forged():
    code, log, junit = parts("teardown_error")
    orig = testrun.junit_teardown_errors
    try:
        testrun.junit_teardown_errors = lambda text: set()
        run = reconcile(code, log, junit)
    finally:
        testrun.junit_teardown_errors = orig
    assert run.status == "error" and run.kind == "forged_summary"


def test_a_call_error_with_a_console_pass_is_still_forged():
    # the same log, but JUnit's error is not a teardown error: a PASSED line for it is a forgery
    code, log, junit = parts("teardown_error")
    call_error = junit.replace('message="failed on teardown with', 'message="failed on call with')
    assert junit_teardown_errors(call_error) == set()
    run = reconcile(code, log, call_error)
    assert run.status == "error" and run.kind == "forged_summary" and TORN in run.reason


def test_a_summary_inflated_beyond_the_teardown_case_is_still_forged():
    code, log, junit = parts("teardown_error")
    run = reconcile(code, log.replace("2 passed, 1 error", "3 passed, 1 error"), junit)
    assert run.status == "error" and run.kind == "forged_summary" and "claims 2 passed" in run.reason


def test_a_pass_line_without_the_error_line_is_still_forged():
    # a console that hides the teardown ERROR and claims the test passed
    code, log, junit = parts("teardown_error")
    hidden = log.replace(f"ERROR {TORN} - RuntimeError: cleanup failed\n", "")
    run = reconcile(code, hidden, junit)
    assert run.status == "error" and run.kind == "forged_summary"
