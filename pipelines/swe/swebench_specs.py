"""SWE-bench's own install recipes, as data: import them from a ``swebench`` distribution and turn one
(repo, version) entry into a sandbox recipe.

Why: labels in SWE-bench-format rows bake in SWE-bench's environment (its pins, in its order, its test
command, its log parser). Recomputing them with our inferred recipe changes them where pins matter, so
for the (repo, version) pairs SWE-bench covers we use its recipe; every other repo keeps our inference.

Importer (:func:`import_specs`): reads ``swebench/harness/constants/python.py`` (3.x/4.x; the single
``constants.py`` of older releases also works), ``harness/test_spec/python.py`` (requirement gathering
rules), ``harness/constants/__init__.py`` (NON_TEST_EXTS) and ``harness/log_parsers/python.py`` (parser per
repo) from a wheel, an sdist or an unpacked directory, WITHOUT importing swebench or its dependencies. The
constants module is pure data built with dict literals and comprehensions, so it is parsed with ``ast``,
every top-level statement is checked (no imports, no calls except a short allow-list of builtins and dict/
list methods, no attribute starting with ``_``, only names defined by earlier statements) and the
statements that pass are executed in an empty namespace with those builtins only. Statements that need
anything else (an ``import``, an ``Enum`` class of older releases) are skipped and listed. The other files
are read with ``ast.literal_eval`` on the few assignments needed. The result is a JSON file
(``configs/swebench/specs.json``) with provenance: swebench version and the sha256 of every file read.

Conversion (:func:`recipe_from_spec`) is pure over the env tree: requirement files gathered as SWE-bench's
``get_requirements_by_commit`` does (first existing path of ``MAP_REPO_TO_REQS_PATHS``; ``-r`` includes
inlined before the file's own lines; ``-e .``, comments and ``.[test`` lines dropped; yanked packages
replaced), then the explicit package list, then ``pip_packages`` in order, then the package (``install``,
with the old-setuptools ladder). Conda-only specs (``environment.yml``), non-pytest test commands and
Pythons without a base image are :class:`~sandbox.recipes.RecipeError` naming repo, version and why.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shlex
import tarfile
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

from sandbox.recipes import (
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
CONSTANTS_FILES = ("swebench/harness/constants/python.py", "swebench/harness/constants.py")
CONSTANTS_INIT = "swebench/harness/constants/__init__.py"
TEST_SPEC_FILES = ("swebench/harness/test_spec/python.py", "swebench/harness/utils.py")
PARSER_FILES = ("swebench/harness/log_parsers/python.py", "swebench/harness/log_parsers.py")
SPEC_MAPS = ("MAP_REPO_VERSION_TO_SPECS_PY", "MAP_REPO_VERSION_TO_SPECS")
SAFE_BUILTINS = {"dict": dict, "list": list, "set": set, "tuple": tuple, "range": range, "sorted": sorted,
                 "str": str, "int": int, "float": float, "zip": zip, "len": len, "True": True, "False": False, "None": None}
SAFE_METHODS = frozenset({"update", "copy", "items", "keys", "values", "get", "extend", "append", "format",
                          "join", "replace", "split", "strip"})
# what SWE-bench 3.x/4.x hard-codes in get_requirements_by_commit, used when it cannot be read from source
DEFAULT_EXCLUDE_PREFIXES = ["-e .", "#", ".[test"]
# SWE-bench's parser per repo -> the sandbox parser that writes the same ids (sandbox.parsers)
PARSER_NAMES = {"parse_log_pytest": "pytest_rA", "parse_log_pytest_options": "pytest_rA_options",
                "parse_log_pytest_v2": "pytest_rA_v2"}
PYTEST_CMD = re.compile(r"^(python\s+-m\s+)?pytest(\s|$)")
TEMP_REQS = "/tmp/crucible-swebench-requirements.txt"


class SpecsImportError(ValueError):
    """The given path holds no readable swebench recipe tables; the message names the file and the fix."""


# ---------------------------------------------------------------- reading a distribution

def _read_dist(path: Path) -> dict[str, bytes]:
    """Every file of a wheel / sdist / directory under its path relative to the ``swebench`` package's
    parent (``swebench/harness/...``), plus ``METADATA``/``PKG-INFO`` and license files."""
    path = Path(path)
    files: dict[str, bytes] = {}

    def keep(name: str, data_fn):
        name = name.replace("\\", "/")
        i = name.find("swebench/")
        base = name.rsplit("/", 1)[-1]
        if name.endswith(".py") and i >= 0 and "/harness/" in name[i:]:
            files.setdefault(name[i:], data_fn())
        elif base in ("METADATA", "PKG-INFO") and name.count("/") <= 2:
            files.setdefault(base, data_fn())
        elif base.upper().startswith("LICENSE") and name.count("/") <= 3:
            files.setdefault("LICENSE", data_fn())

    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                keep(p.relative_to(path).as_posix(), p.read_bytes)
    elif path.suffix == ".whl" or zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for n in zf.namelist():
                keep(n, lambda n=n: zf.read(n))
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    keep(m.name, lambda m=m: tf.extractfile(m).read())
    else:
        raise SpecsImportError(f"{path}: not a directory, wheel or sdist; pass a swebench 3.x/4.x wheel "
                               f"(pip download swebench==4.0.* --no-deps) or its unpacked directory")
    return files


def _dist_version(files: dict[str, bytes]) -> str | None:
    for meta in ("METADATA", "PKG-INFO"):
        if meta in files:
            m = re.search(r"(?m)^Version:\s*(\S+)", files[meta].decode(errors="replace"))
            if m:
                return m.group(1)
    init = files.get("swebench/__init__.py")
    if init:
        m = re.search(r"__version__\s*=\s*[\"']([^\"']+)", init.decode(errors="replace"))
        if m:
            return m.group(1)
    return None


# ---------------------------------------------------------------- safe evaluation of the constants module

def _stmt_problem(stmt: ast.stmt, known: set[str]) -> str | None:
    """Why ``stmt`` may not be executed (None if it may): only assignments / ``X.update(...)`` calls over
    literals, comprehensions and names defined earlier."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return "import"
    if isinstance(stmt, ast.If):  # inside loops: ``if k in [...]: ...``
        why = _nodes_problem(stmt.test, known)
        for sub in stmt.body + stmt.orelse:
            why = why or _stmt_problem(sub, known)
        return f"if: {why}" if why else None
    if isinstance(stmt, ast.For):  # ``for k in [...]: SPECS[k][...] = ...`` (loop over data, data body)
        if stmt.orelse or not isinstance(stmt.target, ast.Name):
            return "for loop with else or a non-name target"
        head = _nodes_problem(stmt.iter, known)
        if head:
            return f"for loop: {head}"
        inner = known | {stmt.target.id}
        for sub in stmt.body:
            why = _stmt_problem(sub, inner)
            if why:
                return f"for loop body: {why}"
        return None
    if isinstance(stmt, ast.Expr):
        if isinstance(stmt.value, ast.Constant):
            return "docstring"
        call = stmt.value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr in SAFE_METHODS):
            return "expression other than a method call"
    elif not isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return type(stmt).__name__
    return _nodes_problem(stmt, known)


