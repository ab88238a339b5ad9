"""SWE-bench's own recipe in Docker on a shared SWE-bench sample row (sqlfluff__sqlfluff-2336, version 0.8).

sqlfluff's repository cannot be cloned here and its sdists ship no tests, so the row is rebuilt on a fixture
repo made from the sqlfluff 0.9.1 sdist (the last release before the row's created_at, 2022-01-17):

* base commit = the sdist + a ``requirements_dev.txt`` (SWE-bench's recipe reads that file at the env commit;
  the sdist has none, so the fixture writes one with what the selected tests need: ``pytest``, plus a
  ``-e .`` line that SWE-bench's gathering drops);
* test patch = the row's test patch without its ``L026.yml`` hunk (a YAML rule fixture absent from the sdist;
  not a test directive, not read by the selected test file);
* fix = the row's patch without its diffs of ``dialect_bigquery.py``, ``L025.py`` and ``L026.py`` (their context
  is code refactored after 0.9.1; whole file diffs are dropped, not hunks); the new module
  ``core/rules/reference.py`` that the selected test imports and the other files apply. That fix is committed
  and the row's patch becomes the diff base -> fix.

The row's FAIL_TO_PASS (14 ids) and empty PASS_TO_PASS are the given SWE-bench labels, unchanged. The other
two sample rows cannot be rebuilt: their test files (test/cli/commands_test.py, test/api/simple_test.py,
test/core/templaters/jinja_test.py) are modified, not created, and are absent from every sdist, so their
PASS_TO_PASS lists cannot be reproduced (see docs/swe.md, "SWE-bench recipes").
"""

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker]
_REL = "fixtures/swe/swebench_format_sample.jsonl"  # in shared/, beside the repo (CI) or at /work/shared
SAMPLE = next((p for p in (Path(__file__).resolve().parents[3] / "shared" / _REL, Path("/work/shared") / _REL)
               if p.is_file()), Path("/work/shared") / _REL)
ROW_ID = "sqlfluff__sqlfluff-2336"
SDIST = "sqlfluff==0.9.1"
REQUIREMENTS_DEV = "# fixture: sqlfluff's sdists ship no requirements_dev.txt\n-e .\npytest\n"
EXPECTED_DROPS = {"test_patch": ["test/fixtures/rules/std_rule_cases/L026.yml"],
                  "patch": ["src/sqlfluff/dialects/dialect_bigquery.py", "src/sqlfluff/rules/L025.py",
                            "src/sqlfluff/rules/L026.py"]}


def applicable(tree: Path, diff: str) -> tuple[str, list[str]]:
    """(the file diffs of ``diff`` that apply to ``tree`` with SWE-bench's chain, paths of those that do not)."""
    from crucible.pipelines.swe.patches import split_diff

    keep, drop = [], []
    for path, text in split_diff(diff):
        ok = False
        for argv in (["git", "apply", "--check", "-"], ["patch", "--dry-run", "--batch", "--forward", "--fuzz=5",
                                                        "-p1", "-"]):
            if subprocess.run(argv, input=text, cwd=tree, capture_output=True, text=True).returncode == 0:
                ok = True
                break
        (keep if ok else drop).append(text if ok else path)
    return "".join(keep), drop


def sdist_fixture_row(row: dict, checkout, mirror_root: Path) -> tuple[dict, dict]:
    """(row rebuilt on a bare mirror made from the sdist checkout, what was dropped)."""
    from crucible.pipelines.swe.mirror import commit_patch, diff_commits, ensure_bare_mirror
    from crucible.pipelines.swe.patches import file_diff

    mirror = ensure_bare_mirror(checkout.path, mirror_root, row["repo"])
    base = commit_patch(mirror, checkout.commit, file_diff("requirements_dev.txt", "", REQUIREMENTS_DEV),
                        "fixture: requirements_dev.txt", f"crucible/{row['instance_id']}-base")
    with tempfile.TemporaryDirectory(prefix="crucible-fixture-") as tmp:
        work = Path(tmp) / "w"
        subprocess.run(["git", "clone", "-q", str(mirror), str(work)], check=True)
        subprocess.run(["git", "checkout", "-q", "--detach", base], cwd=work, check=True)
        test_patch, drop_t = applicable(work, row["test_patch"])
        patch, drop_p = applicable(work, row["patch"])
    fixed = commit_patch(mirror, base, patch, "fixture: the row's fix", f"crucible/{row['instance_id']}-fix")
    from crucible.pipelines.swe.sources import parse_label_list

    labels = {k: parse_label_list(row[k], k)[0] for k in ("FAIL_TO_PASS", "PASS_TO_PASS")}  # as read_instances
    out = dict(row, base_commit=base, environment_setup_commit=base, test_patch=test_patch,
               patch=diff_commits(mirror, base, fixed), **labels)
    return out, {"test_patch": drop_t, "patch": drop_p}


