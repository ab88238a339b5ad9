"""What a repo says about its tests (pytest config in its four homes), as-of-date policy, survey rows."""

import os
from datetime import datetime, timezone

import pytest

from crucible.sandbox.asof import default_as_of, source_date
from crucible.sandbox.recipes import RecipeError, infer_recipe, install_script
from crucible.sandbox.repair import local_modules
from crucible.sandbox.testfacts import find_test_files, pytest_config
from tests.support.trees import write_tree as write


@pytest.mark.parametrize("name,text", [
    ("pytest.ini", "[pytest]\npython_files = test.py check_*.py\ntestpaths = pkg\naddopts = --cov=pkg -q\n"),
    ("setup.cfg", "[metadata]\nname = x\n[tool:pytest]\npython_files =\n    test.py\n    check_*.py\n"
                  "testpaths = pkg\naddopts = --cov=pkg -q\n"),
    ("tox.ini", "[tox]\nenvlist = py39\n[pytest]\npython_files = test.py check_*.py\ntestpaths = pkg\n"
                "addopts = --cov=pkg -q\n"),
    ("pyproject.toml", "[tool.pytest.ini_options]\npython_files = ['test.py', 'check_*.py']\n"
                       "testpaths = ['pkg']\naddopts = '--cov=pkg -q'\n"),
])
def test_pytest_config_read_from_each_home(tmp_path, name, text):
    write(tmp_path, {name: text, "pkg/test.py": "def test_a(): pass", "pkg/check_b.py": "", "other/test_c.py": ""})
    cfg = pytest_config(tmp_path)
    assert cfg == {"file": name, "python_files": ["test.py", "check_*.py"], "testpaths": ["pkg"],
                   "addopts": ["--cov=pkg", "-q"]}
    assert find_test_files(tmp_path) == ["pkg/check_b.py", "pkg/test.py"]  # other/ is outside testpaths


def test_pytest_precedence_is_pytests_own(tmp_path):
    write(tmp_path, {"pytest.ini": "[pytest]\n", "setup.cfg": "[tool:pytest]\npython_files = x.py\n"})
    assert pytest_config(tmp_path)["file"] == "pytest.ini"  # even an empty pytest.ini wins
    assert pytest_config(tmp_path)["python_files"] == []


def test_only_file_named_in_python_files_is_found(tmp_path):
    write(tmp_path, {"setup.py": "from setuptools import setup\nsetup(name='d')\n", "checks.py": "def test_a(): pass\n",
                     "d/__init__.py": ""})
    with pytest.raises(RecipeError, match="no test files"):  # without the config: refused
        infer_recipe(tmp_path, ("3.11",))
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\npython_files = checks.py\n")
    recipe, inputs = infer_recipe(tmp_path, ("3.11",))
    assert recipe["sources"]["test_files"] == 1 and recipe["test_paths"] == ["checks.py"]
    assert "setup.cfg" in inputs


def test_addopts_and_ini_keys_bring_their_plugins(tmp_path):
    write(tmp_path, {"setup.cfg": "[tool:pytest]\naddopts = --cov=d --timeout=30 -p no:warnings\ntimeout = 30\n",
                     "setup.py": "", "tests/test_a.py": ""})
    recipe, _ = infer_recipe(tmp_path, ("3.11",))
    assert recipe["sources"]["config_plugins"] == ["pytest-cov", "pytest-timeout"]
    step = next(s for s in recipe["install"] if s["name"] == "pytest-config-plugins")
    assert step["try"] == ["pip install pytest-cov pytest-timeout"]
    assert recipe["install"][-1]["name"] == "test-runner"


def test_as_of_exported_to_pip_and_part_of_the_recipe(tmp_path):
    write(tmp_path, {"setup.py": "", "tests/test_a.py": ""})
    plain, _ = infer_recipe(tmp_path, ("3.11",))
    dated, _ = infer_recipe(tmp_path, ("3.11",), as_of="2023-05-01T23:59:59Z", source_date="2023-05-01")
    assert plain["as_of"] is None and "PIP_UPLOADED_PRIOR_TO" not in install_script(plain)
    assert "export PIP_UPLOADED_PRIOR_TO=2023-05-01T23:59:59Z" in install_script(dated)


