"""Where the quality labels read an F2P test's source (pipelines/swe/quality_facts.py): the test patch, the
repo at the base commit through the local git the validation used, the files a test file imports (a mixin's
test methods), the test's own helpers; each id style."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from crucible.pipelines.swe import quality as Q
from crucible.pipelines.swe import quality_facts
from crucible.pipelines.swe.records import SWEInstance
from tests.support import samples
from tests.unit.test_swe_quality import FIX, make_test_patch, validation


def mirror_repo(tmp_path, files: dict[str, str]) -> tuple[Path, str]:
    """A sdist-like repo committed and cloned bare to <workdir>/mirrors/pypi/demo.git: (workdir, commit)."""
    work = tmp_path / "w"
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=work, check=True,
                       capture_output=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True).stdout.strip()
    wd = tmp_path / "swe"
    (wd / "mirrors" / "pypi").mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(wd / "mirrors" / "pypi" / "demo.git")], check=True,
                   capture_output=True)
    return wd, sha


MOD = "def _normalize(text):\n    return text.strip()\n\ndef parse(text):\n    value = _normalize(text)\n    return value\n"


def injected(sha: str, test_id: str) -> SWEInstance:
    return SWEInstance.from_row(dict(samples.swe_instance(1), repo="pypi/demo", base_commit=sha, patch=FIX,
                                     test_patch="", FAIL_TO_PASS=[test_id]))


def test_test_source_from_the_local_mirror_when_the_test_patch_has_none(tmp_path):
    """An injected bug: no test patch, the F2P test lives in the repo at the base commit (read by git show
    from the sdist's bare mirror); it names the fix's private helper."""
    wd, sha = mirror_repo(tmp_path, {"pkg/mod.py": MOD, "tests/test_mod.py": "from pkg.mod import _normalize\n\n"
                                     "def test_norm():\n    assert _normalize(' A ') == 'a'\n"})
    inst = injected(sha, "tests/test_mod.py::test_norm")
    read = Q.repo_reader(wd, "pypi/demo", sha)
    assert read("pkg/mod.py").startswith("def _normalize") and read("../etc/passwd") is None and read("nope") is None
    row = Q.finished(inst, validation(), workdir=wd).row("r")
    assert [x["code"] for x in row["quality_labels"]] == ["B1_private_api"] and row["difficulty"]["f2p_read"] == 1
    # without the repo (no workdir: the reader switched off) the test is not read and the coupling gets through
    blind = Q.finished(inst, validation(), workdir=None)
    assert blind.quality_labels == [] and blind.difficulty["f2p_read"] == 0
    assert Q.repo_reader(wd, "pypi/demo", "0" * 40) is None  # a commit no local git has


def test_a_mixins_test_methods_are_read_from_the_file_imported(tmp_path, monkeypatch):
    """cachetools' layout: tests/test_cache.py's class derives from a mixin of tests/__init__.py that defines
    the test methods."""
    wd, sha = mirror_repo(tmp_path, {"pkg/mod.py": MOD, "tests/__init__.py": "class Mixin:\n    def test_norm(self):\n"
                                     "        with pytest.raises(TypeError):\n            parse(None)\n",
                                     "tests/test_mod.py": "from . import Mixin\n\nclass TestMod(Mixin):\n    pass\n"})
    inst = injected(sha, "tests/test_mod.py::TestMod::test_norm")
    assert [x["code"] for x in Q.finished(inst, validation(), workdir=wd).quality_labels] == ["B5_exception_type_only"]
    monkeypatch.setattr(quality_facts, "_imported", lambda path, text: [])  # imports not followed: not read
    out = Q.finished(inst, validation(), workdir=wd)
    assert out.quality_labels == [] and out.difficulty["f2p_read"] == 0


def test_a_network_call_in_a_helper_the_test_calls_is_found(monkeypatch):
    """The repo's own fixture of a test needing a network (tests/data/swe/toolz_connect_timeout.json): the socket
    call is in a helper of the test file, not in the test's body."""
    d = json.loads((Path(__file__).parents[1] / "data" / "swe" / "toolz_connect_timeout.json").read_text())
    fix = "".join(("-" + ln[1:] if ln[0] == "+" else "+" + ln[1:]) if ln[:1] in "+-" and ln[:3] not in ("+++", "---")
                  else ln for ln in d["bug"].splitlines(keepends=True))
    inst = dict(samples.swe_instance(1), patch=fix, test_patch=d["test_patch"], FAIL_TO_PASS=d["FAIL_TO_PASS"],
                problem_statement=d["problem_statement"])
    out = Q.assess(inst, validation(meta={}))
    assert [x["code"] for x in out["quality_labels"]] == ["B3_network"]
    assert "socket.create_connection" in out["quality_labels"][0]["reason"]
    assert out["difficulty"]["distance"] == 0  # the statement calls take_nth(...), the function the fix touches
    # helpers not followed: the test body alone makes no network call, and the defect gets through
    monkeypatch.setattr(quality_facts, "_with_helpers", lambda text, block, name: block)
    assert Q.assess(inst, validation(meta={}))["quality_labels"] == []


@pytest.mark.parametrize("test_id,path,name", [
    ("tests/test_mod.py::TestX::test_0[a-b]", "tests/test_mod.py", "test_0"),
    ("test_0 (test_mod.TestX)", "test_mod.py", "test_0"),  # unittest/Django style: found under tests/ too
    ("test_0", None, "test_0"),  # sympy style: searched in every file of the test patch
])
def test_test_ids_of_each_style_find_their_source(test_id, path, name):
    assert quality_facts.split_test_id(test_id) == (path, name)
    assert "pytest.raises" in quality_facts.test_sources([test_id], make_test_patch("    with pytest.raises(ValueError):\n"
                                                                      "        parse(None)"), None)[test_id]
