import ast
import textwrap

from crucible.pipelines.swe.bugs import (
    BugCandidate,
    apply_mutation,
    bug_labels,
    candidates,
    file_candidates,
    functions,
    mutations,
)
from crucible.pipelines.swe.patches import apply_patch

SRC = textwrap.dedent('''
    """Module doc."""


    def clamp(x, lo, hi):
        """Clamp x — into [lo, hi]."""
        if x < lo:
            return lo
        total = x + 0
        return min(x, hi)


    class Box:
        def grow(self, n):
            self.size += n
            self.log.append(n)
            return self.size * 2 if self.size and n else -1
''').lstrip()


def muts(name):
    fns = dict(functions(ast.parse(SRC)))
    return mutations(fns[name], SRC.splitlines(keepends=True))


def apply_op(name, op):
    return [apply_mutation(SRC, m) for m in muts(name) if m.operator == op]


def test_each_operator_makes_a_minimal_valid_edit():
    assert apply_op("clamp", "flip_comparison") == [SRC.replace("if x < lo:", "if x >= lo:")]
    assert apply_op("clamp", "negate_if") == [SRC.replace("if x < lo:", "if not x < lo:")]
    assert SRC.replace("x + 0", "x - 0") in apply_op("clamp", "flip_operator")
    assert SRC.replace("x + 0", "x + 1") in apply_op("clamp", "off_by_one")
    assert apply_op("clamp", "swap_arguments") == [SRC.replace("min(x, hi)", "min(hi, x)")]
    removed = apply_op("clamp", "remove_statement")
    assert removed == [SRC.replace("    total = x + 0\n", "")]
    assert apply_op("clamp", "remove_branch") == [SRC.replace("    if x < lo:\n        return lo\n", "")]
    assert SRC.replace("self.size and n", "self.size or n") in apply_op("Box.grow", "flip_boolop")
    assert SRC.replace("self.size * 2", "self.size // 2") in apply_op("Box.grow", "flip_operator")
    for op in ("flip_comparison", "remove_statement", "swap_arguments"):
        for new in apply_op("clamp", op) + apply_op("Box.grow", op):
            ast.parse(new)
            assert "Clamp x — into [lo, hi]." in new  # non-ASCII text before the edit survives


def test_single_statement_blocks_are_not_emptied():
    # `return lo` is the only statement of its block: never removed (would not parse)
    assert all("return lo" in new for new in apply_op("clamp", "remove_statement"))


def test_file_candidates_are_applicable_diffs(tmp_path):
    cands = file_candidates("pkg/mod.py", SRC)
    assert {c.operator for c in cands} >= {"flip_comparison", "remove_statement", "swap_arguments", "off_by_one"}
    assert len({c.key for c in cands}) == len(cands)
    c = next(c for c in cands if c.operator == "swap_arguments")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/mod.py").write_text(SRC)
    apply_patch(tmp_path, c.diff)
    assert "min(hi, x)" in (tmp_path / "pkg/mod.py").read_text()


def test_candidates_sample_is_deterministic_and_skips_tests(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/mod.py").write_text(SRC)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_mod.py").write_text("def test_x():\n    a = 1\n    assert a == 1\n")
    a = candidates(tmp_path, seed=3, max_candidates=5)
    b = candidates(tmp_path, seed=3, max_candidates=5)
    assert a == b and a and all(isinstance(c, BugCandidate) for c in a)
    assert all(c.path == "pkg/mod.py" for c in a)
    assert len(a) == 2  # one per function by default


def test_bug_labels_pass_to_fail_only():
    clean = {"t/a.py::x": "PASSED", "t/a.py::y": "PASSED", "t/a.py::z": "FAILED", "t/b.py::w": "PASSED"}
    buggy = {"t/a.py::x": "FAILED", "t/a.py::y": "PASSED", "t/a.py::z": "FAILED"}
    lab = bug_labels(clean, buggy, ["t/a.py"])
    assert lab["FAIL_TO_PASS"] == ["t/a.py::x"] and lab["PASS_TO_PASS"] == ["t/a.py::y"]
    # an id that only exists in one run (time-parametrized) is not a pass -> fail
    clean_t = dict(clean, **{"t/a.py::now[12:00:01]": "PASSED"})
    buggy_t = dict(buggy, **{"t/a.py::now[12:00:02]": "PASSED"})
    assert bug_labels(clean_t, buggy_t, ["t/a.py"])["FAIL_TO_PASS"] == ["t/a.py::x"]
    # but when the buggy run crashed at collection, absent tests are failing
    crashed = bug_labels(clean, {}, ["t/a.py"], allow_absent=True)
    assert crashed["FAIL_TO_PASS"] == ["t/a.py::x", "t/a.py::y"]
