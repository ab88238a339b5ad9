import subprocess

import pytest

from crucible.pipelines.swe.labels import compute_labels, flaky_from, labels_hold, labels_match, verdict
from crucible.pipelines.swe.patches import (
    PatchError,
    apply_patch,
    diff_paths,
    file_diff,
    is_test_path,
    sanitize_model_patch,
    split_patch,
    test_directives,
)


def test_f2p_is_fail_or_absent_before_and_pass_after():
    before = {"t::a": "FAILED", "t::b": "PASSED", "t::c": "PASSED", "t::e": "ERROR", "t::x": "XFAIL"}
    after = {"t::a": "PASSED", "t::b": "PASSED", "t::c": "FAILED", "t::d": "PASSED", "t::e": "PASSED",
             "t::x": "XFAIL", "t::s": "SKIPPED"}
    lab = compute_labels(before, after)
    assert lab["FAIL_TO_PASS"] == ["t::a", "t::d", "t::e"]  # t::d absent before
    assert lab["PASS_TO_PASS"] == ["t::b"]
    assert lab["PASS_TO_FAIL"] == ["t::c"]
    assert "t::x" not in lab["FAIL_TO_PASS"] + lab["PASS_TO_PASS"]  # XFAIL never counts as passing
    assert "t::s" in lab["FAIL_TO_FAIL"] and "t::x" in lab["FAIL_TO_FAIL"]


def test_xpass_counts_as_pass_and_xfail_before_then_pass_is_f2p():
    lab = compute_labels({"t::x": "XFAIL"}, {"t::x": "PASSED"})
    assert lab["FAIL_TO_PASS"] == ["t::x"]


def test_flaky_tests_are_removed_from_both_lists_and_recorded():
    runs_after = [{"t::a": "PASSED", "t::f": "PASSED", "t::g": "PASSED"},
                  {"t::a": "PASSED", "t::f": "FAILED", "t::g": "PASSED"}]
    runs_before = [{"t::a": "FAILED", "t::g": "PASSED"}, {"t::a": "FAILED", "t::g": "XFAIL"}]
    flaky = set(flaky_from(runs_after)) | set(flaky_from(runs_before))
    assert flaky == {"t::f", "t::g"}
    lab = compute_labels(runs_before[0], runs_after[0], flaky)
    assert lab["FAIL_TO_PASS"] == ["t::a"] and lab["PASS_TO_PASS"] == []
    assert lab["flaky"] == ["t::f", "t::g"]
    assert flaky_from([{"t::a": "PASSED"}]) == []  # one run cannot show flakiness


def test_labels_match_and_verdict():
    assert labels_match(None, None, ["a"], []) is None
    assert labels_match(["a"], ["b", "c"], ["a"], ["c", "b"]) is True
    assert labels_match(["a"], [], ["a"], ["b"]) is False
    assert verdict({"FAIL_TO_PASS": [], "PASS_TO_PASS": ["b"]}).startswith("no_fail_to_pass")
    assert verdict({"FAIL_TO_PASS": ["a"], "PASS_TO_PASS": []}) is None
    assert verdict({"FAIL_TO_PASS": ["a"], "PASS_TO_PASS": []}, require_p2p=True).startswith("no_pass_to_pass")


def test_labels_hold_rejects_each_way_a_given_label_can_fail_to_grade():
    before = {"t::new": "FAILED", "t::old": "PASSED", "t::other": "PASSED", "t::flip": "PASSED"}
    after = {"t::new": "PASSED", "t::old": "PASSED", "t::other": "PASSED", "t::flip": "PASSED", "t::more": "PASSED"}
    assert labels_hold(None, None, before, after) is None  # nothing given
    # an env that runs one more test: the labels are not equal, yet they grade as given
    lab = compute_labels(before, after)
    assert labels_match(["t::new"], ["t::old", "t::other", "t::flip"], lab["FAIL_TO_PASS"], lab["PASS_TO_PASS"]) is False
    held = labels_hold(["t::new"], ["t::old", "t::other", "t::flip"], before, after)
    assert held == {"hold": True, "not_held": [], "not_collected": []}
    # each way to fail: an F2P test passing before, a P2P test failing after, a flaky one, one never run
    for f2p, p2p, flaky, bad in ((["t::old"], [], (), "t::old"),
                                 ([], ["t::new"], (), "t::new"),
                                 (["t::new"], ["t::flip"], ("t::flip",), "t::flip"),
                                 (["t::new"], ["t::gone[/__init__.py]"], (), "t::gone[/__init__.py]")):
        held = labels_hold(f2p, p2p, before, after, flaky)
        assert held["hold"] is False and held["not_held"] == [bad], (f2p, p2p)
    assert labels_hold([], ["t::gone"], before, after)["not_collected"] == ["t::gone"]
    assert labels_hold([], ["t::new"], before, after)["not_collected"] == []
    # switched off (only the computed labels' verdict): the row is valid with a given P2P test this env never ran
    assert verdict(compute_labels(before, after)) is None


