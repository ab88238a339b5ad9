"""Recipe inference on tiny repos written in the test."""

import subprocess
from pathlib import Path

import pytest

from crucible.sandbox import recipes
from crucible.sandbox.images import BaseSpec, EnvSpec
from crucible.sandbox.recipes import (
    RecipeError,
    choose_python,
    declared_extras,
    funnel_counts,
    funnel_stage,
    infer_recipe,
    install_script,
    load_override,
    parse_freeze,
    parse_install_log,
    requirement_files,
    tox_info,
)
from tests.support.trees import write_tree as write

PYPROJECT = """
[project]
name = "demo"
requires-python = ">=3.8"
classifiers = ["Programming Language :: Python :: 3.9", "Programming Language :: Python :: 3.11"]
[project.optional-dependencies]
docs = ["sphinx"]
tests = ["pytest", "hypothesis"]
[tool.pytest.ini_options]
testpaths = ["tests"]
"""


def test_pyproject_repo_gets_tests_extra_newest_python_and_pytest(tmp_path):
    write(tmp_path, {"pyproject.toml": PYPROJECT, "src/demo/__init__.py": "", "tests/test_a.py": "def test_a(): pass"})
    recipe, inputs = infer_recipe(tmp_path, ("3.9", "3.11"))
    assert recipe["python"] == "3.11"
    pkg = next(s for s in recipe["install"] if s["name"].startswith("package"))
    assert pkg["required"] and pkg["try"][0] == "pip install -e '.[tests]'"
    assert "pip install --no-build-isolation -e '.[tests]'" in pkg["try"]
    assert recipe["runner"] == "pytest" and recipe["test_paths"] == []  # testpaths configured
    assert set(inputs) == {"pyproject.toml"}


def test_python_capped_by_classifiers_and_requires_python(tmp_path):
    write(tmp_path, {"setup.py": "setup(python_requires='>=3.6', classifiers=["
                     "'Programming Language :: Python :: 3.8','Programming Language :: Python :: 3.10'])",
                     "tests/test_x.py": ""})
    assert choose_python(tmp_path, ("3.9", "3.11"))[0] == "3.9"
    write(tmp_path, {"setup.py": "setup(python_requires='>=3.10')"})
    assert choose_python(tmp_path, ("3.9", "3.11"))[0] == "3.11"
    write(tmp_path, {"setup.py": "setup(python_requires='>=3.12')"})
    with pytest.raises(RecipeError, match="satisfies requires-python"):
        choose_python(tmp_path, ("3.9", "3.11"))


def test_setup_py_and_setup_cfg_extras(tmp_path):
    write(tmp_path, {"setup.py": 'EXTRAS_REQUIRE = {"tests": ["pytest"], "lint": ["flake8"]}\n'
                                 'EXTRAS_REQUIRE["dev"] = EXTRAS_REQUIRE["tests"]\nsetup(extras_require=EXTRAS_REQUIRE)',
                     "setup.cfg": "[options.extras_require]\ntesting = pytest\n"})
    assert set(declared_extras(tmp_path)) >= {"tests", "lint", "dev", "testing"}


def test_requirement_files_order_and_skips(tmp_path):
    write(tmp_path, {"requirements.txt": "six\n", "requirements-dev.txt": "-e .\npytest\n",
                     "requirements/docs.txt": "sphinx\n", "requirements/test.txt": "pytest\n"})
    assert requirement_files(tmp_path) == ["requirements.txt", "requirements/test.txt", "requirements-dev.txt"]


def test_tox_deps_and_extras(tmp_path):
    write(tmp_path, {"tox.ini": "[tox]\nenvlist = py39,py311\n[testenv]\nextras = testing\ndeps =\n  mock\n"
                                "  py39: oldthing\n  -rrequirements.txt\n  {toxinidir}/x\ncommands = pytest {posargs}\n"})
    info = tox_info(tmp_path)
    assert info["deps"] == ["mock", "-rrequirements.txt"] and info["extras"] == ["testing"]


def test_tox_extra_wins_and_tox_deps_step(tmp_path):
    write(tmp_path, {"setup.py": "setup(extras_require={'dev': ['x'], 'testing': ['pytest']})",
                     "tox.ini": "[testenv]\nextras = testing\ndeps = mock\n", "t/test_z.py": ""})
    recipe, _ = infer_recipe(tmp_path)
    assert recipe["sources"]["extra"] == "testing"
    assert {"name": "tox-deps", "required": False, "try": ["pip install mock"]} in recipe["install"]
    assert recipe["test_paths"] == ["t"]


