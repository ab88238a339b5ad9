"""Records the golden pytest logs of ``tests/data/sandbox/collide``, ``teardown_error`` and ``startup``: tiny
fixture trees run by a real pytest, exactly as a Crucible test run calls it (``crucible.sandbox.recipes.test_script``'s
report flags, JUnit XML, no plugin autoload), stdout and stderr together as a container's log has them.

Run once by hand; the outputs are checked in and the unit tests read them (never this script)::

    python tests/support/record_pytest_logs.py --out tests/data/sandbox \\
        --pytest .venv/bin/python --pytest7 /tmp/venv7/bin/python --pytest4 /tmp/venv4/bin/python \\
        --bare /usr/bin/python3.11

``--pytest7``: a Python with pytest 7.3.1 (as an as-of-2023 env installs it: its parametrize ids collide, the
``packaging==23.1`` case); ``--pytest4``: one with pytest 4.6.11 (as a 2019 repo pins it); ``--bare``: a Python
without pytest. The trees are written under /tmp/rec/<case> (the paths the logs show).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from crucible.sandbox.recipes import REPORT_CHARS  # noqa: E402
from tests.support.trees import write_tree  # noqa: E402

OK = {"tests/test_ok.py": "def test_ok():\n    assert True\n"}
COLLIDE = {"test_collide.py": '''import pytest


# pytest < 8 makes duplicate ids unique with a numeric suffix that can meet a real id: "1.0dev" twice becomes
# 1.0dev0 and 1.0dev1, and 1.0dev1 is also a value (packaging 23.1's test_specifiers_normalized)
@pytest.mark.parametrize("v", ["1.0dev", "1.0dev", "1.0dev1", "1.0DEV1"])
def test_normalized(v):
    assert v.lower().startswith("1.0dev")


@pytest.mark.parametrize("x", [1, 1.0, True], ids=["one", "one", "one0"])
def test_explicit(x):
    assert x == 1


def test_plain():
    assert True
'''}

# one of two cases on a colliding id fails: JUnit and the console both say one passed, one failed
COLLIDE_MIXED = {"test_collide_mixed.py": '''import pytest


@pytest.mark.parametrize("x", [1, 1, 2], ids=["one", "one", "one0"])
def test_explicit(x):
    assert x == 1
'''}

# a test whose call passes and whose fixture then fails in teardown: the console prints PASSED and ERROR for the
# one id, JUnit one case with an <error> (an honest suite, not a forged summary)
TEARDOWN_ERROR = {"test_teardown.py": '''import pytest


@pytest.fixture
def resource():
    yield 1
    raise RuntimeError("cleanup failed")


def test_uses_resource(resource):
    assert resource == 1


def test_plain():
    assert True
'''}

# case -> (interpreter option, tree, extra argv)
CASES = {
    "collide": ("pytest7", COLLIDE, []),
    "collide_mixed": ("pytest7", COLLIDE_MIXED, []),
    "teardown_error": ("pytest", TEARDOWN_ERROR, []),
    "teardown_error_pytest7": ("pytest7", TEARDOWN_ERROR, []),
    "startup/unknown_option": ("pytest", OK, ["--frobnicate"]),
    "startup/addopts_xdist": ("pytest", {**OK, "pytest.ini": "[pytest]\naddopts = -n 2\n"}, []),
    "startup/addopts_plugin": ("pytest", {**OK, "pytest.ini": "[pytest]\naddopts = -p xdist\n"}, []),
    "startup/addopts_plugin_pytest7": ("pytest7", {**OK, "pytest.ini": "[pytest]\naddopts = -p xdist\n"}, []),
    "startup/required_plugins": ("pytest", {**OK, "pytest.ini": "[pytest]\nrequired_plugins = pytest-randomly\n"}, []),
    "startup/newer_option": ("pytest4", {**OK, "pytest.ini": "[pytest]\naddopts = --import-mode=importlib\n"}, []),
    "startup/newer_option_unknown": ("pytest4", {**OK, "pytest.ini": "[pytest]\naddopts = --durations-min=1\n"}, []),
    "startup/conftest_import": ("pytest", {**OK, "conftest.py": "import skimage\n"}, []),
    "startup/conftest_syntax": ("pytest", {**OK, "tests/conftest.py": "type Vector = list[float]\n"}, []),
    "startup/module_syntax": ("pytest", {**OK, "tests/test_gen.py": "def first[T](xs: list[T]) -> T:\n"
                                         "    return xs[0]\n\n\ndef test_first():\n    assert first([1]) == 1\n"}, []),
    "startup/module_import": ("pytest", {**OK, "tests/test_imp.py": "import skimage\n\n\ndef test_x():\n"
                                         "    assert skimage\n"}, []),
    "startup/old_pytest_new_python": ("pytest4", {**OK, "tests/conftest.py": "import os\n"}, []),
    "startup/no_pytest": ("bare", OK, []),
}


def record(case: str, python: str, tree: dict, extra: list[str], out: Path) -> None:
    root = Path("/tmp/rec") / case.replace("/", "-")
    shutil.rmtree(root, ignore_errors=True)
    write_tree(root, tree)
    junit = root / "junit.xml"
    argv = [python, "-m", "pytest", REPORT_CHARS, f"--junitxml={junit}", "-o", "junit_family=xunit1",
            "-p", "no:cacheprovider", "--color=no", *extra, *(["tests"] if (root / "tests").is_dir() else [])]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dest = out / case
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    (dest / "console.log").write_text(proc.stdout)
    (dest / "exit_code").write_text(f"{proc.returncode}\n")
    if junit.exists():
        shutil.copyfile(junit, dest / "junit.xml")
    print(f"{case}: exit {proc.returncode}, junit {'yes' if junit.exists() else 'no'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    for opt in ("pytest", "pytest7", "pytest4", "bare"):
        ap.add_argument(f"--{opt}", required=True)
    args = ap.parse_args()
    for case, (which, tree, extra) in CASES.items():
        record(case, os.path.abspath(getattr(args, which)), tree, extra, args.out.resolve())


if __name__ == "__main__":
    main()
