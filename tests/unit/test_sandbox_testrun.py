"""The verdict on a test run: JUnit is primary, cross-checked with exit code and console summary."""

from pathlib import Path

import pytest

from crucible.sandbox.testrun import TestRun, flaky_tests, network_dependent, reconcile

DATA = Path(__file__).resolve().parent.parent / "data" / "sandbox"


def recorded(case):
    d = DATA / case
    junit = d / "junit.xml"
    return reconcile(int((d / "exit_code").read_text()), (d / "console.log").read_text(),
                     junit.read_text() if junit.exists() else None)


def test_mixed_suite_is_ok_with_per_test_outcomes():
    run = recorded("mixed")
    assert run.status == "ok", run.reason
    assert run.counts["PASSED"] == 5 and run.counts["FAILED"] == 2 and run.counts["ERROR"] == 1
    assert run.tests["test_mixed.py::test_param[c]"] == "FAILED"
    assert run.tests_swebench["test_mixed.py::test_fail"] == "FAILED"


def test_failed_subtests_fail_their_test_and_are_no_forgery():
    """pytest 9's native subtests (recorded: more-itertools 10.1.0 with a bug under pytest 9.2): the console
    prints ``PASSED id`` and ``SUBFAILED(...) id`` for a test JUnit records as failed. That is a failed test,
    in the console ids as in JUnit, not a forged summary (it was, before: every such bug run was dropped)."""
    from crucible.sandbox.parsers import get_parser, subtest_failures

    tid = "tests/test_recipes.py::PolynomialDerivativeTests::test_basic"
    run = recorded("subtests")
    assert run.status == "ok", run.reason
    assert run.tests[tid] == "FAILED" and run.tests_swebench[tid] == "FAILED"
    assert run.tests["tests/test_recipes.py::PolynomialEvalTests::test_basic"] == "PASSED"
    log = (DATA / "subtests" / "console.log").read_text()
    assert subtest_failures(log) == {tid}
    for name in ("pytest_rA", "pytest_rA_options", "pytest_rA_v2", "pytest_rA_full"):
        assert get_parser(name)(log)[tid] == "FAILED", name
    # a forger still cannot pass a failed test off: a PASSED line with no SUBFAILED line is still caught
    forged = log.replace("SUBFAILED(", "XSUBFAILED(")
    fake = reconcile(1, forged, (DATA / "subtests" / "junit.xml").read_text())
    assert fake.status == "error" and fake.kind == "forged_summary" and tid in fake.reason


def test_forged_passed_lines_with_nonzero_exit_are_an_error_not_a_pass():
    run = recorded("forged")
    assert run.status == "error" and run.kind == "forged_summary"
    assert "test_forged.py::test_real_failure" in run.reason
    assert run.tests["test_forged.py::test_real_failure"] == "FAILED"


def test_forged_lines_for_unknown_tests_are_caught():
    d = DATA / "forged"
    log = (d / "console.log").read_text().replace("PASSED test_forged.py::test_real_failure", "")
    run = reconcile(1, log, (d / "junit.xml").read_text())
    assert run.kind == "forged_summary" and "absent from JUnit" in run.reason


def test_all_pass_but_nonzero_exit_is_exit_mismatch():
    run = recorded("exitcode")
    assert run.status == "error" and run.kind == "exit_mismatch"
    assert "disagree with the exit code" in run.reason


def test_collection_crash_is_an_error_with_reason():
    run = recorded("crash")
    assert run.status == "error" and run.kind == "collection"
    assert "collection" in run.reason and "exit 2" in run.reason


def test_never_started_suite_with_printed_passes_is_an_error():
    run = recorded("nostart")
    assert run.status == "error" and run.kind == "never_started"
    assert run.tests == {}


def test_no_tests_collected():
    run = recorded("empty")
    assert run.status == "error" and run.kind == "no_tests"


def test_exit_zero_with_failures_in_junit_is_mismatch():
    d = DATA / "mixed"
    run = reconcile(0, (d / "console.log").read_text(), (d / "junit.xml").read_text())
    assert run.kind == "exit_mismatch" and "exit code 0" in run.reason


