"""The repair ladder against a real engine: a repo whose tests use the ``mocker`` fixture without declaring
pytest-mock, and whose test module imports a module (yaml) no file of the repo names. Inference alone builds
an env whose suite does not mostly pass; the ladder reads the run's log, installs PyPI's pytest-mock and
PyYAML (each rung with its log line) and the clean suite passes."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]

REPO = {
    "setup.py": "from setuptools import setup\nsetup(name='laddered', version='0.1', py_modules=['laddered'])\n",
    "laddered.py": "import os\n\ndef cwd():\n    return os.getcwd()\n",
    "tests/test_laddered.py": """
        import yaml
        import laddered

        def test_cwd_mocked(mocker):
            mocker.patch("os.getcwd", return_value="/x")
            assert laddered.cwd() == "/x"

        def test_yaml():
            assert yaml.safe_load("a: 1") == {"a": 1}

        def test_plain():
            assert laddered.cwd()
    """,
}


def tree_of(root: Path) -> Path:
    for name, text in REPO.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture(scope="module")
def settings():
    from crucible.pipelines.config import load_config
    from crucible.sandbox.api import settings_from_config
    from crucible.sandbox.container import Limits

    s = settings_from_config(load_config("defaults", []).sandbox)
    return replace(s, pythons=("3.11",), limits=Limits(cpus=2, memory_mb=1024, pids=512, timeout_s=300))


def test_without_the_ladder_the_suite_fails_with_it_passes(docker_client, settings, tmp_path):
    from crucible.sandbox.repair import attempt

    tree = tree_of(tmp_path / "tree")
    off = attempt(docker_client, settings, tree, "laddered-it", date=None, max_rungs=0)
    assert off["stage"] in ("installed", "tests_collected") and off["rungs"] == []
    assert "No module named 'yaml'" in off["stop"]["line"]
    on = attempt(docker_client, settings, tree, "laddered-it", date=None, max_rungs=4)
    assert on["stage"] == "mostly_passing", on["stop"]
    assert on["counts"]["PASSED"] == 3
    used = {(r["kind"], r["arg"]) for r in on["rungs"]}
    assert {("install_module", "PyYAML"), ("pytest_plugin", "pytest-mock")} <= used
    assert all(r["trigger"] for r in on["rungs"])
    assert on["recipe"]["rungs"] == on["rungs"]  # the final recipe carries them (replayable, in the env key)
