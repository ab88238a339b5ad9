"""The per-question work of ``make synth-browse``, as plain functions over explicit clients.

``process_question(item, ctx)`` takes one sampled structure through write -> harden ->
roll out (k) -> verify -> reward -> filter, and returns an :class:`ItemResult` with the
question row, its trajectory rows and failure rows. Beam adapters live in ``pipeline.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pipelines.agent.loop import JSONStepPolicy, NativeToolPolicy, render_react, run_agent
from pipelines.browse import findable as F
from pipelines.browse import harden as H
from pipelines.browse import qtype as Q
from pipelines.browse import resolve as RS
from pipelines.browse import reward as R
from pipelines.browse import selection as SEL
from pipelines.browse import synth as S
from pipelines.browse import verify as V
from pipelines.browse.selection import trajectory_filters  # noqa: F401  (re-exported)
from pipelines.store.commit import ItemResult, failure_row, utc_now

log = logging.getLogger(__name__)
PIPELINE = "browse"
OBSERVATION_SUFFIX = ('If you now know the answer, give it now: "tool": "answer", "arguments": {"answer": "..."}. '
                      "Search again only for a fact you do not have yet.")
# appended to the observation of a call identical to an earlier one
REPEAT_NOTE = "You already made this exact call. Do not repeat it: change the query, visit a result, or answer."
# appended to every observation so that the model sees its turn budget
TURN_NOTE = "[Turn {turn} of {max_turns}: {left} left; the last one must be the answer.]"


@dataclass
class Context:
    """What a worker needs: the graph, an LLM client, the browse env, prompts and options."""

    graph: Any
    client: Any
    env: Any
    opts: Mapping
    run_id: str
    model: str
    prompts: Mapping[str, Any]
    reward: Any = None  # a reward-model scorer (llm.reward_model), None = scores stay null


def reward_model_score(ctx: Context, messages: Sequence[dict]) -> tuple[float | None, dict]:
    """(score, meta) of one trajectory: the configured reward model's score, or None with the reason."""
    from pipelines.llm.reward import RewardError

    if ctx.reward is None:
        return None, {"reward_model": None, "reward_model_reason": "no reward model (llm.reward_model.backend none)"}
    try:
        score = ctx.reward.score([messages])[0]
    except RewardError as exc:
        return None, {"reward_model": ctx.reward.model_id, "reward_model_reason": str(exc)[:300]}
    reason = None if score is not None else "longer than the reward model reads"
    return score, {"reward_model": ctx.reward.model_id, "reward_model_reason": reason}


# ---------------------------------------------------------------- planning (driver side)

class DropKind(str, Enum):
    """Why ``plan_items`` dropped a sampled structure (counted in the run summary)."""

    PATTERN = "structural duplicate"
    ANSWER = "answer duplicate"
    HUB = "hub cap"


def hub_cap(opts: Mapping) -> int:
    """Most chains one entity may be on: ``max_share_per_entity`` of ``seeds``, at least 1."""
    return max(1, int(float(opts["max_share_per_entity"]) * int(opts["seeds"]) + 1e-9))


