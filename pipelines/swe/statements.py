"""Problem statements: keep the issue text where there is one; otherwise the LLM writes a user-style
report from the fix and the failing output (versioned prompt ``swe_statement``), checked for leaks (test
names, pytest, the fix's added lines); a template is the fallback. Every outcome records its origin."""

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


def error_line(output: str) -> str | None:
    for ln in reversed(output.splitlines()):
        s = ln.strip()
        if s.startswith("E ") and len(s) > 3:
            return s[1:].strip()[:200]
    return None


def template_statement(inst: Mapping) -> str:
    meta = inst.get("meta") or {}
    fn = meta.get("function") or "a function"
    path = meta.get("path") or "the library"
    err = error_line(meta.get("failing_output") or "")
    err = scrub_failure(err, inst) if err else None
    lines = [f"`{fn}` in `{path}` returns wrong results or raises for inputs that used to work.",
             "Calling it the way the documentation describes no longer gives the documented result."]
    if err:
        lines.append(f"What I see: {err}")
    lines.append("Expected: the documented behaviour.")
    return " ".join(lines)


def write_statement(inst: Mapping, client=None, prompt=None, *, sample_index: int = 0, attempts: int = 1) -> dict:
    """{problem_statement, statement_origin, statement_prompt_version, reason}: the issue text if there is
    one, else the first of ``attempts`` LLM samples (``sample_index``, +1, ...) that passes the leak check,
    else the template (``reason`` = why the last sample was refused)."""
    if (inst.get("problem_statement") or "").strip():
        return {"problem_statement": inst["problem_statement"], "statement_origin": "issue",
                "statement_prompt_version": None, "reason": None}
    reason = "no_llm"
    if client is not None and prompt is not None:
        meta = inst.get("meta") or {}
        msgs = prompt.render(repo=inst["repo"], function=meta.get("function") or "unknown",
                             patch=(inst.get("patch") or "")[:4000],
                             failure=scrub_failure(meta.get("failing_output") or "", inst) or "(no output)")
        for k in range(sample_index, sample_index + max(1, attempts)):
            res = client.chat(msgs, prompt=prompt, sample_index=k)
            text = (res.text or "").strip()
            ok, why = leak_check(text, inst) if text else (False,
                                                           f"llm_error: {getattr(res, 'error', None) or 'empty'}")
            if ok:
                return {"problem_statement": text, "statement_origin": "llm",
                        "statement_prompt_version": f"{prompt.id}@{prompt.version}", "reason": None}
            reason = why
    text = template_statement(inst)
    ok, why = leak_check(text, inst)
    if not ok:  # the function name itself can be a test-like word; say less rather than leak
        text = "A function in this library returns wrong results for documented inputs. Expected the documented " \
               "behaviour; please fix the implementation."
    return {"problem_statement": text, "statement_origin": "template", "statement_prompt_version": None,
            "reason": reason}
