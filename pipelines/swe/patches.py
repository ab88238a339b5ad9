"""Unified diffs: split by file, classify test and harness files, check what a patch touches, apply it to an
exported tree (no .git needed).

Two readers. :func:`split_diff` is a lenient splitter on ``diff --git`` headers, for classifying crawled PR
diffs. :func:`parse_diff` is the strict one used before anything is applied or read: ``unidiff`` parses the
blocks, every block must be a ``diff --git`` block whose header names the same paths as its ``---``/``+++``
lines, every path is a plain relative path, and ``git apply --numstat`` (the applier itself) must report
exactly the same files. A patch that fails any check raises :class:`PatchError` naming the path."""

from __future__ import annotations

import difflib
import posixpath
import re
import subprocess
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import unidiff

FILE_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.M)
TEST_PATH_RE = re.compile(r"(^|/)(tests?|testing|e2e)(/|$)|(^|/)test_[^/]*\.py$|_tests?\.py$|(^|/)conftest\.py$")
# files that change how tests run rather than what the code does: never taken from an agent's diff
HARNESS_FILES = {"conftest.py", "sitecustomize.py", "usercustomize.py", "pytest.ini", "tox.ini", "setup.cfg",
                 "pyproject.toml", ".pytest.ini", "noxfile.py", "setup.py", "pytest.toml", ".pytest.toml",
                 "pyvenv.cfg", "pytest.py", "py.py"}
# directories whose contents are packaging metadata (entry points: pytest plugins) or shadow the test runner
HARNESS_DIR_SUFFIXES = (".dist-info", ".egg-info", ".egg-link")
HARNESS_TOP_DIRS = {"pytest", "_pytest", "pluggy", "py", "sitecustomize", "usercustomize"}
NON_TEST_EXTS = (".json", ".png", ".csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml",
                 ".rst", ".cfg", ".ini")


class PatchError(RuntimeError):
    pass


class DropReason(str, Enum):
    """Why a file of an agent's diff was not applied."""
    TEST_FILE = "test_file"
    HARNESS_FILE = "harness_file"
    SYMLINK = "symlink"
    MODE_CHANGE = "mode_change"


@dataclass(frozen=True)
class FileDiff:
    """One ``diff --git`` block: ``path`` after the change (before it, for a deletion), ``old_path`` the
    source side (differs on renames/copies), modes as the block states them."""
    path: str
    old_path: str
    text: str
    added: bool = False
    deleted: bool = False
    old_mode: str | None = None
    new_mode: str | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path,) if self.old_path == self.path else (self.old_path, self.path)

    @property
    def symlink(self) -> bool:
        return "120000" in (self.old_mode, self.new_mode) or "160000" in (self.old_mode, self.new_mode)

    @property
    def mode_change(self) -> bool:
        return not self.added and not self.deleted and self.old_mode != self.new_mode


def split_diff(diff: str) -> list[tuple[str, str]]:
    """Lenient: [(path, text of that file's diff)] split on ``diff --git`` headers, b/ side (a/ side for
    deletions). For classifying crawled diffs only; nothing is applied or read by these paths."""
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


def safe_relpath(path: str, *, what: str = "patch") -> str:
    """``path`` if it is a plain relative POSIX path inside a tree (no ``..``, not absolute, no ``.git``,
    normalised, printable); else PatchError naming it."""
    bad = (not path or path.startswith("/") or "\\" in path or any(ord(c) < 32 for c in path)
           or posixpath.normpath(path) != path or any(p in ("..", ".", ".git") for p in path.split("/")))
    if bad:
        raise PatchError(f"{what}: unsafe path {path!r} (must be a relative path inside the tree, no '..')")
    return path


def resolve_inside(tree: Path, path: str, *, what: str = "patch") -> Path:
    """The file ``path`` of ``tree``, checked to stay inside it after following symlinks."""
    root = Path(tree).resolve()
    full = (root / safe_relpath(path, what=what)).resolve()
    if full != root and root not in full.parents:
        raise PatchError(f"{what}: path {path!r} resolves outside the tree ({full})")
    return full


def _header_paths(line: str, info: str) -> tuple[str, str]:
    """(a path, b path) of a ``diff --git`` header; renames/copies name theirs on their own lines."""
    ren = re.search(r"^(?:rename|copy) from (.+)$", info, re.M), re.search(r"^(?:rename|copy) to (.+)$", info, re.M)
    if ren[0] and ren[1]:
        return ren[0].group(1), ren[1].group(1)
    rest = line[len("diff --git "):]
    if '"' in rest:
        raise PatchError(f"patch: quoted path in {line!r} (unusual characters); not accepted")
    half = (len(rest) - 1) // 2
    a, b = rest[:half], rest[half + 1:]
    if len(rest) % 2 == 0 or rest[half] != " " or not a.startswith("a/") or not b.startswith("b/") or a[2:] != b[2:]:
        raise PatchError(f"patch: cannot read the paths of {line!r}")
    return a[2:], b[2:]