def plan_items(graph, opts: Mapping) -> tuple[list[dict], list[dict]]:
    """Sample ``opts.seeds`` structures, deterministic in ``opts.seed``. Returns (items, drops).
    Drops (each with ``kind`` a :class:`DropKind` value): structural duplicates (more than
    ``max_per_pattern`` per relation pattern), answer duplicates (more than ``max_per_answer``
    questions with one answer) and hub-cap drops (a chain through an entity already on
    :func:`hub_cap` chains). Entities at the cap are also walked around while sampling, and no hop
    is one a reader does not need (``skip_trivial_hops``). A share ``attribute_answer_share`` of
    the items asks for an exact attribute of the final entity (a code, a year, a count) instead of
    the entity; with ``inverse_hops`` one-valued inverse hops are walked too ("the airport serving
    X"). Each item: {key, chain: [[s, r, o], ...], start, pattern, answer_attr}."""
    rng = random.Random(int(opts["seed"]))
    lo, hi = int(opts["min_hops"]), int(opts["max_hops"])
    per_pattern = int(opts["max_per_pattern"])
    per_answer = int(opts["max_per_answer"])
    per_entity = hub_cap(opts)
    attr_share = float(opts["attribute_answer_share"])
    skip_trivial = bool(opts["skip_trivial_hops"])
    inverse = bool(opts["inverse_hops"])
    pools = S.seed_pools(graph, list(opts["seed_types"] or []))
    items, drops, seen_chains, patterns, answers = [], [], set(), Counter(), Counter()
    on_chains: Counter = Counter()
    blocked: set[str] = set()
    attempts = 0
    target = int(opts["seeds"])
    while len(items) < target and attempts < target * 30:
        attempts += 1
        hops = rng.randint(lo, hi)
        want_attr = rng.random() < attr_share
        chain = S.sample_chain_weighted(graph, rng, hops, pools, blocked=frozenset(blocked), skip_trivial=skip_trivial,
                                        inverse=inverse)
        if chain is None:
            continue
        triples = [[t.subject, t.relation, t.object] for t in chain]
        start = S.chain_start(chain)
        draft = S.draft_from_chain(chain, None, start)
        answer_attr = None
        if want_attr:
            options = S.answer_attr_options(graph, draft.answer_id)
            answer_attr = rng.choice(options)[0] if options else None
        key = hashlib.sha256(json.dumps([triples, answer_attr] if answer_attr else triples).encode()).hexdigest()[:16]
        draft = S.draft_from_chain(chain, answer_attr, start)
        pat = S.pattern_hash(draft)
        if key in seen_chains:
            continue
        seen_chains.add(key)
        if patterns[pat] >= per_pattern:
            drops.append({"key": f"q-{key}", "kind": DropKind.PATTERN.value,
                          "reason": f"structural duplicate (relation pattern already used {per_pattern} times)",
                          "pattern": pat})
            continue
        answer = draft.answer_id + (f"#{answer_attr}" if answer_attr else "")
        if answers[answer] >= per_answer:
            drops.append({"key": f"q-{key}", "kind": DropKind.ANSWER.value,
                          "reason": f"answer duplicate ({answer} already the answer of {per_answer} questions)",
                          "pattern": pat})
            continue
        nodes = S.chain_entities(draft)
        hub = sorted(e for e in nodes if on_chains[e] >= per_entity)
        if hub:
            drops.append({"key": f"q-{key}", "kind": DropKind.HUB.value,
                          "reason": f"hub cap ({hub[0]} already on {per_entity} chains)", "pattern": pat})
            continue
        patterns[pat] += 1
        answers[answer] += 1
        on_chains.update(nodes)
        blocked.update(e for e in nodes if on_chains[e] >= per_entity)
        items.append({"key": f"q-{key}", "chain": triples, "start": start, "pattern": pat,
                      "answer_attr": answer_attr, "_nodes": nodes})
    # fewer items than seeds: the cap as a share of the items actually planned (drop the latest)
    while items:
        cap = max(1, int(float(opts["max_share_per_entity"]) * len(items) + 1e-9))
        c = Counter(e for it in items for e in it["_nodes"])
        eid, n = c.most_common(1)[0]
        if n <= cap:
            break
        it = next(x for x in reversed(items) if eid in x["_nodes"])
        items.remove(it)
        drops.append({"key": it["key"], "kind": DropKind.HUB.value,
                      "reason": f"hub cap ({eid} on {n} of {len(items) + 1} planned chains)", "pattern": it["pattern"]})
    for it in items:
        del it["_nodes"]
    return items, drops


def hub_concentration(chains: Sequence[set[str]] | Sequence[Sequence[str]]) -> dict:
    """The entity on most chains and its share: ``{"entity", "chains", "share", "n"}`` (chains =
    entity sets, e.g. :func:`synth.chain_entities` of each question)."""
    c: Counter = Counter()
    for nodes in chains:
        c.update(set(nodes))
    if not c:
        return {"entity": None, "chains": 0, "share": 0.0, "n": len(chains)}
    eid, n = c.most_common(1)[0]
    return {"entity": eid, "chains": n, "share": round(n / len(chains), 3), "n": len(chains)}


# ---------------------------------------------------------------- LLM-backed steps

def make_writer(ctx: Context):
    """Question writer: the LLM rewrites the template question; the template is the fallback
    whenever the model's text fails :func:`validate_question` (not a question, leaks the answer or
    a hidden name, drops a clue, asks for another kind of thing than the answer, or states other
    relations than the formalization). Returns (question, origin) with origin ``llm`` or
    ``template``; why a rewrite was not kept is left on ``draft.rewrite_check`` (for the lineage)."""
    graph, prompt = ctx.graph, ctx.prompts.get("write")
    use_llm = bool(ctx.opts["write_with_llm"]) and ctx.client is not None and prompt is not None

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
        text = (res.parsed or {}).get("question", "").strip() if res.parsed else ""
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
    if not ctx.opts["read_back"] or prompt is None:
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
    prompt, k = ctx.prompts.get("closed_book"), int(ctx.opts.get("closed_book_k", 2))
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
    if ctx.client is None or not ctx.opts.get("judge", True):
        return lambda messages, schema: None

    def judge(messages, schema):
        res = ctx.client.structured(messages, schema, prompt=ctx.prompts.get("judge"), temperature=0)
        return res.parsed

    return judge


