"""Procedural bug injection (SWE-smith style) on functions of a real repo.

Pure part: :func:`mutations` lists every single-site edit of one function's source (flip a comparison or an
operator, negate or remove an ``if``, remove a statement, off-by-one on an int constant, swap two call
arguments); :func:`apply_mutation` splices the edit into the file text so the diff stays minimal (only the
mutated expression or statement changes); :func:`candidates` picks a deterministic sample across a repo.

:func:`inject` commits each candidate on the sdist's local mirror as an instance; validation
(:func:`crucible.pipelines.swe.validate.validate_bug_group`, through the same ``ValidateEnvs`` as every other row)
runs the clean suite once per env, then each candidate's buggy tree; a candidate is valid only if some tests
go pass -> fail (those are FAIL_TO_PASS; the fix is the reverse patch; tests passing both ways are
PASS_TO_PASS).
"""

from __future__ import annotations

import ast
import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crucible.pipelines.store.commit import stable_hash
from crucible.pipelines.swe.labels import compute_labels
from crucible.pipelines.swe.mirror import commit_patch, diff_commits, ensure_bare_mirror
from crucible.pipelines.swe.patches import PatchError, file_diff, is_test_path
from crucible.pipelines.swe.records import SWEInstance

COMPARE_FLIP = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
BINOP_FLIP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
              ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
OPERATORS = ("flip_comparison", "flip_operator", "flip_boolop", "negate_if", "remove_branch",
             "remove_statement", "off_by_one", "swap_arguments")


@dataclass(frozen=True)
class Mutation:
    operator: str
    start: tuple[int, int]  # (line, col) 1-based line, byte col; same convention as ast
    end: tuple[int, int]
    replacement: str
    lineno: int
    whole_lines: bool = False  # replace full lines start..end (statements)


@dataclass(frozen=True)
class BugCandidate:
    path: str
    function: str
    operator: str
    lineno: int
    diff: str

    @property
    def key(self) -> str:
        return stable_hash(self.path, self.function, self.diff, n=10)


def _seg(node) -> tuple[tuple[int, int], tuple[int, int]]:
    return (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)


def _expr(op, node, new) -> Mutation:
    s, e = _seg(node)
    return Mutation(op, s, e, ast.unparse(new), node.lineno)


def _is_docstring(stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _blocks(fn) -> Iterator[list]:
    for node in ast.walk(fn):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield block


def mutations(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> list[Mutation]:
    """Every single-site mutation of one function (positions refer to the file the node came from)."""
    out: list[Mutation] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARE_FLIP:
            new = copy.deepcopy(node)
            new.ops = [COMPARE_FLIP[type(node.ops[0])]()]
            out.append(_expr("flip_comparison", node, new))
        elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_FLIP:
            if isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr)):
                continue  # "%s" % x is string formatting
            new = copy.deepcopy(node)
            new.op = BINOP_FLIP[type(node.op)]()
            out.append(_expr("flip_operator", node, new))
        elif isinstance(node, ast.BoolOp):
            new = copy.deepcopy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            out.append(_expr("flip_boolop", node, new))
        elif isinstance(node, ast.If):
            out.append(_expr("negate_if", node.test, ast.UnaryOp(ast.Not(), copy.deepcopy(node.test))))
        elif (isinstance(node, ast.Constant) and type(node.value) is int and not isinstance(node.value, bool)
              and abs(node.value) <= 2):
            out.append(_expr("off_by_one", node, ast.Constant(node.value + 1)))
        elif (isinstance(node, ast.Call) and len(node.args) >= 2
              and not any(isinstance(a, ast.Starred) for a in node.args[:2])):
            new = copy.deepcopy(node)
            new.args[0], new.args[1] = new.args[1], new.args[0]
            if ast.unparse(new.args[0]) != ast.unparse(new.args[1]):
                out.append(_expr("swap_arguments", node, new))
    for block in _blocks(fn):
        real = [s for s in block if not _is_docstring(s)]
        for stmt in real:
            removable = isinstance(stmt, (ast.Assign, ast.AugAssign, ast.Expr, ast.If)) and len(real) >= 2
            if not removable or (isinstance(stmt, ast.If) and stmt.orelse):
                continue
            op = "remove_branch" if isinstance(stmt, ast.If) else "remove_statement"
            out.append(Mutation(op, (stmt.lineno, 0), (stmt.end_lineno, 0), "", stmt.lineno, whole_lines=True))
    return out


