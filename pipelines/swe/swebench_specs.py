"""SWE-bench's own install recipes, as data: import them from a ``swebench`` distribution and turn one
(repo, version) entry into a sandbox recipe.

Why: labels in SWE-bench-format rows bake in SWE-bench's environment (its pins, in its order, its test
command, its log parser). Recomputing them with our inferred recipe changes them where pins matter, so
for the (repo, version) pairs SWE-bench covers we use its recipe; every other repo keeps our inference.

The importer is :mod:`crucible.pipelines.swe.swebench_import`.

Conversion (:func:`recipe_from_spec`) is pure over the env tree: requirement files gathered as SWE-bench's
``get_requirements_by_commit`` does (first existing path of ``MAP_REPO_TO_REQS_PATHS``; ``-r`` includes
inlined before the file's own lines; ``-e .``, comments and ``.[test`` lines dropped; yanked packages
replaced), then the explicit package list, then ``pip_packages`` in order, then the package (``install``,
with the old-setuptools ladder). Conda-only specs (``environment.yml``), non-pytest test commands and
Pythons without a base image are :class:`~crucible.sandbox.recipes.RecipeError` naming repo, version and why.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from functools import lru_cache
from pathlib import Path

from crucible.pipelines.textio import InputError, read_json
from crucible.sandbox.recipes import (
    RECIPE_VERSION,
    RecipeError,
    build_requires,
    find_test_files,
    needs_reinstall,
    test_paths,
)

FORMAT = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPECS = REPO_ROOT / "configs" / "swebench" / "specs.json"
LICENSE_NAME = "LICENSE-swebench.txt"
# what SWE-bench 3.x/4.x hard-codes in get_requirements_by_commit, used when it cannot be read from source
DEFAULT_EXCLUDE_PREFIXES = ["-e .", "#", ".[test"]
# SWE-bench's parser per repo -> the sandbox parser that writes the same ids (crucible.sandbox.parsers)
PARSER_NAMES = {"parse_log_pytest": "pytest_rA", "parse_log_pytest_options": "pytest_rA_options",
                "parse_log_pytest_v2": "pytest_rA_v2"}
PYTEST_CMD = re.compile(r"^(python\s+-m\s+)?pytest(\s|$)")
TEMP_REQS = "/tmp/crucible-swebench-requirements.txt"



def repo_log_parser(repo: str, path: Path | None = None) -> str | None:
    """The sandbox parser writing the test ids SWE-bench's labels use for ``repo`` (its ``log_parsers``
    table), whatever the install recipe; None for a repo the table does not name or a parser without a
    sandbox equivalent."""
    return PARSER_NAMES.get(load_specs(path).get("log_parsers", {}).get(repo, ""))


class SpecsImportError(ValueError):
    """The given path holds no readable swebench recipe tables; the message names the file and the fix."""


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict:
    try:
        data = read_json(path, "SWE-bench specs file")
    except InputError as exc:
        raise SpecsImportError(str(exc)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecsImportError(f"{path}: format {data.get('format') if isinstance(data, dict) else data!r}, expected {FORMAT}; regenerate it with "
                               f"`crucible swe import-specs --from <swebench wheel>`")
    return data


def load_specs(path: Path | None = None) -> dict:
    """The committed table (or ``path``); read once per file version."""
    p = Path(path or DEFAULT_SPECS)
    if not p.is_file():
        raise SpecsImportError(f"{p}: missing; run `crucible swe import-specs --from <swebench 4.0.x wheel>`")
    return _load(str(p), p.stat().st_mtime)


def spec_for(table: dict, repo: str, version) -> dict | None:
    """SWE-bench's spec for (repo, version), or None when it does not cover the pair."""
    if version is None or repo not in table["specs"]:
        return None
    return table["specs"][repo].get(str(version))


def origin(table: dict) -> str:
    return f"swebench-{table['source'].get('version') or 'unknown'}"


# ---------------------------------------------------------------- requirement gathering (pure, on a tree)