def choose_policy(ctx: Context, sample_index: int):
    kind = ctx.opts.get("policy", "auto")
    if kind == "auto":
        kind = "json_step" if ctx.opts.get("_engine") == "embedded" else "native"
    params = {"temperature": float(ctx.opts.get("temperature", 0.7)),
              "max_tokens": int(ctx.opts.get("max_tokens", 256))}
    if kind == "json_step":
        return JSONStepPolicy(ctx.client, prompt=ctx.prompts.get("agent"), sample_index=sample_index,
                              max_thought_chars=int(ctx.opts.get("max_thought_chars", 300)), **params)
    return NativeToolPolicy(ctx.client, prompt=ctx.prompts.get("agent"), sample_index=sample_index, **params)


# ---------------------------------------------------------------- one question

def rollout(ctx: Context, question: str, sample_index: int, on_event=None) -> dict:
    """One search-agent episode on ``question``: ``{"result": AgentResult, "stats", "schemas"}``.
    ``on_event`` sees each step live (:func:`pipelines.agent.loop.run_agent`)."""
    session = ctx.env.session(forbidden_texts=[question])
    tools = {t.name: t for t in session.tools}
    agent_prompt = ctx.prompts["agent"]
    res = run_agent(choose_policy(ctx, sample_index), tools, agent_prompt.render(question=question),
                    max_turns=int(ctx.opts.get("max_turns", 6)),
                    max_total_tokens=int(ctx.opts.get("max_total_tokens", 12000)),
                    observation_suffix=OBSERVATION_SUFFIX if ctx.opts.get("observation_hint", True) else "",
                    max_observation_chars=int(ctx.opts.get("max_observation_chars", 6000)),
                    turn_note=TURN_NOTE if ctx.opts["turn_budget_hint"] else "", repeat_note=REPEAT_NOTE,
                    min_tool_calls=int(ctx.opts["min_tool_calls"]), on_event=on_event)
    return {"result": res, "stats": session.stats, "schemas": session.schemas}


def aggregate(preds: Sequence[tuple[str | None, int]], golds: V.Gold | Sequence[str], resolver=None) -> dict:
    """Parallel thinking over k rollouts: majority vote, and the answer of the rollout
    with the fewest tool calls; each marked correct or not by the rules and, with ``resolver``
    (a graph name index) and an entity gold, the graph."""
    answers = [(V.extract_final_answer(p) if p else "", n) for p, n in preds]
    norm = Counter(V.normalize(a) for a, _ in answers if a)
    majority = None
    if norm:
        top = norm.most_common(1)[0][0]
        majority = next(a for a, _ in answers if V.normalize(a) == top)
    fewest = min((x for x in answers if x[0]), key=lambda x: x[1], default=(None, 0))[0]

    def ok(a):
        v = V.rule_verdict(golds, a, resolver=resolver) if a else None
        return v is not None and v.verdict == "correct"

    return {"majority": majority, "majority_correct": ok(majority), "fewest_calls": fewest,
            "fewest_calls_correct": ok(fewest)}


