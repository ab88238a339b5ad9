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

import hashlib
import re
import shlex
from pathlib import Path

import yaml
from packaging.utils import canonicalize_name

from crucible.pipelines.textio import InputError, read_text
from crucible.sandbox.ladder import table
from crucible.sandbox.plugins import plugin_lines
from crucible.sandbox.repofacts import (  # noqa: F401  (re-exported: crucible.pipelines.swe.swebench_specs and tests use them)
    EXTRA_PREFERENCE,
    RecipeError,
    build_requires,
    choose_python,
    classifier_versions,
    declared_extras,
    dev_test_deps,
    floor_as_of,
    needs_reinstall,
    nox_deps,
    pick_extra,
    req_name,
    requirement_files,
    requirement_names,
    requires_python,
    test_imports,
    test_tool,
    tox_info,
    tox_versions,
)
from crucible.sandbox.testfacts import (  # noqa: F401
    find_test_files,
    pytest_config,
    pytest_configured,
    pytest_ini_keys,
    test_paths,
)

RECIPE_VERSION = 1
INSTALLED_PINS = "/tmp/crucible-installed.txt"
INPUT_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "tox.ini", "noxfile.py", "pytest.ini", "Pipfile")
JUNIT_PATH_VAR = "CRUCIBLE_JUNIT"
# every short-summary status line of -rA, in -rA's order ("PpsxXEf" less P): -rA's "P" (the PASSES section)
# looks up each passed test's teardown reports by a scan over all reports, quadratic in the suite size --
# measured 213 s vs 25 s for 8,000 trivial tests; passed after a suite's own "-rA", so it wins (last -r wins)
REPORT_CHARS = "-rpsxXEf"
MARK = ">>>>> crucible"
# recipe keys an override may set that inference never writes (so inferred recipes, and their env keys, stay
# as they were): test_env = variables exported before each test run (a ladder rung's PYTHONPATH, an LLM
# repair's exports)
OVERRIDE_ONLY = ("test_env",)


# ---------------------------------------------------------------- the recipe

def _q(s: str) -> str:
    return shlex.quote(s)


def config_plugins(cfg: dict, ini_keys: list[str]) -> list[str]:
    """Distributions the repo's pytest configuration assumes: plugins named by its ``addopts`` options
    (``--cov`` -> pytest-cov) and ini keys (``timeout`` -> pytest-timeout), from sandbox/data/pytest_plugins.json."""
    plugins = table("pytest_plugins")
    out: list[str] = []
    for opt in cfg["addopts"]:
        dist = plugins["options"].get(opt.split("=", 1)[0])
        if dist and dist != "pytest" and dist not in out:
            out.append(dist)
    for key in ini_keys:
        dist = plugins["ini_keys"].get(key)
        if dist and dist not in out:
            out.append(dist)
    return out


def _import_names(modules: frozenset[str]) -> frozenset[str]:
    """Canonical names of imported modules plus of the distributions that provide them where the two differ
    (``socks`` -> ``pysocks``), as :func:`crucible.sandbox.repofacts.dev_test_deps` compares them."""
    dists = {canonicalize_name(k): v for k, v in table("import_dists").items() if isinstance(v, str)}
    return modules | {canonicalize_name(dists[m]) for m in modules if m in dists}


def _requirement_steps(reqs: list[str]) -> list[dict]:
    """One optional step per requirements file, less the lines installing the package itself (-e . / .[x]):
    the package step does that."""
    steps = []
    for i, r in enumerate(reqs):
        filtered = f"/tmp/crucible-req-{i}.txt"
        steps.append({"name": f"requirements:{r}", "required": False, "try": [
            f"grep -v -E '^[[:space:]]*(-e[[:space:]]+)?\\.(\\[[^]]*\\])?[[:space:]]*$' {_q(r)} > {filtered}; "
            f"cd $(dirname {_q(r)}) && pip install -r {filtered}"]})
    return steps


def _package_steps(repo: Path, extra: str | None, breqs: list[str]) -> list[dict]:
    """The build requirements (optional), then the package itself (required) where the repo is one."""
    steps = []
    if breqs:
        steps.append({"name": "build-requires", "required": False,
                      "try": ["pip install " + " ".join(map(_q, breqs))]})
    if any((repo / f).exists() for f in ("setup.py", "setup.cfg", "pyproject.toml")):
        target = f".[{extra}]" if extra else "."
        ladder = [f"pip install -e {_q(target)}", f"pip install --no-build-isolation -e {_q(target)}"]
        if extra:
            ladder += ["pip install -e .", "pip install --no-build-isolation -e ."]
        # last: a regular install, then its modules swapped for a path entry to the tree, so tests (and
        # agents' edits) import /testbed, not the copy the build put in site-packages (a src/ layout would)
        ladder += [f"pip install {_q(target)} && python -c {_q(LINK_TREE)}"]
        steps.append({"name": f"package{'[' + extra + ']' if extra else ''}", "required": True, "try": ladder})
    return steps


