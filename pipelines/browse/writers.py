"""The LLM-backed helpers of a question's making: the writer (with its validation and read-back), the
closed-book check and the answer judge. Each is built from a :class:`~crucible.pipelines.browse.context.Context`
and falls back to a template or to "undecided" when the model fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from crucible.pipelines.browse import qtype as Q
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.context import Context

log = logging.getLogger(__name__)


def make_writer(ctx: Context):
    """Question writer: the LLM rewrites the template question; the template is the fallback
    whenever the model's text fails :func:`validate_question` (not a question, leaks the answer or
    a hidden name, drops a clue, asks for another kind of thing than the answer, or states other
    relations than the formalization). Returns (question, origin) with origin ``llm`` or
    ``template``; why a rewrite was not kept is left on ``draft.rewrite_check`` (for the lineage)."""
    graph, prompt = ctx.graph, ctx.prompts.get("write")
    use_llm = bool(ctx.opts.write_with_llm) and ctx.client is not None and prompt is not None

    def write(draft: S.Draft) -> tuple[str, str]:
        template = S.render_question(graph, draft)
        if not use_llm:
            draft.rewrite_check = {"origin": "template", "reason": "rewriting off"}
            return template, "template"
        answer, aliases, _atype = S.answer_spec(graph, draft)
        try:
            res = ctx.client.structured(prompt.render(draft=template, answer=answer), prompt.schema, prompt=prompt)
        except Exception as exc:  # transport failure: the template still gives a valid question
            log.warning("question writer failed: %s", exc)
            draft.rewrite_check = {"origin": "template", "reason": f"writer failed: {type(exc).__name__}"}
            return template, "template"
        text = str(res.parsed.get("question") or "").strip() if res.parsed else ""
        ok, why = validate_question(graph, draft, text, answer, aliases)
        check = {"origin": "llm" if ok else "template", "reason": why, "rewrite": text}
        if ok and read_back is not None:
            relations = read_back(text)
            mismatch = Q.read_back_mismatch(draft, relations)
            check["read_back"] = relations
            if mismatch:
                ok, check["origin"], check["reason"] = False, "template", f"read-back: {mismatch}"
        draft.rewrite_check = check
        return (text, "llm") if ok else (template, "template")

    read_back = make_read_back(ctx) if use_llm else None
    return write


def make_read_back(ctx: Context):
    """The writer's model, constrained to the graph's relation names, reads a rewrite back into
    the relations it states (None when ``browse.read_back`` is off or no prompt is loaded). Returns
    a function question -> relation names, or None when the model gave no valid read-back."""
    prompt = ctx.prompts.get("read_back")
    if not ctx.opts.read_back or prompt is None:
        return None
    vocab = Q.read_back_vocabulary()
    schema = dict(prompt.schema)
    schema["properties"] = dict(schema["properties"])
    schema["properties"]["relations"] = dict(schema["properties"]["relations"], items={"enum": sorted(vocab)})
    vocabulary = "\n".join(f"- {r}: {p}" for r, p in sorted(vocab.items()))

    def read(question: str) -> list[str] | None:
        try:
            res = ctx.client.structured(prompt.render(question=question, vocabulary=vocabulary), schema,
                                        prompt=prompt, temperature=0)
        except Exception as exc:  # cannot decide: the rewrite is not kept
            log.warning("read-back failed: %s", exc)
            return None
        return list((res.parsed or {}).get("relations") or []) or None

    return read


def validate_question(graph, draft: S.Draft, text: str, answer: str, aliases: Sequence[str]) -> tuple[bool, str]:
    """An LLM-written question is kept only if it is a question, does not name the answer or a
    hidden entity, still carries every clue (named entities and numbers) of the draft, asks for
    the kind of thing the answer is (:func:`qtype.type_mismatch`) and maps back to the same
    relations as the formalization (:func:`qtype.relation_backcheck`)."""
    if not text or not text.rstrip().endswith("?"):
        return False, "not a question"
    if len(text) > 600:
        return False, "too long"
    leak = S.leaks_answer(text, answer, aliases)
    if leak:
        return False, f"names the answer ({leak})"
    named = set(S.named_constants(draft))
    for v, e in draft.binding.items():
        name = S.entity_name(graph, e)
        hidden = e not in named and (v != draft.target or draft.answer_attr)
        if hidden and len(name) > 3 and S.leaks_answer(text, name, []):
            return False, f"names a hidden entity ({name})"
    missing = S.missing_clues(graph, draft, text)
    if missing:
        return False, "drops clues: " + ", ".join(missing[:3])
    mismatch = Q.type_mismatch(graph, draft, text)
    if mismatch:
        return False, f"asked type: {mismatch}"
    back = Q.relation_backcheck(graph, draft, text)
    if back:
        return False, f"relations: {back}"
    return True, "ok"


def make_closed_book(ctx: Context):
    """k closed-book samples of a question (None when off: no client, no prompt or ``closed_book_k`` 0)."""
    prompt, k = ctx.prompts.get("closed_book"), int(ctx.opts.closed_book_k)
    if ctx.client is None or prompt is None or k <= 0:
        return None

    def solve(question: str) -> list[str]:
        out = []
        for i in range(k):
            try:
                res = ctx.client.structured(prompt.render(question=question), prompt.schema, prompt=prompt,
                                            sample_index=i)
            except Exception as exc:
                log.warning("closed-book check failed: %s", exc)
                continue
            if res.parsed:
                out.append(res.parsed["answer"])
        return out

    return solve


def make_judge(ctx: Context):
    """The LLM judge for answers the rules cannot decide (a judge of nothing when off or without a client)."""
    if ctx.client is None or not ctx.opts.judge:
        return lambda messages, schema: None

    def judge(messages, schema):
        res = ctx.client.structured(messages, schema, prompt=ctx.prompts.get("judge"), temperature=0)
        return res.parsed

    return judge