def test_old_source_gets_the_python_of_its_time_and_a_cutoff_no_older_than_it(tmp_path):
    write(tmp_path, {"setup.py": "", "tests/test_a.py": ""})
    rec, _ = infer_recipe(tmp_path, ("3.9", "3.11"), as_of="2021-01-31T23:59:59Z", source_date="2021-01-31")
    assert rec["python"] == "3.9" and rec["as_of"] == "2021-01-31T23:59:59Z"  # 3.11 came out in 2022-10
    rec, _ = infer_recipe(tmp_path, ("3.9", "3.11"), as_of="2018-10-27T23:59:59Z", source_date="2018-10-27")
    # older than every base: the oldest, and nothing older than it (pip's own setuptools>=40.8.0 needs 2019)
    assert rec["python"] == "3.9" and rec["as_of"] == "2020-10-05T23:59:59Z"
    rec, _ = infer_recipe(tmp_path, ("3.9", "3.11"), source_date="2024-01-01")
    assert rec["python"] == "3.11" and rec["as_of"] is None


def test_default_as_of_only_for_old_sources():
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert default_as_of("2022-05-01", 365, now) == "2022-05-01T23:59:59Z"
    assert default_as_of("2026-06-01", 365, now) is None  # younger than a year: today's index
    assert default_as_of("2022-05-01", 0, now) is None  # switched off
    assert default_as_of(None, 365, now) is None


def test_source_date_from_pkg_info_mtime_not_the_fixed_commit_date(tmp_path):
    pkg = write(tmp_path, {"PKG-INFO": "Name: d\n"}) / "PKG-INFO"
    ts = datetime(2023, 3, 4, 12, tzinfo=timezone.utc).timestamp()
    os.utime(pkg, (ts, ts))
    assert source_date(tmp_path) == "2023-03-04"
    os.utime(pkg, (946684800, 946684800))  # the one-commit snapshot's fixed date: unknown, not 2000
    assert source_date(tmp_path) is None


def test_source_date_of_an_old_commit_beats_the_checkouts_pkg_info_mtime(tmp_path):
    import subprocess

    write(tmp_path, {"PKG-INFO": "Name: d\n", "d.py": ""})  # mtime: now (the checkout), not the release
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@x", "GIT_AUTHOR_DATE": "2020-04-03T10:00:00Z",
           "GIT_COMMITTER_DATE": "2020-04-03T10:00:00Z"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"]):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True)
    assert source_date(tmp_path) == "2020-04-03"
    env.update(GIT_COMMITTER_DATE="2000-01-01T00:00:00Z")  # a one-commit sdist repo: falls through to PKG-INFO
    subprocess.run(["git", "commit", "-q", "--amend", "--no-edit"], cwd=tmp_path, env=env, check=True)
    assert source_date(tmp_path) == datetime.now(timezone.utc).strftime("%Y-%m-%d")


def test_local_modules(tmp_path):
    write(tmp_path, {"src/demo/__init__.py": "", "tests/helpers.py": "", "tests/test_a.py": ""})
    assert {"src", "demo", "tests", "helpers", "test_a"} <= local_modules(tmp_path)


def test_survey_rows_and_failure_names_last_rung_and_line():
    from crucible.pipelines.store.records import record_type
    from crucible.pipelines.swe.survey import failure_for, funnel, survey_row

    stop = {"rung": "install_module", "kind": "test", "reason": "test run error/collection: crashed",
            "line": "E   ModuleNotFoundError: No module named 'zzz'"}
    bad = survey_row("sdist:a==1", "c0", "2022-01-01", {"stage": "installed", "rungs": [
        {"kind": "install_module", "arg": "yyy", "trigger": "E   ModuleNotFoundError: No module named 'yyy'",
         "phase": "test"}], "stop": stop, "attempts": 2, "counts": {}}, 12.0, "r1")
    good = survey_row("sdist:b==1", "c1", None, {"stage": "mostly_passing", "rungs": [], "stop": None, "attempts": 1,
                                                 "counts": {"PASSED": 9, "FAILED": 1}, "tests_collected": 10}, 5.0, "r1")
    rt = record_type("sandbox_surveys")
    assert rt.errors(bad) == [] and rt.errors(good) == []
    f = failure_for(bad)
    assert "last: install_module" in f["reason"] and "No module named 'zzz'" in f["reason"]
    assert failure_for(good) is None and record_type("failures").errors(f) == []
    fun = funnel([bad, good])
    assert fun["stages"] == {"attempted": 2, "installed": 2, "tests_collected": 1, "mostly_passing": 1}
    assert fun["stops"] == {"installed: install_module": 1}