def test_nox_deps(tmp_path):
    write(tmp_path, {"noxfile.py": "def tests(session):\n    session.install('-e', '.')\n"
                                   "    session.install('pytest', 'freezegun')\n", "setup.py": "", "tests/test_a.py": ""})
    recipe, _ = infer_recipe(tmp_path)
    assert {"name": "nox-deps", "required": False, "try": ["pip install pytest freezegun"]} in recipe["install"]


def test_unittest_repo_detected_and_test_paths(tmp_path):
    write(tmp_path, {"setup.py": "setup()", "pkg/tests/test_u.py": "import unittest",
                     "pkg/tests/test_v.py": ""})
    recipe, _ = infer_recipe(tmp_path)
    assert recipe["runner"] == "unittest" and recipe["test_paths"] == ["pkg/tests"]
    assert recipe["install"][-1]["name"] == "test-runner"


def test_repo_without_tests_is_a_clear_error(tmp_path):
    write(tmp_path, {"setup.py": "setup()", "pkg/__init__.py": ""})
    with pytest.raises(RecipeError, match="no test files"):
        infer_recipe(tmp_path)


def test_editing_a_requirement_changes_the_env_key_and_unchanged_does_not(tmp_path):
    write(tmp_path, {"setup.py": "setup()", "requirements.txt": "six==1.16.0\n", "tests/test_a.py": ""})
    base = BaseSpec(python="3.11")
    r1, i1 = infer_recipe(tmp_path)
    r1b, i1b = infer_recipe(tmp_path)
    assert EnvSpec(base, r1, i1, "demo").key == EnvSpec(base, r1b, i1b, "demo").key
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    r2, i2 = infer_recipe(tmp_path)
    assert EnvSpec(base, r2, i2, "demo").key != EnvSpec(base, r1, i1, "demo").key
    # a change to a test file is not an env input
    (tmp_path / "tests/test_a.py").write_text("def test_b(): pass\n")
    r3, i3 = infer_recipe(tmp_path)
    assert EnvSpec(base, r3, i3, "demo").key == EnvSpec(base, r2, i2, "demo").key


def test_override_merges_and_rejects_unknown_keys(tmp_path):
    write(tmp_path, {"setup.py": "setup()", "tests/test_a.py": ""})
    recipe, _ = infer_recipe(tmp_path, override={"python": "3.9", "install_extra": ["pip install numpy<2"]})
    assert recipe["python"] == "3.9"
    names = [s["name"] for s in recipe["install"]]
    assert names[-2:] == ["override-0", "test-runner"]
    with pytest.raises(RecipeError, match="unknown key 'pyhton'"):
        infer_recipe(tmp_path, override={"pyhton": "3.9"})


def test_load_override_from_yaml(tmp_path):
    write(tmp_path, {"repos/a.yaml": "match: [Owner/Thing, thing]\nrecipe:\n  reinstall: true\n"})
    assert load_override("owner/thing", tmp_path / "repos") == {"reinstall": True}
    assert load_override("other", tmp_path / "repos") is None
    write(tmp_path, {"repos/b.yaml": "recipe: {}\n"})
    with pytest.raises(RecipeError, match="b.yaml: a repo override needs a 'match'"):
        load_override("x", tmp_path / "repos")


def test_shipped_repo_overrides_are_valid():
    root = Path(__file__).resolve().parents[2] / "configs" / "repos"
    for p in root.glob("*.yaml"):
        load_override("no-such-repo", root)  # parses and validates every file
        assert p.read_text().strip()