def _side(name: str | None, prefix: str) -> str | None:
    if name is None or name == "/dev/null":
        return None
    if not name.startswith(prefix):
        raise PatchError(f"patch: {name!r} lacks the {prefix!r} prefix")
    return name[len(prefix):]


def _mode(info: str, key: str) -> str | None:
    m = re.search(rf"^{key} (\d+)$", info, re.M)
    return m.group(1) if m else None


def parse_diff(diff: str, *, what: str = "patch") -> list[FileDiff]:
    """Strict parse (see the module doc). Raises PatchError naming the offending path."""
    if not diff.strip():
        return []
    text = diff if diff.endswith("\n") else diff + "\n"
    if "GIT binary patch" in text or re.search(r"^Binary files .* differ$", text, re.M):
        raise PatchError(f"{what}: binary file changes are not accepted")
    for line in text.splitlines():  # every path named anywhere must be safe, whatever the parser makes of it
        if line.startswith("diff --git ") and re.search(r"(^|[ /])\.\.(/| |$)|^/| [ab]//", line[11:]):
            raise PatchError(f"{what}: unsafe path in {line!r} (must be a relative path inside the tree, no '..')")
        elif line.startswith(("--- a/", "+++ b/")):
            safe_relpath(line[6:].split("\t", 1)[0].rstrip("\n"), what=what)
    ps = None
    for pad in range(6):  # a diff stripped of trailing whitespace lost its last hunk's blank context lines
        try:
            # lines split on "\n" only: str.splitlines (unidiff's own) also splits on \f, \x1c, \u2028 in code
            ps = unidiff.PatchSet(re.findall(r"[^\n]*\n|[^\n]+$", text + " \n" * pad))
            text += " \n" * pad
            break
        except unidiff.UnidiffParseError as exc:
            if "shorter than expected" not in str(exc) or pad == 5:
                raise PatchError(f"{what}: unreadable diff: {exc}") from exc
    raw = re.split(r"(?m)^(?=diff --git )", text)
    if raw[0].strip() and re.search(r"(?m)^(---|\+\+\+|@@) ", raw[0]):
        raise PatchError(f"{what}: diff lines before the first 'diff --git' header")
    blocks = raw[1:]
    if len(blocks) != len(ps):
        raise PatchError(f"{what}: {len(ps)} file blocks but {len(blocks)} 'diff --git' headers: a block is not "
                         "a 'diff --git' block")
    out = []
    for pf, block in zip(ps, blocks):
        info = str(pf.patch_info or "")
        headers = [ln for ln in info.splitlines() if ln.startswith("diff --git ")]
        if len(headers) != 1 or not block.startswith(headers[0]):
            raise PatchError(f"{what}: the block for {pf.target_file or pf.source_file!r} is not a 'diff --git' block")
        a, b = _header_paths(headers[0], info)
        for p in (a, b):
            safe_relpath(p, what=what)
        src, dst = _side(pf.source_file, "a/"), _side(pf.target_file, "b/")
        if (src is not None and src != a) or (dst is not None and dst != b):
            raise PatchError(f"{what}: header names {a!r}/{b!r} but ---/+++ name {src!r}/{dst!r}")
        new_file, del_file = _mode(info, "new file mode"), _mode(info, "deleted file mode")
        if (src is None and not new_file) or (dst is None and not del_file):
            raise PatchError(f"{what}: {b!r}: ---/+++ create or delete it without git's new/deleted file line")
        idx = re.search(r"^index \S+ (\d{6})$", info, re.M)  # the mode of a file changed in place
        old_mode = del_file or _mode(info, "old mode") or (idx.group(1) if idx else None)
        new_mode = new_file or _mode(info, "new mode") or (idx.group(1) if idx else None)
        out.append(FileDiff(path=a if del_file else b, old_path=a, text=block, added=bool(new_file),
                            deleted=bool(del_file), old_mode=old_mode, new_mode=new_mode))
    _check_applier(out, what)
    return out


def _check_applier(files: list[FileDiff], what: str) -> None:
    """``git apply --numstat -z`` and ``--summary`` on the blocks: the files git would touch must be exactly the
    parsed ones, and git must report no mode or type the parse did not see."""
    text = "".join(f.text for f in files)
    with tempfile.TemporaryDirectory(prefix="crucible-numstat-") as tmp:
        num = subprocess.run(["git", "apply", "--numstat", "-z", "-"], input=text.encode(), cwd=tmp,
                             capture_output=True)
        summ = subprocess.run(["git", "apply", "--summary", "-"], input=text.encode(), cwd=tmp, capture_output=True)
    if num.returncode != 0 or summ.returncode != 0:
        err = (num.stderr or summ.stderr).decode(errors="replace").strip()[-300:]
        raise PatchError(f"{what}: git apply cannot read it: {err}")
    seen = [r.split("\t", 2)[2] for r in num.stdout.decode(errors="replace").split("\0") if r.count("\t") >= 2]
    expected = [f.path if not f.deleted else f.old_path for f in files]
    if sorted(p for p in seen if p) != sorted(expected):
        extra = sorted(set(seen) ^ set(expected))
        raise PatchError(f"{what}: git apply would touch {sorted(seen)}, the diff names {sorted(expected)} "
                         f"(differ on {extra})")
    summary = summ.stdout.decode(errors="replace")
    if ("120000" in summary or "160000" in summary) and not any(f.symlink for f in files):
        raise PatchError(f"{what}: git apply sees a symlink or submodule the parse did not: {summary.strip()[:200]}")
    if "mode change" in summary and not any(f.mode_change for f in files):
        raise PatchError(f"{what}: git apply sees a mode change the parse did not: {summary.strip()[:200]}")


