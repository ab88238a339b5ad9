"""The repair ladder on real logs (tests/data/sandbox/ladder: pytest 9 and pip 26 / gcc output recorded from
real runs): each rung fires on the log that calls for it, applies as data, and nothing fires on a clean log."""

from pathlib import Path

import pytest

from crucible.sandbox.ladder import (
    Phase,
    Rung,
    RungKind,
    apply_rung,
    candidates,
    debian_package,
    module_distribution,
    next_extra,
    trigger_lines,
)
from crucible.sandbox.recipes import infer_recipe

DATA = Path(__file__).resolve().parent.parent / "data" / "sandbox" / "ladder"


def log(name: str) -> list[str]:
    return trigger_lines((DATA / name).read_text())


@pytest.fixture
def recipe(tmp_path):
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='demo', extras_require="
                                       "{'test': ['pytest'], 'testing': ['pytest']})\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_a(): pass\n")
    rec, _ = infer_recipe(tmp_path, ("3.9", "3.11"), source_date="2023-05-01")
    return rec


def kinds(rungs):
    return [(r.kind, r.arg) for r in rungs]


@pytest.mark.parametrize("name,phase,want", [
    ("fixture_mocker.log", Phase.TEST, (RungKind.PYTEST_PLUGIN, "pytest-mock")),
    ("unrecognized_cov.log", Phase.TEST, (RungKind.PYTEST_PLUGIN, "pytest-cov")),
    ("module_missing.log", Phase.TEST, (RungKind.INSTALL_MODULE, "scikit-image")),
    ("syntax_py2.log", Phase.TEST, (RungKind.OLDER_PYTHON, "3.9")),
    ("cannot_import_name.log", Phase.TEST, (RungKind.AS_OF_DATE, "2023-05-01T23:59:59Z")),
    ("build_header_and_extra.log", Phase.BUILD, (RungKind.APT_PACKAGE, "libxml2-dev")),
    ("build_header_and_extra.log", Phase.BUILD, (RungKind.NEXT_EXTRA, "testing")),
    ("build_python_and_resolution.log", Phase.BUILD, (RungKind.OLDER_PYTHON, "3.9")),
    ("build_python_and_resolution.log", Phase.BUILD, (RungKind.AS_OF_DATE, "2023-05-01T23:59:59Z")),
])
def test_each_rung_fires_on_its_real_log(recipe, name, phase, want):
    assert recipe["python"] == "3.11" and recipe["sources"]["extra"] == "test"
    got = candidates(log(name), phase, recipe, pythons=("3.9", "3.11"))
    assert want in kinds(got)
    rung = next(r for r in got if (r.kind, r.arg) == want)
    assert rung.trigger in (DATA / name).read_text()  # the log line is kept verbatim


def test_a_few_broken_modules_are_left_as_errors_only_when_nothing_else_fixes_them(recipe):
    lines = log("collection_nameerror.log")  # black 21.12b0: test_blackd.py needs the [d] extra
    got = candidates(lines, Phase.TEST, recipe)
    assert kinds(got) == [(RungKind.CONTINUE_COLLECTION, "1")]
    r = apply_rung(recipe, got[0])
    assert r["test_cmd"].endswith("--continue-on-collection-errors")
    assert candidates(lines, Phase.TEST, r) == []  # once only
    # most of the suite broken: not papered over
    few = [ln.replace("collected 233 items", "collected 5 items") for ln in lines]
    assert candidates(few, Phase.TEST, recipe) == []
    # a fixable cause first: the missing module's rung, not this one
    mod = lines + ["E   ModuleNotFoundError: No module named 'aiohttp'"]
    assert kinds(candidates(mod, Phase.TEST, recipe)) == [(RungKind.INSTALL_MODULE, "aiohttp")]


def test_deciding_line_names_the_error_not_the_bookkeeping():
    from crucible.sandbox.ladder import deciding_line

    lines = log("module_missing.log")
    assert lines[0].startswith("collected") and deciding_line(lines) == "E   ModuleNotFoundError: No module named 'skimage'"
    assert deciding_line(["collected 0 items / 1 error"]) == "collected 0 items / 1 error"
    assert deciding_line([]) is None


def test_best_rung_first_and_clean_log_gives_none(recipe):
    assert kinds(candidates(log("fixture_mocker.log"), Phase.TEST, recipe))[0] == (RungKind.PYTEST_PLUGIN,
                                                                                  "pytest-mock")
    clean = "collected 3 items\n\ntests/test_a.py ...\n==== 3 passed in 0.01s ====\n"
    assert trigger_lines(clean) == ["collected 3 items"]
    assert candidates(trigger_lines(clean), Phase.TEST, recipe, pythons=("3.9", "3.11")) == []


def test_no_as_of_rung_without_a_date_or_when_already_set(recipe):
    lines = log("cannot_import_name.log")
    no_date = {**recipe, "sources": {**recipe["sources"], "source_date": None}}
    assert RungKind.AS_OF_DATE not in [r.kind for r in candidates(lines, Phase.TEST, no_date)]
    already = {**recipe, "as_of": "2023-05-01T23:59:59Z"}
    assert RungKind.AS_OF_DATE not in [r.kind for r in candidates(lines, Phase.TEST, already)]


def test_no_older_python_when_none_is_available(recipe):
    assert RungKind.OLDER_PYTHON not in [r.kind for r in candidates(log("syntax_py2.log"), Phase.TEST, recipe,
                                                                    pythons=("3.11",))]