def test_summary_count_forgery_is_caught():
    d = DATA / "mixed"
    log = (d / "console.log").read_text().replace("2 failed, 4 passed", "0 failed, 9 passed")
    run = reconcile(1, log, (d / "junit.xml").read_text())
    assert run.kind == "forged_summary" and "claims 10 passed" in run.reason


@pytest.mark.parametrize("kw,kind", [
    ({"timed_out": True}, "timeout"),
    ({"oom_killed": True}, "oom"),
    ({"daemon_error": "APIError: 500"}, "daemon"),
])
def test_infra_failures_are_classified_apart(kw, kind):
    d = DATA / "mixed"
    run = reconcile(137, (d / "console.log").read_text(), None, **kw)
    assert run.status == "infra" and run.kind == kind


def test_disk_full_in_log_is_infra():
    run = reconcile(1 + 2, "OSError: [Errno 28] No space left on device", None)
    assert run.status == "infra" and run.kind == "disk_full"


def _run(tests):
    return TestRun(status="ok", reason="", tests=tests)


def test_flaky_tests_are_those_whose_outcome_flips():
    runs = [_run({"a": "PASSED", "b": "PASSED", "c": "FAILED"}),
            _run({"a": "PASSED", "b": "FAILED", "c": "FAILED"}),
            _run({"a": "PASSED", "c": "FAILED"}),
            TestRun(status="infra", reason="timeout")]
    assert flaky_tests(runs) == ["b"]
    assert flaky_tests(runs[:1]) == []


def test_network_dependent_tests_pass_only_online():
    offline = _run({"a": "PASSED", "net": "FAILED", "gone": "ERROR"})
    online = _run({"a": "PASSED", "net": "PASSED", "gone": "ERROR"})
    assert network_dependent(offline, online) == ["net"]


def test_failed_offline_reinstall_is_its_own_error_kind():
    run = reconcile(98, "error: no backend\n>>>>> crucible reinstall failed\n", None)
    assert run.status == "error" and run.kind == "reinstall"


def test_summary_ids_in_another_convention_warn_instead_of_failing():
    d = DATA / "mixed"
    log = (d / "console.log").read_text().replace("test_mixed.py::", "sub/test_mixed.py::")
    run = reconcile(1, log, (d / "junit.xml").read_text())
    assert run.status == "ok" and any("id convention differs" in w for w in run.warnings)


def test_inherited_test_methods_map_to_their_node_ids():
    """cachetools 5.3.2 (recorded): test classes in tests/test_cache.py inherit their methods from a mixin in
    tests/__init__.py, so JUnit's ``file`` is tests/__init__.py. The ids are the node ids the console prints
    (before: 13 "absent from JUnit" PASSED lines and the clean suite called forged, every bug dropped)."""
    run = recorded("inherited")
    assert run.status == "ok", run.reason
    assert run.tests["tests/test_cache.py::CacheTest::test_defaults"] == "PASSED"
    assert run.tests["tests/test_keys.py::CacheKeysTest::test_typedkey"] == "PASSED"
    assert not any(t.startswith("tests/__init__.py") for t in run.tests)


def test_pytest3_class_instance_ids_match_junit():
    """pytest < 4 (recorded: requests 2.25.1's pinned pytest 3.5.1) prints ``t.py::TestA::()::test_x``;
    JUnit has no ``()``. Same tests, not 'PASSED for tests absent from JUnit' (every requests 2.25 bug
    was dropped as forged before); SWE-bench-style ids drop it too (``parsers.OLD_INSTANCE_RE``), so labels
    made under a later pytest name the same tests."""
    run = recorded("pytest3")
    assert run.status == "ok", run.reason
    tid = next(t for t in run.tests if "TestCaseInsensitiveDict" in t)
    assert "::()" not in tid and run.tests[tid] == "PASSED"
    assert not any("::()" in t for t in run.tests_swebench) and run.tests_swebench[tid] == "PASSED"