def is_test_path(path: str) -> bool:
    """SWE-bench's split (path mentions test/tests/testing/e2e) plus test_*.py/*_test.py/conftest.py."""
    return bool(TEST_PATH_RE.search(path)) or any(w in path.split("/")[:-1] for w in ("test", "tests", "testing"))


def is_harness_path(path: str, tree: Path | None = None) -> bool:
    """Files that change how tests are found, run or reported: pytest/tox/packaging config, conftest.py,
    site/user customize, ``.pth``, package metadata (``*.dist-info``: entry points autoload pytest plugins),
    ``setup.py`` (run by reinstall recipes), modules shadowing pytest, and the ``__init__.py`` of a test
    package (a directory of ``tree`` holding test files)."""
    parts = path.split("/")
    name = parts[-1]
    if name in HARNESS_FILES or name.endswith(".pth") or name.startswith("__editable__"):
        return True
    if any(p.endswith(HARNESS_DIR_SUFFIXES) for p in parts[:-1]) or name.endswith(HARNESS_DIR_SUFFIXES):
        return True
    if parts[0] in HARNESS_TOP_DIRS and len(parts) > 1 or name in {f"{d}.py" for d in HARNESS_TOP_DIRS}:
        return True
    if name == "__init__.py" and tree is not None:
        d = Path(tree) / posixpath.dirname(path)
        if d.is_dir() and any(is_test_path(f"{posixpath.dirname(path)}/{c.name}".lstrip("/")) and c.suffix == ".py"
                              and c.name != "__init__.py" for c in d.iterdir()):
            return True
    return False


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


def drop_reason(f: FileDiff, tree: Path | None = None) -> DropReason | None:
    """Why this block of an agent's diff is not applied (None: applied)."""
    if f.symlink:
        return DropReason.SYMLINK
    if f.mode_change:
        return DropReason.MODE_CHANGE
    paths = list(f.paths)
    if tree is not None:  # a path reaching through a symlink of the tree is judged by where it lands too
        root = Path(tree).resolve()
        paths += [str(resolve_inside(tree, p, what="model patch").relative_to(root)) for p in f.paths]
    if any(is_harness_path(p, tree) for p in paths):
        return DropReason.HARNESS_FILE
    if any(is_test_path(p) for p in paths):
        return DropReason.TEST_FILE
    return None


def sanitize_model_patch(diff: str, tree: Path | None = None, *, checks: frozenset[str] | None = None
                         ) -> tuple[str, list[dict]]:
    """Keep only the agent's source changes. Returns (kept diff, [{path, reason}] for each dropped file).
    Raises PatchError for a diff that is not plainly a git diff of files inside the tree (stray blocks,
    header/---/+++ mismatch, unsafe paths, applier disagreement): such a patch is rejected whole."""
    kept, dropped = [], []
    for f in parse_diff(diff, what="model patch"):
        reason = drop_reason(f, tree)
        if reason is None:
            kept.append(f.text)
        else:
            dropped.append({"path": f.path, "reason": reason.value})
    return "".join(kept), dropped


def check_patch(tree: Path, patch: str, *, what: str = "patch") -> list[FileDiff]:
    """Strict parse plus: every path stays inside ``tree``; no symlinks or submodules."""
    files = parse_diff(patch, what=what)
    for f in files:
        if f.symlink:
            raise PatchError(f"{what}: {f.path!r} is a symlink or submodule; not accepted")
        for p in f.paths:
            resolve_inside(tree, p, what=what)
    return files


def apply_patch(tree: Path, patch: str, *, what: str = "patch", strict: bool = True) -> None:
    """Apply ``patch`` to ``tree`` after :func:`check_patch`: ``git apply`` then ``patch --fuzz=5``
    (SWE-bench's chain). ``strict=False`` skips the checks (tests of what they stop)."""
    if not patch.strip():
        return
    if strict:
        check_patch(tree, patch, what=what)
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


def file_diff(path: str, old: str, new: str) -> str:
    """A git-style unified diff of one file's text change."""
    lines = list(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                      f"a/{path}", f"b/{path}", n=3))
    if not lines:
        return ""
    body = "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)
    return f"diff --git a/{path} b/{path}\n" + body