def process_question(item: Mapping, ctx: Context) -> ItemResult:
    """write -> harden (``rounds``) -> roll out k -> while the pass rate is above
    ``target_pass_rate_max``: harden once more and roll out again (at most ``harden_rounds`` times).
    Only the final question's trajectories are rows; every round's question, edit, checks and pass
    rate are in the question's lineage."""
    graph, opts = ctx.graph, ctx.opts
    out = ItemResult(item["key"])
    rng = random.Random(item["key"])
    try:
        chain = [graph.triple(s, r, o) for s, r, o in item["chain"]]
        if any(t is None for t in chain):
            raise ValueError("the sampled chain is not in this graph (was the graph rebuilt?)")
        draft = S.draft_from_chain(chain, item.get("answer_attr"), item.get("start"))
        answer, aliases, answer_type = S.answer_spec(graph, draft)
        gold = _gold(graph, draft, answer, aliases, answer_type)
        harden_kw = {"writer": make_writer(ctx), "answer": answer, "aliases": aliases,
                     "closed_book": make_closed_book(ctx)}
        final, state = H.harden(graph, draft, rng, rounds=int(opts["rounds"]), min_hops=int(opts["min_hops"]),
                                **harden_kw)
    except Exception as exc:
        log.exception("question %s failed in synthesis", item["key"])
        out.add("failures", failure_row(pipeline=PIPELINE, stage="synthesize", kind="error",
                                        reason=f"{type(exc).__name__}: {exc}", run_id=ctx.run_id,
                                        item_key=item["key"], payload=item))
        return out
    if not (state["unique"] and state["supported"]):
        out.add("failures", failure_row(pipeline=PIPELINE, stage="harden", kind="filtered",
                                        reason=("unique in the graph only: " + "; ".join(state["world_problems"])
                                                if state["world_problems"] else
                                                "answer not unique or not supported after hardening"),
                                        run_id=ctx.run_id, item_key=item["key"], payload=final.formalization))
        return out

    judge = make_judge(ctx)
    first_rate, solver_rounds = None, 0
    while True:  # each version is measured for findable clues before it is rolled out
        question = final.question
        findability, ok = _findable(ctx, out, item["key"], final, state)
        if not ok:
            return out
        evidence = S.evidence(graph, final)
        trajs = _rollouts(ctx, out, item["key"], final, question, gold, evidence, judge)
        n_correct = sum(t["verdict"] == "correct" for t in trajs)
        pass_rate = n_correct / len(trajs) if trajs else None
        rnd = max(e["round"] for e in final.lineage)
        final.lineage.append(H.lineage_entry(
            rnd, H.Phase.ROLLOUT, H.Operator.ROLLOUT, question, question, True,
            {"terminations": dict(Counter(t["termination"] for t in trajs))},
            pass_rate=pass_rate, n_rollouts=len(trajs), n_correct=n_correct))
        if first_rate is None:
            first_rate = pass_rate
        if pass_rate is None or pass_rate <= float(opts["target_pass_rate_max"]) \
                or solver_rounds >= int(opts["harden_rounds"]):
            break
        new, st = H.harden_round(graph, final, rng, rnd=rnd + 1, phase=H.Phase.SOLVER,
                                 operators=H.SOLVER_OPERATORS, **harden_kw)
        if st is None:  # no edit left that keeps the answer unique: keep the last rolled-out version
            break
        final, state = new, st
        solver_rounds += 1

    agg = aggregate([(t["prediction"], t["n_tool_calls"]) for t in trajs], gold, RS.name_index(graph)) \
        if trajs else None
    verified = SEL.verification(graph, final, question, state)
    q_split = SEL.assign_splits(trajs, opts, SEL.rl_drop_reasons(verified), pass_rate)
    out.rows.setdefault("browse_trajectories", []).extend(trajs)
    out.add("questions", {
        "question_id": item["key"], "question": question, "answer": answer, "answer_aliases": aliases,
        "answer_type": answer_type, "hops": S.real_hops(graph, final), "source": "kg",
        "seed_entity": final.seed, "pattern_hash": S.pattern_hash(final),
        "formalization": {**final.formalization, "binding": final.binding}, "evidence": evidence,
        "lineage": [dict(e) for e in final.lineage], "difficulty": SEL.band(pass_rate) if pass_rate is not None else None,
        "pass_rate": pass_rate, "initial_pass_rate": first_rate, "n_accepted_edits": H.accepted_edits(final.lineage),
        "n_solver_rounds": solver_rounds, "closed_book_solved": state["closed_book_solved"], "split": q_split,
        "findability": findability, "difficulty_score": None if pass_rate is None else round(1 - pass_rate, 6),
        "solver_model": ctx.model, "solver_k": len(trajs), "model": ctx.model, "prompt_version": _versions(ctx),
        "meta": {"aggregate": agg, "sampled_pattern": item["pattern"], "verified": verified},
        "run_id": ctx.run_id, "created_at": utc_now(),
    })
    return out


def _gold(graph, draft: S.Draft, answer: str, aliases: Sequence[str], answer_type: str) -> V.Gold:
    """The gold of a drafted question: its entity, or an attribute value (code, year, count: exact, no
    graph entity to resolve to)."""
    if answer_type == "entity":
        return V.Gold((answer, *aliases), draft.answer_id, graph.entities[draft.answer_id].type, V.AnswerKind.ENTITY)
    return V.Gold((answer, *aliases), None, answer_type, V.kind_for(answer_type))