def _test_deps_step(tdeps_declared: list[str]) -> dict:
    """The declared test dependencies, constrained to what is installed so far (a test plugin must not upgrade
    the pytest a requirements file pinned); the whole list, then only its pytest family (one unbuildable or
    conflicting extra must not cost the pinned test runner: requests 2.22's Pipfile pins pytest<=3.10.1, its
    tests need it), then pytest alone (requests 2.22's pytest-httpbin pulls httpbin -> brotlipy, which does
    not build)."""
    pin = f"pip freeze --exclude-editable | grep -v ' @ ' > {INSTALLED_PINS} && pip install -c {INSTALLED_PINS} "
    tries = [pin + " ".join(map(_q, tdeps_declared))]
    tools = [d for d in tdeps_declared if test_tool(d)]
    for subset in (tools, [d for d in tools if req_name(d) == "pytest"]):
        if subset and pin + " ".join(map(_q, subset)) not in tries:
            tries.append(pin + " ".join(map(_q, subset)))
    return {"name": "test-deps", "required": False, "try": tries}


def _apply_override(recipe: dict, override: dict) -> None:
    """Merge a per-repo override over ``recipe`` in place: keys replace (unknown ones are errors),
    ``install_extra`` steps go before the test runner's."""
    extra_steps = override.pop("install_extra", None)
    for k, v in override.items():
        if k not in recipe and k not in OVERRIDE_ONLY:
            raise RecipeError(f"recipe override: unknown key {k!r}; allowed: "
                              f"{', '.join(sorted(recipe))}, {', '.join(OVERRIDE_ONLY)}, install_extra")
        recipe[k] = v
    if extra_steps:
        recipe["install"] = list(recipe["install"][:-1]) + [
            {"name": f"override-{i}", "required": True, "try": [s] if isinstance(s, str) else list(s)}
            for i, s in enumerate(extra_steps)] + [recipe["install"][-1]]


def _input_hashes(repo: Path, reqs: list[str]) -> dict[str, str]:
    """sha256 of every file the recipe read (hashed into the env key)."""
    return {f: hashlib.sha256((repo / f).read_bytes()).hexdigest()
            for f in list(INPUT_FILES) + reqs if (repo / f).is_file()}


def infer_recipe(repo: Path, available_pythons: tuple[str, ...] = ("3.9", "3.11"),
                 override: dict | None = None, as_of: str | None = None,
                 source_date: str | None = None) -> tuple[dict, dict]:
    """(recipe, inputs) for the repo at ``repo``. ``inputs`` maps every file consulted to its sha256,
    so editing any of them changes the env key. ``as_of`` (ISO datetime): pip considers only releases
    uploaded before it (``PIP_UPLOADED_PRIOR_TO`` in the build). Raises RecipeError for a repo with no tests."""
    repo = Path(repo)
    override = dict(override or {})
    pcfg = pytest_config(repo)
    tests = find_test_files(repo)
    if not tests and not override.get("test_cmd"):
        pats = " or ".join(pcfg["python_files"] or ("test_*.py", "*_test.py"))
        raise RecipeError(f"{repo}: no test files ({pats}) found; nothing to run")
    python, py_reason = (str(override["python"]), "override") if override.get("python") else \
        choose_python(repo, available_pythons, source_date)
    as_of = floor_as_of(as_of, python)
    tox = tox_info(repo)
    extras = declared_extras(repo)
    extra = pick_extra(extras, tox["extras"])
    reqs = requirement_files(repo)
    breqs = build_requires(repo)
    install: list[dict] = _requirement_steps(reqs) + _package_steps(repo, extra, breqs)
    tdeps = [d for d in tox["deps"] if not d.startswith("-r")]
    if tdeps:
        install.append({"name": "tox-deps", "required": False, "try": ["pip install " + " ".join(map(_q, tdeps))]})
    ndeps = nox_deps(repo)
    if ndeps:
        install.append({"name": "nox-deps", "required": False, "try": ["pip install " + " ".join(map(_q, ndeps))]})
    named = requirement_names(repo, reqs) | frozenset(req_name(x) for x in tdeps + ndeps)
    # only where requirements files, tox and nox say nothing of pytest: where they do, they are the test
    # requirements the project keeps up to date (and what its envs have been measured with)
    tdeps_declared = [] if "pytest" in named else \
        dev_test_deps(repo, _import_names(test_imports(repo, tests)), named - {""})
    if tdeps_declared:
        install.append(_test_deps_step(tdeps_declared))

    cplugins = config_plugins(pcfg, pytest_ini_keys(repo, pcfg["file"]))
    if cplugins:
        install.append({"name": "pytest-config-plugins", "required": False,
                        "try": ["pip install " + " ".join(map(_q, cplugins))]})
    install.append({"name": "test-runner", "required": True,
                    "try": ["python -c 'import pytest' 2>/dev/null || pip install pytest"]})
    mentioned, has_testpaths = pytest_configured(repo)
    reinstall, reinstall_reason = needs_reinstall(repo)
    paths = [] if has_testpaths else test_paths(repo, tests)
    if tests and not pcfg["python_files"] and not any(re.fullmatch(r"test_.*\.py|.*_test\.py", t.rsplit("/", 1)[-1])
                                                      for t in tests):
        paths = list(tests)  # a lone tests.py: named on the command line, pytest collects it
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
        "as_of": as_of,
        "sources": {"reinstall_reason": reinstall_reason, "build_requires": breqs, "extra": extra,
                    "extras_declared": extras, "requirements": reqs, "tox": tox, "nox_deps": ndeps,
                    "test_deps": tdeps_declared,
                    "test_files": len(tests), "pytest_config": pcfg, "config_plugins": cplugins,
                    "source_date": source_date},
    }
    _apply_override(recipe, override)
    inputs = _input_hashes(repo, reqs)
    return recipe, inputs


