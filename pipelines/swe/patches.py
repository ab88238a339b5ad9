"""Unified diffs: split by file, classify test files, apply to an exported tree (no .git needed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

FILE_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.M)
TEST_PATH_RE = re.compile(r"(^|/)(tests?|testing|e2e)(/|$)|(^|/)test_[^/]*\.py$|_tests?\.py$|(^|/)conftest\.py$")
# files that change how tests run rather than what the code does: never taken from an agent's diff
HARNESS_FILES = {"conftest.py", "sitecustomize.py", "usercustomize.py", "pytest.ini", "tox.ini", "setup.cfg",
                 "pyproject.toml", ".pytest.ini", "noxfile.py"}
NON_TEST_EXTS = (".json", ".png", ".csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml",
                 ".rst", ".cfg", ".ini")


class PatchError(RuntimeError):
    pass


def split_diff(diff: str) -> list[tuple[str, str]]:
    """[(path, text of that file's diff)] in order. Paths are the b/ side (a/ side for deletions)."""
    starts = [m for m in FILE_HEADER.finditer(diff)]
    out = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(diff)
        text = diff[m.start():end]
        path = m.group(2)
        if "\n+++ /dev/null" in text:
            path = m.group(1)
        out.append((path, text if text.endswith("\n") else text + "\n"))
    return out


def diff_paths(diff: str) -> list[str]:
    return [p for p, _ in split_diff(diff)]


def is_test_path(path: str) -> bool:
    """SWE-bench's split (path mentions test/tests/testing/e2e) plus test_*.py/*_test.py/conftest.py."""
    return bool(TEST_PATH_RE.search(path)) or any(w in path.split("/")[:-1] for w in ("test", "tests", "testing"))


def is_harness_path(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name in HARNESS_FILES or name.endswith(".pth")


def test_directives(test_patch: str) -> list[str]:
    """Test files to run for an instance: files the test patch touches, minus data files (SWE-bench)."""
    return [p for p, text in split_diff(test_patch)
            if not p.endswith(NON_TEST_EXTS) and "\n+++ /dev/null" not in text]


test_directives.__test__ = False  # not a pytest test


def split_patch(diff: str) -> tuple[str, str]:
    """(source part, test part), the SWE-bench collector's rule."""
    src, tst = [], []
    for path, text in split_diff(diff):
        (tst if is_test_path(path) else src).append(text)
    return "".join(src), "".join(tst)


def sanitize_model_patch(diff: str) -> tuple[str, list[str]]:
    """Keep only the agent's source changes: drop every file that is a test file or changes the test harness
    (conftest.py, sitecustomize.py, *.pth, pytest/tox/setup.cfg/pyproject config). Returns (kept, dropped)."""
    kept, dropped = [], []
    for path, text in split_diff(diff):
        if is_test_path(path) or is_harness_path(path):
            dropped.append(path)
        else:
            kept.append(text)
    return "".join(kept), dropped


def apply_patch(tree: Path, patch: str, *, what: str = "patch") -> None:
    """Apply ``patch`` to ``tree``: ``git apply`` then ``patch --fuzz=5`` (SWE-bench's chain)."""
    if not patch.strip():
        return
    data = patch if patch.endswith("\n") else patch + "\n"
    tries = (["git", "apply", "--whitespace=nowarn", "-"], ["patch", "--batch", "--forward", "--fuzz=5", "-p1", "--no-backup-if-mismatch", "-r", "-"])
    errors = []
    for argv in tries:
        proc = subprocess.run(argv, input=data, cwd=tree, capture_output=True, text=True)
        if proc.returncode == 0:
            return
        errors.append(f"{argv[0]}: {(proc.stderr or proc.stdout).strip()[-300:]}")
        if argv[0] == "patch":
            break
    raise PatchError(f"{what} does not apply: " + " | ".join(errors))


def reverse_patch(tree_before: Path, tree_after: Path) -> str:
    """``git diff --no-index`` between two trees, with a/ b/ paths relative to the trees."""
    proc = subprocess.run(["git", "diff", "--no-index", "--no-color", "--src-prefix=a/", "--dst-prefix=b/",
                           str(tree_before), str(tree_after)], capture_output=True, text=True)
    out = proc.stdout
    for t in (str(tree_before).rstrip("/"), str(tree_after).rstrip("/")):
        out = out.replace(f"a{t}/", "a/").replace(f"b{t}/", "b/")
    return out


def file_diff(path: str, old: str, new: str) -> str:
    """A git-style unified diff of one file's text change."""
    import difflib

    lines = list(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                      f"a/{path}", f"b/{path}", n=3))
    if not lines:
        return ""
    body = "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)
    return f"diff --git a/{path} b/{path}\n" + body
