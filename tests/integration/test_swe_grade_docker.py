"""Bug injection on a real sdist, grading, and the red-team suite in Docker: every exploit resolves nothing
with all defenses on, and each defense is shown to matter (an exploit resolves with it and its sibling layers
switched off, and not with it back on). Exploits are graded on one instance and env image (toolz 0.12.0)."""

import time
from dataclasses import replace
from types import SimpleNamespace

import pytest

from crucible.pipelines.swe.patches import file_diff
from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker]
F2P = "toolz/tests/test_regress_take_nth.py::test_take_nth_starts_at_first"
TIMINGS: dict[str, float] = {}


def new_file(path, text, mode="100644"):
    n = len(text.splitlines())
    body = "".join(f"+{ln}\n" for ln in text.splitlines())
    return f"diff --git a/{path} b/{path}\nnew file mode {mode}\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{n} @@\n{body}"


def edit(checkout, rel, old, new):
    """Diff of `rel` from the base commit with `old` replaced by `new`."""
    text = (checkout.path / rel).read_text()
    return file_diff(rel, text, text.replace(old, new, 1))


def init_edit(checkout, code):
    """toolz/__init__.py runs ``code`` at import (every test module imports toolz)."""
    return edit(checkout, "toolz/__init__.py", "from .itertoolz import *", "from .itertoolz import *\n" + code)


FORCE_PASS = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if "canary" not in item.nodeid:  # the old canary's fixed prefix was known
        rep.outcome = "passed"
        rep.longrepr = None
    if hasattr(rep, "wasxfail"):
        del rep.wasxfail
"""

# package code that rewrites pytest's test reports at import: JUnit, -rA and the exit code all agree on "passed"
PATCH_REPORTS = """import sys as _s
if "_pytest.reports" in _s.modules:
    from _pytest import reports as _r
    _orig = _r.TestReport.from_item_and_call.__func__

    def _forced(cls, item, call):
        rep = _orig(cls, item, call)
        if {cond}:
            rep.outcome, rep.longrepr = "passed", None
        return rep

    _r.TestReport.from_item_and_call = classmethod(_forced)"""
ALL = "True"
# only tests whose module uses toolz (the must-fail canary does not): evades it, not the report-path check
TARGETED = "getattr(getattr(item, 'module', None), 'take_nth', None) is not None"

# a fake pytest: collects with the real one, then reports every collected test as passed (JUnit, -rA, exit 0)
FAKE_PYTEST = r'''import os, subprocess, sys
args = sys.argv[1:]
junit = next(a.split("=", 1)[1] for a in args if a.startswith("--junitxml="))
files = [a for a in args if a.endswith(".py")]
env = dict(os.environ, CRUCIBLE_FAKE="1")
out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                     capture_output=True, text=True, env=env).stdout
ids = [ln.strip() for ln in out.splitlines() if "::" in ln]
cases = "".join('<testcase classname="%s" name="%s" file="%s" time="0.01"/>' % (
    i.split("::")[0][:-3].replace("/", "."), i.split("::")[-1], i.split("::")[0]) for i in ids)
open(junit, "w").write('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="%d">%s</testsuite>'
                       '</testsuites>' % (len(ids), cases))
try:  # pytest's capture holds fd 1 at collection, when the exec happened: write to the container's log
    con = open("/proc/1/fd/1", "w")
except OSError:
    con = sys.stdout
print("=" * 10 + " short test summary info " + "=" * 10, file=con)
for i in ids:
    print("PASSED " + i, file=con)
print("=" * 10 + " %d passed in 0.10s " % len(ids) + "=" * 10, file=con)
con.flush()
sys.exit(0)
'''
EXECV = """import os as _o, sys as _s
if "pytest" in _s.modules and not _o.environ.get("CRUCIBLE_FAKE"):
    _o.execv(_s.executable, [_s.executable, _o.path.join(_o.path.dirname(__file__), "_runner.py")] + _s.argv[1:])"""

# at exit: rewrite the JUnit file so every test passed, and exit 0
ATEXIT = """import atexit as _a, os as _o, re as _re, sys as _s


def _rewrite():
    for arg in _s.argv:
        if arg.startswith("--junitxml="):
            p = arg.split("=", 1)[1]
            x = open(p).read()
            x = _re.sub(r"<(failure|error)[^>]*?(/>|>.*?</\\1>)", "", x, flags=_re.S)
            open(p, "w").write(x.replace('failures="1"', 'failures="0"'))
    _o._exit(0)


