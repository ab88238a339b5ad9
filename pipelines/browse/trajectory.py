"""One rollout of the search agent and its ``browse_trajectories`` row (verified, rewarded).

Shared by ``make synth-browse`` (the Rollouts and VerifyReward stages) and ``crucible browse rollout``.
A rollout runs under a wall-clock cap (``browse.rollout_timeout_s``): past it the agent stops at its next
step with :class:`RolloutTimeout`, which the caller turns into a failures row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from crucible.pipelines.agent.loop import JSONStepPolicy, NativeToolPolicy, render_react, run_agent
from crucible.pipelines.browse import reward as R
from crucible.pipelines.browse import selection as SEL
from crucible.pipelines.browse import verify as V
from crucible.pipelines.browse.context import Context
from crucible.pipelines.llm.reward import RewardError
from crucible.pipelines.options import PolicyKind
from crucible.pipelines.store.commit import utc_now

OBSERVATION_SUFFIX = ('If you now know the answer, give it now: "tool": "answer", "arguments": {"answer": "..."}. '
                      "Search again only for a fact you do not have yet.")
# appended to the observation of a call identical to an earlier one
REPEAT_NOTE = "You already made this exact call. Do not repeat it: change the query, visit a result, or answer."
# appended to every observation so that the model sees its turn budget
TURN_NOTE = "[Turn {turn} of {max_turns}: {left} left; the last one must be the answer.]"
NOT_JUDGED = "not_judged: the question came without a gold answer"


class RolloutTimeout(RuntimeError):
    """A rollout ran past ``browse.rollout_timeout_s`` (raised between two agent steps)."""


def reward_model_score(ctx: Context, messages: Sequence[dict]) -> tuple[float | None, dict]:
    """(score, meta) of one trajectory: the configured reward model's score, or None with the reason."""
    if ctx.reward is None:
        return None, {"reward_model": None, "reward_model_reason": "no reward model (llm.reward_model.backend none)"}
    try:
        score = ctx.reward.score([messages])[0]
    except RewardError as exc:
        return None, {"reward_model": ctx.reward.model_id, "reward_model_reason": str(exc)[:300]}
    reason = None if score is not None else "longer than the reward model reads"
    return score, {"reward_model": ctx.reward.model_id, "reward_model_reason": reason}


def choose_policy(ctx: Context, sample_index: int):
    """The agent policy the options decided (``ctx.policy``, from ``browse.policy`` and ``llm.engine``)."""
    params = {"temperature": float(ctx.opts.temperature), "max_tokens": int(ctx.opts.max_tokens)}
    if ctx.policy is PolicyKind.JSON_STEP:
        return JSONStepPolicy(ctx.client, prompt=ctx.prompts.get("agent"), sample_index=sample_index,
                              max_thought_chars=int(ctx.opts.max_thought_chars), **params)
    return NativeToolPolicy(ctx.client, prompt=ctx.prompts.get("agent"), sample_index=sample_index, **params)


def deadline_guard(timeout_s: float, on_event: Callable[[dict], None] | None = None,
                   clock: Callable[[], float] = time.monotonic) -> Callable[[dict], None]:
    """An ``on_event`` hook that raises :class:`RolloutTimeout` at the first step after ``timeout_s``
    (then passes the event on to ``on_event``)."""
    end = clock() + float(timeout_s)

    def guard(event: dict) -> None:
        if on_event is not None:
            on_event(event)
        if clock() > end:
            raise RolloutTimeout(f"timeout: the rollout ran past browse.rollout_timeout_s={timeout_s:g} s "
                                 f"(stopped after a {event['kind']} at turn {event.get('turn')})")

    return guard


def rollout(ctx: Context, question: str, sample_index: int, on_event=None) -> dict:
    """One search-agent episode on ``question``: ``{"result": AgentResult, "stats", "schemas"}``, under the
    ``rollout_timeout_s`` cap. ``on_event`` sees each step live (:func:`crucible.pipelines.agent.loop.run_agent`)."""
    session = ctx.env.session(forbidden_texts=[question])
    tools = {t.name: t for t in session.tools}
    o = ctx.opts
    res = run_agent(choose_policy(ctx, sample_index), tools, ctx.prompts["agent"].render(question=question),
                    max_turns=int(o.max_turns), max_total_tokens=int(o.max_total_tokens),
                    observation_suffix=OBSERVATION_SUFFIX if o.observation_hint else "",
                    max_observation_chars=int(o.max_observation_chars),
                    turn_note=TURN_NOTE if o.turn_budget_hint else "", repeat_note=REPEAT_NOTE,
                    min_tool_calls=int(o.min_tool_calls), on_event=deadline_guard(o.rollout_timeout_s, on_event))
    return {"result": res, "stats": session.stats, "schemas": session.schemas}


