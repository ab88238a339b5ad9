"""Suites that never start: the verdict quotes pytest's own deciding line, and the repair ladder climbs on it.

Golden logs: tests/data/sandbox/startup (tests/support/record_pytest_logs.py: real runs of tiny trees by
pytest 9.2, 7.3.1 and 4.6.11 on Python 3.11, flags as ``crucible.sandbox.recipes.test_script`` gives them). Before,
every one of them ended "suite never started: no JUnit XML written (exit code 4)" (or 1, or 2) and no rung
reacted to most of them."""

import re
from pathlib import Path

import pytest

import crucible.sandbox.ladder as ladder
import crucible.sandbox.testrun as testrun
from crucible.sandbox.ladder import Phase, RungKind, apply_rung, candidates, deciding_line, trigger_lines
from crucible.sandbox.recipes import infer_recipe
from crucible.sandbox.startup import startup_error, syntax_needs
from crucible.sandbox.testrun import reconcile

DATA = Path(__file__).resolve().parent.parent / "data" / "sandbox"
PYTHONS = ("3.9", "3.11", "3.13")

# case -> (kind, pytest's deciding line, its context line or "")
DECIDING = {
    "unknown_option": ("usage", "python -m pytest: error: unrecognized arguments: --frobnicate", ""),
    "addopts_xdist": ("usage", "python -m pytest: error: unrecognized arguments: -n", ""),
    "addopts_plugin": ("plugin", "ERROR: Error importing plugin \"xdist\": No module named 'xdist'", ""),
    "addopts_plugin_pytest7": ("plugin", "ImportError: Error importing plugin \"xdist\": No module named 'xdist'", ""),
    "required_plugins": ("plugin", "ERROR: Missing required plugins: pytest-randomly", ""),
    "newer_option": ("usage", "pytest.py: error: argument --import-mode: invalid choice: 'importlib' (choose from "
                     "'prepend', 'append') (via addopts config)", ""),
    "newer_option_unknown": ("usage", "pytest.py: error: unrecognized arguments: --durations-min=1", ""),
    "conftest_import": ("conftest", "E   ModuleNotFoundError: No module named 'skimage'",
                        "ImportError while loading conftest '/tmp/rec/startup-conftest_import/conftest.py'"),
    "conftest_syntax": ("conftest", "E   SyntaxError: invalid syntax",
                        "ImportError while loading conftest '/tmp/rec/startup-conftest_syntax/tests/conftest.py'"),
    "old_pytest_new_python": ("conftest", 'TypeError: required field "lineno" missing from alias',
                              "ImportError while loading conftest "
                              "'/tmp/rec/startup-old_pytest_new_python/tests/conftest.py'"),
    "module_syntax": ("collection", "E   SyntaxError: expected '('", "ERROR collecting tests/test_gen.py"),
    "module_import": ("collection", "E   ModuleNotFoundError: No module named 'skimage'",
                      "ERROR collecting tests/test_imp.py"),
    "no_pytest": ("no_pytest", "/usr/bin/python3.11: No module named pytest", ""),
}

# case -> every rung the ladder offers, best first (recipe: Python 3.11, source dated 2023-05-01, no as_of)
RUNGS = {
    "unknown_option": [("as_of_date", "2023-05-01T23:59:59Z"), ("clear_addopts", "--frobnicate")],
    "addopts_xdist": [("pytest_plugin", "pytest-xdist")],
    "addopts_plugin": [("pytest_plugin", "pytest-xdist")],
    "addopts_plugin_pytest7": [("pytest_plugin", "pytest-xdist")],
    "required_plugins": [("pytest_plugin", "pytest-randomly")],
    "newer_option": [("newest_test_runner", "pytest")],
    "newer_option_unknown": [("newest_test_runner", "pytest"), ("clear_addopts", "--durations-min=1")],
    "conftest_import": [("install_module", "scikit-image")],
    "conftest_syntax": [("newer_python", "3.13")],
    "old_pytest_new_python": [("older_python", "3.9"), ("newest_test_runner", "pytest")],
    "module_syntax": [("newer_python", "3.13")],
    "module_import": [("install_module", "scikit-image")],
    "no_pytest": [("install_module", "pytest")],
}