def _exclude(line: str, prefixes: list[str]) -> bool:
    return any(line.strip().startswith(x) for x in prefixes)


def gather_requirements(env_tree: Path, paths: list[str], rules: dict) -> tuple[str, str, dict]:
    """(text, path used, {file: sha256}) as SWE-bench's ``get_requirements`` builds it at the env commit:
    the first of ``paths`` that exists; each ``-r FILE`` line inlined (its kept lines first, one level, as
    SWE-bench does); excluded prefixes dropped; then ``clean_requirements`` replacements. Raises
    RecipeError when no path exists."""
    env_tree = Path(env_tree)
    used = next((p for p in paths if (env_tree / p).is_file()), None)
    if used is None:
        raise RecipeError(f"none of the requirement files {paths} exists in the env tree")
    read = {used: (env_tree / used).read_bytes()}
    prefixes = list(rules.get("exclude_prefixes") or DEFAULT_EXCLUDE_PREFIXES)
    req_dir = "/".join(used.split("/")[:-1])
    original, additional = [], []
    for line in read[used].decode(errors="replace").split("\n"):
        if line.strip().startswith("-r"):
            name = line.strip()[len("-r"):].strip()
            inc = env_tree / req_dir / name if req_dir else env_tree / name
            if inc.is_file():
                rel = inc.relative_to(env_tree).as_posix()
                read[rel] = inc.read_bytes()
                additional += [x for x in read[rel].decode(errors="replace").split("\n") if not _exclude(x, prefixes)]
        elif not _exclude(line, prefixes):
            original.append(line)
    additional.append("\n".join(original))
    text = "\n".join(additional)
    for old, new in rules.get("replace") or []:
        if new is None:
            text = re.sub(rf"^{re.escape(old)}([<>=!~]=?.*|$)\n?", "", text, flags=re.M)
        else:
            text = re.sub(rf"^{re.escape(old)}([<>=!~]=?.*|$)", new, text, flags=re.M)
    return text, used, {k: hashlib.sha256(v).hexdigest() for k, v in read.items()}


# ---------------------------------------------------------------- spec -> recipe

def install_ladder(cmd: str) -> list[str]:
    """SWE-bench's install command, then the old-setuptools fallback: packages pinning a setuptools build
    backend without PEP 660 hooks cannot ``pip install -e .`` with current pip; ``--no-build-isolation``
    uses the venv's modern setuptools instead."""
    ladder = [cmd]
    if re.search(r"\bpip install\b", cmd) and "--no-build-isolation" not in cmd:
        ladder.append(re.sub(r"\bpip install\b", "pip install --no-build-isolation", cmd, count=1))
    return ladder