def test_a_module_of_the_tree_is_never_installed_from_the_index(recipe):
    lines = ["E   ModuleNotFoundError: No module named 'demo_helpers.db'"]
    got = candidates(lines, Phase.TEST, recipe, local_modules=frozenset({"demo_helpers"}))
    assert kinds(got) == [(RungKind.PYTHONPATH, "demo_helpers")]
    # switched off (the tree's names unknown), the ladder would install a PyPI distribution of that name
    assert kinds(candidates(lines, Phase.TEST, recipe)) == [(RungKind.INSTALL_MODULE, "demo-helpers")]


def test_a_repo_helper_missing_from_the_sdist_is_not_installed_from_the_index(recipe):
    # pycodestyle 2.11.1's sdist leaves out testing/; PyPI's unrelated "testing" must not stand in for it
    lines = ["E   ModuleNotFoundError: No module named 'testing'"]
    assert candidates(lines, Phase.TEST, recipe) == []


def test_the_trees_own_distribution_is_never_installed_from_the_index(recipe):
    # pytest-cov 2.10.1's suite runs pytest in subprocesses; their "unrecognized arguments: --cov" names itself
    lines = ["E   pytest: error: unrecognized arguments: --cov=src"]
    assert kinds(candidates(lines, Phase.TEST, recipe)) == [(RungKind.PYTEST_PLUGIN, "pytest-cov")]
    assert candidates(lines, Phase.TEST, recipe, local_modules=frozenset({"pytest_cov"})) == []


def test_tables_are_data():
    assert module_distribution("yaml") == "PyYAML" and module_distribution("PIL.Image") == "Pillow"
    assert module_distribution("google.protobuf.message") == "protobuf"
    assert module_distribution("some_pkg.sub") == "some-pkg"  # not listed: its own name
    assert debian_package("ffi.h", "headers") == "libffi-dev"
    assert debian_package("include/ffi.h", "headers") == "libffi-dev"
    assert debian_package("nosuch.h", "headers") is None


def test_apply_rung_edits_the_recipe_and_records_the_trigger(recipe):
    line = "E       fixture 'mocker' not found"
    r = apply_rung(recipe, Rung(RungKind.PYTEST_PLUGIN, "pytest-mock", line, Phase.TEST))
    names = [s["name"] for s in r["install"]]
    assert names.index("ladder:pytest-mock") < names.index(next(n for n in names if n.startswith("package")))
    assert r["rungs"] == [{"kind": "pytest_plugin", "arg": "pytest-mock", "trigger": line, "phase": "test"}]
    assert "rungs" not in recipe  # pure: the input is untouched
    r = apply_rung(r, Rung(RungKind.APT_PACKAGE, "libxml2-dev", "x", Phase.BUILD))
    assert r["apt_packages"] == ["libxml2-dev"] and len(r["rungs"]) == 2
    r = apply_rung(r, Rung(RungKind.NEXT_EXTRA, "testing", "x", Phase.BUILD))
    pkg = next(s for s in r["install"] if s["name"].startswith("package"))
    assert pkg["name"] == "package[testing]" and pkg["try"][0] == "pip install -e '.[testing]'"
    assert next_extra(r) is None
    r = apply_rung(r, Rung(RungKind.NEXT_EXTRA, "none", "x", Phase.BUILD))
    pkg = next(s for s in r["install"] if s["name"].startswith("package"))
    assert pkg["try"][0] == "pip install -e ."
    r = apply_rung(r, Rung(RungKind.OLDER_PYTHON, "3.9", "x", Phase.TEST))
    assert r["python"] == "3.9"
    r = apply_rung(r, Rung(RungKind.AS_OF_DATE, "2023-05-01T23:59:59Z", "x", Phase.BUILD))
    assert r["as_of"] == "2023-05-01T23:59:59Z"
    r = apply_rung(r, Rung(RungKind.CLEAR_ADDOPTS, "--weird", "x", Phase.TEST))
    assert r["test_cmd"].endswith("-o addopts=")


def test_rungs_change_the_env_key(recipe):
    from crucible.sandbox.images import BaseSpec, EnvSpec

    r = apply_rung(recipe, Rung(RungKind.AS_OF_DATE, "2023-05-01T23:59:59Z", "x", Phase.BUILD))
    base = BaseSpec(python="3.11", distro="bookworm")
    assert EnvSpec(base, recipe).key != EnvSpec(base, r).key


def test_label_rung_only_for_given_labels_an_inferred_env_never_collected(recipe):
    from crucible.sandbox.ladder import label_rung

    gone = "tests/test_utils.py::test_unzipped_paths_unchanged[/__init__.py]"
    rung = label_rung(recipe, {"not_collected": [gone]})
    assert rung.kind is RungKind.NEWEST_TEST_RUNNER and rung.arg == "pytest" and gone in rung.trigger
    # must not fire: no labels given, every given label collected (a wrong outcome is the row's, not the
    # runner's), SWE-bench's own recipe (its labelling env), or an env that already has the newest runner
    assert label_rung(recipe, None) is None
    assert label_rung(recipe, {"not_collected": []}) is None
    assert label_rung({**recipe, "origin": "SWE-bench harness"}, {"not_collected": [gone]}) is None
    applied = apply_rung(recipe, rung)
    assert label_rung(applied, {"not_collected": [gone]}) is None
    # applied: pytest upgraded after every other install step (requirements and plugins pinned the old one),
    # under the recipe's as_of like every step; the input recipe untouched and the env key changed
    assert applied["install"][-1] == {"name": "ladder:pytest-newest", "required": True,
                                      "try": ["pip install --upgrade 'pytest'"]}
    assert applied["install"][:-1] == recipe["install"] and applied["as_of"] == recipe["as_of"]
    assert applied["rungs"][-1]["kind"] == "newest_test_runner"
    from crucible.sandbox.images import BaseSpec, EnvSpec

    base = BaseSpec(python="3.11", distro="bookworm")
    assert EnvSpec(base, recipe).key != EnvSpec(base, applied).key
