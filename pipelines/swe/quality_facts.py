"""What the quality labels of an SWE instance are decided from (:mod:`crucible.pipelines.swe.quality`): the reference
fix's files, lines and names (:func:`parse_fix`), the F2P tests' sources (:func:`test_sources`: the test patch's
new side first, then the repo at the base commit), the names a statement mentions (:func:`statement_symbols`),
and the one I/O, a reader of the repo's files at the base commit from the local git the validation used
(:func:`repo_reader`)."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import unidiff

from crucible.pipelines.swe.patches import is_test_path

Reader = Callable[[str], "str | None"]  # repo-relative path -> text at the base commit (None: not there)
DEFINED = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)|^(\w+)\s*(?::[^=]*)?=(?!=)")
WORD = re.compile(r"[A-Za-z_]\w*")


@dataclass
class Fix:
    """What the reference patch changes: files (source, test), lines, the names it touches or adds."""

    source_files: list[str] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    lines: int = 0
    hunks: int = 0
    touched: set[str] = field(default_factory=set)  # defs enclosing a changed line (and the defs changed)
    added: set[str] = field(default_factory=set)  # names defined on added lines, never on removed ones
    nearby: set[str] = field(default_factory=set)  # names defined anywhere in the touched source modules


# ---------------------------------------------------------------- diffs and sources

def _patchset(diff: str):
    if not (diff or "").strip():
        return []
    try:
        return list(unidiff.PatchSet(re.findall(r"[^\n]*\n|[^\n]+$", diff if diff.endswith("\n") else diff + "\n")))
    except unidiff.UnidiffParseError:
        return []


def _path(pf) -> str:
    name = pf.target_file if pf.target_file and pf.target_file != "/dev/null" else pf.source_file
    return name[2:] if name.startswith(("a/", "b/")) else name


def _defined(text: str) -> str | None:
    m = DEFINED.match(text)
    return (m.group(1) or m.group(2)) if m else None


def _module_defs(text: str | None) -> dict[str, list[tuple[int, int]]]:
    """name -> (first, last) line ranges of each def/class of a module (empty when it does not parse)."""
    out: dict[str, list[tuple[int, int]]] = {}
    try:
        tree = ast.parse(text or "")
    except (SyntaxError, ValueError):
        return out
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.setdefault(node.name, []).append((node.lineno, node.end_lineno or node.lineno))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.col_offset == 0:
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append((node.lineno, node.end_lineno or node.lineno))
    return out


def parse_fix(patch: str, read: Reader | None = None) -> Fix:
    """:class:`Fix` of a reference patch; ``read``: the touched modules at the base commit (enclosing defs by
    line, names defined there)."""
    fix = Fix()
    for pf in _patchset(patch):
        path = _path(pf)
        if is_test_path(path):
            fix.test_files.append(path)
            continue
        fix.source_files.append(path)
        defs = _module_defs(read(path)) if read and path.endswith(".py") else {}
        stem = Path(path).stem
        fix.nearby |= set(defs) | {Path(path).parent.name if stem == "__init__" else stem}
        _scan_file(pf, defs, fix)
    fix.nearby |= fix.touched
    return fix


def _scan_file(pf, defs: Mapping[str, list[tuple[int, int]]], fix: Fix) -> None:
    """Count one source file's changed lines and hunks; the defs enclosing each changed line (by the base
    module's line ranges when read, else the last def seen in the hunk or its header) are touched; names
    defined on added lines only (not in the base module) are added."""
    add, other = set(), set()
    for h in pf:
        fix.hunks += 1
        current = _defined(h.section_header.replace("async ", "")) if h.section_header else None
        last = h.source_start  # an added line sits after the last base line seen
        for ln in h:
            last = ln.source_line_no or last
            name = _defined(ln.value)
            if name:
                (add if ln.is_added else other).add(name)
                if re.match(r"\s*(async\s+)?(def|class)\b", ln.value):
                    current = name
            if not (ln.is_added or ln.is_removed):
                continue
            fix.lines += 1
            enclosing = [n for n, spans in defs.items() if any(a <= last <= b for a, b in spans)]
            fix.touched.update(enclosing or ([current] if current else []))
            if name and ln.is_removed:
                fix.touched.add(name)
    fix.nearby |= add | other
    fix.added |= add - other - set(defs)
    fix.touched |= add - other - set(defs)


def split_test_id(test_id: str) -> tuple[str | None, str]:
    """(file path or None, function name) of a pytest-style id (``path::Class::name[param]``), of a
    unittest-style one (``name (module.Class)``: the module's path) or of a bare name (sympy's ``test_x``)."""
    if "::" in test_id:
        path, *rest = test_id.split("::")
        return path, re.sub(r"\[.*$", "", rest[-1]) if rest else ""
    m = re.match(r"(\w+) \(([\w.]+)\.\w+\)", test_id)
    if m:
        return m.group(2).replace(".", "/") + ".py", m.group(1)
    return None, re.sub(r"\[.*$", "", test_id)


def def_block(text: str, name: str) -> str | None:
    """The source of ``def name`` in ``text`` (a module or a hunk's lines): the def line and the lines indented
    deeper than it."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(rf"(\s*)(?:async\s+)?def\s+{re.escape(name)}\s*\(", line)
        if not m:
            continue
        indent, body = len(m.group(1)), [line]
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent and not nxt.lstrip().startswith((")", "]")):
                break
            body.append(nxt)
        return "\n".join(body)
    return None


def test_sources(f2p: Iterable[str], test_patch: str, read: Reader | None) -> dict[str, str | None]:
    """F2P id -> its function's source, followed by the functions of the same text it calls (one level: a
    test's own helpers, e.g. one that opens a socket): the test patch's new side first, then the file at the
    base commit."""
    new_side: dict[str, list[str]] = {}
    for pf in _patchset(test_patch):
        new_side[_path(pf)] = ["\n".join(ln.value.rstrip("\n") for ln in h if not ln.is_removed) for h in pf]
    out: dict[str, str | None] = {}
    for t in f2p:
        path, name = split_test_id(t)
        # a bare name: any file of the test patch; a unittest module: also under tests/ (Django's layout)
        paths = [path, f"tests/{path}"] if path else list(new_side)
        texts = [c for p in paths for c in new_side.get(p, [])] if name else []
        if name and path and read is not None:
            texts += [read(p) or "" for p in paths]
            texts += [read(p) or "" for p in _imported(path, "\n".join(texts))]  # a mixin's test methods
        out[t] = next((_with_helpers(text, b, name) for text in texts if (b := def_block(text, name))), None)
    return out


def _imported(path: str, text: str) -> list[str]:
    """Files a test file imports from (``from . import X``, ``from .m import X``, ``from tests.m import X``),
    where a class it derives from may define the test methods (cachetools' ``CacheTestMixin``)."""
    here, out = Path(path).parent, []
    for dots, mod in re.findall(r"^\s*from\s+(\.*)([\w.]*)\s+import\b", text, re.M):
        base = here
        for _ in range(max(len(dots) - 1, 0)):
            base = base.parent
        rel = (base if dots else Path()) / Path(*mod.split(".")) if mod else base
        out += [f"{rel.as_posix()}.py", f"{rel.as_posix()}/__init__.py"]

    return [p for p in dict.fromkeys(out) if p != path and not p.startswith(("/", ".")) and is_test_path(p)]


def _with_helpers(text: str, block: str, name: str) -> str:
    called = sorted(set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", block)) - {name})
    return "\n".join([block, *(h for c in called if (h := def_block(text, c)))])


def statement_symbols(text: str) -> set[str]:
    """Names a problem statement mentions as code: backticked, called (``name(``), dotted, or with an
    underscore or an inner capital (each dotted part too)."""
    text = text or ""
    found = set(re.findall(r"`([^`\n]{1,80})`", text))
    found |= set(re.findall(r"\b([A-Za-z_][\w.]*)\(", text))  # "x(", never "the value (as documented)"
    found |= set(re.findall(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b", text))
    found |= {w for w in WORD.findall(text) if "_" in w.strip("_") or re.search(r"[a-z][A-Z]", w)}
    return {p for s in found for p in WORD.findall(s)}


# ---------------------------------------------------------------- the repo at the base commit

def repo_reader(workdir: Path | str | None, repo: str, commit: str) -> Reader | None:
    """Files of ``repo`` at ``commit`` from the local git the validation used (the bare mirror of a sdist,
    then the cached clones under ``<workdir>/git``), by ``git show``; None when none has the commit."""
    if workdir is None or "/" not in repo:
        return None
    owner, name = repo.split("/", 1)
    wd = Path(workdir)
    dirs = [wd / "mirrors" / owner / f"{name}.git", *sorted((wd / "git").glob(f"*/{owner}__{name}"))]
    for d in dirs:
        if d.is_dir() and subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=d,
                                         capture_output=True).returncode == 0:
            return _git_reader(d, commit)
    return None


def _git_reader(gitdir: Path, commit: str) -> Reader:
    cache: dict[str, str | None] = {}

    def read(path: str) -> str | None:
        if path not in cache:
            ok = bool(path) and not path.startswith(("/", "-")) and ".." not in path.split("/")
            p = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=gitdir, capture_output=True) if ok else None
            cache[path] = p.stdout.decode(errors="replace") if p is not None and p.returncode == 0 else None
        return cache[path]
    return read