def _export_env(cmd: str) -> dict | None:
    m = re.match(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$", cmd)
    if not m:
        return None
    val = shlex.split(m.group(2)) if m.group(2) else [""]
    return {m.group(1): val[0] if val else ""}


def _write_file_cmd(path: str, text: str) -> str:
    """One shell line writing ``text`` to ``path`` (install steps are single lines inside a ladder)."""
    return "printf '%s\\n' " + " ".join(shlex.quote(x) for x in text.split("\n")) + f" > {path}"


SCM_RE = re.compile(r"setuptools[_-]scm", re.I)


def scm_version_env(env_tree: Path, version) -> dict[str, str]:
    """setuptools-scm reads the version from git, and the sandbox's trees have no .git (an sdist's PKG-INFO
    serves instead): pretend the row's version (``5.4`` -> ``5.4.0``) so the install works."""
    env_tree = Path(env_tree)
    if (env_tree / "PKG-INFO").is_file():
        return {}
    text = "".join((env_tree / f).read_text(errors="replace") for f in ("pyproject.toml", "setup.cfg", "setup.py")
                   if (env_tree / f).is_file())
    if not SCM_RE.search(text):
        return {}
    v = str(version)
    return {"SETUPTOOLS_SCM_PRETEND_VERSION": v if v.count(".") >= 2 else f"{v}.0"}


def _checked_spec(spec: dict, table: dict, who: str, repo: str,
                  available_pythons: tuple[str, ...]) -> tuple[str, str, str]:
    """(python, test_cmd, SWE-bench log parser name) of a spec the sandbox can honour; RecipeError naming
    the first thing it cannot (conda environment, a Python without a base image, no pytest, a parser whose
    test ids the sandbox does not reproduce)."""
    if (spec.get("packages") or "") == "environment.yml":
        raise RecipeError(f"{who}: the SWE-bench spec installs from a conda environment.yml "
                          f"({table['env_yml_paths'].get(repo)}); conda environments are not supported")
    py = str(spec.get("python") or "")
    if py not in available_pythons:
        raise RecipeError(f"{who}: SWE-bench installs it on Python {py or '?'}, and the sandbox has base images "
                          f"only for {', '.join(available_pythons)}; another Python would change its labels "
                          f"(set swe.recipes=inferred to use our inference instead)")
    test_cmd = str(spec.get("test_cmd") or "")
    if not test_cmd:
        raise RecipeError(f"{who}: the SWE-bench spec has no test_cmd")
    if not PYTEST_CMD.match(test_cmd):
        raise RecipeError(f"{who}: test_cmd {test_cmd!r} is not pytest; the sandbox needs pytest's JUnit XML to "
                          f"cross-check outcomes")
    sb_parser = table.get("log_parsers", {}).get(repo, "parse_log_pytest")
    if sb_parser not in PARSER_NAMES:
        raise RecipeError(f"{who}: SWE-bench grades it with {sb_parser}, whose test ids the sandbox does not "
                          f"reproduce (supported: {', '.join(PARSER_NAMES)})")
    return py, test_cmd, sb_parser


def _package_steps(spec: dict, env_tree: Path, table: dict, who: str, repo: str, inputs: dict,
                   sources: dict) -> list[dict]:
    """The install steps for the spec's ``packages`` (a requirements file read at the env tree, or names pip
    installs where SWE-bench uses conda) and ``pip_packages``; files read go into ``inputs``."""
    install: list[dict] = []
    pkgs = spec.get("packages") or ""
    if pkgs == "requirements.txt":
        paths = list(table["reqs_paths"].get(repo) or [])
        if not paths:
            raise RecipeError(f"{who}: packages is requirements.txt but MAP_REPO_TO_REQS_PATHS has no entry")
        try:
            text, used, read = gather_requirements(env_tree, paths, table["requirements_rules"])
        except RecipeError as exc:
            raise RecipeError(f"{who}: {exc}") from None
        inputs.update(read)
        sources["requirements_file"] = used
        install.append({"name": f"swebench-requirements:{used}", "required": True,
                        "try": [_write_file_cmd(TEMP_REQS, text) + f" && pip install -r {TEMP_REQS}"]})
    elif pkgs:
        # SWE-bench hands these to `conda create`; the sandbox has no conda, pip gets the same names
        sources["packages_via"] = "pip (SWE-bench: conda create)"
        install.append({"name": "swebench-packages", "required": True, "try": ["pip install " + pkgs]})
    if spec.get("pip_packages"):
        install.append({"name": "swebench-pip-packages", "required": True,
                        "try": ["pip install " + " ".join(shlex.quote(p) for p in spec["pip_packages"])]})
    return install


def _install_steps(spec: dict, env_tree: Path, table: dict, repo: str, reinstall: bool,
                   scm: dict[str, str]) -> list[dict]:
    """Build requirements (when the env reinstalls offline), the repo's install commands as a ladder (with the
    setuptools-scm version exported), then the test runner."""
    install: list[dict] = []
    if reinstall:
        # the per-run offline reinstall (--no-build-isolation) needs the build backend in the venv; SWE-bench
        # re-runs its install online instead, so this is the one addition to its environment
        breqs = build_requires(env_tree)
        if breqs:
            install.append({"name": "build-requires", "required": False,
                            "try": ["pip install " + " ".join(shlex.quote(r) for r in breqs)]})
    for cmd in [table.get("repo_install", {}).get(repo)] + [spec.get("install")]:
        if cmd:
            ladder = install_ladder(cmd)
            if scm:
                ladder = [f"export {k}={shlex.quote(v)}; {c}" for k, v in scm.items() for c in ladder]
            install.append({"name": "swebench-install", "required": True, "try": ladder})
    install.append({"name": "test-runner", "required": True,
                    "try": ["python -c 'import pytest' 2>/dev/null || pip install pytest"]})
    return install


def _test_env(spec: dict, who: str, scm: dict[str, str], reinstall: bool) -> dict[str, str]:
    """The environment of a test run: the eval commands' exports (one that needs root is refused), the spec's
    test variables, and the setuptools-scm version when the run reinstalls."""
    test_env: dict[str, str] = {}
    for cmd in spec.get("eval_commands") or []:
        exp = _export_env(cmd)
        if exp is None:
            raise RecipeError(f"{who}: eval command {cmd!r} needs root at test time; the sandbox runs tests "
                              f"as an unprivileged user")
        test_env.update(exp)
    test_env.update({str(k): str(v) for k, v in (spec.get("env_vars_test") or {}).items()})
    if scm and reinstall:
        test_env.update(scm)
    return test_env


def recipe_from_spec(spec: dict, env_tree: Path, *, repo: str, version: str, available_pythons: tuple[str, ...],
                     table: dict | None = None) -> tuple[dict, dict]:
    """(recipe, inputs) in the sandbox's recipe format for SWE-bench's ``spec`` of (repo, version), read at
    ``env_tree`` (the environment_setup_commit). ``inputs`` maps every file read to its sha256 (hashed into
    the env key with the recipe). Raises RecipeError where the spec cannot be honoured here."""
    table = table if table is not None else load_specs()
    who = f"{repo} {version} ({origin(table)})"
    env_tree = Path(env_tree)
    py, test_cmd, sb_parser = _checked_spec(spec, table, who, repo, available_pythons)
    inputs: dict[str, str] = {}
    sources: dict = {"origin": origin(table), "repo": repo, "spec_version": str(version), "spec": spec,
                     "swebench_files": table["source"].get("files", {})}
    install = _package_steps(spec, env_tree, table, who, repo, inputs, sources)
    reinstall, reason = needs_reinstall(env_tree)
    scm = scm_version_env(env_tree, version)
    install += _install_steps(spec, env_tree, table, repo, reinstall, scm)
    test_env = _test_env(spec, who, scm, reinstall)
    sources["scm_version"] = scm
    for f in ("setup.py", "setup.cfg", "pyproject.toml"):
        if (env_tree / f).is_file():
            inputs[f] = hashlib.sha256((env_tree / f).read_bytes()).hexdigest()
    sources["reinstall_reason"] = reason
    sources["log_parser"] = sb_parser
    recipe = {
        "version": RECIPE_VERSION,
        "origin": origin(table),
        "python": py,
        "python_reason": f"SWE-bench spec for {repo} {version}",
        "apt_packages": [],
        "pre_install": list(spec.get("pre_install") or []),
        "install": install,
        "runner": "pytest",
        "test_cmd": test_cmd,
        "log_parser": PARSER_NAMES[sb_parser],
        "test_env": test_env,
        "test_paths": test_paths(env_tree, find_test_files(env_tree)),
        "reinstall": reinstall,
        "sources": sources,
    }
    return recipe, inputs


def recipe_for_instance(repo: str, version, env_tree: Path, available_pythons: tuple[str, ...],
                        table: dict | None = None) -> tuple[dict, dict] | None:
    """(recipe, inputs) from SWE-bench's table when it covers (repo, version), else None (use inference)."""
    table = table if table is not None else load_specs()
    spec = spec_for(table, repo, version)
    if spec is None:
        return None
    return recipe_from_spec(spec, env_tree, repo=repo, version=str(version),
                            available_pythons=tuple(available_pythons), table=table)

