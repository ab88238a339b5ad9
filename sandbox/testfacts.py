"""Where a repo's tests are and what its pytest configuration says (``python_files``, ``testpaths``,
``addopts``), with pytest's own precedence: pytest.ini, pyproject.toml ``[tool.pytest.ini_options]``, tox.ini
``[pytest]``, setup.cfg ``[tool:pytest]``. Pure, no network; also the tolerant readers every repo fact uses
(:func:`file_text`, :func:`ini_section`).
"""

from __future__ import annotations

import configparser
import fnmatch
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
SKIP_PARTS = (".git", ".tox", ".venv", "node_modules", "build")


def file_text(p: Path) -> str:
    """The file's text ("" when it is missing or a folder; undecodable bytes replaced)."""
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return ""


def ini_section(text: str, section: str) -> dict | None:
    """The keys of ``[section]`` of INI ``text`` (None: no such section, or not INI)."""
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(text)
    except configparser.Error:
        return None
    return dict(cp[section]) if cp.has_section(section) else None


def _split(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value or "").split()


def pytest_config(repo: Path) -> dict:
    """The repo's pytest configuration, with pytest's precedence (the first file that has a section wins):
    ``{"file": name or None, "python_files": [...], "testpaths": [...], "addopts": [...]}``."""
    empty = {"file": None, "python_files": [], "testpaths": [], "addopts": []}
    candidates = (("pytest.ini", "pytest"), (".pytest.ini", "pytest"), ("pyproject.toml", None),
                  ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest"))
    for name, section in candidates:
        text = file_text(repo / name)
        if not text:
            continue
        if section is None:
            try:
                opts = tomllib.loads(text).get("tool", {}).get("pytest", {}).get("ini_options")
            except tomllib.TOMLDecodeError:
                opts = None
        else:
            opts = ini_section(text, section)
            if opts is None and name.endswith("pytest.ini"):
                opts = {}  # pytest.ini wins even when empty
        if opts is None:
            continue
        return {"file": name, "python_files": _split(opts.get("python_files")),
                "testpaths": _split(opts.get("testpaths")), "addopts": _split(opts.get("addopts"))}
    return empty


def pytest_ini_keys(repo: Path, file: str | None) -> list[str]:
    """Every key of the pytest section of ``file`` (the one :func:`pytest_config` chose)."""
    if not file:
        return []
    text = file_text(repo / file)
    if file == "pyproject.toml":
        try:
            return list(tomllib.loads(text).get("tool", {}).get("pytest", {}).get("ini_options", {}) or {})
        except tomllib.TOMLDecodeError:
            return []
    section = {"setup.cfg": "tool:pytest"}.get(file, "pytest")
    return list(ini_section(text, section) or {})


def find_test_files(repo: Path, limit: int = 10000, patterns: tuple[str, ...] | None = None,
                    roots: tuple[str, ...] = ()) -> list[str]:
    """Test files by pytest's ``python_files`` globs (default ``test_*.py``, ``*_test.py``; the repo's
    configuration when ``patterns`` is None), under ``roots`` (its ``testpaths``) when given."""
    if patterns is None:
        cfg = pytest_config(repo)
        patterns = tuple(cfg["python_files"]) or DEFAULT_PYTHON_FILES
        roots = roots or tuple(cfg["testpaths"])
    found = _match_files(repo, patterns, roots, limit)
    if found or patterns != DEFAULT_PYTHON_FILES:
        return found
    # no test_*.py anywhere: a module named test.py / tests.py (top level or in a package) that defines
    # tests; pytest collects a file named on its command line whatever python_files says
    return sorted(f for f in _match_files(repo, ("test.py", "tests.py"), roots, limit)
                  if f.count("/") <= 1 and re.search(r"(?m)^\s*(def test|class \w+\(.*TestCase)", file_text(repo / f)))


def _match_files(repo: Path, patterns: tuple[str, ...], roots: tuple[str, ...], limit: int) -> list[str]:
    bases = [repo / r for r in roots if (repo / r).exists()] or [repo]
    out: set[str] = set()
    for base in bases:
        for p in ([base] if base.is_file() else base.rglob("*.py")):
            rel = p.relative_to(repo).as_posix()
            if any(part in SKIP_PARTS for part in p.relative_to(repo).parts):
                continue
            if any(fnmatch.fnmatch(p.name, pat) for pat in patterns):
                out.add(rel)
                if len(out) >= limit:
                    return sorted(out)
    return sorted(out)


def pytest_configured(repo: Path) -> tuple[bool, bool]:
    """(pytest is configured or mentioned, config declares testpaths)."""
    cfg = pytest_config(repo)
    texts = [file_text(repo / f) for f in ("pytest.ini", "setup.cfg", "tox.ini", "pyproject.toml", "setup.py",
                                       "noxfile.py")]
    mentioned = cfg["file"] is not None or any((repo / d / "conftest.py").exists() for d in ("", "tests", "test")) \
        or "pytest" in "\n".join(texts)
    return mentioned, bool(cfg["testpaths"])


def test_paths(repo: Path, test_files: list[str]) -> list[str]:
    """Top-level directories holding the test files (e.g. ``tests``, ``toolz/tests``)."""
    dirs: list[str] = []
    for f in test_files:
        parts = f.split("/")
        for i, part in enumerate(parts[:-1]):
            if part in ("tests", "test", "testing"):
                d = "/".join(parts[: i + 1])
                if d not in dirs:
                    dirs.append(d)
                break
        else:
            d = "/".join(parts[:-1]) or f  # no tests/ dir: the file's own directory (or the file at top level)
            if d not in dirs:
                dirs.append(d)
    return sorted(dirs)


