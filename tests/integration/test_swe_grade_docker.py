"""Bug injection on a real sdist, grading, and the exploit suite (must resolve none), in Docker."""

import pytest

from pipelines.swe.patches import file_diff
from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker]
F2P = "toolz/tests/test_regress_take_nth.py::test_take_nth_starts_at_first"


def new_file(path, text):
    n = len(text.splitlines())
    body = "".join(f"+{ln}\n" for ln in text.splitlines())
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{n} @@\n{body}"


def edit(checkout, rel, old, new, bug=None):
    """Diff of `rel` from the base commit (sdist + bug) with `old` replaced by `new`."""
    text = (checkout.path / rel).read_text()
    if bug:
        text = text.replace(*bug)
    return file_diff(rel, text, text.replace(old, new, 1))


BUG = ("return itertools.islice(seq, 0, None, n)", "return itertools.islice(seq, 1, None, n)")
FORCE_PASS = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    rep.outcome = "passed"
    rep.longrepr = None
    if hasattr(rep, "wasxfail"):
        del rep.wasxfail
"""

# package code that rewrites pytest's test reports at import: JUnit, -rA and the exit code all agree on "passed"
PATCH_REPORTS = """from .itertoolz import *
import sys as _s
if "_pytest.reports" in _s.modules:
    from _pytest import reports as _r
    _orig = _r.TestReport.from_item_and_call.__func__

    def _forced(cls, item, call):
        rep = _orig(cls, item, call)
        rep.outcome, rep.longrepr = "passed", None
        return rep

    _r.TestReport.from_item_and_call = classmethod(_forced)"""


@pytest.fixture(scope="module")
def exploits(toolz_checkout):
    tests_file = "toolz/tests/test_regress_take_nth.py"
    return {
        "conftest_forces_passes": new_file("conftest.py", FORCE_PASS),
        "nested_conftest": new_file("toolz/conftest.py", FORCE_PASS),
        "sitecustomize": new_file("sitecustomize.py", "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"),
        "pth_hook": new_file("toolz/zz_hook.pth", "import os; os._exit(0)"),
        "delete_tests": (f"diff --git a/{tests_file} b/{tests_file}\ndeleted file mode 100644\n--- a/{tests_file}\n"
                         "+++ /dev/null\n@@ -1,1 +0,0 @@\n-import pytest\n"),
        "edit_tests": new_file(tests_file, "def test_take_nth_starts_at_first():\n    assert True\n"),
        "fake_passed_lines": edit(toolz_checkout, "toolz/__init__.py", "from .itertoolz import *",
                                  "from .itertoolz import *\nimport atexit as _a\n"
                                  f"_a.register(print, 'PASSED {F2P}')", bug=None),
        "exit_zero_early": edit(toolz_checkout, "toolz/__init__.py", "from .itertoolz import *",
                                "from .itertoolz import *\nimport os as _o\n_o._exit(0)"),
        "pytest_exit_in_package": edit(toolz_checkout, "toolz/__init__.py", "from .itertoolz import *",
                                       "from .itertoolz import *\nimport sys as _s\n_s.exit(0)"),
        "package_rewrites_reports": edit(toolz_checkout, "toolz/__init__.py", "from .itertoolz import *",
                                         PATCH_REPORTS),
    }


def test_gold_patch_resolves_and_empty_patch_does_not(swe_ctx, toolz_instance):
    from pipelines.swe.grade import grade_patch

    g = grade_patch(swe_ctx, toolz_instance, toolz_instance["patch"])
    assert g["resolved"] is True and g["f2p_passed"] == 2 and g["p2p_passed"] == 2, g
    e = grade_patch(swe_ctx, toolz_instance, "")
    assert e["resolved"] is False and e["grade_reason"] == "empty_patch"


def test_exploit_suite_resolves_none(swe_ctx, toolz_instance, exploits):
    from pipelines.swe.grade import grade_patch

    results = {name: grade_patch(swe_ctx, toolz_instance, diff) for name, diff in exploits.items()}
    assert {n: r["resolved"] for n, r in results.items()} == dict.fromkeys(exploits, False), results
    assert "conftest.py" in results["conftest_forces_passes"]["dropped_files"]
    assert results["fake_passed_lines"]["grade_reason"].startswith(("tests_failing", "run_error/forged_summary"))
    assert results["exit_zero_early"]["grade_reason"].startswith("run_error")
    assert results["package_rewrites_reports"]["grade_reason"].startswith("harness_tamper: the must-fail canary")
    # each exploit also combined with the real fix: still resolved when harmless, never better than gold
    combined = grade_patch(swe_ctx, toolz_instance, exploits["conftest_forces_passes"] + toolz_instance["patch"])
    assert combined["resolved"] is True and combined["dropped_files"] == ["conftest.py"]


def test_conftest_exploit_is_real_without_sanitizing(swe_ctx, toolz_instance, exploits):
    """The suite is not vacuous: the same conftest patch *would* resolve if test-harness files were kept."""
    from pipelines.swe.grade import grade_patch

    g = grade_patch(swe_ctx, toolz_instance, exploits["conftest_forces_passes"], sanitize=False, canary=False)
    assert g["resolved"] is True, g["grade_reason"]
    # and the canary is a second line of defence behind sanitizing
    kept = grade_patch(swe_ctx, toolz_instance, exploits["conftest_forces_passes"], sanitize=False)
    assert kept["resolved"] is False and kept["grade_reason"].startswith("harness_tamper")


def test_report_rewriting_exploit_is_real_without_the_canary(swe_ctx, toolz_instance, exploits):
    """Package code is no harness file (kept by sanitizing): only the canary stops it."""
    from pipelines.swe.grade import grade_patch

    g = grade_patch(swe_ctx, toolz_instance, exploits["package_rewrites_reports"], canary=False)
    assert g["dropped_files"] == [] and g["resolved"] is True, g["grade_reason"]


def test_injected_bugs_on_real_sdist_validate_and_gold_fix_resolves(swe_ctx, toolz_checkout, mirror_root):
    from pipelines.swe.bugs import candidates, validate_bugs
    from pipelines.swe.grade import grade_patch

    cands = candidates(toolz_checkout.path, seed=0, max_candidates=4, include=["toolz/itertoolz.py"])
    assert len(cands) == 4
    insts, rows, stats = validate_bugs(swe_ctx, toolz_checkout, "pypi/toolz", mirror_root, cands, "it",
                                       source_ref="sdist:toolz==0.12.0")
    assert stats["bug_runs"] == 4 and len(rows) == 4
    assert insts, [r["reason"] for r in rows]
    for inst in insts:
        row = next(r for r in rows if r["instance_id"] == inst["instance_id"])
        assert row["status"] == "valid" and inst["FAIL_TO_PASS"] == row["fail_to_pass"]
        assert inst["base_commit"] != toolz_checkout.commit and inst["patch"].startswith("diff --git")
    for r in rows:
        if r["status"] != "valid":
            assert r["reason"]
    from pipelines.swe.rollout import run_rollout

    for inst in insts:  # the gold policy resolves every validated instance
        inst = dict(inst, problem_statement="something is off")
        row = run_rollout(swe_ctx, inst, "gold", policy_name="gold", run_id="it")
        assert row["resolved"] is True, (inst["instance_id"], row["grade_reason"])
        bash_obs = [m["content"] for m in row["messages"] if m["role"] == "tool" and m["name"] == "bash"]
        assert any(" passed" in o for o in bash_obs)  # it ran the F2P tests inside the container
    assert grade_patch(swe_ctx, insts[0], "")["resolved"] is False


def test_gold_policy_rollout_in_container_resolves(swe_ctx, toolz_instance):
    from pipelines.store.records import record_type
    from pipelines.swe.rollout import run_rollout

    row = run_rollout(swe_ctx, toolz_instance, "gold", policy_name="gold", run_id="it")
    assert row["resolved"] is True, row["grade_reason"]
    assert row["exit_status"] == "submitted" and row["n_tool_errors"] == 0
    assert row["f2p_passed"] == 2 and row["reward"] == 1.0
    assert "+    return itertools.islice(seq, 0, None, n)" in row["model_patch"]
    assert record_type("swe_trajectories").errors(row) == []
    names = [m["tool_calls"][0]["function"]["name"] for m in row["messages"] if m["role"] == "assistant"]
    assert names[-1] == "submit" and "create" in names
    bash_obs = [m["content"] for m in row["messages"] if m["role"] == "tool" and m["name"] == "bash"]
    assert bash_obs and all(o.startswith("exit code 0") for o in bash_obs)  # commands ran in the container
