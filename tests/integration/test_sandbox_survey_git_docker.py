"""A git source end to end against a real engine: a tiny package committed to a local bare mirror by
``release_mirror`` as a release of 2021, surveyed as ``git:owner/name@v0.1`` through the URL template. The
row carries the resolved sha and the commit's date, and the env was resolved as of that date."""

from __future__ import annotations

from dataclasses import replace

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]

FILES = {
    "PKG-INFO": "Metadata-Version: 2.1\nName: tinygit\nVersion: 0.1\n",
    "setup.py": "from setuptools import setup\nsetup(name='tinygit', version='0.1', py_modules=['tinygit'])\n",
    "tinygit.py": "def add(a, b):\n    return a + b\n",
    "tests/test_tinygit.py": "import tinygit\n\n\ndef test_add():\n    assert tinygit.add(2, 3) == 5\n",
}


def test_git_source_from_a_local_mirror_is_surveyed_as_of_its_commit(docker_client, tmp_path):
    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe.survey import Source, SourceKind, survey_one
    from crucible.sandbox.api import settings_from_config
    from crucible.sandbox.container import Limits
    from crucible.sandbox.sources import Release, release_mirror

    tree = tmp_path / "tree"
    for name, text in FILES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    root = tmp_path / "mirrors"
    shas = release_mirror(root, "crucible-it/tinygit", ["tinygit==0.1"], tmp_path,
                          obtain=lambda spec, wd: Release("0.1", tree, "2021-06-01"))
    s = settings_from_config(load_config("defaults", []).sandbox)
    settings = replace(s, pythons=("3.9",), repo_url_template=f"file://{root}/{{owner}}/{{name}}.git",
                       cache_dir=tmp_path / "cache", limits=Limits(cpus=2, memory_mb=1024, pids=512, timeout_s=300))
    row = survey_one(docker_client, settings, Source(SourceKind.GIT, "crucible-it/tinygit@v0.1"), "it")
    assert row["source"] == "git:crucible-it/tinygit@v0.1" and row["commit"] == shas["0.1"]
    assert row["source_date"] == "2021-06-01" and row["as_of"] == "2021-06-01T23:59:59Z"
    assert row["stage"] == "mostly_passing" and row["passed"] == 1, row
