"""Grading defenses without Docker: the strict diff reader (exploits a-e of issue 13 and friends), safe paths
(no host file read through a row), canaries, the reverse console check, and tamper earning nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crucible.pipelines.swe.patches import (
    PatchError,
    check_patch,
    parse_diff,
    sanitize_model_patch,
)

HUNK = "@@ -1 +1 @@\n-a\n+b\n"


def mod(path, hunk=HUNK):
    return f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n{hunk}"


def new(path, text="x = 1\n", mode="100644"):
    body = "".join(f"+{ln}\n" for ln in text.splitlines())
    return (f"diff --git a/{path} b/{path}\nnew file mode {mode}\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +1,{len(text.splitlines())} @@\n{body}")


def test_plain_block_after_a_kept_file_is_rejected_not_glued_on():  # exploit (a)
    smuggled = mod("pkg/core.py") + "--- /dev/null\n+++ b/conftest.py\n@@ -0,0 +1 @@\n+import os\n"
    with pytest.raises(PatchError, match="not a 'diff --git' block"):
        sanitize_model_patch(smuggled)


def test_header_naming_another_file_than_its_lines_is_rejected():  # exploit (b)
    d = "diff --git a/pkg/core.py b/pkg/core.py\n--- a/conftest.py\n+++ b/conftest.py\n" + HUNK
    with pytest.raises(PatchError, match="conftest.py"):
        sanitize_model_patch(d)


def test_path_with_a_space_is_its_own_file_and_dropped():  # exploit (c)
    kept, dropped = sanitize_model_patch(mod("pkg/core.py") + new("my dir/conftest.py"))
    assert [f.path for f in parse_diff(kept)] == ["pkg/core.py"]
    assert dropped == [{"path": "my dir/conftest.py", "reason": "harness_file"}]


@pytest.mark.parametrize("path", [
    "evil-1.0.dist-info/entry_points.txt",  # (d): pytest autoloads [pytest11] entry points from sys.path
    "src/evil.egg-info/entry_points.txt", "setup.py",  # (e): reinstall recipes run it
    "pytest.toml", ".pytest.toml", "pyvenv.cfg", "venv/lib/python3.11/site-packages/hook.pth",
    "pytest.py", "_pytest/reports.py", "pytest/__init__.py", "pluggy/__init__.py", "sitecustomize/__init__.py",
    "lib/usercustomize.py", "__editable___pkg_finder.py"])
def test_harness_files_are_dropped_with_their_reason(path):
    kept, dropped = sanitize_model_patch(new("pkg/core2.py") + new(path))
    assert dropped == [{"path": path, "reason": "harness_file"}] and "pkg/core2.py" in kept


def test_init_of_a_test_package_is_harness_only_where_the_tree_has_tests(tmp_path):
    (tmp_path / "pkg" / "checks").mkdir(parents=True)
    (tmp_path / "pkg" / "checks" / "test_x.py").write_text("")
    (tmp_path / "pkg" / "__init__.py").write_text("")
    _, dropped = sanitize_model_patch(new("pkg/checks/__init__.py") + mod("pkg/__init__.py"), tmp_path)
    assert dropped == [{"path": "pkg/checks/__init__.py", "reason": "harness_file"}]


def test_symlinks_and_mode_changes_are_dropped():
    link = new("pkg/link", "../tests", mode="120000")
    chmod = "diff --git a/pkg/run.py b/pkg/run.py\nold mode 100644\nnew mode 100755\n"
    kept, dropped = sanitize_model_patch(mod("pkg/core.py") + link + chmod)
    assert dropped == [{"path": "pkg/link", "reason": "symlink"}, {"path": "pkg/run.py", "reason": "mode_change"}]
    assert [f.path for f in parse_diff(kept)] == ["pkg/core.py"]


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "pkg/../../x.py", "./pkg/x.py", ".git/config"])
def test_unsafe_paths_are_rejected_naming_the_path(path):
    with pytest.raises(PatchError, match="unsafe path"):
        sanitize_model_patch(mod(path))


def test_header_escaping_while_lines_name_a_real_file_is_rejected():
    d = "diff --git a/../../x b/../../x\n--- a/pkg/core.py\n+++ b/pkg/core.py\n" + HUNK
    with pytest.raises(PatchError, match=r"\.\./\.\./x"):
        parse_diff(d)


def test_a_path_through_a_symlink_of_the_tree(tmp_path):
    tree = tmp_path / "tree"
    (tree / "pkg" / "tests").mkdir(parents=True)
    (tree / "pkg" / "tests" / "helpers.py").write_text("a\n")
    (tree / "pkg" / "h").symlink_to("tests")  # an innocent name reaching into the test directory
    (tree / "out").symlink_to(tmp_path)  # and one reaching outside the tree
    _, dropped = sanitize_model_patch(mod("pkg/h/helpers.py"), tree)
    assert dropped == [{"path": "pkg/h/helpers.py", "reason": "test_file"}]
    with pytest.raises(PatchError, match="outside the tree"):
        check_patch(tree, mod("out/secret.txt"))


def test_the_applier_is_the_judge_of_what_a_patch_touches():
    from crucible.pipelines.swe.patches import FileDiff, _check_applier

    lie = FileDiff(path="pkg/core.py", old_path="pkg/core.py", text=mod("conftest.py"))
    with pytest.raises(PatchError, match="git apply would touch"):
        _check_applier([lie], "model patch")
    _check_applier([FileDiff(path="pkg/core.py", old_path="pkg/core.py", text=mod("pkg/core.py"))], "p")


def test_binary_and_quoted_paths_are_rejected():
    with pytest.raises(PatchError, match="binary"):
        parse_diff("diff --git a/x.bin b/x.bin\nindex 1..2 100644\nGIT binary patch\nliteral 1\nHcmV?d00001\n\n")
    with pytest.raises(PatchError, match="quoted"):
        parse_diff('diff --git "a/x\\ty.py" "b/x\\ty.py"\n--- "a/x\\ty.py"\n+++ "b/x\\ty.py"\n' + HUNK)


def test_lines_split_on_newlines_only():
    d = mod("pkg/core.py", "@@ -1,2 +1,2 @@\n x = '\x0c\u2028'\n-a\n+b\n")
    (f,) = parse_diff(d)
    assert f.text == d


def test_a_diff_stripped_of_its_trailing_blank_context_still_reads():
    d = mod("pkg/core.py", "@@ -1,3 +1,3 @@\n-a\n+b\n \n \n")
    (f,) = parse_diff(d.rstrip())
    assert f.text == d


def test_renames_keep_both_paths_checked():
    d = ("diff --git a/pkg/a.py b/pkg/b.py\nsimilarity index 90%\nrename from pkg/a.py\nrename to pkg/b.py\n"
         "--- a/pkg/a.py\n+++ b/pkg/b.py\n" + HUNK)
    (f,) = parse_diff(d)
    assert f.paths == ("pkg/a.py", "pkg/b.py")
    ren_into_tests = d.replace("pkg/b.py", "tests/test_b.py")
    assert sanitize_model_patch(ren_into_tests)[1] == [{"path": "tests/test_b.py", "reason": "test_file"}]


# ---------------------------------------------------------------- no host file through a row

def host_secret(tmp_path):
    secret = tmp_path / "host_secret.txt"
    secret.write_text("HOST-SECRET-42\n")
    tree = tmp_path / "work" / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "core.py").write_text("a\n")
    return secret, tree


def test_gold_files_never_come_from_outside_the_tree(tmp_path):
    from crucible.pipelines.swe.rollout import post_patch_files

    secret, tree = host_secret(tmp_path)
    rel = "../../host_secret.txt"
    bad = f"diff --git a/{rel} b/{rel}\n--- a/pkg/core.py\n+++ b/pkg/core.py\n" + HUNK
    with pytest.raises(PatchError, match=r"\.\./\.\./host_secret\.txt"):
        post_patch_files(tree, bad)
    assert (tree / rel).read_text() == "HOST-SECRET-42\n"  # what reading `tree / header path` used to give
    link = new("pkg/notes.txt", str(secret), mode="120000")  # a symlink to the host file
    with pytest.raises(PatchError, match="symlink"):
        post_patch_files(tree, link)
    assert post_patch_files(tree, mod("pkg/core.py")) == [("pkg/core.py", "b\n")]


def test_a_row_with_an_escaping_path_is_a_failures_row_naming_instance_and_path(tmp_path, monkeypatch):
    import shutil

    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe import curate as swe_pipeline
    from tests.support import samples

    secret, tree = host_secret(tmp_path)
    reads = []
    real_read = type(secret).read_text

    def spy(self, *a, **kw):
        reads.append(str(self))
        return real_read(self, *a, **kw)

    monkeypatch.setattr(type(secret), "read_text", spy)
    monkeypatch.setattr("crucible.pipelines.swe.envs.checkout_tree",
                        lambda ctx, repo, commit, dest: shutil.copytree(tree, dest, symlinks=True))
    monkeypatch.setattr("crucible.pipelines.swe.envs.task_env", lambda *a, **kw: None)
    # the rollout binds both at import: patch them where it calls them too (not only where they are defined,
    # which worked only when the rollout module happened to be imported after this patch)
    monkeypatch.setattr("crucible.pipelines.swe.rollout.checkout_tree",
                        lambda ctx, repo, commit, dest: shutil.copytree(tree, dest, symlinks=True))
    monkeypatch.setattr("crucible.pipelines.swe.rollout.task_env", lambda *a, **kw: None)
    rel = "../../../host_secret.txt"
    inst = dict(samples.swe_instance(7), problem_statement="x", meta={},
                patch=f"diff --git a/{rel} b/{rel}\n--- a/pkg/core.py\n+++ b/pkg/core.py\n" + HUNK)

    class Ctx:
        workdir = tmp_path / "work"

    cfg = load_config("swe", ["swe.statements.use_llm=false", "swe.rollouts.policies=[gold]"]).to_dict()
    res = swe_pipeline.curate_instance(Ctx(), inst, samples.swe_validation(7), cfg=cfg, run_id="r", client=None)
    fail = next(f for f in res.rows["failures"] if f["stage"] == "gold_check")
    assert fail["item_key"] == inst["instance_id"] and rel in str(fail["payload"])
    (traj,) = res.rows["swe_trajectories"]
    assert traj["split"] == "none" and "HOST-SECRET" not in str(traj["messages"])
    assert not any("host_secret" in r for r in reads)


# ---------------------------------------------------------------- canaries

def test_canaries_have_ordinary_random_names_and_behave(tmp_path):
    from crucible.pipelines.swe.grade import canary_problem, write_canaries

    (tmp_path / "pkg" / "tests").mkdir(parents=True)
    f2p = ["pkg/tests/test_a.py::test_x", "tests2/test_b.py::T::test_y"]
    junit = str(tmp_path / "j.xml")
    c1 = write_canaries(tmp_path, f2p, junit, seed=1)
    assert set(c1) == {"fail:pkg/tests", "fail:tests2", "pass"}
    names = " ".join(r + f for r, f in c1.values())
    assert "canary" not in names and "crucible" not in names
    c2 = write_canaries(tmp_path / "pkg", ["tests/test_a.py::t"], junit, seed=2)
    assert {r for r, _ in c2.values()}.isdisjoint({r for r, _ in c1.values()})
    files = [r for r, _ in c1.values()]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", f"--junitxml={junit}",
                           *files], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    from crucible.sandbox.parsers import parse_pytest_rA

    tests = parse_pytest_rA(proc.stdout)
    root_fixed = {k: v for k, v in tests.items()}
    # the report-path check pins /testbed as the tree; here the tree is tmp_path, so only the must-fail part
    for key, (rel, fn) in c1.items():
        if key != "pass":
            assert root_fixed[f"{rel}::{fn}"] == "FAILED"
    assert root_fixed[f"{c1['pass'][0]}::{c1['pass'][1]}"] == "PASSED", proc.stdout[-2000:]
    assert canary_problem(root_fixed, c1) is None
    forced = dict.fromkeys(root_fixed, "PASSED")
    assert "must-fail" in canary_problem(forced, c1)
    assert "report-path" in canary_problem({k: "FAILED" for k in root_fixed}, {"pass": c1["pass"]})


def test_report_path_check_fails_when_tree_code_wraps_makereport(tmp_path):
    from crucible.pipelines.swe.grade import INTACT_CHECK

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "plug.py").write_text(
        "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    yield\n")
    junit = str(tmp_path / "j.xml")
    (tmp_path / "test_ok.py").write_text(INTACT_CHECK.format(fn="test_ok", root=str(tmp_path), junit=junit))

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra,
                               f"--junitxml={junit}", "test_ok.py"], cwd=tmp_path, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})

    assert run().returncode == 0
    bad = run("-p", "pkg.plug")
    assert bad.returncode == 1 and "pytest_runtest_makereport" in bad.stdout


# ---------------------------------------------------------------- verdicts, rewards, splits

def test_console_failures_that_junit_reports_as_passed_are_forged():
    from crucible.sandbox.testrun import reconcile

    junit = ('<testsuites><testsuite><testcase classname="a" name="test_x" file="a.py"/>'
             '<testcase classname="a" name="test_y" file="a.py"/></testsuite></testsuites>')
    log = "PASSED a.py::test_y\nFAILED a.py::test_x - assert 0\n===== 1 passed in 0.1s =====\n"
    run = reconcile(0, log, junit)
    assert run.status == "error" and run.kind == "forged_summary" and "a.py::test_x" in run.reason


@pytest.mark.parametrize("grade", ["harness_tamper", "forged_summary", "patch_rejected", "infra"])
def test_tampered_or_infra_rollouts_earn_nothing_and_train_nothing(grade):
    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe.filters import classify, reward_of
    from crucible.pipelines.swe.grade import Grade, result
    from tests.support import samples

    g = result(Grade(grade), f"{grade}: x", ["a::t"], ["a::u"], counts={"f2p_passed": 1, "p2p_passed": 1})
    assert g["f2p_passed"] == 0 and g["p2p_passed"] == 0 and reward_of(g) == 0.0 and not g["resolved"]
    row = dict(samples.swe_trajectory(0), exit_status="submitted", meta={"dropped_files": []}, resolved=False,
               grade=grade, grade_reason=g["grade_reason"], reward=reward_of(g))
    flt = load_config("swe", []).to_dict()["swe"]["filters"]
    split, reasons = classify(row, flt)
    assert split == "none" and any(r.startswith(grade) for r in reasons)
    # the same row graded honestly unresolved keeps its partial reward and goes to RL (with the reasons it is
    # not SFT: unresolved, and this sample row shows no work)
    honest = result(Grade.TESTS_FAILING, "tests_failing", ["a::t"], ["a::u"],
                    counts={"f2p_passed": 0, "p2p_passed": 1})
    assert reward_of(honest) == 0.25
    split, reasons = classify(dict(row, grade="tests_failing", reward=0.25), flt)
    assert split == "rl" and "unresolved" in [r.split(":")[0] for r in reasons]


def test_plugins_come_from_the_env_never_from_the_tree(tmp_path):
    from crucible.sandbox.plugins import PLUGIN_LIST
    from crucible.sandbox.recipes import test_script

    d = tmp_path / "evil-1.0.dist-info"
    d.mkdir()
    (d / "METADATA").write_text("Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n")
    (d / "entry_points.txt").write_text("[pytest11]\nevil = evil_plugin\n")
    seen = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print([e.value for d in "
                           "m.distributions() for e in d.entry_points if e.group == 'pytest11'])"],
                          cwd=tmp_path, capture_output=True, text=True).stdout
    assert "evil_plugin" in seen  # the tree on sys.path: pytest would autoload it
    # the listing runs with the tree on sys.path here too, and still leaves it out
    out = subprocess.run([sys.executable, "-c", PLUGIN_LIST, str(tmp_path)], cwd=tmp_path, capture_output=True,
                         text=True).stdout
    assert "evil_plugin" not in out and out.count("-p ") >= 1
    rec = {"test_cmd": "python -m pytest", "test_paths": ["tests"]}
    assert "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1" in test_script(rec, "/tmp/j.xml")
    assert "PYTEST_DISABLE_PLUGIN_AUTOLOAD" not in test_script(rec, "/tmp/j.xml", autoload=True)
