"""Facts read from a repo's files (pure, no network): Python versions it allows, extras, requirements
files, tox/nox deps, build requirements, whether installs leave generated files. Where its tests are and
what its pytest configuration says: :mod:`crucible.sandbox.testfacts`.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from crucible.sandbox.testfacts import file_text, ini_section, tomllib

EXTRA_PREFERENCE = ("test", "tests", "testing", "dev")
REQ_GLOBS = ("requirements.txt", "requirements/*.txt", "requirements-*.txt", "requirements_*.txt",
             "*-requirements.txt", "*_requirements.txt", "test-requirements.txt", "tests/requirements*.txt",
             "requirements/*.in")
REQ_SKIP_WORDS = ("doc", "lint", "release", "mypy", "typing", "style", "bench", "publish", "deploy", "format")
REQ_ORDER_HINTS = ("test", "dev")  # these after the plain ones
PYTHON_RELEASED = {"3.9": "2020-10-05", "3.11": "2022-10-24", "3.13": "2024-10-07"}  # x.y.0 release days


class RecipeError(ValueError):
    """The repo cannot be turned into a recipe (e.g. it has no tests); the message says why."""


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


# ---------------------------------------------------------------- python version

# where a source states its Python range, in the order pip's metadata would win
_REQUIRES_PYTHON = (("pyproject.toml", r"(?m)^\s*requires-python\s*=\s*[\"']([^\"']+)[\"']"),
                    ("setup.cfg", r"(?m)^\s*python_requires\s*=\s*(.+)$"),
                    ("setup.py", r"python_requires\s*=\s*[\"']([^\"']+)[\"']"),
                    ("PKG-INFO", r"(?m)^Requires-Python:\s*(.+)$"))


def requires_python(repo: Path) -> str | None:
    for name, pattern in _REQUIRES_PYTHON:
        m = re.search(pattern, file_text(repo / name))
        if m:
            return m.group(1).strip()
    return None


def classifier_versions(repo: Path) -> list[str]:
    text = "\n".join(file_text(repo / f) for f in ("pyproject.toml", "setup.cfg", "setup.py", "PKG-INFO"))
    found = set(re.findall(r"Programming Language :: Python :: (3\.\d+)\b", text))
    return sorted(found, key=_vtuple)


def tox_versions(repo: Path) -> list[str]:
    text = file_text(repo / "tox.ini") + "\n" + file_text(repo / "noxfile.py")
    found = {f"3.{m}" for m in re.findall(r"\bpy3(\d{1,2})\b", text)}
    found |= set(re.findall(r"[\"'](3\.\d+)[\"']", file_text(repo / "noxfile.py")))
    return sorted(found, key=_vtuple)


def choose_python(repo: Path, available: tuple[str, ...], source_date: str | None = None) -> tuple[str, str]:
    """Highest available Python allowed by requires-python and, when the repo lists versions
    (classifiers, tox/nox envs), not newer than the newest one it lists; with ``source_date``, not one
    released after the source (the oldest allowed one when all were). Returns (version, reason)."""

    avail = sorted(available, key=_vtuple)
    rp = requires_python(repo)
    reasons = []
    ok = list(avail)
    if rp:
        try:
            spec = SpecifierSet(rp)
            ok = [v for v in ok if spec.contains(v + ".0") or spec.contains(v + ".99")]
            reasons.append(f"requires-python {rp}")
        except InvalidSpecifier:
            reasons.append(f"requires-python {rp!r} unparsable, ignored")
    listed = classifier_versions(repo) or tox_versions(repo)
    if listed:
        newest = max(listed, key=_vtuple)
        capped = [v for v in ok if _vtuple(v) <= _vtuple(newest)]
        reasons.append(f"lists Python {', '.join(listed)}")
        if capped:
            ok = capped
    if not ok:
        raise RecipeError(f"no available Python ({', '.join(avail)}) satisfies requires-python {rp!r}")
    if source_date:
        older = [v for v in ok if PYTHON_RELEASED.get(v, "9999") <= source_date]
        reasons.append(f"source of {source_date}: Python released by then" if older else
                       f"source of {source_date} predates every available Python: the oldest")
        ok = older or ok[:1]
    return ok[-1], "; ".join(reasons) or "no constraint found: newest available"


def floor_as_of(as_of: str | None, python: str) -> str | None:
    """An as-of cut-off no earlier than the release of ``python``: releases older than the interpreter
    (build backends, pip's own ``setuptools>=40.8.0``) are rarely installable on it."""
    rel = PYTHON_RELEASED.get(python)
    if as_of and rel and as_of < rel:
        return rel + "T23:59:59Z"
    return as_of


# ---------------------------------------------------------------- extras, requirements, tox, nox

def declared_extras(repo: Path) -> list[str]:
    names: list[str] = []
    py = file_text(repo / "pyproject.toml")
    if py:
        try:
            data = tomllib.loads(py)
            names += list((data.get("project", {}) or {}).get("optional-dependencies", {}) or {})
            poetry = data.get("tool", {}).get("poetry", {})
            names += list(poetry.get("extras", {}) or {})
        except Exception:  # malformed pyproject: fall through to the other sources
            pass
    cfg = file_text(repo / "setup.cfg")
    if cfg:
        cp = configparser.ConfigParser(interpolation=None)
        try:
            cp.read_string(cfg)
            if cp.has_section("options.extras_require"):
                names += list(cp["options.extras_require"].keys())
        except configparser.Error:
            pass
    sp = file_text(repo / "setup.py")
    if "extras_require" in sp or "EXTRAS" in sp.upper():
        names += re.findall(r"[\"']([A-Za-z][\w.-]*)[\"']\s*:\s*[\[(\"']", sp)
        names += re.findall(r"\[\s*[\"']([A-Za-z][\w.-]*)[\"']\s*\]\s*=", sp)
    pkg = file_text(repo / "PKG-INFO")
    names += re.findall(r"(?m)^Provides-Extra:\s*(\S+)", pkg)
    seen, out = set(), []
    for n in names:
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out


def pick_extra(extras: list[str], tox_extras: list[str]) -> str | None:
    for name in tox_extras:
        if name in extras or name in EXTRA_PREFERENCE:
            return name
    for pref in EXTRA_PREFERENCE:
        if pref in extras:
            return pref
    return None


def requirement_files(repo: Path) -> list[str]:
    found: list[str] = []
    for pat in REQ_GLOBS:
        for p in sorted(repo.glob(pat)):
            rel = p.relative_to(repo).as_posix()
            low = rel.lower()
            if p.is_file() and rel not in found and not any(w in low for w in REQ_SKIP_WORDS):
                found.append(rel)
    plain = [f for f in found if not any(h in f.lower() for h in REQ_ORDER_HINTS)]
    return plain + [f for f in found if f not in plain]


def tox_info(repo: Path) -> dict:
    """deps, extras and commands of [testenv] in tox.ini (factor-conditional and substituted lines skipped)."""
    text = file_text(repo / "tox.ini")
    out = {"deps": [], "extras": [], "commands": []}
    if not text:
        return out
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(text)
    except configparser.Error:
        return out
    if not cp.has_section("testenv"):
        return out
    sec = cp["testenv"]
    for key in ("deps", "extras", "commands"):
        for line in sec.get(key, "").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or "{" in line or re.match(r"^[\w,!-]+:\s", line):
                continue
            if key == "deps" and (line.startswith("-e") or line in (".",) or line.startswith(".[")):
                continue
            out[key].append(line)
    return out


def nox_deps(repo: Path) -> list[str]:
    text = file_text(repo / "noxfile.py")
    deps: list[str] = []
    for args in re.findall(r"session\.install\(([^)]*)\)", text):
        for lit in re.findall(r"[\"']([^\"']+)[\"']", args):
            if lit.startswith("-") or lit.startswith(".") or "{" in lit:
                continue
            if lit not in deps:
                deps.append(lit)
    return deps


def _literal_strings(node, names: dict) -> list[str] | None:
    if isinstance(node, ast.Name) and node.id in names:
        node = names[node.id]
    if isinstance(node, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                       for e in node.elts):
        return [e.value for e in node.elts]
    return None


def tests_require(repo: Path) -> list[str]:
    """The test requirements a repo declares for ``setup.py test``: ``tests_require=`` of the ``setup()`` call
    (a literal list, or a module-level name bound to one) and ``[options] tests_require`` of setup.cfg."""
    out: list[str] = []
    text = file_text(repo / "setup.py")
    if "tests_require" in text:
        try:
            tree = ast.parse(text)
        except SyntaxError:  # a Python-2-only setup.py: its test deps cannot be read
            tree = None
        if tree is not None:
            names = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    for kw in node.keywords:
                        if kw.arg == "tests_require":
                            out += _literal_strings(kw.value, names) or []
    sec = ini_section(file_text(repo / "setup.cfg"), "options")
    if sec and sec.get("tests_require"):
        out += [x.strip() for x in sec["tests_require"].splitlines() if not x.strip().startswith("#")]
    return list(dict.fromkeys(x.strip() for x in out if x.strip()))


def pipfile_dev_packages(repo: Path) -> list[str]:
    """``[dev-packages]`` of a Pipfile as requirement strings (``name[extras]spec; markers``); entries that
    are paths, VCS or file references (the package itself, mostly) are left out."""
    text = file_text(repo / "Pipfile")
    if not text:
        return []
    try:
        dev = tomllib.loads(text).get("dev-packages") or {}
    except Exception:  # a malformed Pipfile declares nothing we can use
        return []
    out = []
    for name, val in dev.items():
        spec, extras, markers = "", "", ""
        if isinstance(val, str):
            spec = val
        elif isinstance(val, dict):
            if any(k in val for k in ("path", "file", "git", "hg", "svn", "bzr", "editable")):
                continue
            spec = str(val.get("version", "*"))
            extras = "[" + ",".join(val["extras"]) + "]" if val.get("extras") else ""
            markers = str(val.get("markers") or "")
        else:
            continue
        spec = "" if spec.strip() == "*" else spec.strip()
        out.append(f"{name}{extras}{spec}" + (f"; {markers}" if markers else ""))
    return out


def req_name(req: str) -> str:
    """The canonical distribution name of a requirement line (``PySocks>=1.5`` -> ``pysocks``); "" for an
    option, path or URL line (``packaging``'s grammar, a trailing comment ignored)."""

    try:
        return canonicalize_name(Requirement(req.split(" #", 1)[0].strip()).name)
    except InvalidRequirement:
        return ""


def requirement_names(repo: Path, files: list[str]) -> frozenset[str]:
    """Canonical names of the distributions the given requirements files name."""
    return frozenset(n for f in files for n in map(req_name, file_text(repo / f).splitlines()) if n)


def test_tool(req: str) -> bool:
    """Whether a requirement names pytest or a pytest plugin (``pytest``, ``pytest-*``, ``pytest_*``)."""
    name = req_name(req)
    return name == "pytest" or name.startswith("pytest-")


def project_name(repo: Path) -> str:
    """The repo's own distribution name, normalised ("" when no metadata file names it)."""
    m = re.search(r"(?m)^Name:\s*(\S+)", file_text(repo / "PKG-INFO"))
    name = m.group(1) if m else ""
    if not name:
        try:
            name = str((tomllib.loads(file_text(repo / "pyproject.toml")).get("project") or {}).get("name") or "")
        except Exception:
            name = ""
    if not name:
        name = (ini_section(file_text(repo / "setup.cfg"), "metadata") or {}).get("name", "")
    if not name:
        m = re.search(r"\bname\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"']", file_text(repo / "setup.py"))
        name = m.group(1) if m else ""
    return req_name(name)


def test_imports(repo: Path, files: list[str], limit: int = 500) -> frozenset[str]:
    """Top-level module names that the given test files and the repo's conftest.py files import, as canonical
    distribution names (``ruamel_yaml`` -> ``ruamel-yaml``); a file that does not parse adds nothing."""

    paths = [repo / f for f in files[:limit]] + sorted(repo.glob("**/conftest.py"))[:50]
    names: set[str] = set()
    for p in paths:
        try:
            tree = ast.parse(file_text(p))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return frozenset(canonicalize_name(n) for n in names)


def dev_test_deps(repo: Path, test_imports: frozenset[str] = frozenset(),
                  named: frozenset[str] = frozenset()) -> list[str]:
    """Test requirements a repo declares outside requirements files and tox/nox: setup's ``tests_require``
    (all of it), and of a Pipfile's ``[dev-packages]`` (docs, linters and release tools too) the pytest family
    and the distributions the tests import (``test_imports``: canonical names of the modules they import and
    of the distributions providing them). Left out:
    the project itself (``mpmath[tests]``) and distributions ``named`` elsewhere (requirements files, tox,
    nox: a requirements file is kept up to date where ``tests_require`` often is not, e.g. requests 2.25
    still says ``pytest-httpbin==0.0.7`` of 2015)."""
    own = project_name(repo)
    picked = list(tests_require(repo))
    for req in pipfile_dev_packages(repo):
        if test_tool(req) or req_name(req) in test_imports:
            picked.append(req)
    return list(dict.fromkeys(r for r in picked if req_name(r) and req_name(r) != own and req_name(r) not in named))


def build_requires(repo: Path) -> list[str]:
    """``[build-system] requires`` of pyproject.toml: installed into the env too, so that an offline
    ``pip install --no-build-isolation -e .`` (the per-instance reinstall) finds its backend."""
    py = file_text(repo / "pyproject.toml")
    if not py:
        return []
    try:
        reqs = tomllib.loads(py).get("build-system", {}).get("requires", []) or []
    except Exception:  # malformed pyproject: the package step will report it
        return []
    return [r for r in reqs if isinstance(r, str) and r.strip()]


def needs_reinstall(repo: Path) -> tuple[bool, str]:
    """Whether an install leaves generated files in the tree (compiled extensions, written version files):
    those are removed with /testbed before the env commit, so each run must rebuild them."""
    sp = file_text(repo / "setup.py")
    py = file_text(repo / "pyproject.toml")
    cfg = file_text(repo / "setup.cfg")
    if re.search(r"ext_modules|Extension\(|cythonize|Pybind11Extension", sp):
        return True, "setup.py builds extension modules"
    if re.search(r"(?m)^\s*(write_to|version_file|version-file)\s*=", py + "\n" + cfg):
        return True, "the build writes a version file into the tree"
    if re.search(r"setuptools-rust|maturin|scikit-build|meson-python|cython", py, re.I):
        return True, "compiled build backend"
    return False, ""
