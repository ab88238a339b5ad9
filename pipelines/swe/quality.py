"""Quality labels and a difficulty estimate per SWE instance (issue #24 item 3), in the spirit of SWE-rebench
V2's defect codes B1-B11: only what the validation's runs and the diffs decide, each label with its reason.

Pure: :func:`assess` takes the instance, its swe_validations row, its trajectories and an optional reader of
the repo's files at the base commit (:func:`repo_reader`, the one I/O here: ``git show`` in the local clones
the validation made) and returns the ``quality_labels`` and ``difficulty`` columns of swe_instances. A test's
source comes from the test patch's hunks first, then from the repo at the base commit; a test whose source is
not found (no reader, an id that names no ``def``) takes part in no label that needs it (``difficulty.f2p_read``
counts those read). Codes and thresholds are documented in docs/swe.md "Quality labels and difficulty"."""

from __future__ import annotations

import ast
import math
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

Reader = Callable[[str], "str | None"]  # repo-relative path -> text at the base commit (None: not there)


class Defect(str, Enum):
    """``quality_labels[].code`` (schemas/swe_instance.json lists the same values)."""

    PRIVATE_API = "B1_private_api"  # an F2P test names a private name of the code the fix changes
    UNNAMED_NEW_API = "B2_unnamed_new_api"  # an F2P test calls a name only the fix introduces; the statement never names it
    NETWORK = "B3_network"  # the tests reach the network (network_tests, socket/HTTP calls, connection errors)
    FLAKY = "B4_flaky"  # tests flipped between reruns and were removed from the labels
    EXCEPTION_ONLY = "B5_exception_type_only"  # every F2P test read only checks an exception type
    STATEMENT_NOT_REPRODUCED = "B6_statement_not_reproduced"  # the statement's reproduction did not show it
    BROAD_F2P = "B7_broad_f2p"  # more than BROAD_F2P tests go fail -> pass
    PATCH_EDITS_TESTS = "B8_patch_edits_tests"  # the reference fix itself edits test files


BANDS = ("easy", "medium", "hard")
BROAD_F2P = 20  # B7: more F2P tests than this
BAND_CUTS = (0.3, 0.55)  # score < 0.3 easy, < 0.55 medium, else hard
# difficulty components (each in [0, 1]) and their weights; the agent's is left out where no agent ran
WEIGHTS = {"files": 0.2, "lines": 0.25, "f2p": 0.1, "distance": 0.2, "agent": 0.25}
REFERENCE_POLICIES = ("gold",)  # pipelines.swe.filters.REFERENCE_POLICIES: their pass rate says nothing

NET_CALL = re.compile(r"\bsocket\.(socket|create_connection|getaddrinfo)\b|\brequests\.(get|post|put|patch|delete|"
                      r"head|request|Session)\b|\burllib\.request\b|\burlopen\(|\bhttp\.client\b|\bhttpx\.|"
                      r"\baiohttp\.|\bftplib\.|\bsmtplib\.")
NET_ERROR = re.compile(r"ConnectionRefusedError|Name or service not known|Temporary failure in name resolution|"
                       r"Network is unreachable|NewConnectionError|MaxRetryError|ConnectTimeout|gaierror|"
                       r"nodename nor servname")
PRIVATE = re.compile(r"(?<![\w])_[A-Za-z]\w*")
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


@dataclass
class Facts:
    inst: Mapping
    val: Mapping
    fix: Fix
    tests: dict[str, str | None]  # F2P id -> its function's source (None: not found)
    statement_symbols: set[str]


# ---------------------------------------------------------------- diffs and sources

def _patchset(diff: str):
    import unidiff

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
    from pipelines.swe.patches import is_test_path

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
    """(file path or None, function name) of a pytest-style id (``path::Class::name[param]``) or of a
    unittest-style one (``name (module.Class)``)."""
    if "::" in test_id:
        path, *rest = test_id.split("::")
        return path, re.sub(r"\[.*$", "", rest[-1]) if rest else ""
    m = re.match(r"(\w+) \(", test_id)
    return None, m.group(1) if m else re.sub(r"\[.*$", "", test_id)


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
    """F2P id -> its function's source: the test patch's new side first, then the file at the base commit."""
    new_side: dict[str, list[str]] = {}
    for pf in _patchset(test_patch):
        new_side[_path(pf)] = ["\n".join(ln.value.rstrip("\n") for ln in h if not ln.is_removed) for h in pf]
    out: dict[str, str | None] = {}
    for t in f2p:
        path, name = split_test_id(t)
        found = next((b for chunk in new_side.get(path, []) if (b := def_block(chunk, name))), None) if name else None
        if found is None and name and path and read is not None:
            found = def_block(read(path) or "", name)
        out[t] = found
    return out


