"""LLM repair against a real engine, with a SCRIPTED policy (no LLM): a repo whose tests import ``zz_helper``,
provided only by a local wheel (distribution ``zzdemo-helper``, in ``wheels/`` of the tree) that no table of
the ladder knows. The ladder (no rungs) stops at collection; the scripted agent's refused test edit never
runs, its offline ``pip install --no-index --find-links /testbed/wheels zzdemo-helper`` makes the suite pass
in the session, the replayed recipe rebuilds through the ordinary build path and passes, and a later run
with ``repos_dir`` = the written override passes without any agent. An agent that does nothing useful
reports failure with its stop reason and the ladder's deciding line."""

from __future__ import annotations

import textwrap
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]

FIX = "pip install --no-index --find-links /testbed/wheels zzdemo-helper"
REPO = {
    "setup.py": "from setuptools import setup\nsetup(name='llmfixdemo', version='0.1', py_modules=['llmfixdemo'])\n",
    "llmfixdemo.py": "def double(x):\n    return 2 * x\n",
    "tests/test_llmfixdemo.py": """
        import zz_helper
        import llmfixdemo

        def test_double():
            assert llmfixdemo.double(zz_helper.VALUE) == 42

        def test_helper():
            assert zz_helper.VALUE == 21
    """,
}


def make_wheel(folder: Path) -> Path:
    """A pure-Python wheel ``zzdemo_helper-0.1-py3-none-any.whl`` providing module ``zz_helper``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "zzdemo_helper-0.1-py3-none-any.whl"
    info = "zzdemo_helper-0.1.dist-info"
    files = {"zz_helper.py": "VALUE = 21\n",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: zzdemo-helper\nVersion: 0.1\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: crucible-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def tree_of(root: Path) -> Path:
    for name, text in REPO.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    make_wheel(root / "wheels")
    return root


@pytest.fixture(scope="module")
def settings():
    from crucible.pipelines.config import load_config
    from crucible.sandbox.api import settings_from_config
    from crucible.sandbox.container import Limits

    s = settings_from_config(load_config("defaults", []).sandbox)
    return replace(s, pythons=("3.11",), limits=Limits(cpus=2, memory_mb=1024, pids=512, timeout_s=300))


def test_scripted_llm_repair_replays_and_a_useless_one_fails(docker_client, settings, tmp_path):
    from crucible.pipelines.swe.llm_repair.runner import apply_outcome, llm_repair
    from crucible.pipelines.swe.llm_repair.session import Caps
    from crucible.sandbox.recipes import load_override
    from crucible.sandbox.repair import attempt
    from tests.support.fake_repair import ScriptedPolicy

    tree = tree_of(tmp_path / "tree")
    name = "llmfixdemo-it"
    res = attempt(docker_client, settings, tree, name, date=None, max_rungs=0)
    assert res["stage"] == "tests_collected" and res["image"].startswith("crucible/env-")
    assert "No module named 'zz_helper'" in res["stop"]["line"]
    caps = Caps(max_steps=8, max_seconds=600, max_commands=6, command_timeout_s=120)

    # the check that must fail: an agent that only looks around
    idle = llm_repair(docker_client, settings, tree, name, res,
                      ScriptedPolicy([("bash", {"command": "pip list"}), ("run_tests", {}),
                                      ("done", {"summary": "nothing to do"})]),
                      caps=caps, out_repos_dir=tmp_path / "idle-repos", date=None)
    assert not idle.ok and idle.stop == "not_passing" and idle.replay is None
    assert idle.tests[0]["kind"] == "collection" and not (tmp_path / "idle-repos").exists()
    failed = apply_outcome(res, idle)
    assert failed["stop"]["rung"] == "llm_repair" and failed["stop"]["line"] == res["stop"]["line"]

    # the scripted fix: a refused test edit first (never run), then the offline install
    edit = "echo 'import sys' > tests/conftest.py"
    out_repos = tmp_path / "repos"
    good = llm_repair(docker_client, settings, tree, name, res,
                      ScriptedPolicy([("bash", {"command": edit}), ("bash", {"command": "ls wheels"}),
                                      ("bash", {"command": FIX}), ("run_tests", {})]),
                      caps=caps, out_repos_dir=out_repos, date=None)
    assert good.ok, (good.stop, good.commands, good.tests, good.replay)
    assert [(c["kind"], c["exit_code"]) for c in good.commands] == [("refused", None), ("inspect", 0),
                                                                   ("install", 0)]
    assert good.tests[-1]["stage"] == "mostly_passing" and good.tests[-1]["counts"]["PASSED"] == 2
    assert good.replay_commands == [FIX]
    assert good.replay["stage"] == "mostly_passing" and good.replay["counts"]["PASSED"] == 2
    assert good.replay["env_key"] != res["env_key"]  # rebuilt from the replayed recipe, not the session
    over = load_override(name, out_repos)
    assert over["install"][-1]["name"] == "llm-repair" and FIX in over["install"][-1]["try"][0]
    # a later run with sandbox.repos_dir = that directory needs no agent (and reuses the replayed env)
    later = attempt(docker_client, replace(settings, repos_dir=out_repos), tree, name, date=None, max_rungs=0)
    assert later["stage"] == "mostly_passing" and later["env_key"] == good.replay["env_key"]
    assert not (tree / "tests" / "conftest.py").exists()
