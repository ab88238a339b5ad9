"""Problem statements: keep the issue text where there is one; otherwise the statement is grounded in the
observed failure (:mod:`pipelines.swe.statement_repro`: a snippet from a failing test, run before and after
the fix). An LLM may write it instead (versioned prompt ``swe_statement``, given the snippet and both runs):
a sample is kept only if it passes the leak check (test names, pytest, the fix's added lines, proposed fixes)
and agrees with the facts (:func:`pipelines.swe.statement_facts.check_llm`); each refusal is recorded. An
instance whose failure did not reproduce gets no statement (the caller drops it). Every outcome records its
origin: ``issue``, ``llm`` or ``observed``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pipelines.swe.patches import split_diff

MIN_CHARS = 60
MAX_FAILURE_CHARS = 1500
TEST_WORDS = re.compile(r"\b(pytest|FAIL_TO_PASS|PASS_TO_PASS|unit ?tests?|test suite|test_\w+)\b", re.I)
# a user report says what goes wrong, never how to fix it (small models like to append the fix)
FIX_WORDS = re.compile(r"\b((?:can|could|should|would) be (?:fixed|resolved|solved)|to (?:fix|resolve|solve) "
                       r"(?:this|the|it)|the fix\b|fixed by|here'?s the (?:updated|fixed|corrected)|"
                       r"(?:updated|fixed|corrected) (?:code|version)|(?:the )?solution is|"
                       r"(?:this|that|a|my|the proposed|the suggested) (?:fix|patch)\b|"
                       r"(?:correct|right|proper) (?:approach|way to|implementation|fix)|"
                       r"(?:simply|just) (?:return|use|check|swap|change|replace)\b)", re.I)


def test_names(ids) -> set[str]:
    """Function names of test ids (``path::Class::test_x[param]`` -> ``test_x``)."""
    return {re.sub(r"\[.*$", "", t.split("::")[-1]) for t in ids}


def added_lines(patch: str, min_len: int = 12) -> list[str]:
    out = []
    for _, text in split_diff(patch):
        for ln in text.splitlines():
            if ln.startswith("+") and not ln.startswith("+++"):
                s = ln[1:].strip()
                if len(s) >= min_len and not s.startswith(("#", '"""', "'''")):
                    out.append(s)
    return out


def leak_check(statement: str, inst: Mapping) -> tuple[bool, str | None]:
    """(ok, reason): the statement must not name tests or pytest, nor quote a line the fix adds."""
    low = statement.lower()
    for name in sorted(test_names(list(inst.get("FAIL_TO_PASS") or []) + list(inst.get("PASS_TO_PASS") or []))):
        if name and name.lower() in low:
            return False, f"leak: names the test {name}"
    m = TEST_WORDS.search(statement)
    if m:
        return False, f"leak: mentions {m.group(0)!r}"
    m = FIX_WORDS.search(statement)
    if m:
        return False, f"leak: proposes a fix ({m.group(0)!r})"
    squashed = re.sub(r"\s+", "", statement)
    for line in added_lines(inst.get("patch") or ""):
        if re.sub(r"\s+", "", line) in squashed:
            return False, f"leak: quotes the fix ({line[:60]!r})"
    if len(statement.strip()) < MIN_CHARS:
        return False, f"too_short: {len(statement.strip())} < {MIN_CHARS} characters"
    return True, None


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
    from pipelines.swe.statement_facts import check_llm, name_leaks

    ok, why = leak_check(text, inst)
    if not ok:
        return why
    if style == "issue":
        leaks = name_leaks(text, inst, grounding.facts["names"])
        if leaks:
            return f"located: {leaks[0]}"
    wrong = check_llm(text, grounding.facts, grounding.symbols)
    return wrong[0] if wrong else None


def write_statement(inst: Mapping, client=None, prompt=None, *, sample_index: int = 0, attempts: int = 1,
                    grounding=None, style: str = "issue") -> dict:
    """{problem_statement, statement_origin, statement_prompt_version, reason, rejected}: the issue text if
    there is one; else the first of ``attempts`` LLM samples (``sample_index``, +1, ...) that passes
    :func:`llm_check` against ``grounding`` (its snippet appended); else the grounded default (``reason``:
    why the last sample was refused, ``rejected``: every refusal); ``problem_statement`` None when nothing
    reproduced (``reason`` says why)."""
    from pipelines.swe.statement_repro import default_statement

    if (inst.get("problem_statement") or "").strip():
        return {"problem_statement": inst["problem_statement"], "statement_origin": "issue",
                "statement_prompt_version": None, "reason": None, "rejected": []}
    default, why = default_statement(grounding, inst, style) if grounding is not None else (None, "not grounded")
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
    validated instance of ``make swe-curate``: ground it (:func:`pipelines.swe.statement_repro.ground`),
    then :func:`write_statement`. Issue text is kept as is (its reproduction still runs and is recorded); a
    statement of ours that does not reproduce, or that would give the fix's location away, drops the
    instance; each refused LLM sample is a failures row."""
    from pipelines.swe.records import FailureKind, Stage, SWEInstance, failure
    from pipelines.swe.statement_repro import ground

    g = ground(ctx, inst, scfg)
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
