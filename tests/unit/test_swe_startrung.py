"""SWE validation climbs the ladder when a run stops before its tests (crucible.pipelines.swe.startrung), on the golden
logs of tests/data/sandbox/startup. Envs and runs are faked (decide_env, run_and_label); the Docker path is
tests/integration (the lead's)."""

import tempfile
from functools import reduce
from pathlib import Path
from types import SimpleNamespace

import pytest

import crucible.pipelines.swe.startrung as startrung
from crucible.pipelines.swe.records import validation_row
from crucible.sandbox.ladder import apply_rung, trigger_lines
from crucible.sandbox.recipes import infer_recipe
from crucible.sandbox.testrun import reconcile

DATA = Path(__file__).resolve().parent.parent / "data" / "sandbox" / "startup"


def stopped_run(name):
    d = DATA / name
    junit = d / "junit.xml"
    log = (d / "console.log").read_text()
    run = reconcile(int((d / "exit_code").read_text()), log, junit.read_text() if junit.exists() else None)
    run.trigger_lines = trigger_lines(log)  # as run_tests sets them for a run that is not ok
    return run


@pytest.fixture
def recipe(tmp_path):
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='demo')\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_a(): pass\n")
    rec, _ = infer_recipe(tmp_path, ("3.9", "3.11"), source_date="2023-05-01")
    return rec


def setup(monkeypatch, tmp_path, recipe, name, fixed_by, *, max_rungs=6, fail_build=False, base_files=None):
    """A row stopped as ``name``'s log says; a run starts once the env's rungs include ``fixed_by``."""
    built = []

    def decide_env(ctx, inst, base, scratch, rungs):
        if fail_build:
            raise RuntimeError("pip install failed")
        built.append(tuple(r.key for r in rungs))
        return SimpleNamespace(image=f"env-{len(rungs)}", recipe=reduce(apply_rung, rungs, recipe))

    def run_and_label(ctx, inst, env, base, tmp, row, reference):
        row["n_runs"], row["test_duration_s"] = 2, 1.0
        if fixed_by in {(r["kind"], r["arg"]) for r in env.recipe.get("rungs") or []}:
            row["status"] = "valid"
        else:
            row["status"], row["meta"]["stopped"] = "error", startrung.stop_note([stopped_run(name)])

    monkeypatch.setattr(startrung, "decide_env", decide_env)
    ctx = SimpleNamespace(settings=SimpleNamespace(repair_max_rungs=max_rungs, pythons=("3.9", "3.11", "3.13")))
    env = SimpleNamespace(image="env-0", recipe=recipe)
    row = validation_row("demo__demo-1", "r1", n_runs=2, test_duration_s=1.0,
                         reason=f"before run error/never_started: {stopped_run(name).reason}",
                         meta={"stopped": startrung.stop_note([stopped_run(name)])})
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    (root / "base").mkdir()
    for rel, text in (base_files or {}).items():
        (root / "base" / rel).write_text(text)
    (root / "work").mkdir()
    out = startrung.climb(ctx, {"instance_id": "demo__demo-1"}, env, root / "base", root / "work", row,
                          "r1", run_and_label=run_and_label, env_meta=lambda e: {"image": e.image})
    return row, out, built


def test_a_conftest_import_error_climbs_to_the_module_and_the_row_starts(monkeypatch, tmp_path, recipe):
    row, (kept, env), built = setup(monkeypatch, tmp_path, recipe, "conftest_import",
                                    ("install_module", "scikit-image"))
    assert kept is not row and kept["status"] == "valid" and env.image == "env-1"
    assert kept["meta"]["start_rungs"] == [{"kind": "install_module", "arg": "scikit-image", "phase": "test",
                                            "trigger": "E   ModuleNotFoundError: No module named 'skimage'"}]
    assert kept["meta"]["first_stop"] == "E   ModuleNotFoundError: No module named 'skimage'"
    assert kept["n_runs"] == 4 and built == [(("install_module", "scikit-image"),)]


EXTRAS_SETUP = ("from setuptools import setup\nsetup(name='demo', extras_require={\n"
                "    'images': ['scikit-image>=0.15', 'imageio'],\n"
                "    'dev': ['scikit-image', 'imageio', 'pytest', 'flake8'],\n})\n")