def load_override(name: str, repos_dir: Path) -> dict | None:
    """The override for repo ``name`` (``owner/name`` or a PyPI name) from ``repos_dir/*.yaml``: a file whose
    ``match`` list contains the name (case-insensitive). Unknown top-level keys are errors."""
    if not repos_dir.is_dir():
        return None

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


# After a non-editable ``pip install .`` of /testbed: remove the package's modules from site-packages
# (metadata and entry points stay) and add a .pth with the tree roots they came from (/testbed/src or
# /testbed), the effect of an editable install where none could be made (old setup.cfg projects with
# today's setuptools and an old ``packaging``, PEP 660-less backends).
LINK_TREE = """
import json, os, pathlib, shutil, sysconfig
import importlib.metadata as md
site = pathlib.Path(sysconfig.get_paths()["purelib"])
tree = os.environ.get("CRUCIBLE_TREE", "/testbed")
roots, moved = set(), []
for dist in md.distributions(path=[str(site)]):
    info = json.loads(dist.read_text("direct_url.json") or "{}")
    if info.get("url") != "file://" + tree or info.get("dir_info", {}).get("editable"):
        continue
    tops = {f.parts[0] for f in dist.files or () if f.parts and f.parts[0] not in ("..", "__pycache__")
            and not f.parts[0].endswith((".dist-info", ".egg-info", ".pth", ".data"))}
    for top in sorted(tops):
        root = next((r for r in (tree + "/src", tree) if os.path.exists(os.path.join(r, top))), None)
        if root is None:
            continue
        p = site / top
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        roots.add(root)
        moved.append(top)
if not roots:
    raise SystemExit("crucible: no module of the installed package is in " + tree)
(site / "crucible-testbed.pth").write_text("".join(r + chr(10) for r in sorted(roots)))
print("crucible: linked", ", ".join(moved), "->", ", ".join(sorted(roots)))
"""


# ---------------------------------------------------------------- scripts and logs

def install_script(recipe: dict) -> str:
    """The bash script an env build runs in /testbed. Each step prints markers that
    :func:`parse_install_log` reads back (which rung of the ladder worked)."""
    lines = ["set -u", "cd /testbed", f"echo '{MARK} python' $(python -V 2>&1)"]
    if recipe.get("as_of"):  # as-of-date resolution: pip (>= 25.3) ignores releases uploaded later
        lines.append(f"export PIP_UPLOADED_PRIOR_TO={_q(recipe['as_of'])}; echo '{MARK} as_of' \"$PIP_UPLOADED_PRIOR_TO\"")
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


def collection_order(selection: list[str], recipe: dict) -> list[str]:
    """A selection of test files in the order the whole suite collects them: by the repo's pytest
    ``testpaths`` (then the recipe's ``test_paths``), the given order within each. Suites can depend on it:
    semver's docs/*.rst doctests pass only after a tests/ test's autouse fixture filled the session's
    ``doctest_namespace``; run docs-first (sorted) they fail, and gold patches were graded unresolved."""
    paths = ((recipe.get("sources") or {}).get("pytest_config") or {}).get("testpaths") or \
        recipe.get("test_paths") or []
    roots = [str(p).strip("/") for p in paths]

    def rank(f: str) -> int:
        return next((i for i, r in enumerate(roots) if r in (".", "") or f == r or f.startswith(r + "/")), len(roots))
    return sorted(selection, key=rank)


def test_script(recipe: dict, junit_path: str, extra_args: list[str] | None = None,
                selection: list[str] | None = None, autoload: bool = False) -> str:
    """Bash for one test run in /testbed: optional cheap reinstall, then the test command with JUnit XML,
    the -rA status lines (:data:`REPORT_CHARS`), no cache. The exit code of the script is pytest's. Unless ``autoload``, pytest autoloads
    no plugin (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) and gets ``-p`` for each one installed outside the tree."""
    args = [REPORT_CHARS, f"--junitxml={junit_path}", "-o", "junit_family=xunit1", "-p", "no:cacheprovider",
            "--color=no"] + list(extra_args or [])
    targets = collection_order(selection, recipe) if selection else list(recipe.get("test_paths") or [])
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
