"""Import SWE-bench's own install recipes, as data, from a ``swebench`` distribution (see
 :mod:`crucible.pipelines.swe.swebench_specs` for why and for the conversion into sandbox recipes).

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
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import tarfile
import zipfile
from pathlib import Path

from crucible.pipelines.store.fsio import write_bytes_atomic
from crucible.pipelines.swe.swebench_specs import (
    DEFAULT_EXCLUDE_PREFIXES,
    FORMAT,
    LICENSE_NAME,
    SpecsImportError,
)

CONSTANTS_FILES = ("swebench/harness/constants/python.py", "swebench/harness/constants.py")
CONSTANTS_INIT = "swebench/harness/constants/__init__.py"
TEST_SPEC_FILES = ("swebench/harness/test_spec/python.py", "swebench/harness/utils.py")
PARSER_FILES = ("swebench/harness/log_parsers/python.py", "swebench/harness/log_parsers.py")
SPEC_MAPS = ("MAP_REPO_VERSION_TO_SPECS_PY", "MAP_REPO_VERSION_TO_SPECS")
SAFE_BUILTINS = {"dict": dict, "list": list, "set": set, "tuple": tuple, "range": range, "sorted": sorted,
                 "str": str, "int": int, "float": float, "zip": zip, "len": len, "True": True, "False": False, "None": None}
SAFE_METHODS = frozenset({"update", "copy", "items", "keys", "values", "get", "extend", "append", "format",
                          "join", "replace", "split", "strip"})


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


def write_specs(data: dict, license_text: str | None, out: Path) -> dict:
    """Write the JSON (sorted, stable) and swebench's license next to it; returns a summary."""
    out = Path(out)
    write_bytes_atomic(str(out), (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    if license_text:
        write_bytes_atomic(str(out.parent / LICENSE_NAME), license_text.encode())
    return {"out": str(out), "swebench": data["source"]["version"], "repos": len(data["specs"]),
            "entries": sum(len(v) for v in data["specs"].values()),
            "skipped_statements": len(data["source"]["skipped_statements"])}