def statement_symbols(text: str) -> set[str]:
    """Names a problem statement mentions as code: backticked, called (``name(``), dotted, or with an
    underscore or an inner capital (each dotted part too)."""
    text = text or ""
    found = set(re.findall(r"`([^`\n]{1,80})`", text))
    found |= set(re.findall(r"\b([A-Za-z_][\w.]*)\s*\(", text))
    found |= set(re.findall(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b", text))
    found |= {w for w in WORD.findall(text) if "_" in w.strip("_") or re.search(r"[a-z][A-Z]", w)}
    return {p for s in found for p in WORD.findall(s)}


# ---------------------------------------------------------------- labels

def _exception_only(src: str | None) -> bool:
    """The test only checks that an exception of some type is raised: ``pytest.raises(X)`` (or
    ``assertRaises``) with no ``match=``, and no assert, no assert* call, no ``.match(``."""
    try:
        tree = ast.parse(textwrap.dedent(src or ""))
    except SyntaxError:
        return False
    raises, checks = False, False
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            checks = True
        elif isinstance(node, ast.Call):
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if fn in ("raises", "assertRaises"):
                if any(k.arg in ("match", "msg") for k in node.keywords):
                    checks = True
                raises = True
            elif fn.startswith(("assert", "fail")) or fn == "match":
                checks = True
    return raises and not checks


def _names(src: str | None) -> set[str]:
    return set(WORD.findall(src or ""))


def b1_private_api(f: Facts) -> str | None:
    hits = {t: sorted(n for n in set(PRIVATE.findall(s or "")) if not n.endswith("__") and n in f.fix.nearby)
            for t, s in f.tests.items()}
    hits = {t: n for t, n in hits.items() if n}
    if not hits:
        return None
    t, names = next(iter(sorted(hits.items())))
    return (f"{len(hits)} F2P test(s) name private names of the fixed code, e.g. {t} uses {', '.join(names[:3])} "
            f"(of {', '.join(f.fix.source_files[:2])})")


def b2_unnamed_new_api(f: Facts) -> str | None:
    new = f.fix.added - f.statement_symbols
    hits = {t: sorted(new & _names(s)) for t, s in f.tests.items()}
    hits = {t: n for t, n in hits.items() if n}
    if not hits:
        return None
    t, names = next(iter(sorted(hits.items())))
    return (f"{len(hits)} F2P test(s) call names only the fix introduces and the statement never names, e.g. "
            f"{t} calls {', '.join(names[:3])}")


def b3_network(f: Facts) -> str | None:
    online = list(f.val.get("network_tests") or [])
    if online:
        return f"{len(online)} test(s) pass only with network (label run on network), e.g. {online[0]}"
    calls = {t: m.group(0) for t, s in f.tests.items() if (m := NET_CALL.search(s or ""))}
    if calls:
        t, call = sorted(calls.items())[0]
        return f"{len(calls)} F2P test(s) make network calls, e.g. {t} calls {call}"
    m = NET_ERROR.search(str((f.val.get("meta") or {}).get("failing_output") or ""))
    if m:
        return f"the failing run's log shows a connection error: {m.group(0)}"
    return None


def b4_flaky(f: Facts) -> str | None:
    flaky = list(f.val.get("flaky_tests") or [])
    return (f"{len(flaky)} test(s) flipped between reruns and were removed from the labels, e.g. {flaky[0]}"
            if flaky else None)


def b5_exception_type_only(f: Facts) -> str | None:
    read = {t: s for t, s in f.tests.items() if s}
    if not read or not all(_exception_only(s) for s in read.values()):
        return None
    return (f"all {len(read)} F2P test(s) read only check an exception type (pytest.raises with no match=, no "
            f"assert), e.g. {sorted(read)[0]}")


def b6_statement_not_reproduced(f: Facts) -> str | None:
    rep = f.inst.get("statement_repro") or (f.inst.get("meta") or {}).get("statement_repro")
    if not isinstance(rep, Mapping) or rep.get("reproduced") is not False:
        return None
    return "the statement's reproduction did not show the failure: " + str(rep.get("reason") or "reproduced=false")


def b7_broad_f2p(f: Facts) -> str | None:
    n = len(f.inst.get("FAIL_TO_PASS") or [])
    return f"{n} F2P tests (> {BROAD_F2P}): the fix changes behaviour broadly or fixes an import" if n > BROAD_F2P else None


def b8_patch_edits_tests(f: Facts) -> str | None:
    if not f.fix.test_files:
        return None
    return f"the reference patch edits test files: {', '.join(f.fix.test_files[:3])}"


CHECKS: dict[Defect, Callable[[Facts], str | None]] = {
    Defect.PRIVATE_API: b1_private_api, Defect.UNNAMED_NEW_API: b2_unnamed_new_api, Defect.NETWORK: b3_network,
    Defect.FLAKY: b4_flaky, Defect.EXCEPTION_ONLY: b5_exception_type_only,
    Defect.STATEMENT_NOT_REPRODUCED: b6_statement_not_reproduced, Defect.BROAD_F2P: b7_broad_f2p,
    Defect.PATCH_EDITS_TESTS: b8_patch_edits_tests,
}


def quality_labels(f: Facts) -> list[dict]:
    """``[{code, reason}]`` of every check that fires, in code order."""
    out = []
    for code, check in CHECKS.items():
        why = check(f)
        if why:
            out.append({"code": code.value, "reason": why[:500]})
    return out


# ---------------------------------------------------------------- difficulty

def distance(f: Facts) -> int:
    """0: the statement names a def the fix touches; 1: a name of a module the fix touches; 2: neither."""
    if f.statement_symbols & f.fix.touched:
        return 0
    return 1 if f.statement_symbols & f.fix.nearby else 2


def pass_rate(trajectories: Iterable[Mapping]) -> tuple[float | None, int]:
    """(resolved share, runs) of the agent policies' trajectories (the reference policies' are not counted)."""
    runs = [t for t in trajectories if t.get("policy") not in REFERENCE_POLICIES]
    return (sum(bool(t.get("resolved")) for t in runs) / len(runs), len(runs)) if runs else (None, 0)


def difficulty(f: Facts, trajectories: Iterable[Mapping] = ()) -> dict:
    """``{score, band, files, lines, hunks, f2p, distance, pass_rate, agent_runs, f2p_read}``: a weighted mean of
    components in [0, 1] (:data:`WEIGHTS`; the agent's only where an agent ran)."""
    rate, runs = pass_rate(trajectories)
    files, n_f2p, dist = len(f.fix.source_files), len(f.inst.get("FAIL_TO_PASS") or []), distance(f)
    parts = {"files": min(max(files - 1, 0), 4) / 4, "lines": min(math.log1p(f.fix.lines) / math.log1p(200), 1.0),
             "f2p": min(math.log(max(n_f2p, 1)) / math.log(50), 1.0), "distance": dist / 2}
    if rate is not None:
        parts["agent"] = 1.0 - rate
    score = round(sum(WEIGHTS[k] * v for k, v in parts.items()) / sum(WEIGHTS[k] for k in parts), 4)
    band = BANDS[sum(score >= c for c in BAND_CUTS)]
    return {"score": score, "band": band, "files": files, "lines": f.fix.lines, "hunks": f.fix.hunks, "f2p": n_f2p,
            "distance": dist, "pass_rate": rate, "agent_runs": runs,
            "f2p_read": sum(s is not None for s in f.tests.values())}


def facts(inst: Mapping, val: Mapping, read: Reader | None = None) -> Facts:
    return Facts(inst=inst, val=val, fix=parse_fix(inst.get("patch") or "", read),
                 tests=test_sources(inst.get("FAIL_TO_PASS") or [], inst.get("test_patch") or "", read),
                 statement_symbols=statement_symbols(inst.get("problem_statement") or ""))


def assess(inst: Mapping, val: Mapping, trajectories: Iterable[Mapping] = (), read: Reader | None = None) -> dict:
    """The ``quality_labels`` and ``difficulty`` columns of a finished instance."""
    f = facts(inst, val, read)
    return {"quality_labels": quality_labels(f), "difficulty": difficulty(f, trajectories)}


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


def finished(inst, val: Mapping, *, trajectories: Iterable[Mapping] = (), workdir=None):
    """The instance (:class:`~pipelines.swe.records.SWEInstance`) with its quality labels and difficulty: the
    one call both builders of swe_instances rows make before ``row()`` (curate, ``crucible swe validate``)."""
    read = repo_reader(workdir, inst["repo"], inst["base_commit"])
    return inst.replace(**assess(inst, val, trajectories, read))
