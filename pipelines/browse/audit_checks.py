"""The per-row checks of ``crucible browse audit`` (:func:`crucible.pipelines.browse.audit.audit_rows`): answers that
resolve to another entity than the gold, questions whose asked type contradicts the answer's, questions unique in
the graph only, and the strict SFT checks recomputable from one stored row. Each returns the offending rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crucible.pipelines.browse.verify import normalize

# A resolver: answer text -> entity ids it names in the graph ([] = none).
Resolver = Callable[[str], Sequence[str]]
# A question-row check: why the question does not ask for its answer's kind (None = it does).
TypeCheck = Callable[[Mapping], "str | None"]
# question row -> why it is unique in the graph only (relation cards, ranges that pin alone); [] = fine
WorldCheck = Callable[[Mapping], Sequence[str]]


def gold_entity(question: Mapping) -> str | None:
    form = question.get("formalization") or {}
    target = form.get("target")
    return (form.get("binding") or {}).get(target) if target else None


def contradicted_rows(kept: Sequence[Mapping], by_q: Mapping[str, Mapping], resolve: Resolver) -> list[dict]:
    """Kept trajectories marked correct whose answer resolves, in the graph, to entities without the gold."""
    out = []
    for t in kept:
        if t.get("verdict") != "correct":
            continue
        q = by_q.get(t.get("question_id"))
        gold = gold_entity(q) if q else None
        ans = t.get("extracted_answer") or ""
        if not gold or not ans:
            continue
        ids = list(resolve(ans))
        if ids and gold not in ids:
            out.append({"traj_id": t["traj_id"], "answer": ans, "gold": gold, "resolves_to": ids[:3]})
    return out


def type_mismatch_rows(questions: Sequence[Mapping], type_check: TypeCheck) -> list[dict]:
    """Questions whose asked type contradicts the answer's; a row the check cannot read is not "fine"."""
    out = []
    for q in questions:
        try:
            why = type_check(q)
        except (KeyError, TypeError, ValueError) as exc:
            why = f"cannot check the asked type: {type(exc).__name__}: {exc}"
        if why:
            out.append({"question_id": q["question_id"], "question": q["question"], "why": why})
    return out


def graph_only_rows(questions: Sequence[Mapping], world_check: WorldCheck) -> list[dict]:
    """Questions unique in the graph only (relation cards, ranges that pin alone)."""
    out = []
    for q in questions:
        try:
            whys = list(world_check(q))
        except (KeyError, TypeError, ValueError) as exc:
            whys = [f"cannot check against the relation cards: {type(exc).__name__}: {exc}"]
        if whys:
            out.append({"question_id": q["question_id"], "question": q["question"], "why": whys})
    return out


def sft_violation_rows(sft: Sequence[Mapping], questions: Sequence[Mapping]) -> list[dict]:
    """SFT rows failing :func:`strict_sft_problems` against their question's answer and aliases."""
    answers = {q["question_id"]: [q.get("answer") or "", *(q.get("answer_aliases") or [])] for q in questions}
    out = []
    for t in sft:
        probs = strict_sft_problems(t, answers.get(t.get("question_id"), [t.get("answer") or ""]))
        if probs:
            out.append({"traj_id": t["traj_id"], "problems": probs})
    return out


def _norm_args(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.lower().split())
    if isinstance(value, Mapping):
        return {str(k): _norm_args(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm_args(v) for v in value]
    return value


def tool_call_keys(messages: Sequence[Mapping]) -> list[tuple[str, str]]:
    """Each tool call as (name, normalized arguments): case and whitespace of string values ignored."""
    calls = []
    for m in messages or []:
        for c in m.get("tool_calls") or []:
            fn = c.get("function") or {}
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    pass
            calls.append((str(fn.get("name")), json.dumps(_norm_args(args), sort_keys=True)))
    return calls


def strict_sft_problems(traj: Mapping, answer_names: Sequence[str]) -> list[str]:
    """The strict SFT checks that can be recomputed from one stored row: a kept SFT row must have no
    drop reason, no repeated identical tool call, no forced final answer, and at least one tool
    observation that contains the answer (the agent saw its evidence)."""

    problems = []
    if [r for r in traj.get("drop_reasons") or [] if not str(r).startswith("rl")]:
        problems.append("has SFT drop reasons")
    calls = tool_call_keys(traj.get("messages") or [])
    if len(calls) != len(set(calls)):
        problems.append("repeated identical tool call")
    if str(traj.get("termination") or "").startswith("forced"):
        problems.append("forced final answer")
    if traj.get("evidence_seen") is False:
        problems.append("evidence not seen")
    names = [normalize(n) for n in answer_names if normalize(n)]
    seen = [normalize(m.get("content") or "") for m in traj.get("messages") or [] if m.get("role") == "tool"]
    if names and not any(n in obs for obs in seen for n in names):
        problems.append("answer never in an observation")
    return problems