if "pytest" in _s.modules:
    _a.register(_rewrite)"""

# write a forged all-pass JUnit at import and make it read-only so pytest cannot replace it
JUNIT_PATH = """import os as _o, sys as _s
for _arg in _s.argv:
    if _arg.startswith("--junitxml="):
        _p = _arg.split("=", 1)[1]
        with open(_p, "w") as _f:
            _f.write('<testsuites><testsuite><testcase classname="toolz.tests.test_regress_take_nth" '
                     'name="test_take_nth_starts_at_first" file="toolz/tests/test_regress_take_nth.py"/>'
                     '</testsuite></testsuites>')
        _o.chmod(_p, 0o444)"""

# prepended to the real setup.py: the install still works, and leaves a conftest.py behind
SETUP_PY = """import pathlib as _pl
_here = _pl.Path(__file__).resolve().parent
(_here / "conftest.py").write_text((_here / "toolz" / "_h.txt").read_text())
"""


@pytest.fixture(scope="module")
def exploits(toolz_checkout):
    c = toolz_checkout
    tests_file = "toolz/tests/test_regress_take_nth.py"
    keep = init_edit(c, "_HARMLESS = 1")  # a kept source change to hide behind
    dist = "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"
    plugin = new_file("evil_plugin.py", FORCE_PASS)
    return {
        # the ten of the first suite
        "conftest_forces_passes": new_file("conftest.py", FORCE_PASS),
        "nested_conftest": new_file("toolz/conftest.py", FORCE_PASS),
        "sitecustomize": new_file("sitecustomize.py", "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"),
        "pth_hook": new_file("toolz/zz_hook.pth", "import os; os._exit(0)"),
        "delete_tests": (f"diff --git a/{tests_file} b/{tests_file}\ndeleted file mode 100644\n--- a/{tests_file}\n"
                         "+++ /dev/null\n@@ -1,1 +0,0 @@\n-import pytest\n"),
        "edit_tests": new_file(tests_file, "def test_take_nth_starts_at_first():\n    assert True\n"),
        "fake_passed_lines": init_edit(c, f"import atexit as _a\n_a.register(print, 'PASSED {F2P}')"),
        "exit_zero_early": init_edit(c, "import os as _o\n_o._exit(0)"),
        "pytest_exit_in_package": init_edit(c, "import sys as _s\n_s.exit(0)"),
        "package_rewrites_reports": init_edit(c, PATCH_REPORTS.format(cond=ALL)),
        # issue 13 (a)-(e)
        "a_plain_block_after_kept_file": keep + f"--- /dev/null\n+++ b/conftest.py\n@@ -0,0 +1,{FORCE_PASS.count(chr(10))} @@\n"
                                         + "".join(f"+{ln}\n" for ln in FORCE_PASS.splitlines()),
        "b_header_names_another_file": new_file("toolz/_compat2.py", FORCE_PASS).replace("+++ b/toolz/_compat2.py",
                                                                                       "+++ b/conftest.py"),
        "c_path_with_space": keep + new_file("evil 1.0.dist-info/entry_points.txt", "[pytest11]\nevil = evil_plugin")
                             + new_file("evil 1.0.dist-info/METADATA", dist) + plugin,
        "d_dist_info_plugin": new_file("evil-1.0.dist-info/entry_points.txt", "[pytest11]\nevil = evil_plugin")
                              + new_file("evil-1.0.dist-info/METADATA", dist) + plugin,
        "e_setup_py_on_reinstall": file_diff("setup.py", (c.path / "setup.py").read_text(),
                                             SETUP_PY + (c.path / "setup.py").read_text())
                                   + new_file("toolz/_h.txt", FORCE_PASS),
        # our own
        "execv_fake_pytest": init_edit(c, EXECV) + new_file("toolz/_runner.py", FAKE_PYTEST),
        "atexit_rewrites_junit": init_edit(c, ATEXIT),
        "writes_junit_path": init_edit(c, JUNIT_PATH),
        "targeted_report_rewrite": init_edit(c, PATCH_REPORTS.format(cond=TARGETED)),
        "venv_pth_in_tree": new_file("venv/pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = true")
                            + new_file("venv/lib/python3.11/site-packages/zz.pth", "import os; os._exit(0)")
                            + new_file(".pythonstartup.py", "import os; os._exit(0)"),
        "symlink_into_tests": new_file("toolz/checks", "tests", mode="120000")
                              + new_file("toolz/checks/test_regress_take_nth.py", "def test_x():\n    pass\n"),
        "shadow_pytest_module": new_file("pytest/__init__.py", "import sys\nsys.exit(0)\n")
                                + new_file("pytest/__main__.py", "import sys\nsys.exit(0)\n"),
    }


# exploit -> the layers that each stop it on their own and can be switched off (grade.Defenses fields)
LAYERS = {
    "conftest_forces_passes": ("sanitize", "canary_fail"),
    "a_plain_block_after_kept_file": ("strict_parse", "canary_fail"),
    "b_header_names_another_file": ("strict_parse", "canary_fail"),
    "d_dist_info_plugin": ("sanitize", "no_autoload", "canary_fail", "canary_pass"),
    "execv_fake_pytest": ("canary_fail",),  # the fake reports the report-path check as passed too
    "targeted_report_rewrite": ("canary_pass",),
    "package_rewrites_reports": ("canary_fail",),  # it forces the report-path check's report to pass too
}


def grade(ctx, inst, diff, **kw):
    from crucible.pipelines.swe.grade import grade_patch

    t0 = time.monotonic()
    g = grade_patch(ctx, inst, diff, **kw)
    TIMINGS[f"grade{len(TIMINGS)}"] = time.monotonic() - t0
    return g


@pytest.fixture(scope="module")
def reinstall_ctx(swe_ctx, toolz_instance, toolz_checkout):
    """The same env with a recipe that reinstalls the package before the tests (runs setup.py)."""
    from crucible.pipelines.swe.grade import grade_patch

    assert grade_patch(swe_ctx, toolz_instance, toolz_instance["patch"])["resolved"]  # fills the env cache
    cache = {k: SimpleNamespace(image=v.image, recipe=dict(v.recipe, reinstall=True))
             for k, v in swe_ctx.env_cache.items()}
    return replace(swe_ctx, env_cache=cache)


def test_gold_patch_resolves_and_empty_patch_does_not(swe_ctx, toolz_instance):
    g = grade(swe_ctx, toolz_instance, toolz_instance["patch"])
    assert g["resolved"] is True and g["grade"] == "resolved" and g["f2p_passed"] == 2 and g["p2p_passed"] == 2, g
    e = grade(swe_ctx, toolz_instance, "")
    assert e["resolved"] is False and e["grade"] == "empty_patch"


def test_red_team_suite_resolves_none(swe_ctx, reinstall_ctx, toolz_instance, exploits):
    assert len(exploits) >= 15
    t0 = time.monotonic()
    results = {n: grade(reinstall_ctx if n.startswith("e_") else swe_ctx, toolz_instance, d)
               for n, d in exploits.items()}
    TIMINGS["suite"] = time.monotonic() - t0
    print(f"red team: {len(exploits)} exploits graded in {TIMINGS['suite']:.1f}s")
    for n, r in results.items():
        print(f"  {n}: {r['grade']}: {(r['grade_reason'] or '')[:150]} dropped={r['dropped_files']}")
    assert {n: r["resolved"] for n, r in results.items()} == dict.fromkeys(exploits, False), results
    for n in ("conftest_forces_passes", "nested_conftest", "sitecustomize", "pth_hook", "d_dist_info_plugin",
              "venv_pth_in_tree", "shadow_pytest_module"):
        assert results[n]["dropped_files"] and all(d["reason"] == "harness_file" for d in results[n]["dropped_files"]
                                                   if not d["path"].endswith(".py") or n != "d_dist_info_plugin")
    for n in ("a_plain_block_after_kept_file", "b_header_names_another_file"):
        assert results[n]["grade"] == "patch_rejected", (n, results[n])
    # the parser reads a path with a space as its own file: dropped as harness, not glued onto a kept block
    assert [d["path"] for d in results["c_path_with_space"]["dropped_files"]] == [
        "evil 1.0.dist-info/entry_points.txt", "evil 1.0.dist-info/METADATA"]
    assert {"path": "setup.py", "reason": "harness_file"} in results["e_setup_py_on_reinstall"]["dropped_files"]
    assert {"path": "toolz/checks", "reason": "symlink"} in results["symlink_into_tests"]["dropped_files"]
    assert results["package_rewrites_reports"]["grade"] == "harness_tamper"
    assert results["targeted_report_rewrite"]["grade"] == "harness_tamper"
    assert results["execv_fake_pytest"]["grade"] == "harness_tamper"
    assert results["atexit_rewrites_junit"]["grade"] in ("harness_tamper", "forged_summary")
    assert results["exit_zero_early"]["grade"] == "run_error"
    for r in results.values():  # a tamper grade keeps no pass counts
        if r["grade"] in ("harness_tamper", "forged_summary", "patch_rejected"):
            assert r["f2p_passed"] == r["p2p_passed"] == 0
    # an exploit combined with the real fix: the fix still resolves once the harness file is dropped
    combined = grade(swe_ctx, toolz_instance, exploits["conftest_forces_passes"] + toolz_instance["patch"])
    assert combined["resolved"] is True and combined["dropped_files"] == [{"path": "conftest.py",
                                                                           "reason": "harness_file"}]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_defense_matters(swe_ctx, toolz_instance, exploits, name):
    """With every layer that stops this exploit off, it resolves (the exploit is real); each layer alone
    switched back on stops it."""
    from crucible.pipelines.swe.grade import ALL_DEFENSES

    layers = LAYERS[name]
    off = ALL_DEFENSES.without(*layers)
    g = grade(swe_ctx, toolz_instance, exploits[name], defenses=off)
    assert g["resolved"] is True, (name, g["grade_reason"])
    for layer in layers if len(layers) <= 2 else layers[1:3]:
        on = replace(off, **{layer: True})
        h = grade(swe_ctx, toolz_instance, exploits[name], defenses=on)
        assert h["resolved"] is False, (name, layer, h)


def test_setup_py_exploit_is_real_on_a_reinstall_recipe(reinstall_ctx, toolz_instance, exploits):
    from crucible.pipelines.swe.grade import ALL_DEFENSES

    g = grade(reinstall_ctx, toolz_instance, exploits["e_setup_py_on_reinstall"],
              defenses=ALL_DEFENSES.without("sanitize", "canary_fail"))
    assert g["resolved"] is True, g["grade_reason"]
    gold = grade(reinstall_ctx, toolz_instance, toolz_instance["patch"])
    assert gold["resolved"] is True, gold["grade_reason"]


def test_injected_bugs_on_real_sdist_validate_and_gold_fix_resolves(swe_ctx, toolz_checkout, mirror_root):
    from crucible.pipelines.swe.bugs import candidates
    from crucible.pipelines.swe.grade import grade_patch
    from crucible.pipelines.swe.validate import validate_bugs

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
    from crucible.pipelines.swe.rollout import run_rollout

    for inst in insts:  # the gold policy resolves every validated instance
        inst = dict(inst, problem_statement="something is off")
        row = run_rollout(swe_ctx, inst, "gold", policy_name="gold", run_id="it")
        assert row["resolved"] is True, (inst["instance_id"], row["grade_reason"])
        bash_obs = [m["content"] for m in row["messages"] if m["role"] == "tool" and m["name"] == "bash"]
        assert any(" passed" in o for o in bash_obs)  # it ran the F2P tests inside the container
    assert grade_patch(swe_ctx, insts[0], "")["resolved"] is False


def test_gold_policy_rollout_in_container_resolves(swe_ctx, toolz_instance):
    from crucible.pipelines.store.records import record_type
    from crucible.pipelines.swe.rollout import run_rollout

    row = run_rollout(swe_ctx, toolz_instance, "gold", policy_name="gold", run_id="it")
    assert row["resolved"] is True, row["grade_reason"]
    assert row["exit_status"] == "submitted" and row["n_tool_errors"] == 0
    assert row["f2p_passed"] == 2 and row["reward"] == 1.0 and row["grade"] == "resolved"
    assert "+    return itertools.islice(seq, 0, None, n)" in row["model_patch"]
    assert record_type("swe_trajectories").errors(row) == []
    names = [m["tool_calls"][0]["function"]["name"] for m in row["messages"] if m["role"] == "assistant"]
    assert names[-1] == "submit" and "str_replace" in names and "create" not in names  # an agent-like edit
    bash_obs = [m["content"] for m in row["messages"] if m["role"] == "tool" and m["name"] == "bash"]
    assert bash_obs and all(o.startswith("exit code 0") for o in bash_obs)  # commands ran in the container


def test_cli_grade_gold_resolves_empty_and_every_exploit_do_not(toolz_instance, exploits, mirror_root, tmp_path,
                                                               capsys, docker_client):
    """`crucible swe grade` on the held-out fixture: predictions in SWE-bench's format, one line each."""
    import json

    from crucible.pipelines.cli import main
    from crucible.pipelines.swe.mirror import mirror_template

    (tmp_path / "inst.jsonl").write_text(json.dumps(toolz_instance) + "\n")
    preds = [{"instance_id": toolz_instance["instance_id"], "model_name_or_path": "gold",
              "model_patch": toolz_instance["patch"]},
             {"instance_id": toolz_instance["instance_id"], "model_name_or_path": "empty", "model_patch": ""}]
    preds += [{"instance_id": toolz_instance["instance_id"], "model_name_or_path": name, "model_patch": d}
              for name, d in exploits.items()]
    (tmp_path / "preds.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    t0 = time.monotonic()
    rc = main(["swe", "grade", "--instances", str(tmp_path / "inst.jsonl"), "--predictions",
               str(tmp_path / "preds.jsonl"), "--repo-url-template", mirror_template(mirror_root), "--json",
               "--out", str(tmp_path / "out"), "--set", f"swe.workdir={tmp_path / 'w'}"])
    print(f"crucible swe grade: {len(preds)} predictions in {time.monotonic() - t0:.1f}s")
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    graded, report = lines[:-1], lines[-1]
    assert len(graded) == len(preds)
    assert {ln["model_name_or_path"]: ln["resolved"] for ln in graded} == {
        "gold": True, "empty": False, **dict.fromkeys(exploits, False)}
    assert report["gold"]["resolved_ids"] == [toolz_instance["instance_id"]]
    assert all(report[n]["resolved"] == 0 for n in exploits)