DIFF = """diff --git a/pkg/core.py b/pkg/core.py
--- a/pkg/core.py
+++ b/pkg/core.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
diff --git a/tests/test_core.py b/tests/test_core.py
--- a/tests/test_core.py
+++ b/tests/test_core.py
@@ -1 +1,4 @@
 from pkg.core import add
+
+def test_add():
+    assert add(1, 2) == 3
diff --git a/conftest.py b/conftest.py
new file mode 100644
--- /dev/null
+++ b/conftest.py
@@ -0,0 +1 @@
+x = 1
diff --git a/docs/data.json b/docs/data.json
--- a/docs/data.json
+++ b/docs/data.json
@@ -1 +1 @@
-{}
+{"a": 1}
"""


def test_diff_split_classify_and_sanitize():
    assert diff_paths(DIFF) == ["pkg/core.py", "tests/test_core.py", "conftest.py", "docs/data.json"]
    assert is_test_path("tests/test_core.py") and is_test_path("src/x/testing/util.py")
    assert is_test_path("pkg/test_thing.py") and not is_test_path("pkg/core.py")
    src, tst = split_patch(DIFF)
    assert "pkg/core.py" in src and "tests/test_core.py" in tst and "tests/test_core.py" not in src
    kept, dropped = sanitize_model_patch(DIFF)
    assert dropped == [{"path": "tests/test_core.py", "reason": "test_file"},
                       {"path": "conftest.py", "reason": "harness_file"}]
    assert diff_paths(kept) == ["pkg/core.py", "docs/data.json"]
    assert test_directives(DIFF) == ["pkg/core.py", "tests/test_core.py", "conftest.py"]


def test_apply_patch_and_file_diff_round_trip(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/core.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_core.py").write_text("from pkg.core import add\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/data.json").write_text("{}\n")
    apply_patch(tmp_path, DIFF)
    assert "a + b" in (tmp_path / "pkg/core.py").read_text()
    assert (tmp_path / "conftest.py").read_text() == "x = 1\n"
    d = file_diff("pkg/core.py", "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a * b\n")
    apply_patch(tmp_path, d)
    assert "a * b" in (tmp_path / "pkg/core.py").read_text()
    with pytest.raises(PatchError, match="does not apply"):
        apply_patch(tmp_path, d)
    assert subprocess.run(["git", "--version"], capture_output=True).returncode == 0


def test_grade_score_absent_counts_as_failed_and_empty_f2p_never_resolves():
    from crucible.pipelines.swe.grade import score, test_files_of

    s = score({"a.py::x": "PASSED", "a.py::y": "XFAIL"}, ["a.py::x"], ["a.py::y"])
    assert s == {"f2p_passed": 1, "f2p_total": 1, "p2p_passed": 0, "p2p_total": 1, "resolved": False}
    assert score({"a.py::x": "PASSED"}, ["a.py::x", "b.py::z"], [])["resolved"] is False
    assert score({}, [], [])["resolved"] is False
    assert test_files_of(["b.py::z", "a.py::x[1]", "a.py::C::y"]) == ["a.py", "b.py"]


def test_sanitize_drops_every_harness_exploit_path():
    diff = "".join(f"diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -1 +1 @@\n-a\n+b\n" for p in (
        "conftest.py", "src/pkg/conftest.py", "sitecustomize.py", "lib/usercustomize.py", "x.pth", "pytest.ini",
        "tox.ini", "setup.cfg", "pyproject.toml", "tests/test_a.py", "pkg/tests/data.py", "pkg/core.py"))
    kept, dropped = sanitize_model_patch(diff)
    assert diff_paths(kept) == ["pkg/core.py"] and len(dropped) == 11


def test_pytest_seconds_from_summary_line():
    from crucible.pipelines.swe.labels import pytest_seconds

    log = "PASSED a.py::x\n========= 2 passed, 1 xfailed in 1.37s =========\n"
    assert pytest_seconds(log) == 1.37
    assert pytest_seconds("=== 1 failed in 62.10s (0:01:02) ===\n") == 62.1
    assert pytest_seconds("no summary") is None