def case(name):
    d = DATA / "startup" / name
    junit = d / "junit.xml"
    return (int((d / "exit_code").read_text()), (d / "console.log").read_text(),
            junit.read_text() if junit.exists() else None)


@pytest.fixture
def recipe(tmp_path):
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='demo', extras_require="
                                       "{'test': ['pytest']})\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_a(): pass\n")
    rec, _ = infer_recipe(tmp_path, ("3.9", "3.11"), source_date="2023-05-01")
    assert rec["python"] == "3.11" and not rec.get("as_of")
    return rec


def rungs(name, recipe, pythons=PYTHONS):
    return [(r.kind.value, r.arg) for r in candidates(trigger_lines(case(name)[1]), Phase.TEST, recipe,
                                                      pythons=pythons)]


def test_every_recorded_case_is_covered():
    assert sorted(p.name for p in (DATA / "startup").iterdir()) == sorted(DECIDING) == sorted(RUNGS)


@pytest.mark.parametrize("name", sorted(DECIDING))
def test_the_deciding_line_is_pytests_own(name):
    kind, line, context = DECIDING[name]
    code, log, _ = case(name)
    got = startup_error(log)
    assert (got.kind, got.line, got.context) == (kind, line, context)
    assert line in [ln.strip() for ln in log.splitlines()]  # verbatim


@pytest.mark.parametrize("name", sorted(DECIDING))
def test_the_reason_always_quotes_the_deciding_line(name):
    run = reconcile(*case(name))
    assert run.status == "error" and run.kind in ("never_started", "collection")
    assert run.deciding_line == DECIDING[name][1] and run.deciding_line in run.reason
    assert f"(exit code {case(name)[0]})" in run.reason or "exit 2" in run.reason


@pytest.mark.parametrize("fixture,line", [("nostart", "Segmentation fault (core dumped)"),
                                          ("crash", "E   ModuleNotFoundError: No module named 'not_a_real_module_xyz'")])
def test_older_fixtures_quote_theirs_too(fixture, line):
    d = DATA / fixture
    run = reconcile(int((d / "exit_code").read_text()), (d / "console.log").read_text(),
                    (d / "junit.xml").read_text() if (d / "junit.xml").exists() else None)
    assert run.deciding_line == line and line in run.reason


def test_switched_off_the_reason_says_only_the_exit_code(monkeypatch):
    monkeypatch.setattr(testrun, "startup_error", lambda log: None)
    run = reconcile(*case("conftest_import"))
    assert run.reason == "suite never started: no JUnit XML written (exit code 4)" and run.deciding_line == ""


@pytest.mark.parametrize("name", sorted(RUNGS))
def test_each_trigger_fires_on_its_message_and_not_on_the_others(name, recipe):
    assert rungs(name, recipe) == RUNGS[name]
    for rung in candidates(trigger_lines(case(name)[1]), Phase.TEST, recipe, pythons=PYTHONS):
        assert rung.trigger in case(name)[1]  # recorded with the line that triggered it, verbatim


def test_the_stop_line_of_a_case_no_rung_fixes_is_pytests_line(recipe):
    lines = trigger_lines(case("conftest_syntax")[1])
    assert lines == ["type Vector = list[float]", "E   SyntaxError: invalid syntax"]  # its source line too
    assert deciding_line(lines) == "E   SyntaxError: invalid syntax"
    assert rungs("conftest_syntax", recipe, pythons=("3.9", "3.11")) == []  # no base has 3.12 syntax: ends
    py2 = trigger_lines((DATA / "ladder" / "syntax_py2.log").read_text())
    assert deciding_line(py2).startswith("E   SyntaxError: Missing parentheses")