def test_a_module_a_declared_extra_requires_climbs_to_that_extra(monkeypatch, tmp_path, recipe):
    """The module's extra (the smallest that requires it) is installed, not the module alone: the tests assume
    the whole extra (marshmallow 2.19: simplejson stops the conftest, python-dateutil of the same extra
    decides test_from_datestring). The trigger is pytest's line that named the module."""
    row, (kept, env), built = setup(monkeypatch, tmp_path, recipe, "conftest_import", ("install_extra", "images"),
                                    base_files={"setup.py": EXTRAS_SETUP})
    assert kept is not row and kept["status"] == "valid" and built == [(("install_extra", "images"),)]
    assert kept["meta"]["start_rungs"] == [{"kind": "install_extra", "arg": "images", "phase": "test",
                                            "trigger": "E   ModuleNotFoundError: No module named 'skimage'"}]
    step = next(s for s in env.recipe["install"] if s["name"] == "ladder:extra:images")
    assert step["try"][0] == "pip install -e '.[images]'"
    assert env.recipe["install"].index(step) == 1 + next(i for i, s in enumerate(env.recipe["install"])
                                                         if s["name"].startswith("package"))


def test_switched_off_no_declared_extra_means_the_module_alone(monkeypatch, tmp_path, recipe):
    """No extra requires it (or none is declared): the module's rung, as before."""
    _, (kept, _), built = setup(monkeypatch, tmp_path, recipe, "conftest_import", ("install_module", "scikit-image"),
                                base_files={"setup.py": EXTRAS_SETUP.replace("scikit-image", "pillow")})
    assert built == [(("install_module", "scikit-image"),)] and kept["status"] == "valid"


def test_rungs_accumulate_until_the_suite_starts(monkeypatch, tmp_path, recipe):
    """pytest 4.6 on Python 3.11: the older Python first, then (still stopped) the newest pytest of the date,
    the env built with both."""
    _, (kept, env), built = setup(monkeypatch, tmp_path, recipe, "old_pytest_new_python",
                                  ("newest_test_runner", "pytest"))
    assert [(r["kind"], r["arg"]) for r in kept["meta"]["start_rungs"]] == [("older_python", "3.9"),
                                                                             ("newest_test_runner", "pytest")]
    assert built[-1] == (("older_python", "3.9"), ("newest_test_runner", "pytest")) and env.recipe["python"] == "3.9"


def test_a_stop_no_rung_fixes_keeps_the_first_row_and_says_what_was_tried(monkeypatch, tmp_path, recipe):
    row, (kept, env), _ = setup(monkeypatch, tmp_path, recipe, "unknown_option", ("nothing", "fixes it"))
    assert kept is row and env.image == "env-0" and row["status"] == "error"
    assert [r["kind"] for r in row["meta"]["start_rungs"]] == ["as_of_date", "clear_addopts"]
    assert row["meta"]["start_stop"] == "no rung left for the deciding line"
    assert "python -m pytest: error: unrecognized arguments: --frobnicate" in row["reason"]  # pytest's line


def test_the_rung_limit_and_a_build_failure_end_the_climb(monkeypatch, tmp_path, recipe):
    row, (kept, _), _ = setup(monkeypatch, tmp_path, recipe, "old_pytest_new_python",
                              ("newest_test_runner", "pytest"), max_rungs=1)
    assert kept is row and row["meta"]["start_stop"] == "rung limit 1 reached"
    row, (kept, _), _ = setup(monkeypatch, tmp_path, recipe, "conftest_import", ("install_module", "scikit-image"),
                              fail_build=True)
    assert kept is row and "did not build: RuntimeError: pip install failed" in row["meta"]["start_stop"]


def test_swebench_recipes_are_never_climbed(monkeypatch, tmp_path, recipe):
    row, (kept, _), built = setup(monkeypatch, tmp_path, {**recipe, "origin": "SWE-bench harness"},
                                  "conftest_import", ("install_module", "scikit-image"))
    assert kept is row and built == [] and "start_rungs" not in row["meta"]


def test_stop_note_only_for_runs_that_stopped_before_their_tests():
    note = startrung.stop_note([stopped_run("conftest_import")])
    assert note["kind"] == "never_started" and note["line"] == "E   ModuleNotFoundError: No module named 'skimage'"
    assert note["exit_code"] == 4 and note["line"] in note["trigger_lines"]
    mixed = Path(__file__).resolve().parent.parent / "data" / "sandbox" / "mixed"
    ran = reconcile(1, (mixed / "console.log").read_text(), (mixed / "junit.xml").read_text())
    assert ran.ok and startrung.stop_note([ran]) is None  # failing tests are no stop
    timeout = reconcile(137, "", None, timed_out=True)
    assert startrung.stop_note([timeout]) is None  # infra: not the ladder's


def test_switched_off_the_row_ends_never_started(monkeypatch, tmp_path, recipe):
    """Without the note (the climb's trigger), the row is the one the issue saw: never started, exit code."""
    monkeypatch.setattr(startrung, "stop_note", lambda runs: None)
    row, (kept, _), built = setup(monkeypatch, tmp_path, recipe, "conftest_import",
                                  ("install_module", "scikit-image"))
    assert kept is row and row["status"] == "error" and built == []
