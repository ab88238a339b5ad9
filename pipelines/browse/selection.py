"""Strict SFT selection: a kept trajectory is correct *and* honest *and* efficient (WebLeaper).

Pure functions over trajectory rows (schemas/browse_trajectory.json) and their messages:

- :func:`repeated_calls`: tool calls identical to an earlier one (same tool, same normalized
  arguments), the mark of a loop;
- :func:`evidence_seen`: some observation the agent saw names both the answer and the subject
  of the answer hop, so the answer could be read rather than remembered;
- :func:`shortest_correct`: the fewest tool calls / generated tokens among a question's correct
  trajectories, the yardstick of the length filter;
- :func:`trajectory_filters`: every reason a trajectory cannot be an SFT row ([] = keep);
- :func:`rl_drop_reasons`: every reason a question cannot be an RL row ([] = keep): an RL row is every
  verified question (:func:`verification`), whatever its pass rate (difficulty is a column; a pass-rate
  band is an export option, ``crucible export --pass-band``); :func:`assign_splits` sets the question's
  split and its trajectories'.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from crucible.pipelines.browse import qtype as Q
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.verify import normalize


class DropReason(StrEnum):
    """Why a trajectory is not an SFT row (the strings are the ``drop_reasons`` values)."""

    NOT_CORRECT = "sft: not correct"
    MALFORMED = "sft: malformed turn"
    OVER_TOKENS = "sft: over token cap"
    OVER_TURNS = "sft: over turn cap"
    HALLUCINATED_URL = "sft: visited a URL never seen"
    TOOL_ERRORS = "sft: too many tool errors"
    NO_SEARCH = "sft: answered without searching"
    REPEATED_CALL = "sft: repeated identical tool call"
    EVIDENCE_NOT_SEEN = "sft: answer hop never in an observation (answered from memory)"
    FORCED_ANSWER = "sft: forced final answer"
    TOO_LONG = "sft: longer than the shortest correct trajectory"


class RLDropReason(StrEnum):
    """Why a question is not an RL row (the strings are ``drop_reasons`` values of its trajectories)."""

    NOT_UNIQUE = "rl: answer not unique"
    NOT_SUPPORTED = "rl: a clue not supported"
    UNFAITHFUL = "rl: question not faithful to its formalization"
    NOT_FINDABLE = "rl: a clue not findable"
    CLOSED_BOOK = "rl: solved closed-book"


def rl_drop_reasons(verified: Mapping) -> list[str]:
    """Reasons a question is not an RL row ([] = keep), from its verification facts: ``unique``, ``supported``
    and ``faithful`` must be true (missing = not verified); ``findable`` false and ``closed_book_solved`` true
    reject (None or missing: not measured, e.g. no closed-book model). The pass rate is never a reason."""
    checks = [(verified.get("unique") is not True, RLDropReason.NOT_UNIQUE),
              (verified.get("supported") is not True, RLDropReason.NOT_SUPPORTED),
              (verified.get("faithful") is not True, RLDropReason.UNFAITHFUL),
              (verified.get("findable") is False, RLDropReason.NOT_FINDABLE),
              (verified.get("closed_book_solved") is True, RLDropReason.CLOSED_BOOK)]
    return [str(r) for bad, r in checks if bad]


def _norm_value(v):
    if isinstance(v, str):
        return " ".join(v.lower().split())
    if isinstance(v, Mapping):
        return {k: _norm_value(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [_norm_value(x) for x in v]
    return v


def call_signature(name: str, arguments: str | None) -> tuple[str, str]:
    """(tool, arguments) with the arguments parsed, keys sorted, strings lowercased and their
    whitespace collapsed: ``search("Freeport  Bahamas")`` and ``search("freeport bahamas")`` are
    the same call. Arguments that are not JSON are compared as collapsed text."""
    try:
        args = json.loads(arguments or "{}")
    except (json.JSONDecodeError, TypeError):
        return name, " ".join(str(arguments).lower().split())
    return name, json.dumps(_norm_value(args), sort_keys=True, ensure_ascii=False)


def repeated_calls(messages: Sequence[Mapping]) -> int:
    """Tool calls of the assistant turns that repeat an earlier call of the same trajectory."""
    seen, n = set(), 0
    for m in messages:
        if m.get("role") != "assistant":
            continue
        for c in m.get("tool_calls") or ():
            sig = call_signature(c["function"]["name"], c["function"].get("arguments"))
            n += sig in seen
            seen.add(sig)
    return n


def _mentions(text_norm: str, names: Iterable[str]) -> bool:
    for n in names:
        nn = normalize(n)
        if len(nn) >= 2 and f" {nn} " in text_norm:
            return True
    return False


def evidence_seen(observations: Iterable[str], answer_names: Sequence[str], subject_names: Sequence[str]) -> bool:
    """True iff one observation (a tool result as the agent saw it) contains, as whole words after
    :func:`~crucible.pipelines.browse.verify.normalize`, the answer (its name or an alias) and the subject of
    the answer hop (its name or an alias), e.g. "Bahamian dollar" and "The Bahamas" for "the
    currency of the Bahamas". Error observations count like any other text; an empty list of
    subject names means the answer alone is enough (a hop with an unnamed subject)."""
    for obs in observations:
        t = f" {normalize(obs or '')} "
        if _mentions(t, answer_names) and (not subject_names or _mentions(t, subject_names)):
            return True
    return False


def observations_seen(messages: Sequence[Mapping]) -> list[str]:
    """Tool results as the agent saw them (after truncation, with any appended note), with the
    call's own argument strings cut out: a search tool echoes its query ('Search results for
    "Bahamian dollar"'), and a guess the agent typed is not evidence it read."""
    args_by_id: dict[str, list[str]] = {}
    for m in messages:
        for c in (m.get("tool_calls") or ()) if m.get("role") == "assistant" else ():
            try:
                args = json.loads(c["function"].get("arguments") or "{}")
            except (json.JSONDecodeError, TypeError):
                args = {}
            vals = [v for v in (args.values() if isinstance(args, Mapping) else ()) if isinstance(v, str) and v]
            args_by_id[c.get("id") or ""] = sorted(vals, key=len, reverse=True)
    out = []
    for m in messages:
        if m.get("role") != "tool":
            continue
        text = m.get("content") or ""
        for v in args_by_id.get(m.get("tool_call_id") or "", ()):
            text = re.sub(re.escape(v), " ", text, flags=re.IGNORECASE)
        out.append(text)
    return out