def test_an_old_pytest_with_its_python_first(recipe):
    """pytest 4.6 on Python 3.11: the older Python keeps the pytest the repo pinned; once there, the newest
    pytest of the env's date is what is left, and it is offered once."""
    old = apply_rung(recipe, candidates(trigger_lines(case("old_pytest_new_python")[1]), Phase.TEST, recipe,
                                        pythons=PYTHONS)[0])
    assert old["python"] == "3.9" and "3.11 -> 3.9" in old["python_reason"]
    assert rungs("old_pytest_new_python", old) == [("newest_test_runner", "pytest")]
    upgraded = apply_rung(old, candidates(trigger_lines(case("old_pytest_new_python")[1]), Phase.TEST, old,
                                          pythons=PYTHONS)[0])
    assert upgraded["install"][-1]["try"] == ["pip install --upgrade 'pytest'"]
    assert rungs("old_pytest_new_python", upgraded) == []


def test_a_newer_python_rung_edits_the_recipe(recipe):
    rung = candidates(trigger_lines(case("module_syntax")[1]), Phase.TEST, recipe, pythons=PYTHONS)[0]
    r = apply_rung(recipe, rung)
    assert r["python"] == "3.13" and r["rungs"][-1]["trigger"] == "E   SyntaxError: expected '('"


def test_switched_off_the_syntax_direction_sends_new_syntax_to_an_older_python(monkeypatch, recipe):
    monkeypatch.setattr(ladder, "syntax_needs", lambda code, message: None)
    assert rungs("conftest_syntax", recipe) == [("older_python", "3.9")]  # the wrong way, as before


def test_switched_off_the_runner_check_drops_the_repos_addopts(monkeypatch, recipe):
    monkeypatch.setattr(ladder, "_runner_too_old", lambda line: False)
    assert rungs("newer_option_unknown", recipe) == [("as_of_date", "2023-05-01T23:59:59Z"),
                                                      ("clear_addopts", "--durations-min=1")]
    assert rungs("newer_option", recipe) == []  # an invalid choice: nothing


def test_switched_off_the_plugin_triggers_leave_nothing_to_climb(monkeypatch, recipe):
    never = re.compile(r"(?!)")
    monkeypatch.setattr(ladder, "REQUIRED_PLUGINS", never)
    monkeypatch.setattr(ladder, "PLUGIN_IMPORT", never)
    monkeypatch.setattr(ladder, "NO_RUNNER", never)
    assert rungs("required_plugins", recipe) == rungs("addopts_plugin", recipe) == rungs("no_pytest", recipe) == []


@pytest.mark.parametrize("code,message,want", [
    ("type Vector = list[float]", "SyntaxError: invalid syntax", ("newer", "3.12")),
    ("def first[T](xs: list[T]) -> T:", "SyntaxError: expected '('", ("newer", "3.12")),
    ("except* ValueError:", "SyntaxError: invalid syntax", ("newer", "3.11")),
    ("match command:", "SyntaxError: invalid syntax", ("newer", "3.10")),
    ("if (n := len(a)) > 10:", "SyntaxError: invalid syntax", ("newer", "3.8")),
    ("def f(a, /, b):", "SyntaxError: invalid syntax", ("newer", "3.8")),
    ('print "hi"', "SyntaxError: Missing parentheses in call to 'print'.", ("older", None)),
    ("except ValueError, e:", "SyntaxError: invalid syntax", ("older", None)),
    ("x = 0777", "SyntaxError: leading zeros in decimal integer literals are not permitted", ("older", None)),
    ("x = = 1", "SyntaxError: invalid syntax", None),
    (None, "SyntaxError: invalid syntax", None),
])
def test_syntax_needs(code, message, want):
    assert syntax_needs(code, message) == want


def test_trigger_kinds_are_recorded_as_values():
    assert RungKind("newer_python") is RungKind.NEWER_PYTHON