def _findable(ctx: Context, out: ItemResult, qid: str, draft: S.Draft, state: dict) -> tuple[dict | None, bool]:
    """:func:`findable.check` of the draft: sets ``state["findable"]`` (the RL gate); False = dropped,
    with a ``findable`` failure row in ``out`` (the entry is reached by no query's top k)."""
    fa, state["findable"], why = F.check(ctx.env, ctx.graph, draft, draft.question, ctx.opts)
    if why:
        out.add("failures", failure_row(pipeline=PIPELINE, stage="findable", kind="filtered", reason=why,
                                        run_id=ctx.run_id, item_key=qid, payload=fa))
    return fa, not why


def _rollouts(ctx, out, qid, draft, question, gold, evidence, judge) -> list[dict]:
    """k verified trajectories of one question version, each with its selection flags
    (``evidence_seen``, ``n_repeated_calls``); failed rollouts become failure rows of ``out``."""
    answer_names, subject_names = SEL.answer_hop_names(ctx.graph, draft)
    trajs = []
    for i in range(int(ctx.opts.get("k", 2))):
        t_row, err = _one_trajectory(ctx, qid, question, gold, evidence, judge, i)
        if err:
            out.add("failures", err)
        if t_row:
            t_row["evidence_seen"] = SEL.evidence_seen(SEL.observations_seen(t_row["messages"]), answer_names,
                                                       subject_names)
            trajs.append(t_row)
    return trajs


def _versions(ctx: Context) -> str:
    return ",".join(f"{p.id}@{p.version}" for p in ctx.prompts.values() if p is not None)


def _one_trajectory(ctx, qid, question, gold, evidence, judge, i):
    try:
        ro = rollout(ctx, question, i)
    except Exception as exc:
        log.warning("rollout %s/%d failed: %s", qid, i, exc)
        return None, failure_row(pipeline=PIPELINE, stage="rollout", kind="error", reason=f"{type(exc).__name__}: {exc}",
                                 run_id=ctx.run_id, item_key=qid, discriminator=i)
    return trajectory_row(ctx, ro, qid, i, question, gold, judge, evidence, resolver=RS.name_index(ctx.graph)), None


NOT_JUDGED = "not_judged: the question came without a gold answer"


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
                            float(ctx.opts["rel_tol"]), prompt=ctx.prompts.get("judge"), resolver=resolver)
    else:
        extracted = V.extract_final_answer(prediction) if prediction else None
        v = V.Verdict(None, extracted or None, NOT_JUDGED, None)
    observations = [o.content for o in res.observations]
    fmt, fmt_problems = R.format_reward(res.messages, [s["function"]["name"] for s in ro["schemas"]])
    clue = R.clue_recall(evidence, stats.visited_urls, observations) if evidence else None
    outcome = R.outcome_reward(v.verdict) if gold is not None else None
    total = R.combine({"outcome": outcome, "format": fmt, "clue": clue},
                      str(ctx.opts.get("reward_formula", R.DEFAULT_FORMULA))) if gold is not None else None
    # a visited URL that no search result ever showed is a guessed (hallucinated) URL
    returned = set(stats.returned_urls)
    hallucinated = [u for u in stats.visited_urls if u not in returned]
    messages = _clean(res.messages)
    row = {
        "traj_id": f"{qid}-{i}", "question_id": qid, "sample_index": i, "question": question,
        "answer": gold.names[0] if gold is not None else None,
        "answer_aliases": list(gold.names[1:]) if gold is not None else [], "messages": messages,
        "tools": ro["schemas"], "rendered_react": render_react(messages), "policy_model": ctx.model,
        "sampling_params": {"temperature": float(ctx.opts.get("temperature", 0.7)), "policy": ctx.opts.get("policy")},
        "env_snapshot_id": ctx.env.snapshot_id, "prediction": prediction, "extracted_answer": v.extracted_answer,
        "verdict": v.verdict, "verdict_source": v.source, "resolved_entity": v.resolved_entity, "judge_model": ctx.model if v.source == "judge" else None,
        "judge_prompt_version": ctx.prompts["judge"].version if v.source == "judge" and ctx.prompts.get("judge") else None,
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


def _clean(messages: Sequence[dict]) -> list[dict]:
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


def run_questions(items: Sequence[Mapping], ctx: Context, workers: int) -> list[ItemResult]:
    """Process several questions concurrently (the LLM client caps in-flight requests)."""
    if workers <= 1 or len(items) <= 1:
        return [process_question(it, ctx) for it in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda it: process_question(it, ctx), items))