def answer_hop_names(graph, draft) -> tuple[list[str], list[str]]:
    """(names of the answer, names of the answer hop's subject): the entity whose relation gives
    the answer ("the Bahamas" in "the currency of the Bahamas"), each with its aliases."""

    answer, aliases, _kind = S.answer_spec(graph, draft)
    answer_names = [answer, *aliases]

    def names(eid: str) -> list[str]:
        e = graph.entities.get(eid)
        return [S.entity_name(graph, eid), *(e.aliases if e else ())]

    if draft.answer_attr:  # an attribute answer: the hop is the entity whose value is asked
        return answer_names, names(draft.answer_id)
    subject_names: list[str] = []
    for s, _r, o in draft.formalization["triples"]:
        other = s if o == draft.target else o if s == draft.target else None  # forward or inverse hop
        if other is not None:
            subject_names = names(draft.binding.get(other, other) if other.startswith("?") else other)
            break
    return answer_names, subject_names


def shortest_correct(rows: Iterable[Mapping]) -> dict | None:
    """The fewest tool calls and generated tokens among correct trajectories (None without one)."""
    ok = [r for r in rows if r["verdict"] == "correct"]
    if not ok:
        return None
    return {"tool_calls": min(r["n_tool_calls"] for r in ok),
            "completion_tokens": min(r["n_completion_tokens"] for r in ok)}