def _nodes_problem(tree: ast.AST, known: set[str]) -> str | None:
    """Why the statement or expression ``tree`` is not plain data over ``known`` names (None if it is)."""
    stmt = tree
    bound: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.comprehension):
            bound |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Lambda):
            bound |= {a.arg for a in node.args.args}
        elif isinstance(node, ast.NamedExpr):
            return "walrus"
    for node in ast.walk(stmt):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return f"attribute {node.attr}"
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in SAFE_BUILTINS:
                continue
            if isinstance(f, ast.Attribute) and f.attr in SAFE_METHODS:
                continue
            return f"call {ast.unparse(f)}"
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id not in known and node.id not in bound and node.id not in SAFE_BUILTINS:
                return f"unknown name {node.id}"
    return None


def eval_constants(source: str, filename: str = "<constants>") -> tuple[dict, list[str]]:
    """(namespace, skipped) from executing the safe top-level statements of a constants module."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise SpecsImportError(f"{filename}: not parsable Python ({exc})") from None
    ns: dict = {"__builtins__": dict(SAFE_BUILTINS)}
    known: set[str] = set()
    skipped: list[str] = []
    for stmt in tree.body:
        why = _stmt_problem(stmt, known)
        if why:
            if why != "docstring":
                skipped.append(f"line {stmt.lineno}: {why}")
            continue
        mod = ast.Module(body=[stmt], type_ignores=[])
        try:
            exec(compile(mod, filename, "exec"), ns)  # noqa: S102 - checked above: data statements only
        except Exception as exc:  # a statement depending on a skipped one: skip it too
            skipped.append(f"line {stmt.lineno}: {type(exc).__name__}: {exc}")
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                known.add(node.id)
    ns.pop("__builtins__", None)
    return ns, skipped


def _literal_assign(source: str, name: str):
    """The literal value assigned to top-level ``name`` (None if absent or not a literal)."""
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            try:
                return ast.literal_eval(stmt.value)
            except ValueError:
                return None
    return None


def requirement_rules(test_spec_source: str | None) -> dict:
    """How SWE-bench gathers requirement files, read from ``test_spec/python.py``: the line prefixes its
    ``exclude_line`` lambda drops and ``REPLACE_REQ_PACKAGES`` (absent before 4.0: none)."""
    rules = {"exclude_prefixes": list(DEFAULT_EXCLUDE_PREFIXES), "exclude_prefixes_from": "default",
             "replace": [], "includes_first": True}
    if not test_spec_source:
        return rules
    tree = ast.parse(test_spec_source)
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name == "get_requirements_by_commit":
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda) and any(
                        isinstance(t, ast.Name) and t.id == "exclude_line" for t in node.targets):
                    for lst in ast.walk(node.value):
                        if isinstance(lst, ast.List) and lst.elts and all(
                                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in lst.elts):
                            rules["exclude_prefixes"] = [e.value for e in lst.elts]
                            rules["exclude_prefixes_from"] = "test_spec"
                            break
    rep = _literal_assign(test_spec_source, "REPLACE_REQ_PACKAGES")
    if isinstance(rep, list):
        rules["replace"] = [[a, b] for a, b in rep]
    return rules


def log_parsers(source: str | None) -> dict[str, str]:
    """repo -> name of the parser function SWE-bench grades it with (aliases resolved)."""
    if not source:
        return {}
    tree = ast.parse(source)
    alias: dict[str, str] = {}
    table: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, val = stmt.targets[0].id, stmt.value
            if isinstance(val, ast.Name):
                alias[name] = val.id
            elif isinstance(val, ast.Dict) and name.startswith("MAP_REPO_TO_PARSER"):
                for k, v in zip(val.keys, val.values):
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Name):
                        table[k.value] = v.id
    out = {}
    for repo, fn in table.items():
        seen = set()
        while fn in alias and fn not in seen:
            seen.add(fn)
            fn = alias[fn]
        out[repo] = fn
    return out


def _jsonable(obj, where: str):
    try:
        return json.loads(json.dumps(obj))
    except TypeError as exc:
        raise SpecsImportError(f"{where}: not plain data ({exc})") from None


def import_specs(path: Path) -> tuple[dict, str | None]:
    """(specs data, license text) from a swebench wheel / sdist / directory."""
    files = _read_dist(Path(path))
    const_name = next((n for n in CONSTANTS_FILES if n in files), None)
    if const_name is None:
        raise SpecsImportError(f"{path}: no {' or '.join(CONSTANTS_FILES)} inside; swebench 5.x no longer ships "
                               f"the recipe tables: use a 3.x or 4.x release")
    src = files[const_name].decode()
    ns, skipped = eval_constants(src, const_name)
    table_name = next((n for n in SPEC_MAPS if isinstance(ns.get(n), dict)), None)
    if table_name is None:
        raise SpecsImportError(f"{path}:{const_name}: none of {', '.join(SPEC_MAPS)} could be evaluated "
                               f"(skipped: {'; '.join(skipped[:5])})")
    read = {const_name: files[const_name]}
    ts_name = next((n for n in TEST_SPEC_FILES if n in files and b"get_requirements_by_commit" in files[n]), None)
    ts_src = files[ts_name].decode() if ts_name else None
    if ts_name:
        read[ts_name] = files[ts_name]
    non_test_exts = None
    if CONSTANTS_INIT in files:
        non_test_exts = _literal_assign(files[CONSTANTS_INIT].decode(), "NON_TEST_EXTS")
        read[CONSTANTS_INIT] = files[CONSTANTS_INIT]
    if non_test_exts is None:
        non_test_exts = ns.get("NON_TEST_EXTS")
    pr_name = next((n for n in PARSER_FILES if n in files), None)
    parsers = log_parsers(files[pr_name].decode()) if pr_name else {}
    if pr_name:
        read[pr_name] = files[pr_name]
    specs = {repo: {str(v): _jsonable(s, f"{const_name}: {repo} {v}") for v, s in sorted(vs.items())}
             for repo, vs in sorted(ns[table_name].items())}
    data = {
        "format": FORMAT,
        "source": {"package": "swebench", "version": _dist_version(files), "table": table_name,
                   "files": {n: hashlib.sha256(b).hexdigest() for n, b in sorted(read.items())},
                   "skipped_statements": skipped, "license": "MIT" if b"MIT" in files.get("LICENSE", b"") else None},
        "specs": specs,
        "reqs_paths": _jsonable(ns.get("MAP_REPO_TO_REQS_PATHS") or {}, "MAP_REPO_TO_REQS_PATHS"),
        "env_yml_paths": _jsonable(ns.get("MAP_REPO_TO_ENV_YML_PATHS") or {}, "MAP_REPO_TO_ENV_YML_PATHS"),
        "repo_install": _jsonable(ns.get("MAP_REPO_TO_INSTALL_PY") or ns.get("MAP_REPO_TO_INSTALL") or {},
                                  "MAP_REPO_TO_INSTALL"),
        "requirements_rules": requirement_rules(ts_src),
        "non_test_exts": list(non_test_exts or []),
        "log_parsers": parsers,
    }
    lic = files.get("LICENSE")
    return data, lic.decode(errors="replace") if lic else None


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_specs(data: dict, license_text: str | None, out: Path) -> dict:
    """Write the JSON (sorted, stable) and swebench's license next to it; returns a summary."""
    out = Path(out)
    _atomic_write(out, json.dumps(data, indent=1, sort_keys=True) + "\n")
    if license_text:
        _atomic_write(out.parent / LICENSE_NAME, license_text)
    return {"out": str(out), "swebench": data["source"]["version"], "repos": len(data["specs"]),
            "entries": sum(len(v) for v in data["specs"].values()),
            "skipped_statements": len(data["source"]["skipped_statements"])}


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict:
    from pipelines.textio import InputError, read_json

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


def recipe_from_spec(spec: dict, env_tree: Path, *, repo: str, version: str, available_pythons: tuple[str, ...],
                     table: dict | None = None) -> tuple[dict, dict]:
    """(recipe, inputs) in the sandbox's recipe format for SWE-bench's ``spec`` of (repo, version), read at
    ``env_tree`` (the environment_setup_commit). ``inputs`` maps every file read to its sha256 (hashed into
    the env key with the recipe). Raises RecipeError where the spec cannot be honoured here."""
    table = table if table is not None else load_specs()
    who = f"{repo} {version} ({origin(table)})"
    env_tree = Path(env_tree)
    pkgs = spec.get("packages") or ""
    if pkgs == "environment.yml":
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
    install: list[dict] = []
    inputs: dict[str, str] = {}
    sources: dict = {"origin": origin(table), "repo": repo, "spec_version": str(version), "spec": spec,
                     "swebench_files": table["source"].get("files", {})}
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
    reinstall, reason = needs_reinstall(env_tree)
    scm = scm_version_env(env_tree, version)
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