def test_install_script_ladder_runs_and_log_parses(tmp_path):
    """Run the generated ladder with bash, with fake commands standing in for pip."""
    recipe = {"install": [
        {"name": "package", "required": True, "try": ["false", "echo second-rung"]},
        {"name": "optional", "required": False, "try": ["false"]},
        {"name": "runner", "required": True, "try": ["true"]},
    ]}
    script = install_script(recipe).replace("cd /testbed", f"cd {tmp_path}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text("#!/bin/sh\necho six==1.16.0\n")
    (bin_dir / "pip").chmod(0o755)
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = {s["name"]: s for s in parse_install_log(proc.stdout)}
    assert steps["package"] == {"name": "package", "ok": True, "rung": 1, "tries": 2}
    assert steps["optional"]["ok"] is False
    assert parse_freeze(proc.stdout) == ["six==1.16.0"]
    recipe["install"][2]["try"] = ["false"]
    proc = subprocess.run(["bash", "-c", install_script(recipe).replace("cd /testbed", f"cd {tmp_path}")],
                          capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert proc.returncode == 3  # a required step with no working rung fails the build


def test_test_script_has_junit_and_summary_flags():
    s = recipes.test_script({"test_cmd": "python -m pytest", "test_paths": ["tests"], "reinstall": True}, "/tmp/j.xml")
    assert "--junitxml=/tmp/j.xml" in s and " -rpsxXEf " in s and " -rA " not in s and "junit_family=xunit1" in s and s.rstrip().endswith("tests")
    assert "--no-deps --no-build-isolation -e ." in s


def test_funnel():
    stages = [funnel_stage(False, 0, 0, 0), funnel_stage(True, 0, 0, 0), funnel_stage(True, 10, 5, 5),
              funnel_stage(True, 10, 9, 1)]
    assert stages == ["attempted", "installed", "tests_collected", "mostly_passing"]
    assert funnel_counts(stages) == {"attempted": 4, "installed": 3, "tests_collected": 2, "mostly_passing": 1}


def test_build_requires_step_and_reinstall_detection(tmp_path):
    write(tmp_path, {"pyproject.toml": '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\n'
                                       '[tool.hatch.build.hooks.vcs]\nversion-file = "src/x/_v.py"\n',
                     "tests/test_a.py": ""})
    recipe, _ = infer_recipe(tmp_path)
    step = next(s for s in recipe["install"] if s["name"] == "build-requires")
    assert step["try"] == ["pip install hatchling hatch-vcs"] and not step["required"]
    assert recipe["reinstall"] is True and "version file" in recipe["sources"]["reinstall_reason"]
    write(tmp_path, {"pyproject.toml": "", "setup.py": "setup(ext_modules=[Extension('x', ['x.c'])])"})
    recipe, _ = infer_recipe(tmp_path)
    assert recipe["reinstall"] is True and "extension" in recipe["sources"]["reinstall_reason"]
    s = recipes.test_script(recipe, "/tmp/j.xml")
    assert "exit 98" in s and "reinstall failed" in s
    write(tmp_path, {"setup.py": "setup()"})
    assert infer_recipe(tmp_path)[0]["reinstall"] is False


def test_test_env_names_are_checked_and_values_quoted():
    from crucible.sandbox.recipes import RecipeError, test_script

    rec = {"runner": "pytest", "test_cmd": "python -m pytest", "test_paths": ["tests"],
           "test_env": {"DJANGO_SETTINGS": "a b; rm -rf /"}}
    script = test_script(rec, "/tmp/j.xml")
    assert "export DJANGO_SETTINGS='a b; rm -rf /'" in script
    with pytest.raises(RecipeError, match="not an environment variable name"):
        test_script(dict(rec, test_env={"X; touch /pwned": "1"}), "/tmp/j.xml")


def test_selected_files_run_in_the_suites_collection_order():
    """semver 3.0.2: docs/*.rst doctests need a tests/ autouse fixture to have run first (testpaths = tests
    docs). A sorted selection put docs first and failed them (gold patches graded unresolved); the script
    orders a selection by testpaths, keeping the given order within each."""
    from crucible.sandbox.recipes import collection_order, test_script

    rec = {"test_cmd": "python -m pytest", "test_paths": [],
           "sources": {"pytest_config": {"testpaths": ["tests", "docs"]}}}
    sel = ["docs/usage/compare.rst", "src/semver/version.py", "tests/test_compare.py", "tests/test_a.py"]
    assert collection_order(sel, rec) == ["tests/test_compare.py", "tests/test_a.py", "docs/usage/compare.rst",
                                          "src/semver/version.py"]
    assert test_script(rec, "/tmp/j.xml", selection=sel).rstrip().endswith(
        "tests/test_compare.py tests/test_a.py docs/usage/compare.rst src/semver/version.py")
    assert collection_order(sel, {"test_paths": []}) == sel  # no testpaths: as given


OLD_SETUP = """
from setuptools import setup
test_requirements = ['pytest-httpbin==0.0.7', 'pytest-mock', 'PySocks>=1.5.6, !=1.5.7']
setup(name='demo', tests_require=test_requirements, extras_require={'socks': ['PySocks']})
"""
OLD_PIPFILE = """
[dev-packages]
pytest = ">=2.8.0,<=3.10.1"
sphinx = "<=1.5.5"
httpbin = ">=0.7.0"
pytest-xdist = {version = "<=1.25", markers = "python_version >= '3'"}
"e1839a8" = {path = ".", editable = true, extras = ["socks"]}
demo = {version = "*", extras = ["tests"]}
[packages]
"""


def test_tests_require_and_pipfile_dev_packages_become_a_test_deps_step(tmp_path):
    write(tmp_path, {"setup.py": OLD_SETUP, "Pipfile": OLD_PIPFILE,
                     "tests/test_a.py": "import httpbin\nimport pytest\n", "tests/conftest.py": "import socks\n"})
    recipe, inputs = infer_recipe(tmp_path)
    # all of tests_require; of the Pipfile the pytest family and what the tests import (httpbin), not the
    # docs tools, the path entry or the project itself
    want = ["pytest-httpbin==0.0.7", "pytest-mock", "PySocks>=1.5.6, !=1.5.7", "pytest>=2.8.0,<=3.10.1",
            "httpbin>=0.7.0", "pytest-xdist<=1.25; python_version >= '3'"]
    assert recipe["sources"]["test_deps"] == want
    step = next(s for s in recipe["install"] if s["name"] == "test-deps")
    pin = f"pip freeze --exclude-editable | grep -v ' @ ' > {recipes.INSTALLED_PINS} && " \
          f"pip install -c {recipes.INSTALLED_PINS} "
    assert step["required"] is False
    assert step["try"][0] == pin + " ".join(recipes._q(d) for d in want)
    # the fallback keeps the pinned runner and plugins when the rest cannot be installed
    assert step["try"][1] == pin + " ".join(recipes._q(d) for d in want if d.startswith("pytest"))
    assert step["try"][2] == pin + "'pytest>=2.8.0,<=3.10.1'"  # at least the runner the repo pins
    assert len(step["try"]) == 3
    names = [s["name"] for s in recipe["install"]]
    assert names.index("package") < names.index("test-deps") < names.index("test-runner")
    assert "Pipfile" in inputs and "setup.py" in inputs  # editing them changes the env key


def test_no_test_deps_step_where_requirements_files_name_pytest_or_nothing_is_declared(tmp_path):
    write(tmp_path, {"setup.py": OLD_SETUP, "Pipfile": OLD_PIPFILE, "requirements-dev.txt": "pytest<=3.10.1\n",
                     "tests/test_a.py": "import httpbin\n"})
    recipe, _ = infer_recipe(tmp_path)
    assert recipe["sources"]["test_deps"] == []
    assert "test-deps" not in [s["name"] for s in recipe["install"]]
    plain = write(tmp_path / "plain", {"setup.py": "from setuptools import setup\nsetup(name='p')\n",
                                       "tests/test_a.py": ""})
    assert "test-deps" not in [s["name"] for s in infer_recipe(plain)[0]["install"]]


def test_test_deps_reading_edge_cases(tmp_path):
    from crucible.sandbox.repofacts import pipfile_dev_packages, project_name, req_name, tests_require

    write(tmp_path, {"setup.py": "def f(:\n", "setup.cfg": "[metadata]\nname = Demo_Pkg\n[options]\n"
                     "tests_require =\n    pytest>=6\n    # a comment\n    mock\n", "Pipfile": "not toml ["})
    assert tests_require(tmp_path) == ["pytest>=6", "mock"]  # a setup.py that does not parse adds nothing
    assert pipfile_dev_packages(tmp_path) == []
    assert project_name(tmp_path) == "demo-pkg"
    assert [req_name(x) for x in ("PySocks>=1.5.6", "zope.interface", "-e .", "./x", "a @ file:///x",
                                  "git+https://h/x.git")] == ["pysocks", "zope-interface", "", "", "a", ""]


def test_test_deps_step_installs_within_what_is_installed(tmp_path):
    """Run the step's command with bash and a fake pip: the constraints file is pip's freeze less editables."""
    write(tmp_path, {"setup.py": OLD_SETUP, "tests/test_a.py": ""})
    step = next(s for s in infer_recipe(tmp_path)[0]["install"] if s["name"] == "test-deps")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text('#!/bin/sh\nif [ "$1" = freeze ]; then printf "pytest==3.10.1\\n'
                                 'demo @ file:///testbed\\n"; else echo "$@" > "$LOG"; fi\n')
    (bin_dir / "pip").chmod(0o755)
    cmd = step["try"][0].replace(recipes.INSTALLED_PINS, str(tmp_path / "pins.txt"))
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(tmp_path / "args")})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "pins.txt").read_text() == "pytest==3.10.1\n"
    assert (tmp_path / "args").read_text().split()[:3] == ["install", "-c", str(tmp_path / "pins.txt")]