def test_read_sources_names_bad_line(tmp_path):
    from crucible.pipelines.swe.survey import read_sources

    p = tmp_path / "list.txt"
    p.write_text("# popular\nidna==3.6\n\nidna==3.6\nrequests 2.31\n")
    with pytest.raises(ValueError, match=r"list.txt:5: 'requests 2.31' is not NAME==VERSION"):
        read_sources(p)
    p.write_text("idna==3.6  # note\nidna==3.6\n")
    assert read_sources(p) == ["idna==3.6"]


def test_fixed_build_mtimes_ask_the_index_instead(tmp_path):
    pkg = write(tmp_path, {"PKG-INFO": "Name: d\n"}) / "PKG-INFO"
    ts = datetime(2020, 2, 2, tzinfo=timezone.utc).timestamp()  # hatchling's reproducible mtime
    os.utime(pkg, (ts, ts))
    assert source_date(tmp_path, lambda: "2023-08-16") == "2023-08-16"
    assert source_date(tmp_path) is None  # no lookup: unknown, never 2020-02-02


def test_first_day_bisects_a_monotone_predicate():
    from datetime import date

    from crucible.sandbox.sources import first_day

    calls = []

    def present(d):
        calls.append(d)
        return d >= date(2023, 8, 17)

    assert first_day(present, date(2005, 1, 1), date(2026, 12, 2)) == date(2023, 8, 17)
    assert len(calls) <= 15
    assert first_day(lambda d: False, date(2005, 1, 1), date(2026, 12, 2)) is None


def test_a_lone_tests_py_with_tests_is_found_but_not_any_tests_py(tmp_path):
    write(tmp_path, {"setup.py": "", "jsonpointer.py": "", "tests.py": "import unittest\n\n"
                     "class T(unittest.TestCase):\n    def test_a(self): pass\n"})
    recipe, _ = infer_recipe(tmp_path, ("3.11",))
    assert recipe["test_paths"] == ["tests.py"]
    write(tmp_path, {"pkg/__init__.py": "", "pkg/tests.py": "def test_b(): pass\n"})
    (tmp_path / "tests.py").unlink()
    assert infer_recipe(tmp_path, ("3.11",))[0]["test_paths"] == ["pkg/tests.py"]
    (tmp_path / "pkg" / "tests.py").write_text("# helpers only\nX = 1\n")
    with pytest.raises(RecipeError, match="no test files"):
        infer_recipe(tmp_path, ("3.11",))


def test_survey_rows_make_a_funnel_in_stats_and_a_report_plot(tmp_path):
    from crucible.pipelines.store import catalog
    from crucible.pipelines.store.commit import ItemResult, commit_items
    from crucible.pipelines.store.report import write_report
    from crucible.pipelines.store.stats import compute_stats
    from crucible.pipelines.swe.survey import failure_for, survey_row

    out = str(tmp_path / "store")
    stop = {"rung": "install_module", "kind": "test", "reason": "r", "line": "E   ModuleNotFoundError: x"}
    rows = [survey_row("sdist:a==1", None, None, {"stage": "mostly_passing", "rungs": [
                {"kind": "pytest_plugin", "arg": "pytest-mock", "trigger": "t", "phase": "test"}], "attempts": 2,
                "counts": {"PASSED": 3}, "tests_collected": 3}, 1.0, "r"),
            survey_row("sdist:b==1", None, None, {"stage": "installed", "rungs": [
                {"kind": "install_module", "arg": "x", "trigger": "t", "phase": "test"}], "stop": stop,
                "attempts": 2, "counts": {}}, 2.0, "r")]
    items = []
    for r in rows:
        it = ItemResult(r["source"]).add("sandbox_surveys", r)
        if failure_for(r):
            it.add("failures", failure_for(r))
        items.append(it)
    commit_items(out, "sandbox_survey", "r", items)
    con = catalog.connect(out)
    s = compute_stats(con)["sandbox_surveys"]
    con.close()
    assert s["funnel"] == [["attempted", 2], ["installed", 2], ["tests_collected", 1], ["mostly_passing", 1]]
    assert sorted(map(tuple, s["rungs"])) == [("install_module", 1), ("pytest_plugin", 1)]
    assert s["stops"] == [["installed: install_module", 1]]
    page = write_report(out, str(tmp_path / "rep"))
    assert (page.parent / "sandbox_survey.png").stat().st_size > 1000
