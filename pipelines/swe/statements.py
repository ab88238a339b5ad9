"""Problem statements: keep the issue text where there is one; otherwise the statement is grounded in the
observed failure (:mod:`crucible.pipelines.swe.statement_repro`: a snippet from a failing test, run before and after
the fix). An LLM may write it instead (versioned prompt ``swe_statement``, given the snippet and both runs):
a sample is kept only if it passes the leak check (test names, pytest, the fix's added lines, proposed fixes)
and agrees with the facts (:func:`crucible.pipelines.swe.statement_facts.check_llm`); each refusal is recorded. An
instance whose failure did not reproduce gets no statement (the caller drops it). Every outcome records its
origin: ``issue``, ``llm`` or ``observed``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from crucible.pipelines.swe import (  # called through the modules: one place to swap them
    statement_facts,
    statement_repro,
)
from crucible.pipelines.swe.records import FailureKind, Stage, SWEInstance, failure
from crucible.pipelines.swe.statement_leaks import (  # noqa: F401
    FIX_WORDS,
    MIN_CHARS,
    TEST_WORDS,
    added_lines,
    leak_check,
    test_names,
)

MAX_FAILURE_CHARS = 1500


def scrub_failure(output: str, inst: Mapping) -> str:
    """The failing output with test names and paths of test files removed, tail-trimmed."""
    text = output[-MAX_FAILURE_CHARS:]
    for name in test_names(list(inst.get("FAIL_TO_PASS") or [])):
        text = text.replace(name, "<check>")
    text = re.sub(r"\S*tests?/\S+\.py(::\S+)?", "<file>", text)
    return re.sub(r"(?im)^.*(pytest|short test summary|=====).*$\n?", "", text).strip()


def _facts_text(facts: Mapping) -> tuple[str, str]:
    b, a = facts["before"], facts["after"]
    if facts["kind"] == "value":
        return f"prints {b['value']}", f"prints {a['value']}"
    if facts["kind"] == "no_raise":
        return "runs without error", f"raises {facts['expected_raises']}"
    return f"raises {b['exc_type']}: {b['message'] or ''}".strip(), "runs without error"


def llm_check(text: str, inst: Mapping, grounding, style: str) -> str | None:
    """Why an LLM sample is refused (None: kept): leaks, names the issue style keeps back, contradictions."""
    ok, why = leak_check(text, inst)
    if not ok:
        return why
    if style == "issue":
        leaks = statement_facts.name_leaks(text, inst, grounding.facts["names"])
        if leaks:
            return f"located: {leaks[0]}"
    wrong = statement_facts.check_llm(text, grounding.facts, grounding.symbols)
    return wrong[0] if wrong else None


def write_statement(inst: Mapping, client=None, prompt=None, *, sample_index: int = 0, attempts: int = 1,
                    grounding=None, style: str = "issue") -> dict:
    """{problem_statement, statement_origin, statement_prompt_version, reason, rejected}: the issue text if
    there is one; else the first of ``attempts`` LLM samples (``sample_index``, +1, ...) that passes
    :func:`llm_check` against ``grounding`` (its snippet appended); else the grounded default (``reason``:
    why the last sample was refused, ``rejected``: every refusal); ``problem_statement`` None when nothing
    reproduced (``reason`` says why)."""
    if (inst.get("problem_statement") or "").strip():
        return {"problem_statement": inst["problem_statement"], "statement_origin": "issue",
                "statement_prompt_version": None, "reason": None, "rejected": []}
    default, why = statement_repro.default_statement(grounding, inst, style) if grounding is not None else (None, "not grounded")
    if default is not None:
        ok, leak = leak_check(default, inst)
        default, why = (default, None) if ok else (None, leak)
    if default is None:
        return {"problem_statement": None, "statement_origin": None, "statement_prompt_version": None,
                "reason": why, "rejected": []}
    reason, rejected = "no_llm", []
    if client is not None and prompt is not None:
        meta = inst.get("meta") or {}
        observed, expected = _facts_text(grounding.facts)
        msgs = prompt.render(repo=inst["repo"], function=meta.get("function") or "unknown",
                             patch=(inst.get("patch") or "")[:4000], snippet=grounding.facts["snippet"],
                             observed=observed, expected=expected)
        for k in range(sample_index, sample_index + max(1, attempts)):
            res = client.chat(msgs, prompt=prompt, sample_index=k)
            text = (res.text or "").strip()
            why = llm_check(text, inst, grounding, style) if text else \
                f"llm_error: {getattr(res, 'error', None) or 'empty'}"
            if why is None:
                if grounding.facts["snippet"].strip() not in text:
                    text += "\n\n```python\n" + grounding.facts["snippet"].rstrip() + "\n```"
                return {"problem_statement": text, "statement_origin": "llm",
                        "statement_prompt_version": f"{prompt.id}@{prompt.version}", "reason": None,
                        "rejected": rejected}
            reason = why
            rejected.append(why)
    return {"problem_statement": default, "statement_origin": "observed", "statement_prompt_version": None,
            "reason": reason, "rejected": rejected}


def statement_for(ctx, inst: Mapping, scfg: Mapping, client, prompt, *, run_id: str, pipeline: str):
    """(instance with its statement and ``statement_repro``, failures rows, drop reason or None) for one
    validated instance of ``make swe-curate``: ground it (:func:`crucible.pipelines.swe.statement_repro.ground`),
    then :func:`write_statement`. Issue text is kept as is (its reproduction still runs and is recorded); a
    statement of ours that does not reproduce, or that would give the fix's location away, drops the
    instance; each refused LLM sample is a failures row."""

    g = statement_repro.ground(ctx, inst, scfg)
    st = write_statement(inst, client, prompt, attempts=int(scfg["attempts"]), grounding=g, style=scfg["style"])
    record = dict(g.record, llm_rejected=list(st["rejected"]))
    fails = [failure(pipeline, Stage.STATEMENT, FailureKind.FILTERED, f"statement_llm_rejected: {why}"[:2000], run_id,
                     inst["instance_id"]) for why in st["rejected"]]
    out = SWEInstance.from_row(inst).replace(statement_repro=record)
    if st["problem_statement"] is None:
        why = st["reason"] if st["reason"].startswith(("not_reproduced", "located")) else f"leak: {st['reason']}"
        fails.append(failure(pipeline, Stage.STATEMENT, FailureKind.FILTERED, why[:2000], run_id, inst["instance_id"],
                             payload={"statement_repro": record}))
        return out, fails, why
    out = out.replace(problem_statement=st["problem_statement"], statement_origin=st["statement_origin"],
                      statement_prompt_version=st["statement_prompt_version"])
    return out, fails, None