def apply_mutation(source: str, m: Mutation) -> str:
    """The file text with ``m`` spliced in (columns are UTF-8 byte offsets, as ast reports them)."""
    lines = source.splitlines(keepends=True)
    if m.whole_lines:
        return "".join(lines[: m.start[0] - 1] + lines[m.end[0]:])
    b = [ln.encode() for ln in lines]
    (l1, c1), (l2, c2) = m.start, m.end
    head = b"".join(b[: l1 - 1]) + b[l1 - 1][:c1]
    tail = b[l2 - 1][c2:] + b"".join(b[l2:])
    # a multi-line expression collapses to one line; callers re-parse the result and drop it if invalid
    return (head + m.replacement.encode() + tail).decode()


def functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef]]:
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            out += [(f"{node.name}.{n.name}", n) for n in node.body
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return out


@dataclass(frozen=True)
class Site:
    """One valid mutation of one function, before its diff is made (most sites are never picked)."""

    path: str
    function: str
    mutation: Mutation

    def candidate(self, source: str) -> BugCandidate:
        m = self.mutation
        return BugCandidate(self.path, self.function, m.operator, m.lineno,
                            file_diff(self.path, source, apply_mutation(source, m)))


def _shifted(m: Mutation, first: int) -> Mutation:
    """``m`` with its lines counted from line ``first`` of the file (the function's own text)."""
    return Mutation(m.operator, (m.start[0] - first + 1, m.start[1]), (m.end[0] - first + 1, m.end[1]),
                    m.replacement, m.lineno, m.whole_lines)


def _parses(text: str, indented: bool) -> bool:
    """Whether one function's text parses; a method's (indented) inside a class header. The function is whole
    statements, and every edit keeps brackets and strings balanced, so the file around it parses as before:
    the file parses with the edit exactly when the function does."""
    try:
        ast.parse("class _:\n" + text if indented else text)
    except SyntaxError:
        return False
    return True


def file_sites(path: str, source: str, *, min_statements: int = 2) -> list[Site]:
    """Every valid mutation of every function of one file (edits that change nothing, repeat another or do
    not parse dropped). Only the mutated function's text is re-parsed, not the whole file."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines(keepends=True)
    out = []
    for name, fn in functions(tree):
        body = [s for s in fn.body if not _is_docstring(s)]
        if sum(1 for _ in ast.walk(fn) if isinstance(_, ast.stmt)) - 1 < min_statements or not body:
            continue
        first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
        text = "".join(lines[first - 1:fn.end_lineno])
        indented = text[:1].isspace()
        if not _parses(text, indented):  # cannot happen for a function of a parsed file; the whole file then
            text, first, indented = source, 1, False
        seen = set()
        for m in mutations(fn, lines):
            new = apply_mutation(text, _shifted(m, first))
            if new == text or new in seen or not _parses(new, indented):
                continue
            seen.add(new)
            out.append(Site(path, name, m))
    return out


def file_candidates(path: str, source: str, *, min_statements: int = 2) -> list[BugCandidate]:
    """Every valid mutation of every function of one file, as diffs (unparseable results dropped)."""
    return [s.candidate(source) for s in file_sites(path, source, min_statements=min_statements)]


def source_files(tree: Path, include: list[str] | None = None) -> list[str]:
    """Package .py files of a repo (no tests, docs, setup, examples), sorted."""
    skip = ("setup.py", "conftest.py", "versioneer.py", "_version.py")
    out = []
    for p in sorted(Path(tree).rglob("*.py")):
        rel = p.relative_to(tree).as_posix()
        if is_test_path(rel) or p.name in skip or rel.split("/")[0] in ("docs", "doc", "examples", "benchmarks",
                                                                         "bench", "build", "scripts"):
            continue
        if include and not any(rel.startswith(i) for i in include):
            continue
        out.append(rel)
    return out


def candidates(tree: Path, *, seed: int = 0, max_candidates: int = 20, per_function: int = 1,
               operators: tuple[str, ...] = OPERATORS, include: list[str] | None = None) -> list[BugCandidate]:
    """A deterministic sample: at most ``per_function`` mutations per function, operators balanced. Diffs are
    made for the picked sites only."""
    rng = random.Random(seed)
    pool: dict[str, list[Site]] = {}
    sources: dict[str, str] = {}
    for rel in source_files(tree, include):
        sources[rel] = (Path(tree) / rel).read_text(encoding="utf-8", errors="replace")
        for site in file_sites(rel, sources[rel]):
            if site.mutation.operator in operators:
                pool.setdefault(f"{site.path}::{site.function}", []).append(site)
    picked = []
    for key in sorted(pool):
        opts = pool[key]
        rng.shuffle(opts)
        picked += opts[:per_function]
    rng.shuffle(picked)
    return [site.candidate(sources[site.path]) for site in picked[:max_candidates]]


# ---------------------------------------------------------------- validation in Docker

def tests_for(tree: Path, function: str, test_paths: list[str]) -> list[str] | None:
    """Test files mentioning the mutated function's name (None = run everything)."""
    name = function.rsplit(".", 1)[-1]
    hits = []
    for tp in test_paths:
        base = Path(tree) / tp
        files = [base] if base.is_file() else sorted(base.rglob("test*.py")) + sorted(base.rglob("*_test.py"))
        for f in files:
            try:
                if name in f.read_text(encoding="utf-8", errors="replace"):
                    hits.append(f.relative_to(tree).as_posix())
            except OSError:
                continue
    return sorted(set(hits)) or None


def bug_labels(clean: dict[str, str], buggy: dict[str, str], selection: list[str] | None, *,
               allow_absent: bool = False) -> dict:
    """F2P = pass clean and fail with the bug; P2P = pass both (within the files that ran). A test absent
    from the buggy run counts as failing only if ``allow_absent`` (the buggy run crashed at collection):
    otherwise it is an id that changes between runs (e.g. parametrized with the current time), not a bug."""
    if selection:
        clean = {t: s for t, s in clean.items() if t.split("::", 1)[0] in selection}
    if not allow_absent:
        clean = {t: s for t, s in clean.items() if t in buggy}
    return compute_labels(buggy, clean)


def bug_instance_id(repo: str, cand: BugCandidate) -> str:
    owner, name = repo.split("/", 1)
    return f"{owner}__{name}.inj-{cand.key}"


def inject(checkout, repo: str, mirror_root: Path, cands: list[BugCandidate], *, source_ref: str | None = None,
           done: frozenset[str] = frozenset()) -> tuple[list, list[tuple[str, str]]]:
    """Candidates as instances, validated by :func:`crucible.pipelines.swe.validate.validate_env_group` like every other
    row: each bug committed on the sdist's local mirror (``base_commit``), the fix its reverse (``patch``), the
    clean sdist the env commit (``environment_setup_commit``), so a sdist's candidates are one env. Returns
    (instances, [(instance id, why) of bugs that do not apply]); ids in ``done`` are skipped first."""
    todo = [c for c in cands if bug_instance_id(repo, c) not in done]
    if not todo:
        return [], []
    mirror = ensure_bare_mirror(checkout.path, mirror_root, repo)
    out, broken = [], []
    for cand in todo:
        iid = bug_instance_id(repo, cand)
        try:
            sha = commit_patch(mirror, checkout.commit, cand.diff, f"{iid}: {cand.operator} in {cand.function}",
                               f"crucible/{iid}")
        except PatchError as exc:
            broken.append((iid, f"bug_apply: {exc}"[:1000]))
            continue
        out.append(SWEInstance(instance_id=iid, repo=repo, base_commit=sha,
                               patch=diff_commits(mirror, sha, checkout.commit), test_patch="",
                               environment_setup_commit=checkout.commit, source="injected", source_ref=source_ref,
                               bug_operator=cand.operator,
                               meta={"function": cand.function, "path": cand.path, "bug_diff": cand.diff}))
    return out, broken
