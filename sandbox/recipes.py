"""Recipe inference: how to install a repo's dependencies and run its tests, with no hand-written recipe.

A recipe is plain data (a JSON-able dict, stored with each instance and hashed into the env image key):

    {"python": "3.11", "python_reason": "...",
     "apt_packages": [...],  # only from overrides: installed as root before the pip steps
     "install": [{"name": ..., "required": bool, "try": [shell command, ...]}, ...],
     "runner": "pytest" | "unittest", "test_cmd": "python -m pytest", "test_paths": [...],
     "reinstall": false, "sources": {...}}

Each install step is a ladder: its commands are tried in order until one succeeds; a required step with
no success fails the build. Per-repo overrides (``configs/repos/*.yaml``) are merged over the inferred
recipe (keys replace; ``install_extra`` steps append). Inference is pure over the repo's files.
"""

from __future__ import annotations

import configparser
import fnmatch
import hashlib
import re
import shlex
from pathlib import Path

import yaml

RECIPE_VERSION = 1
EXTRA_PREFERENCE = ("test", "tests", "testing", "dev")
REQ_GLOBS = ("requirements.txt", "requirements/*.txt", "requirements-*.txt", "requirements_*.txt",
             "*-requirements.txt", "*_requirements.txt", "test-requirements.txt", "tests/requirements*.txt",
             "requirements/*.in")
REQ_SKIP_WORDS = ("doc", "lint", "release", "mypy", "typing", "style", "bench", "publish", "deploy", "format")
REQ_ORDER_HINTS = ("test", "dev")  # these after the plain ones
INPUT_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "tox.ini", "noxfile.py", "pytest.ini", "Pipfile")
JUNIT_PATH_VAR = "CRUCIBLE_JUNIT"
MARK = ">>>>> crucible"


class RecipeError(ValueError):
    """The repo cannot be turned into a recipe (e.g. it has no tests); the message says why."""


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return ""


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


# ---------------------------------------------------------------- python version

def requires_python(repo: Path) -> str | None:
    py = _read(repo / "pyproject.toml")
    m = re.search(r"(?m)^\s*requires-python\s*=\s*[\"']([^\"']+)[\"']", py)
    if m:
        return m.group(1)
    cfg = _read(repo / "setup.cfg")
    m = re.search(r"(?m)^\s*python_requires\s*=\s*(.+)$", cfg)
    if m:
        return m.group(1).strip()
    sp = _read(repo / "setup.py")
    m = re.search(r"python_requires\s*=\s*[\"']([^\"']+)[\"']", sp)
    if m:
        return m.group(1)
    pkg = _read(repo / "PKG-INFO")
    m = re.search(r"(?m)^Requires-Python:\s*(.+)$", pkg)
    return m.group(1).strip() if m else None


def classifier_versions(repo: Path) -> list[str]:
    text = "\n".join(_read(repo / f) for f in ("pyproject.toml", "setup.cfg", "setup.py", "PKG-INFO"))
    found = set(re.findall(r"Programming Language :: Python :: (3\.\d+)\b", text))
    return sorted(found, key=_vtuple)


def tox_versions(repo: Path) -> list[str]:
    text = _read(repo / "tox.ini") + "\n" + _read(repo / "noxfile.py")
    found = {f"3.{m}" for m in re.findall(r"\bpy3(\d{1,2})\b", text)}
    found |= set(re.findall(r"[\"'](3\.\d+)[\"']", _read(repo / "noxfile.py")))
    return sorted(found, key=_vtuple)


