"""Statements grounded in the observed failure, and their reproduction check (``make swe-curate``).

:func:`ground` reduces a failing F2P test to a snippet (:mod:`crucible.pipelines.swe.statement_source`), finds the
statement that fails in the instance's "before" env (a step-by-step harness run), checks that it fails the
way the validation's "before" log says (:func:`crucible.pipelines.swe.statement_log.log_failure`), then runs the
final snippet, as a reader would, in the "before" env (it must fail that way) and in the "after" env (it must
not). The record (``statement_repro`` on the instance row) says what ran and what came out; the default
statement is written from it (:func:`crucible.pipelines.swe.statement_facts.render`). Each run is one fresh container
of the instance's env image on its network, bounded by ``swe.statements.repro_timeout_s``."""

from __future__ import annotations

import ast
import json
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from crucible.pipelines.swe import envs, statement_facts
from crucible.pipelines.swe.envs import TaskEnv
from crucible.pipelines.swe.patches import apply_patch
from crucible.pipelines.swe.statement_facts import (
    failed_check,
    first_call,
    parse_run,
    render,
    reproduced,
)
from crucible.pipelines.swe.statement_leaks import leak_check
from crucible.pipelines.swe.statement_log import full_test_id, log_agrees, log_disagrees, log_failure
from crucible.pipelines.swe.statement_source import Reduced, Unreducible, reduce_test, value_parts
from crucible.pipelines.swe.statement_source import render as render_snippet
from crucible.sandbox.container import run_in_container

MARK = "@@CRUCIBLE-STEP@@"
MAX_VALUE_CHARS = 300  # a printed value longer than this is no statement a reader checks by eye
# the step harness: the snippet's steps and imports are literals of the program itself (no environment
# variable the snippet could read back, e.g. a test that prints os.environ)
HARNESS = f'''import json, os, sys
steps = json.loads(__STEPS__)
ns = {{"__name__": "__main__"}}
def report(**kw):
    sys.stdout.write("\\n{MARK}" + json.dumps(kw) + "\\n")
    sys.stdout.flush()
    os._exit(0)
try:
    exec(compile(__PRELUDE__, "<snippet>", "exec"), ns)
except BaseException as e:
    report(index=-1, exc_type=type(e).__name__, message=str(e)[:500])
for i, s in enumerate(steps):
    try:
        exec(compile(s["code"], "<snippet>", "exec"), ns)
    except BaseException as e:
        if s["raises"] and isinstance(e, eval(s["raises"], ns)):
            continue
        report(index=i, exc_type=type(e).__name__, message=str(e)[:500])
    else:
        if s["raises"]:
            report(index=i, did_not_raise=s["raises"])
report(index=None)
'''


@dataclass
class Grounding:
    """What :func:`ground` found: the facts a statement may state (None: nothing reproduced), the record
    stored on the instance row, and the repository's symbols (for checking LLM statements)."""

    facts: dict | None
    record: dict
    symbols: set[str] = field(default_factory=set)


def script(recipe: Mapping, timeout_s: int, code: str) -> str:
    """Bash that runs ``code`` (a quoted here-document: nothing in it is expanded) with the env's Python in
    /testbed (the recipe's test env exported; its cheap reinstall first where the recipe has one), killed
    after ``timeout_s``."""
    end = f"CRUCIBLE_SNIPPET_{secrets.token_hex(8)}"
    lines = ["cd /testbed"]
    for k, v in sorted((recipe.get("test_env") or {}).items()):
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)):
            lines.append(f"export {k}='" + str(v).replace("'", "'\\''") + "'")
    if recipe.get("reinstall"):
        lines.append("pip install -q --no-deps --no-build-isolation -e . >/tmp/crucible-reinstall.log 2>&1 || "
                     "{ tail -5 /tmp/crucible-reinstall.log; exit 98; }")
    lines += [f"exec timeout -k 5 {int(timeout_s)} python -W ignore - <<'{end}'", code.rstrip("\n"), end]
    return "\n".join(lines) + "\n"