@pytest.fixture(scope="session")
def sqlfluff_row(swe_settings, mirror_root):
    import sys

    from crucible.sandbox.sources import from_sdist

    row = next(r for r in map(json.loads, SAMPLE.read_text().splitlines()) if r["instance_id"] == ROW_ID)
    co = from_sdist(SDIST, swe_settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"))
    return sdist_fixture_row(row, co, mirror_root)


def test_sample_row_reproduces_with_swebench_recipe(swe_ctx, sqlfluff_row, docker_client):
    from crucible.pipelines.swe.validate import validate_instance

    row_in, dropped = sqlfluff_row
    assert dropped == EXPECTED_DROPS  # the fixture deviates from the row exactly as documented
    given_f2p, given_p2p = row_in["FAIL_TO_PASS"], row_in["PASS_TO_PASS"]
    assert len(given_f2p) == 14 and given_p2p == []
    assert swe_ctx.recipes == "auto"
    row = validate_instance(swe_ctx, row_in, "it-swebench-specs")
    assert row["status"] == "valid", row["reason"]
    assert row["meta"]["recipe_origin"].startswith("swebench-4.0.")
    assert row["meta"]["recipe_python"] == "3.9"
    assert row["fail_to_pass"] == sorted(given_f2p)
    assert row["pass_to_pass"] == sorted(given_p2p)
    assert row["labels_match"] is True
    # the env image was built by SWE-bench's steps, in its order, each on its first rung
    img = docker_client.images.get(row["env_image"])
    steps = json.loads(img.labels["crucible.steps"])
    assert [s["name"] for s in steps] == ["swebench-requirements:requirements_dev.txt", "swebench-install",
                                          "test-runner"]
    assert all(s["ok"] for s in steps)
    recipe = json.loads(img.labels["crucible.spec"])
    assert recipe["origin"] == row["meta"]["recipe_origin"] and recipe["test_cmd"] == "pytest -rA"
    assert recipe["sources"]["spec"] == {"python": "3.9", "packages": "requirements.txt",
                                         "install": "python -m pip install -e .", "test_cmd": "pytest -rA"}


def test_pre_install_runs_as_root_on_the_tree_before_install_and_test_env_reaches_tests(
        docker_client, swe_settings, toolz_checkout, tmp_path):
    """A SWE-bench-style spec with pre_install (root, on the tree), pip_packages, install and an exported
    eval variable, on the real toolz 0.12.0 sdist: the install step sees the pre_install edit, root made a
    system file, and the tests see the variable."""
    from crucible.pipelines.swe import swebench_specs as sb
    from crucible.sandbox.api import build_env
    from crucible.sandbox.container import run_in_container
    from crucible.sandbox.sources import export_tree
    from crucible.sandbox.testrun import run_tests

    tree = export_tree(toolz_checkout.path, tmp_path / "tree")
    (tree / "toolz" / "tests" / "test_crucible_env.py").write_text(
        "import os\n\ndef test_eval_env():\n    assert os.environ['CRUCIBLE_EVAL_MARK'] == 'from eval_commands'\n")
    spec = {"python": "3.9", "pip_packages": ["pytest"],
            "pre_install": ["id -u > /etc/crucible-pre-install-uid", "echo edited > PRE_INSTALL_MARK"],
            "install": "test -f PRE_INSTALL_MARK && python -m pip install -e .",
            "eval_commands": ["export CRUCIBLE_EVAL_MARK='from eval_commands'"], "test_cmd": "pytest -rA"}
    recipe = sb.recipe_from_spec(spec, tree, repo="pytoolz/toolz", version="0.12", available_pythons=("3.9",))
    env, res = build_env(docker_client, swe_settings, tree, "toolz-swebench-spec", recipe=recipe)
    assert [s["name"] for s in res["steps"]] == ["swebench-pip-packages", "swebench-install", "test-runner"]
    assert all(s["ok"] and s["rung"] == 0 for s in res["steps"]), res["steps"]
    out = run_in_container(docker_client, env.image, "cat /etc/crucible-pre-install-uid; ls -A /testbed | wc -l")
    assert out.exit_code == 0 and out.log.split() == ["0", "0"]  # root ran it; the tree is not baked in
    run = run_tests(docker_client, env.image, tree, env.recipe, limits=swe_settings.limits,
                    selection=["toolz/tests/test_crucible_env.py", "toolz/tests/test_itertoolz.py"])
    assert run.ok, run.reason
    assert run.tests_swebench["toolz/tests/test_crucible_env.py::test_eval_env"] == "PASSED"
    assert sum(s == "PASSED" for s in run.tests_swebench.values()) > 50
