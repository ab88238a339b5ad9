import ast
import textwrap

from crucible.pipelines.swe.bugs import (
    BugCandidate,
    Mutation,
    apply_mutation,
    bug_labels,
    candidates,
    file_candidates,
    file_sites,
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


DECORATED = textwrap.dedent('''
    import functools


    @functools.lru_cache(maxsize=2)
    def top(a, b):
        c = a + b
        return max(a,
                   b) if c > 1 else min(a, b)


    class K:
        @staticmethod
        @functools.wraps(top)
        def m(x, y):
            if x and y:
                x -= 1
            return [x, y][0] == 1
''').lstrip()


def _whole_file_sites(path, source):
    """The reference: each edit spliced into the whole file and the whole file re-parsed (what file_sites did
    before it re-parsed only the edited function)."""
    out = []
    for name, fn in functions(ast.parse(source)):
        seen = set()
        for m in mutations(fn, source.splitlines(keepends=True)):
            new = apply_mutation(source, m)
            try:
                ast.parse(new)
            except SyntaxError:
                continue
            if new != source and new not in seen:
                seen.add(new)
                out.append((name, m))
    return out


def test_sites_re_parsed_per_function_are_those_of_the_whole_file():
    for src in (SRC, DECORATED):
        sites = file_sites("pkg/mod.py", src)
        assert [(s.function, s.mutation) for s in sites] == _whole_file_sites("pkg/mod.py", src)
    ops = {s.mutation.operator for s in file_sites("pkg/mod.py", DECORATED)}
    assert {"swap_arguments", "flip_boolop", "off_by_one"} <= ops  # decorator and method edits among them


def test_an_edit_that_does_not_parse_is_dropped_and_switched_off_it_is_kept(monkeypatch):
    from crucible.pipelines.swe import bugs

    real = bugs.mutations

    def with_a_broken_one(fn, lines):  # clamp's `x < lo` (line 6) replaced by text that does not parse
        broken = [Mutation("flip_comparison", (6, 7), (6, 13), "x <", 6)] if fn.name == "clamp" else []
        return [*real(fn, lines), *broken]

    monkeypatch.setattr(bugs, "mutations", with_a_broken_one)
    kept = [s.mutation.replacement for s in bugs.file_sites("pkg/mod.py", SRC) if s.function == "clamp"]
    assert "x <" not in kept
    monkeypatch.setattr(bugs, "_parses", lambda text, indented: True)
    assert "x <" in [s.mutation.replacement for s in bugs.file_sites("pkg/mod.py", SRC) if s.function == "clamp"]