def choose_python(repo: Path, available: tuple[str, ...]) -> tuple[str, str]:
    """Highest available Python allowed by requires-python and, when the repo lists versions
    (classifiers, tox/nox envs), not newer than the newest one it lists. Returns (version, reason)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

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
    return ok[-1], "; ".join(reasons) or "no constraint found: newest available"


# ---------------------------------------------------------------- extras, requirements, tox, nox

def declared_extras(repo: Path) -> list[str]:
    names: list[str] = []
    py = _read(repo / "pyproject.toml")
    if py:
        try:
            import tomllib

            data = tomllib.loads(py)
            names += list((data.get("project", {}) or {}).get("optional-dependencies", {}) or {})
            poetry = data.get("tool", {}).get("poetry", {})
            names += list(poetry.get("extras", {}) or {})
        except Exception:  # malformed pyproject: fall through to the other sources
            pass
    cfg = _read(repo / "setup.cfg")
    if cfg:
        cp = configparser.ConfigParser(interpolation=None)
        try:
            cp.read_string(cfg)
            if cp.has_section("options.extras_require"):
                names += list(cp["options.extras_require"].keys())
        except configparser.Error:
            pass
    sp = _read(repo / "setup.py")
    if "extras_require" in sp or "EXTRAS" in sp.upper():
        names += re.findall(r"[\"']([A-Za-z][\w.-]*)[\"']\s*:\s*[\[(\"']", sp)
        names += re.findall(r"\[\s*[\"']([A-Za-z][\w.-]*)[\"']\s*\]\s*=", sp)
    pkg = _read(repo / "PKG-INFO")
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
    text = _read(repo / "tox.ini")
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
    text = _read(repo / "noxfile.py")
    deps: list[str] = []
    for args in re.findall(r"session\.install\(([^)]*)\)", text):
        for lit in re.findall(r"[\"']([^\"']+)[\"']", args):
            if lit.startswith("-") or lit.startswith(".") or "{" in lit:
                continue
            if lit not in deps:
                deps.append(lit)
    return deps


def build_requires(repo: Path) -> list[str]:
    """``[build-system] requires`` of pyproject.toml: installed into the env too, so that an offline
    ``pip install --no-build-isolation -e .`` (the per-instance reinstall) finds its backend."""
    py = _read(repo / "pyproject.toml")
    if not py:
        return []
    try:
        import tomllib

        reqs = tomllib.loads(py).get("build-system", {}).get("requires", []) or []
    except Exception:  # malformed pyproject: the package step will report it
        return []
    return [r for r in reqs if isinstance(r, str) and r.strip()]


def needs_reinstall(repo: Path) -> tuple[bool, str]:
    """Whether an install leaves generated files in the tree (compiled extensions, written version files):
    those are removed with /testbed before the env commit, so each run must rebuild them."""
    sp = _read(repo / "setup.py")
    py = _read(repo / "pyproject.toml")
    cfg = _read(repo / "setup.cfg")
    if re.search(r"ext_modules|Extension\(|cythonize|Pybind11Extension", sp):
        return True, "setup.py builds extension modules"
    if re.search(r"(?m)^\s*(write_to|version_file|version-file)\s*=", py + "\n" + cfg):
        return True, "the build writes a version file into the tree"
    if re.search(r"setuptools-rust|maturin|scikit-build|meson-python|cython", py, re.I):
        return True, "compiled build backend"
    return False, ""


# ---------------------------------------------------------------- tests

def find_test_files(repo: Path, limit: int = 10000) -> list[str]:
    out = []
    for p in repo.rglob("*.py"):
        rel = p.relative_to(repo).as_posix()
        if any(part in (".git", ".tox", ".venv", "node_modules", "build") for part in p.parts):
            continue
        if fnmatch.fnmatch(p.name, "test_*.py") or fnmatch.fnmatch(p.name, "*_test.py"):
            out.append(rel)
            if len(out) >= limit:
                break
    return sorted(out)


def pytest_configured(repo: Path) -> tuple[bool, bool]:
    """(pytest is configured or mentioned, config declares testpaths)."""
    texts = {
        "pytest.ini": _read(repo / "pytest.ini"),
        "setup.cfg": _read(repo / "setup.cfg"),
        "tox.ini": _read(repo / "tox.ini"),
        "pyproject.toml": _read(repo / "pyproject.toml"),
    }
    has_cfg = bool(texts["pytest.ini"]) or "[tool:pytest]" in texts["setup.cfg"] or \
        "[pytest]" in texts["tox.ini"] or "[tool.pytest.ini_options]" in texts["pyproject.toml"]
    testpaths = any(re.search(r"(?m)^\s*testpaths\s*=", t) for t in texts.values())
    mentioned = has_cfg or any((repo / d / "conftest.py").exists() for d in ("", "tests", "test")) or \
        "pytest" in "\n".join(texts.values()) + _read(repo / "setup.py") + _read(repo / "noxfile.py")
    return mentioned, testpaths


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


# ---------------------------------------------------------------- the recipe

def _q(s: str) -> str:
    return shlex.quote(s)


def infer_recipe(repo: Path, available_pythons: tuple[str, ...] = ("3.9", "3.11"),
                 override: dict | None = None) -> tuple[dict, dict]:
    """(recipe, inputs) for the repo at ``repo``. ``inputs`` maps every file consulted to its sha256,
    so editing any of them changes the env key. Raises RecipeError for a repo with no tests."""
    repo = Path(repo)
    override = dict(override or {})
    tests = find_test_files(repo)
    if not tests and not override.get("test_cmd"):
        raise RecipeError(f"{repo}: no test files (test_*.py or *_test.py) found; nothing to run")
    python, py_reason = (str(override["python"]), "override") if override.get("python") else \
        choose_python(repo, available_pythons)
    tox = tox_info(repo)
    extras = declared_extras(repo)
    extra = pick_extra(extras, tox["extras"])
    reqs = requirement_files(repo)
    install: list[dict] = []
    for i, r in enumerate(reqs):
        filtered = f"/tmp/crucible-req-{i}.txt"
        # drop lines installing the package itself (-e . / .[x]); the package step does that
        install.append({"name": f"requirements:{r}", "required": False, "try": [
            f"grep -v -E '^[[:space:]]*(-e[[:space:]]+)?\\.(\\[[^]]*\\])?[[:space:]]*$' {_q(r)} > {filtered}; "
            f"cd $(dirname {_q(r)}) && pip install -r {filtered}"]})
    has_pkg = any((repo / f).exists() for f in ("setup.py", "setup.cfg", "pyproject.toml"))
    breqs = build_requires(repo)
    if breqs:
        install.append({"name": "build-requires", "required": False,
                        "try": ["pip install " + " ".join(map(_q, breqs))]})
    if has_pkg:
        target = f".[{extra}]" if extra else "."
        ladder = [f"pip install -e {_q(target)}", f"pip install --no-build-isolation -e {_q(target)}"]
        if extra:
            ladder += ["pip install -e .", "pip install --no-build-isolation -e ."]
        ladder += [f"pip install {_q(target)}"]
        install.append({"name": f"package{'[' + extra + ']' if extra else ''}", "required": True, "try": ladder})
    tdeps = [d for d in tox["deps"] if not d.startswith("-r")]
    if tdeps:
        install.append({"name": "tox-deps", "required": False, "try": ["pip install " + " ".join(map(_q, tdeps))]})
    ndeps = nox_deps(repo)
    if ndeps:
        install.append({"name": "nox-deps", "required": False, "try": ["pip install " + " ".join(map(_q, ndeps))]})
    install.append({"name": "test-runner", "required": True,
                    "try": ["python -c 'import pytest' 2>/dev/null || pip install pytest"]})
    mentioned, has_testpaths = pytest_configured(repo)
    reinstall, reinstall_reason = needs_reinstall(repo)
    paths = [] if has_testpaths else test_paths(repo, tests)
    recipe = {
        "version": RECIPE_VERSION,
        "python": python,
        "python_reason": py_reason,
        "apt_packages": [],
        "install": install,
        "runner": "pytest" if mentioned else "unittest",
        "test_cmd": "python -m pytest",
        "test_paths": paths,
        "reinstall": reinstall,
        "sources": {"reinstall_reason": reinstall_reason, "build_requires": breqs, "extra": extra, "extras_declared": extras, "requirements": reqs, "tox": tox,
                    "nox_deps": ndeps, "test_files": len(tests)},
    }
    extra_steps = override.pop("install_extra", None)
    for k, v in override.items():
        if k not in recipe:
            raise RecipeError(f"recipe override: unknown key {k!r}; allowed: "
                              f"{', '.join(sorted(recipe))}, install_extra")
        recipe[k] = v
    if extra_steps:
        recipe["install"] = list(recipe["install"][:-1]) + [
            {"name": f"override-{i}", "required": True, "try": [s] if isinstance(s, str) else list(s)}
            for i, s in enumerate(extra_steps)] + [recipe["install"][-1]]
    inputs = {}
    for f in list(INPUT_FILES) + reqs:
        p = repo / f
        if p.is_file():
            inputs[f] = hashlib.sha256(p.read_bytes()).hexdigest()
    return recipe, inputs


def load_override(name: str, repos_dir: Path) -> dict | None:
    """The override for repo ``name`` (``owner/name`` or a PyPI name) from ``repos_dir/*.yaml``: a file whose
    ``match`` list contains the name (case-insensitive). Unknown top-level keys are errors."""
    if not repos_dir.is_dir():
        return None
    from pipelines.textio import InputError, read_text

    for p in sorted(repos_dir.glob("*.yaml")):
        try:
            data = yaml.safe_load(read_text(p, "repo override file")) or {}
        except InputError as exc:
            raise RecipeError(str(exc)) from None
        except yaml.YAMLError as exc:
            raise RecipeError(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(data, dict) or "match" not in data:
            raise RecipeError(f"{p}: a repo override needs a 'match' list of repo names and a 'recipe' mapping")
        bad = set(data) - {"match", "recipe", "notes"}
        if bad:
            raise RecipeError(f"{p}: unknown keys {sorted(bad)}; allowed: match, recipe, notes")
        if name.lower() in [str(m).lower() for m in data["match"]]:
            rec = data.get("recipe") or {}
            if not isinstance(rec, dict):
                raise RecipeError(f"{p}: 'recipe' must be a mapping")
            return rec
    return None


# ---------------------------------------------------------------- scripts and logs

def install_script(recipe: dict) -> str:
    """The bash script an env build runs in /testbed. Each step prints markers that
    :func:`parse_install_log` reads back (which rung of the ladder worked)."""
    lines = ["set -u", "cd /testbed", f"echo '{MARK} python' $(python -V 2>&1)"]
    for step in recipe["install"]:
        name = step["name"].replace("'", "")
        tries = step["try"]
        lines.append("ok=0")
        for i, cmd in enumerate(tries):
            lines.append(f"if [ $ok = 0 ]; then echo '{MARK} step {name} try {i}'; "
                         f"if (cd /testbed && {cmd}); then ok=1; echo '{MARK} step {name} ok {i}'; fi; fi")
        fail = "exit 3" if step.get("required") else "true"
        lines.append(f"if [ $ok = 0 ]; then echo '{MARK} step {name} failed'; {fail}; fi")
    lines.append(f"echo '{MARK} freeze'; pip freeze --exclude-editable | sed 's/^/{MARK} pkg /'")
    return "\n".join(lines) + "\n"


def parse_install_log(text: str) -> list[dict]:
    steps: dict[str, dict] = {}
    for m in re.finditer(rf"^{re.escape(MARK)} step (.+?) (try|ok|failed)(?: (\d+))?$", text, re.M):
        name, what, idx = m.group(1), m.group(2), m.group(3)
        s = steps.setdefault(name, {"name": name, "ok": None, "rung": None, "tries": 0})
        if what == "try":
            s["tries"] += 1
        elif what == "ok":
            s["ok"], s["rung"] = True, int(idx)
        else:
            s["ok"] = False
    return list(steps.values())


def parse_freeze(text: str) -> list[str]:
    return re.findall(rf"^{re.escape(MARK)} pkg (\S+)$", text, re.M)


def test_script(recipe: dict, junit_path: str, extra_args: list[str] | None = None,
                selection: list[str] | None = None, autoload: bool = False) -> str:
    """Bash for one test run in /testbed: optional cheap reinstall, then the test command with JUnit XML,
    the -rA summary, no cache. The exit code of the script is pytest's. Unless ``autoload``, pytest autoloads
    no plugin (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) and gets ``-p`` for each one installed outside the tree."""
    args = ["-rA", f"--junitxml={junit_path}", "-o", "junit_family=xunit1", "-p", "no:cacheprovider",
            "--color=no"] + list(extra_args or [])
    targets = list(selection) if selection else list(recipe.get("test_paths") or [])
    lines = ["cd /testbed"]
    for k, v in sorted((recipe.get("test_env") or {}).items()):  # e.g. SWE-bench's eval_commands exports
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)):
            raise RecipeError(f"recipe test_env: {k!r} is not an environment variable name (letters, digits, _)")
        lines.append(f"export {k}={_q(str(v))}")
    if recipe.get("reinstall"):
        # offline, so no deps and no isolation (the backend was installed by the build-requires step)
        lines.append("pip install -q --no-deps --no-build-isolation -e . >/tmp/crucible-reinstall.log 2>&1 || "
                     f"{{ tail -20 /tmp/crucible-reinstall.log; echo '{MARK} reinstall failed'; exit 98; }}")
    plugins = ""
    if not autoload:
        from sandbox.plugins import plugin_lines

        lines += plugin_lines(_q)
        plugins = "$CRUCIBLE_PLUGINS "  # unquoted on purpose: "-p mod" pairs, names checked by the script
    lines.append("exec " + recipe["test_cmd"] + " " + plugins + " ".join(_q(a) for a in args + targets))
    return "\n".join(lines) + "\n"


test_script.__test__ = False  # a function named test_* that pytest must not collect

# ---------------------------------------------------------------- funnel

FUNNEL_STAGES = ("attempted", "installed", "tests_collected", "mostly_passing")


def funnel_stage(installed: bool, collected: int, passed: int, failed: int, threshold: float = 0.8) -> str:
    """The last funnel stage a repo reached (SWE-smith's criterion: >= 80% of run tests pass)."""
    if not installed:
        return "attempted"
    if collected <= 0:
        return "installed"
    ran = passed + failed
    if ran and passed / ran >= threshold:
        return "mostly_passing"
    return "tests_collected"


def funnel_counts(stages: list[str]) -> dict[str, int]:
    """Cumulative counts: a repo that reached a stage also counts for every stage before it."""
    idx = {s: i for i, s in enumerate(FUNNEL_STAGES)}
    out = dict.fromkeys(FUNNEL_STAGES, 0)
    for s in stages:
        for st in FUNNEL_STAGES[: idx[s] + 1]:
            out[st] += 1
    return out
