"""Answer verification: rules, then the graph, then an LLM judge that sees the evidence.

Non-symmetric by design. In order (docs/browse-env.md, "Verification order"):

1. detectors: empty prediction, answer only inside the reasoning, hedge, list of candidates;
2. the graph (when a resolver is given): an answer that resolves to the gold entity is correct
   (source ``rule``); one that resolves to a *different* entity is incorrect whatever a judge would
   say (source ``graph``, the entity is recorded). A gold without a graph id is resolved from its
   text first (``pipelines/browse/ground.py``);
3. rules: exact match with a gold name after normalization, numbers (years, dates, counts and
   identifiers exactly; a relative tolerance only for a measured quantity), the gold stated whole
   inside a short answer;
4. the judge, told what kind of thing is asked and shown the evidence; its "correct" is re-checked
   by the hack detectors, so a lenient or fooled judge cannot let a hedge or a list through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crucible.pipelines.browse.detectors import (
    candidates,
    contains_gold,
    extract_final_answer,
    gold_contains_separator,
    is_hedge,
    matches_gold,
    other_numbers,
)
from crucible.pipelines.browse.gold import (
    AnswerKind,
    Gold,
    Source,
    Verdict,
    dates_match,
    kind_for,
    parse_number,
)
from crucible.pipelines.browse.ground import text_gold_verdict
from crucible.pipelines.browse.names import normalize
from crucible.pipelines.browse.resolve import resolve_detail
from crucible.pipelines.llm.prompts import load_prompt

# Names other modules read here (stages.py, batch.py, harden.py, findable.py, selection.py, audit.py,
# integrations/verl/reward.py): the verifier's vocabulary, defined in gold.py, detectors.py and names.py.
__all__ = [
    "JUDGE_PROMPT_ID", "JUDGE_SCHEMA", "AnswerKind", "Gold", "JudgeFn", "Source", "Verdict",
    "build_judge_messages", "extract_final_answer", "graph_verdict", "judge_prompt", "judge_verdict",
    "kind_for", "normalize", "rule_verdict",
]

# The judge answers one question: does the committed final answer mean the same as a gold?
# (Hedges, lists and answers hidden in the reasoning are decided by the rules before it.)
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "equivalent": {"type": "string", "enum": ["yes", "no"]},
        "reason": {"type": "string", "maxLength": 120},
    },
    "required": ["equivalent", "reason"],
    "additionalProperties": False,
}

# A judge call: (messages, json schema) -> parsed object or None when the model failed.
JudgeFn = Callable[[list[dict], dict], "dict | None"]


def graph_verdict(gold: Gold, answer: str, resolver) -> Verdict | None:
    """The graph's verdict on a committed answer, or None when the graph cannot decide.

    ``resolver`` is a :class:`crucible.pipelines.browse.resolve.NameIndex`. Correct when the answer resolves
    to the gold entity (it names the gold by its name or an alias; if that string also names other
    entities, e.g. "Georgia" the country and the state, the question pins down which one is meant).
    Incorrect (source ``graph``) when it resolves only to other entities, when its qualifier rules the
    gold out ("Dublin, UK" for Dublin, Ireland), or when its head names other entities and an
    unknown qualifier cannot bring it back to the gold. Nothing resolved: None (rules, then judge)."""
    if resolver is None:
        return None
    if not gold.entity_id:  # an outside gold: resolved from its text (pipelines/browse/ground.py)
        return text_gold_verdict(resolver, gold, answer)
    res = resolve_detail(resolver, answer)
    gid = resolver.canon(gold.entity_id)
    if gid in res.ids:
        return Verdict("correct", answer, f"resolves to the gold entity {gid} ({res.how})", Source.RULE.value, gid)
    others = res.ids or (res.unconfirmed if gid not in res.unconfirmed else frozenset())
    if others:
        # record the likeliest meant entity: one of the asked type, else one the gold is located in
        same_type = sorted(o for o in others if resolver.type_of(o) == gold.answer_type)
        related = sorted(o for o in others if resolver.located_in(gid, {o}) or resolver.located_in(o, {gid}))
        pick = (same_type or related or sorted(others))[0]
        names = ", ".join(f"{o} ({resolver.name_of(o)})" for o in sorted(others)[:4])
        return Verdict("incorrect", answer, f"resolves to another graph entity, not the gold {gid}: {names}",
                       Source.GRAPH.value, pick)
    if gid in res.contradicted:
        return Verdict("incorrect", answer, f"names the gold but its qualifier places it elsewhere ({res.how})",
                       Source.GRAPH.value, None)
    return None


def rule_verdict(gold: Gold | Sequence[str], prediction: str, rel_tol: float | None = None,
                 resolver=None) -> Verdict | None:
    """A certain verdict from the detectors, the graph (with ``resolver`` and a gold entity) and the
    rules, or None when the judge must decide. ``rel_tol`` applies only to a measured-quantity gold."""
    gold = Gold.of(gold)
    golds = gold.names
    tol = gold.rel_tol(rel_tol)
    if not (prediction or "").strip():
        return Verdict("not_attempted", None, "empty prediction", "rule")
    answer = extract_final_answer(prediction)
    if not answer:
        if any(normalize(g) and normalize(g) in normalize(prediction) for g in golds):
            return Verdict("not_attempted", None, "answer appears only in the reasoning, no final answer", "rule")
        return Verdict("not_attempted", None, "no final answer outside the reasoning", "rule")
    exact = any(normalize(answer) == normalize(g) for g in golds if normalize(g))
    if is_hedge(answer) and not exact:
        return Verdict("not_attempted", answer, "hedge: the answer declines to commit", "rule")
    cands = candidates(answer)
    if len(cands) > 1 and not exact and not gold_contains_separator(golds):
        return Verdict("incorrect", answer, f"lists {len(cands)} candidate answers instead of one", "rule")
    if exact:
        return Verdict("correct", answer, "matches a gold answer after normalization", "rule")
    grounded = graph_verdict(gold, answer, resolver)
    if grounded is not None:
        return grounded
    if matches_gold(answer, golds, tol):
        return Verdict("correct", answer, "matches a gold answer after normalization", "rule")
    if gold.kind is AnswerKind.DATE:
        same = [dates_match(answer, g) for g in golds]
        if any(x is True for x in same):
            return Verdict("correct", answer, "the same date as the gold", "rule")
        if same and all(x is False for x in same):
            return Verdict("incorrect", answer, "a different date from the gold (dates match exactly)", "rule")
    a_num = parse_number(answer)
    if a_num is not None and all(parse_number(g) is not None for g in golds):
        how = f"outside the {tol:.0%} tolerance of a measured quantity" if tol else \
            f"not equal to the gold ({gold.kind.value}: numbers match exactly)"
        return Verdict("incorrect", answer, f"numeric answer {how}", "rule")
    hit = contains_gold(answer, golds) if not other_numbers(answer, golds) else None
    if hit:
        return Verdict("correct", answer, f"states the gold answer {hit!r} in a short answer", "rule")
    if gold.kind is AnswerKind.IDENTIFIER:  # a code is exact: an answer that does not state it (a name of the
        # coded entity, its city: "Algiers" for ALG) is no answer to "what is the code", whatever a judge says
        return Verdict("incorrect", answer, "an identifier is exact: the answer does not state the gold code", "rule")
    return None


_EXACT_KINDS = (AnswerKind.YEAR, AnswerKind.DATE, AnswerKind.COUNT, AnswerKind.IDENTIFIER)

# ------------------------------------------------------------------ judge

JUDGE_PROMPT_ID = "browse_judge"


def judge_prompt(prompt_id: str = JUDGE_PROMPT_ID):
    """The versioned judge prompt (``configs/prompts/browse_judge.yaml``)."""
    return load_prompt(prompt_id)


def build_judge_messages(question: str, gold: Gold | Sequence[str], prediction: str,
                         evidence: Sequence[str] = (), prompt=None) -> list[dict]:
    prompt = prompt or judge_prompt()
    gold = Gold.of(gold)
    return prompt.render(question=question, golds=list(gold.names), evidence=list(evidence)[:8],
                         answer_type=(gold.answer_type or "").replace("_", " "),
                         prediction=extract_final_answer(prediction) or prediction)


def judge_verdict(question: str, gold: Gold | Sequence[str], prediction: str, judge: JudgeFn,
                  evidence: Sequence[str] = (), rel_tol: float | None = None, prompt=None,
                  resolver=None) -> Verdict:
    """Detectors, graph and rules first; the judge for what they cannot decide; the hack detectors
    veto a judge 'correct'. ``resolver`` (a NameIndex) enables the graph check for an entity gold."""
    gold = Gold.of(gold)
    golds = gold.names
    ruled = rule_verdict(gold, prediction, rel_tol, resolver)
    if ruled is not None:
        return ruled
    answer = extract_final_answer(prediction)
    out = judge(build_judge_messages(question, gold, prediction, evidence, prompt), JUDGE_SCHEMA)
    if not out or out.get("equivalent") not in ("yes", "no"):
        return Verdict("incorrect", answer, "judge gave no valid verdict; not counted as correct", "judge")
    reason = str(out.get("reason", ""))[:500]
    if out["equivalent"] == "no":
        return Verdict("incorrect", answer, reason or "judge: not the same as any gold answer", "judge")
    # defense in depth: a judge's "yes" never lets a hedge or a candidate list through
    if is_hedge(answer):
        return Verdict("not_attempted", answer, "judge said equivalent but the answer hedges", "judge")
    if len(candidates(answer)) > 1 and not gold_contains_separator(golds):
        return Verdict("incorrect", answer, "judge said equivalent but the answer lists candidates", "judge")
    if gold.kind in _EXACT_KINDS and other_numbers(answer, golds):
        return Verdict("incorrect", answer, f"judge said equivalent but the answer states another number "
                                            f"({gold.kind.value}: exact)", "judge")
    return Verdict("correct", answer, reason or "judge: same as a gold answer", "judge")