def run_code(ctx, env, tree: Path, code: str, timeout_s: int) -> dict:
    """One run of ``code`` in a fresh container of ``env`` with ``tree`` at /testbed -> :func:`parse_run`."""
    limits = replace(ctx.settings.limits, timeout_s=int(timeout_s) + 30)
    out = run_in_container(ctx.client, env.image, script(env.recipe, timeout_s, code), tree=tree, limits=limits,
                           network=ctx.network_for(env.network), env={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"})
    if out.daemon_error:
        return {**parse_run(None, ""), "error": out.daemon_error[:300]}
    res = parse_run(out.exit_code, out.log, timed_out=out.timed_out or out.exit_code == 124)
    res["output_tail"] = out.log[-600:]
    return res


def harness(red: Reduced) -> str:
    """The step-harness program of ``red``."""
    steps = json.dumps([{"code": s.code, "raises": s.raises} for s in red.steps])
    prelude = "\n".join(red.imports + red.prelude)
    return HARNESS.replace("__STEPS__", repr(steps)).replace("__PRELUDE__", repr(prelude))


def discover(ctx, env, tree: Path, red: Reduced, timeout_s: int) -> dict:
    """The first step of ``red`` that fails in ``env`` (the step harness): {index, exc_type, message} or
    {index, did_not_raise}; index None: every step passed; -1: the imports failed; error: no report."""
    res = run_code(ctx, env, tree, harness(red), timeout_s)
    for ln in reversed((res.get("output_tail") or "").splitlines()):
        if ln.startswith(MARK):
            return json.loads(ln[len(MARK):])
    return {"error": f"no report from the step harness (exit {res['exit_code']}): {res.get('output_tail', '')[-200:]}"}


def claim_of(red: Reduced, found: Mapping, logged: Mapping) -> tuple[dict | None, str | None]:
    """(claim, None) or (None, why): what the statement will say failed, agreeing with the before log."""
    if found.get("error"):
        return None, found["error"]
    if found.get("index") is None:
        return None, "every step passes outside the test runner"
    if found["index"] == -1:
        return None, f"the snippet's imports fail: {found.get('exc_type')}: {found.get('message')}"
    step = red.steps[found["index"]]
    if found.get("did_not_raise"):
        exp = found["did_not_raise"].rsplit(".", 1)[-1]
        if not log_agrees(logged, None, None, exp):
            return None, f"the snippet does not raise {exp}; the test failed with {logged['message']}"
        return {"kind": "no_raise", "index": found["index"], "expected_raises": exp}, None
    exc = found["exc_type"]
    if not log_agrees(logged, exc, found.get("message")):
        return None, f"the snippet raises {exc}; the test failed with {logged['exc_type'] or logged['message']}"
    if exc == "AssertionError" and value_parts(step.code):
        return {"kind": "value", "index": found["index"], "got": None}, None
    return {"kind": "raise", "index": found["index"], "exc_type": exc}, None


def _trees(ctx, inst: Mapping, tmp: Path) -> tuple[Path, Path]:
    before = envs.checkout_tree(ctx, inst["repo"], inst["base_commit"], tmp / "before")
    if (inst.get("test_patch") or "").strip():
        apply_patch(before, inst["test_patch"], what="test_patch")
    after = tmp / "after"
    shutil.copytree(before, after, symlinks=True)
    apply_patch(after, inst["patch"], what="patch")
    return before, after


def ground(ctx, inst: Mapping, scfg: Mapping) -> Grounding:
    """Try the F2P tests in order (at most ``repro_max_tests`` that reduce) until one reproduces."""
    timeout_s, budget = int(scfg["repro_timeout_s"]), int(scfg["repro_max_tests"])
    record = {"test_id": None, "snippet": None, "kind": None, "before": None, "after": None, "reproduced": False,
              "reason": None, "log": None, "tried": []}
    env = TaskEnv.of(inst)
    if env is None:
        return Grounding(None, dict(record, reason="no env: the instance was not validated here"))
    log = (inst.get("meta") or {}).get("failing_output") or ""
    tmp = Path(tempfile.mkdtemp(prefix="crucible-stmt-", dir=ctx.workdir))
    try:
        try:
            before, after = _trees(ctx, inst, tmp)
        except Exception as exc:  # noqa: BLE001 - the instance's record says why
            return Grounding(None, dict(record, reason=f"checkout: {type(exc).__name__}: {exc}"[:500]))
        symbols = statement_facts.repo_symbols(before)
        for tid in sorted(inst["FAIL_TO_PASS"]):
            if budget <= 0:
                break
            full = full_test_id(log, tid)
            if full is None:
                record["tried"].append(f"{tid}: a cut SWE-bench id whose whole node id the before log does not show")
                continue
            try:
                red = reduce_test(before, full)
            except Unreducible as exc:
                record["tried"].append(f"{tid}: {exc}")
                continue
            budget -= 1
            facts = _try(ctx, env, before, after, red, log_failure(log, full), timeout_s, record)
            if facts is not None:
                text, leak = default_statement(Grounding(facts, record), inst, scfg["style"])
                if leak is None:
                    leak = leak_check(text, inst)[1]
                if leak is None:
                    return Grounding(facts, record, symbols)
                record.update(reproduced=False, reason=leak)  # another test may not need the private name
                record["tried"].append(f"{tid}: {leak}")
        record["reason"] = ("no F2P test reproduces outside the test runner, or without naming what the fix "
                            "touches: " + "; ".join(record["tried"])[:1500]) if record["tried"] else "no F2P test"
        return Grounding(None, record, symbols)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _try(ctx, env, before: Path, after: Path, red: Reduced, logged: dict, timeout_s: int, record: dict):
    claim, why = claim_of(red, discover(ctx, env, before, red, timeout_s), logged)
    if claim is None:
        record["tried"].append(f"{red.test_id}: {why}")
        return None
    step = red.steps[claim["index"]]
    form = "value" if claim["kind"] != "no_raise" and value_parts(step.code) else claim["kind"]
    # what the assertion compares is printed (the call shows); read-only checks before it are left out unless
    # the snippet needs them to reproduce; a value too long to read (or to be the same twice, e.g. a dict of
    # the environment) keeps the assertion instead
    tries = [(form, True), (form, False)]
    while tries:
        form, prune = tries.pop(0)
        snippet = render_snippet(red, claim["index"], form, prune=prune)
        b = run_code(ctx, env, before, snippet, timeout_s)
        a = run_code(ctx, env, after, snippet, timeout_s)
        ok, why = reproduced(claim["kind"], b, a, claim)
        if ok and claim["kind"] == "value" and log_disagrees(logged, b):
            ok, why = False, log_disagrees(logged, b)
        if ok and claim["kind"] == "value" and max(len(b["value"] or ""), len(a["value"] or "")) > MAX_VALUE_CHARS:
            claim, tries = {"kind": "raise", "index": claim["index"], "exc_type": "AssertionError"}, [("raise", True),
                                                                                                   ("raise", False)]
            continue
        if ok or snippet == render_snippet(red, claim["index"], form):
            break
    record.update(test_id=red.test_id, snippet=snippet, kind=claim["kind"], before=_obs(b), after=_obs(a),
                  reproduced=ok, reason=why, log=logged)
    if not ok:
        record["tried"].append(f"{red.test_id}: {why}")
        return None
    return {"kind": claim["kind"], "snippet": snippet, "before": _obs(b), "after": _obs(a),
            "expected_raises": claim.get("expected_raises"), "call": first_call(step.code),
            "check": failed_check(snippet, b),
            "names": sorted(red.names | _attrs(snippet))}


def _attrs(code: str) -> set[str]:
    return {n.attr for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Attribute)}


def _obs(run: Mapping) -> dict:
    return {k: run.get(k) for k in ("exit_code", "exc_type", "message", "value", "timed_out")}


def default_statement(g: Grounding, inst: Mapping, style: str) -> tuple[str | None, str | None]:
    """(statement, None) from the facts, or (None, why): the record's reason, or a name the issue style
    must not give away."""
    if g.facts is None:
        return None, f"not_reproduced: {g.record['reason']}"
    meta = inst.get("meta") or {}
    text = render(g.facts, style=style, location={"function": meta.get("function"), "path": meta.get("path")})
    if style == "issue":
        leaks = statement_facts.name_leaks(text, inst, g.facts["names"])
        if leaks:
            return None, f"located: {leaks[0]}"
    return text, None
