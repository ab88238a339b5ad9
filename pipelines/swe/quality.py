"""Quality labels and a difficulty estimate per SWE instance (issue #24 item 3), in the spirit of SWE-rebench
V2's defect codes B1-B11: only what the validation's runs and the diffs decide, each label with its reason.

:func:`assess` is pure: the instance, its swe_validations row, its trajectories and an optional reader of the
repo's files at the base commit in, the ``quality_labels`` and ``difficulty`` columns of swe_instances out.
:func:`finished` is what the row builders call: :func:`assess` with the reader of the local git the
validation used. What is read and how (the fix's names, the F2P tests' sources, the statement's names):
:mod:`crucible.pipelines.swe.quality_facts`. A test whose source is not found takes part in no label that needs it
(``difficulty.f2p_read`` counts those read). Codes and thresholds: docs/swe.md "Quality labels and difficulty"."""

from __future__ import annotations

import ast
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from crucible.pipelines.swe.filters import REFERENCE_POLICIES
from crucible.pipelines.swe.quality_facts import (
    WORD,
    Fix,
    Reader,
    parse_fix,
    repo_reader,
    split_test_id,
    statement_symbols,
    test_sources,
)
from crucible.pipelines.swe.records import SWEInstance


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

NET_CALL = re.compile(r"\bsocket\.(socket|create_connection|getaddrinfo)\b|\brequests\.(get|post|put|patch|delete|"
                      r"head|request|Session)\b|\burllib\.request\b|\burlopen\(|\bhttp\.client\b|\bhttpx\.|"
                      r"\baiohttp\.|\bftplib\.|\bsmtplib\.")
NET_ERROR = re.compile(r"ConnectionRefusedError|Name or service not known|Temporary failure in name resolution|"
                       r"Network is unreachable|NewConnectionError|MaxRetryError|ConnectTimeout|gaierror|"
                       r"nodename nor servname")
PRIVATE = re.compile(r"(?<![\w])_[A-Za-z]\w*")


@dataclass
class Facts:
    inst: Mapping
    val: Mapping
    fix: Fix
    tests: dict[str, str | None]  # F2P id -> its function's source (None: not found)
    statement_symbols: set[str]


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
    """Flaky tests of the instance's own test files (``meta.selection``: an injected bug's row lists the whole
    clean suite's flaky tests; only those of the files its runs selected were removed from its labels)."""
    sel = [s.rstrip("/") for s in (f.val.get("meta") or {}).get("selection") or []]
    flaky = [t for t in f.val.get("flaky_tests") or []
             if not sel or any((p := split_test_id(t)[0] or "") == s or p.startswith(s + "/") for s in sel)]
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


def finished(inst, val: Mapping, *, trajectories: Iterable[Mapping] = (), workdir=None):
    """The instance (:class:`~crucible.pipelines.swe.records.SWEInstance`) with its quality labels and difficulty: the
    one call both builders of swe_instances rows make before ``row()`` (curate, ``crucible swe validate``)."""
    inst = inst if isinstance(inst, SWEInstance) else SWEInstance.from_row(inst)
    read = repo_reader(workdir, inst["repo"], inst["base_commit"])
    return inst.replace(**assess(inst, val, trajectories, read))
