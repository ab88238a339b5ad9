"""The label-guided rung against a real engine: a tiny repo of 2024 whose requirements pin pytest 7, and a row
whose given labels were made under a newer pytest (a test defined only there, as an id that only a newer pytest
gives would be). Inferred env: that labelled test is never collected, the given labels do not hold; the rung
(pytest upgraded as of the repo's date) builds a second env where they do, and that env is kept. Switched off,
the row is valid with a given label its env cannot grade; a label no pytest collects tries the rung and keeps
the first env."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]

FILES = {
    "PKG-INFO": "Metadata-Version: 2.1\nName: tinylab\nVersion: 0.1\n",
    "setup.py": "from setuptools import setup\nsetup(name='tinylab', version='0.1', py_modules=['tinylab'])\n",
    "requirements-dev.txt": "pytest==7.4.4\n",
    "tinylab.py": "def add(a, b):\n    return a + b\n",
    "tests/test_tinylab.py": "import tinylab\n\n\ndef test_zero():\n    assert tinylab.add(0, 0) == 0\n",
}
BUG = """diff --git a/tinylab.py b/tinylab.py
--- a/tinylab.py
+++ b/tinylab.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a + b
+    return a - b
"""
TEST_PATCH = """diff --git a/tests/test_new.py b/tests/test_new.py
new file mode 100644
--- /dev/null
+++ b/tests/test_new.py
@@ -0,0 +1,11 @@
+import pytest
+
+import tinylab
+
+
+def test_add():
+    assert tinylab.add(2, 3) == 5
+
+if int(pytest.__version__.split(".")[0]) >= 8:
+    def test_add_newer_runner():
+        assert tinylab.add(1, 1) == 2
"""
NEW = "tests/test_new.py::test_add_newer_runner"


@pytest.fixture(scope="module")
def lab(docker_client, tmp_path_factory):
    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe.envs import ValidateContext
    from crucible.pipelines.swe.mirror import commit_patch, diff_commits
    from crucible.sandbox.api import settings_from_config
    from crucible.sandbox.container import Limits
    from crucible.sandbox.sources import Release, mirror_path, release_mirror

    tmp = tmp_path_factory.mktemp("label-rung")
    tree = tmp / "tree"
    for name, text in FILES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    root = tmp / "mirrors"
    release = release_mirror(root, "crucible-it/tinylab", ["tinylab==0.1"], tmp,
                             obtain=lambda spec, wd: Release("0.1", tree, "2024-06-01"))["0.1"]
    mirror = mirror_path(root, "crucible-it/tinylab")
    bug = commit_patch(mirror, release, BUG, "bug", "bug")
    s = settings_from_config(load_config("swe", []).sandbox)
    s = replace(s, pythons=("3.11",), repo_url_template=f"file://{root}/{{owner}}/{{name}}.git",
                limits=Limits(cpus=2, memory_mb=1024, pids=512, timeout_s=300))
    ctx = ValidateContext(client=docker_client, settings=s, workdir=tmp / "work", recipes="inferred")
    (tmp / "work").mkdir()
    inst = {"repo": "crucible-it/tinylab", "instance_id": "tinylab-1", "base_commit": bug,
            "patch": diff_commits(mirror, bug, release), "test_patch": TEST_PATCH, "problem_statement": "add",
            "created_at": None, "version": None, "environment_setup_commit": release,
            "FAIL_TO_PASS": ["tests/test_new.py::test_add", NEW], "PASS_TO_PASS": []}
    return ctx, inst


def test_given_labels_of_a_newer_pytest_are_reproduced_by_the_rung_env(lab):
    from crucible.pipelines.swe.validate import validate

    ctx, inst = lab
    val = validate(ctx, inst, "it")
    row = val.row
    assert row["status"] == "valid", row["reason"]
    assert row["labels_hold"] is True and row["labels_match"] is True, row
    assert sorted(row["fail_to_pass"]) == sorted(inst["FAIL_TO_PASS"])
    rung = row["meta"]["label_rung"]
    assert rung["kind"] == "newest_test_runner" and rung["kept"] is True and NEW in rung["trigger"]
    assert rung["not_held_before"] == 1 and rung["not_held_after"] == 0
    # the env the row carries is the rung's: pytest upgraded after the pinned 7.4.4, recorded in its recipe
    assert val.env.image == rung["image"] and val.env.recipe["rungs"][-1]["kind"] == "newest_test_runner"
    assert val.env.recipe["install"][-1]["name"] == "ladder:pytest-newest"
    assert row["n_runs"] == 4  # both envs' before and after runs


def test_switched_off_the_row_is_valid_with_a_label_its_env_cannot_grade(lab, monkeypatch):
    import crucible.pipelines.swe.validate
    from crucible.pipelines.swe.validate import validate

    ctx, inst = lab
    monkeypatch.setattr(crucible.pipelines.swe.validate, "label_rung", lambda recipe, held: None)  # where it is used
    row = validate(ctx, inst, "it").row
    assert row["status"] == "valid" and row["fail_to_pass"] == ["tests/test_new.py::test_add"]
    assert row["labels_hold"] is False and row["labels_not_held"] == [NEW]
    assert row["meta"]["labels_not_collected"] == [NEW] and "label_rung" not in row["meta"]


def test_a_label_no_pytest_collects_tries_the_rung_and_keeps_the_first_env(lab):
    from crucible.pipelines.swe.validate import validate

    ctx, inst = lab
    gone = "tests/test_new.py::test_nowhere"
    val = validate(ctx, dict(inst, instance_id="tinylab-2", FAIL_TO_PASS=["tests/test_new.py::test_add", gone]), "it")
    row = val.row
    assert row["labels_hold"] is False and row["labels_not_held"] == [gone]
    rung = row["meta"]["label_rung"]
    assert rung["kept"] is False and rung["not_held_before"] == rung["not_held_after"] == 1
    assert "rungs" not in val.env.recipe and val.env.image != rung["image"]
    assert json.dumps(row["meta"])  # the row as stored
