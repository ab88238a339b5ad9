"""Log parsers against logs recorded from real pytest runs (tests/data/sandbox/*)."""

from pathlib import Path

import pytest

from crucible.sandbox.parsers import (
    PARSERS,
    get_parser,
    junit_nodeid,
    junit_totals,
    parse_junit_xml,
    parse_pytest_rA,
    parse_pytest_rA_full,
    parse_summary_counts,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sandbox"


def read(case, name):
    return (DATA / case / name).read_text()


def test_pytest_rA_reproduces_swebench_id_convention_including_truncation():
    got = parse_pytest_rA(read("mixed", "console.log"))
    assert got["test_mixed.py::test_ok"] == "PASSED"
    assert got["test_mixed.py::TestGroup::test_in_class"] == "PASSED"
    assert got["test_mixed.py::test_fail"] == "FAILED"
    assert got["test_mixed.py::test_error"] == "ERROR"
    assert got["test_mixed.py::test_xfail"] == "XFAIL"
    # SWE-bench splits on whitespace: ids with spaces are truncated ("[a b]" -> "[a", "[x - y]" -> "[x")
    assert got["test_mixed.py::test_param[a"] == "PASSED"
    assert got["test_mixed.py::test_param[x"] == "PASSED"
    assert "test_mixed.py::test_param[a b]" not in got
    # SWE-bench has no XPASS status, and "SKIPPED [1] file:line" lines yield the id "[1]"
    assert "test_mixed.py::test_xpass" not in got
    assert got["[1]"] == "SKIPPED"


def test_pytest_rA_last_line_wins_for_repeated_ids():
    log = "PASSED a.py::t\nFAILED a.py::t - boom\n"
    assert parse_pytest_rA(log) == {"a.py::t": "FAILED"}


def test_pytest_rA_full_keeps_ids_with_spaces_and_xpass():
    got = parse_pytest_rA_full(read("mixed", "console.log"))
    assert got["test_mixed.py::test_param[a b]"] == "PASSED"
    assert got["test_mixed.py::test_xpass"] == "XPASS"
    assert "[1] test_mixed.py:9: not today" not in got


def test_junit_outcomes_of_mixed_suite():
    got = parse_junit_xml(read("mixed", "junit.xml"))
    assert got == {
        "test_mixed.py::test_ok": "PASSED",
        "test_mixed.py::test_fail": "FAILED",
        "test_mixed.py::test_skip": "SKIPPED",
        "test_mixed.py::test_xfail": "XFAIL",
        "test_mixed.py::test_xpass": "PASSED",
        "test_mixed.py::test_error": "ERROR",
        "test_mixed.py::test_param[a b]": "PASSED",
        "test_mixed.py::test_param[c]": "FAILED",
        "test_mixed.py::test_param[x - y]": "PASSED",
        "test_mixed.py::TestGroup::test_in_class": "PASSED",
    }
    assert junit_totals(read("mixed", "junit.xml")) == {"tests": 10, "failures": 2, "errors": 1, "skipped": 2}


def test_junit_collection_error_is_keyed_by_file():
    assert parse_junit_xml(read("crash", "junit.xml")) == {"test_crash.py": "ERROR"}


def test_junit_malformed_raises_value_error():
    with pytest.raises(ValueError, match="malformed JUnit XML"):
        parse_junit_xml("<testsuites><testcase")


def test_junit_nodeid_handles_packages_and_classes():
    assert junit_nodeid("pkg/tests/test_a.py", "pkg.tests.test_a.TestX", "test_y[1]") == \
        "pkg/tests/test_a.py::TestX::test_y[1]"
    assert junit_nodeid("pkg/mod.py", "pkg.mod", "pkg.mod.func") == "pkg/mod.py::pkg.mod.func"  # doctest


def test_summary_counts():
    assert parse_summary_counts(read("mixed", "console.log")) == {
        "failed": 2, "passed": 4, "skipped": 1, "xfailed": 1, "xpassed": 1, "errors": 1}
    assert parse_summary_counts(read("crash", "console.log")) == {"errors": 1}
    assert parse_summary_counts("no summary here") is None


def test_registry_by_name():
    assert get_parser("pytest_rA") is parse_pytest_rA
    assert {"pytest_rA", "pytest_rA_full", "junit_xml"} <= set(PARSERS)
    with pytest.raises(KeyError, match="no log parser named 'nope'"):
        get_parser("nope")


# a pytest 3.10 short summary (-rpsxXEf): failures are worded "FAIL <id>", printed after the passes; two
# parametrizations whose ids contain spaces share the SWE-bench id "t.py::test_ct[application/json"
OLD_PYTEST_SUMMARY = """\
=========================== short test summary info ============================
PASSED t.py::test_ok
PASSED t.py::test_ct[application/json ; charset=utf-8-expected1]
FAIL t.py::test_ct[application/json ; ; -expected2]
FAIL t.py::test_alone
======= 2 failed, 2 passed in 0.05 seconds ========
"""


def test_old_pytest_fail_lines_read_as_failed_so_a_shared_id_fails_like_under_new_pytest():
    got = parse_pytest_rA(OLD_PYTEST_SUMMARY)
    # new pytest prints "FAILED" there; the id its labels give is FAILED (the last line wins)
    new = parse_pytest_rA(OLD_PYTEST_SUMMARY.replace("\nFAIL ", "\nFAILED "))
    assert got == new
    assert got["t.py::test_ct[application/json"] == "FAILED"
    assert got["t.py::test_alone"] == "FAILED" and got["t.py::test_ok"] == "PASSED"
    assert get_parser("pytest_rA_options")(OLD_PYTEST_SUMMARY)["t.py::test_ct[application/json"] == "FAILED"
    # a line that only starts with the letters is not a status line
    assert parse_pytest_rA("FAILURES t.py::x\nFAIL\n") == {}


def test_without_the_old_fail_wording_a_passing_sibling_decides_the_shared_id(monkeypatch):
    import re

    import crucible.sandbox.parsers as parsers

    monkeypatch.setattr(parsers, "OLD_FAIL_RE", re.compile(r"(?!)"))  # switched off: SWE-bench's parser as is
    got = parsers.parse_pytest_rA(OLD_PYTEST_SUMMARY)
    # the failing parametrization is lost and the shared id passes: a bug that breaks it has no F2P there
    assert got["t.py::test_ct[application/json"] == "PASSED"
    assert "t.py::test_alone" not in got


PYTEST3_LOG = Path(__file__).resolve().parent.parent / "data" / "sandbox" / "pytest3" / "console.log"


def test_pytest3_class_instance_ids_read_as_every_later_pytest_names_them():
    log = PYTEST3_LOG.read_text()
    for name in ("pytest_rA", "pytest_rA_options"):
        got = get_parser(name)(log)
        assert not any("::()" in t for t in got), name
        assert got["tests/test_structures.py::TestCaseInsensitiveDict::test_list"] == "PASSED"
    # only the instance step: a parametrization that contains the characters keeps them
    assert parse_pytest_rA("PASSED t.py::test_x[::()]\n") == {"t.py::test_x[::()]": "PASSED"}


def test_without_the_instance_step_dropped_pytest3_ids_miss_the_labels_of_later_pytests(monkeypatch):
    import re

    import crucible.sandbox.parsers as parsers

    monkeypatch.setattr(parsers, "OLD_INSTANCE_RE", re.compile(r"(?!)"))  # switched off: SWE-bench's parser as is
    got = parsers.parse_pytest_rA(PYTEST3_LOG.read_text())
    assert "tests/test_structures.py::TestCaseInsensitiveDict::test_list" not in got
    assert got["tests/test_structures.py::TestCaseInsensitiveDict::()::test_list"] == "PASSED"