def trajectory_filters(row: Mapping, opts: Mapping, shortest: Mapping | None = None) -> list[str]:
    """Reasons a trajectory cannot be used for SFT ([] = keep). ``opts`` is the resolved
    ``browse`` config; ``shortest`` comes from :func:`shortest_correct` over the trajectories of
    the same question (None: the length filter does not apply)."""
    reasons: list[str] = []
    if row["verdict"] != "correct":
        reasons.append(DropReason.NOT_CORRECT)
    if (row["reward_format"] or 0) < 1:
        reasons.append(DropReason.MALFORMED)
    if row["n_prompt_tokens"] + row["n_completion_tokens"] > int(opts["sft_max_tokens"]):
        reasons.append(DropReason.OVER_TOKENS)
    if row["n_turns"] > int(opts["sft_max_turns"]):
        reasons.append(DropReason.OVER_TURNS)
    if row["meta"]["hallucinated_urls"]:
        reasons.append(DropReason.HALLUCINATED_URL)
    if row["n_tool_calls"] and row["n_tool_errors"] / row["n_tool_calls"] > float(opts["max_tool_error_rate"]):
        reasons.append(DropReason.TOOL_ERRORS)
    if row["n_tool_calls"] < int(opts["sft_min_tool_calls"]):
        reasons.append(DropReason.NO_SEARCH)
    if opts["sft_drop_repeated_calls"] and repeated_calls(row["messages"]) > 0:
        reasons.append(DropReason.REPEATED_CALL)
    # cannot decide (no flag computed) = not seen: precision before yield
    if opts["sft_require_evidence"] and row["verdict"] == "correct" and row.get("evidence_seen") is not True:
        reasons.append(DropReason.EVIDENCE_NOT_SEEN)
    if opts["sft_drop_forced_answer"] and row["termination"] == "forced_answer":
        reasons.append(DropReason.FORCED_ANSWER)
    factor = opts["sft_max_length_factor"]
    if factor is not None and shortest is not None and row["verdict"] == "correct":
        if (row["n_tool_calls"] > factor * shortest["tool_calls"]
                or row["n_completion_tokens"] > factor * max(1, shortest["completion_tokens"])):
            reasons.append(DropReason.TOO_LONG)
    return [str(r) for r in reasons]


# ---------------------------------------------------------------- the RL split

def verification(graph, draft, question: str, state: Mapping) -> dict:
    """The facts that make a question verified, for :func:`rl_drop_reasons`: unique and supported (hardening's
    last checks, ``state``), faithful (the text asks for the answer's kind and states the formalization's
    relations: :func:`qtype.type_mismatch`, :func:`qtype.relation_backcheck`), findable (where measured) and
    not solved closed-book (where a closed-book model ran)."""

    unfaithful = Q.type_mismatch(graph, draft, question) or Q.relation_backcheck(graph, draft, question)
    return {"unique": state["unique"], "supported": state["supported"], "faithful": not unfaithful,
            "unfaithful_reason": unfaithful or None, "findable": state.get("findable"),
            "closed_book_solved": state["closed_book_solved"]}


def band(pass_rate: float) -> str:
    """The difficulty band of a pass rate: unsolved (0), learnable, solved (1)."""
    if pass_rate <= 0:
        return "unsolved"
    if pass_rate >= 1:
        return "solved"
    return "learnable"


def assign_splits(trajs: list[dict], opts: Mapping, rl_reasons: Sequence[str], pass_rate: float | None) -> str:
    """The question's split, and each trajectory's (set on the rows). RL: every verified question
    (``rl_reasons`` empty), whatever its pass rate (difficulty is a column; a band is ``crucible export
    --pass-band``); SFT: a trajectory that passes the strict filters. A rejected question's trajectories
    carry its reasons."""
    shortest, rl_ok = shortest_correct(trajs), not rl_reasons
    for t in trajs:
        t["pass_rate_k"] = pass_rate
        t["difficulty_band"] = band(pass_rate) if pass_rate is not None else None
        sft_drop = trajectory_filters(t, opts, shortest)
        t["split"] = ("sft+rl" if rl_ok else "sft") if not sft_drop else ("rl" if rl_ok else "none")
        t["drop_reasons"] = sft_drop + list(rl_reasons)
    return "rl" if rl_ok else "none"