def trajectory_row(ctx: Context, ro: Mapping, qid: str, i: int, question: str, gold: V.Gold | None, judge,
                   evidence: Sequence[Mapping] = (), resolver=None) -> dict:
    """The ``browse_trajectories`` row of one rollout (``ro`` from :func:`rollout`): verified, rewarded.

    The one builder of that row (``make synth-browse`` and ``crucible browse rollout``). ``gold`` None
    (an outside question without a gold answer): ``verdict``, ``verdict_source``, ``answer`` and the
    outcome/total rewards are null and ``meta.verdict_reason`` says it was not judged. No ``evidence``
    (outside questions have no evidence chain): clue recall is null. ``resolver`` (a graph name index)
    enables the graph check for an entity gold; without it only the rules and the judge decide."""
    res, stats = ro["result"], ro["stats"]
    prediction = res.final
    if gold is not None:
        v = V.judge_verdict(question, gold, prediction or "", judge, [e["fact"] for e in evidence],
                            float(ctx.opts.rel_tol), prompt=ctx.prompts.get("judge"), resolver=resolver)
    else:
        extracted = V.extract_final_answer(prediction) if prediction else None
        v = V.Verdict(None, extracted or None, NOT_JUDGED, None)
    observations = [o.content for o in res.observations]
    fmt, fmt_problems = R.format_reward(res.messages, [s["function"]["name"] for s in ro["schemas"]])
    clue = R.clue_recall(evidence, stats.visited_urls, observations) if evidence else None
    outcome = R.outcome_reward(v.verdict) if gold is not None else None
    total = R.combine({"outcome": outcome, "format": fmt, "clue": clue},
                      str(ctx.opts.reward_formula)) if gold is not None else None
    # a visited URL that no search result ever showed is a guessed (hallucinated) URL
    returned = set(stats.returned_urls)
    hallucinated = [u for u in stats.visited_urls if u not in returned]
    messages = clean_messages(res.messages)
    judged = v.source == "judge"
    row = {
        "traj_id": f"{qid}-{i}", "question_id": qid, "sample_index": i, "question": question,
        "answer": gold.names[0] if gold is not None else None,
        "answer_aliases": list(gold.names[1:]) if gold is not None else [], "messages": messages,
        "tools": ro["schemas"], "rendered_react": render_react(messages), "policy_model": ctx.model,
        "sampling_params": {"temperature": float(ctx.opts.temperature), "policy": ctx.opts.policy},
        "env_snapshot_id": ctx.env.snapshot_id, "prediction": prediction, "extracted_answer": v.extracted_answer,
        "verdict": v.verdict, "verdict_source": v.source, "resolved_entity": v.resolved_entity,
        "judge_model": ctx.model if judged else None,
        "judge_prompt_version": ctx.prompts["judge"].version if judged and ctx.prompts.get("judge") else None,
        "judge_raw": v.reason if gold is not None else None, "reward_outcome": outcome, "reward_format": fmt,
        "reward_clue": clue, "reward_total": total,
        "reward_model_score": None, "n_turns": res.n_turns, "n_tool_calls": res.n_tool_calls,
        "n_search": res.tool_counts.get("search", 0), "n_visit": res.tool_counts.get("visit", 0),
        "n_tool_errors": res.n_tool_errors, "n_prompt_tokens": res.prompt_tokens,
        "n_completion_tokens": res.completion_tokens, "latency_s": round(res.latency_s, 3),
        "termination": res.termination, "retrieved_urls": list(stats.visited_urls),
        "evidence_recall": clue, "n_repeated_calls": SEL.repeated_calls(messages),
        "pass_rate_k": None, "difficulty_band": None, "split": None, "drop_reasons": [],
        "leak_flags": (["results_dropped"] if stats.leak_results_dropped else [])
                      + (["page_redacted"] if stats.leak_spans_redacted or stats.leak_pages_blocked else []),
        "meta": {"format_problems": fmt_problems, "errors": res.errors, "tool_stats": stats.to_dict(),
                 "hallucinated_urls": hallucinated, "verdict_reason": v.reason},
        "run_id": ctx.run_id, "created_at": utc_now(),
    }
    row["reward_model_score"], rm_meta = reward_model_score(ctx, row["messages"])
    row["meta"].update(rm_meta)
    return row


def clean_messages(messages: Sequence[dict]) -> list[dict]:
    """Messages as the record schema wants them: only OpenAI keys, no None tool_calls."""
    out = []
    for m in messages:
        d = {"role": m["role"], "content": m.get("content")}
        if m.get("tool_calls"):
            d["tool_calls"] = [{"id": c["id"], "type": "function",
                                "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
                               for c in m["tool_calls"]]
        if m["role"] == "tool":
            d["tool_call_id"] = m.get("tool_call_id")
            d["name"] = m.get("name")
        out.append(d)
    return out
