"""The per-question work of ``make synth-browse``, as plain step functions over explicit clients.

A question is a :class:`QuestionState` carried from step to step; a step returns the state, or the
question's finished :class:`ItemResult` when it is dropped (a failures row says why):

    write_step (draft + first question) -> harden_step (pre-rollout rounds) -> findable_step
      -> rollout_jobs (k) -> run_rollout + verify_reward (each rollout on its own) -> regroup_step
      -> (too easy and rounds left: hardened once more, back to findable_step) -> filter_step (rows)

:func:`process_question` runs them in one place (tests, benchmarks); the Beam graph in
:mod:`crucible.pipelines.browse.transforms` runs each step as a stage, every rollout its own element.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from crucible.pipelines.browse import findable as F
from crucible.pipelines.browse import grounding as G
from crucible.pipelines.browse import harden as H
from crucible.pipelines.browse import resolve as RS
from crucible.pipelines.browse import selection as SEL
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse import verify as V
from crucible.pipelines.browse.context import PROMPTS, Context  # noqa: F401  (re-exported)
from crucible.pipelines.browse.planning import DropKind, hub_cap, hub_concentration, plan_items  # noqa: F401  (re-exported)
from crucible.pipelines.browse.selection import trajectory_filters  # noqa: F401  (re-exported)
from crucible.pipelines.browse.trajectory import (  # noqa: F401  (re-exported)
    NOT_JUDGED,
    OBSERVATION_SUFFIX,
    REPEAT_NOTE,
    TURN_NOTE,
    RolloutTimeout,
    choose_policy,
    reward_model_score,
    rollout,
    trajectory_row,
)
from crucible.pipelines.browse.writers import (  # noqa: F401
    make_closed_book,
    make_judge,
    make_read_back,
    make_writer,
    validate_question,
)
from crucible.pipelines.store.commit import ItemResult, failure_row, utc_now

log = logging.getLogger(__name__)
PIPELINE = "browse"


@dataclass
class QuestionState:
    """One question between steps (pickled between Beam stages): the sampled item, the random stream
    (hardening draws from it across steps), the current draft and its checks, the gold, the failures
    so far and the last rolled-out version's question, evidence, trajectories and pass rate."""

    item: dict
    rng: random.Random
    draft: S.Draft
    checks: dict
    answer: str
    aliases: list[str]
    answer_type: str
    gold: V.Gold
    failures: list[dict] = field(default_factory=list)
    solver_rounds: int = 0
    first_rate: float | None = None
    question: str | None = None
    findability: dict | None = None
    evidence: list[dict] = field(default_factory=list)
    trajs: list[dict] = field(default_factory=list)
    pass_rate: float | None = None
    done: bool = False

    @property
    def key(self) -> str:
        return self.item["key"]


@dataclass(frozen=True)
class RolloutJob:
    """One rollout of one question version (``index`` = sample index, 0..k-1)."""

    key: str
    index: int
    question: str
    gold: V.Gold
    evidence: list[dict]
    answer_names: list[str]
    subject_names: list[str]


@dataclass(frozen=True)
class RolloutOutcome:
    """A finished rollout: its verified row, or the failures row of a rollout that could not run."""

    key: str
    index: int
    row: dict | None
    failure: dict | None


Step = QuestionState | ItemResult


def finished(st: QuestionState) -> ItemResult:
    """The result of a question dropped before its rows: only its failures."""
    out = ItemResult(st.key)
    for f in st.failures:
        out.add("failures", f)
    return out


def _synth_failure(item: Mapping, ctx: Context, exc: Exception) -> ItemResult:
    log.exception("question %s failed in synthesis", item["key"])
    return ItemResult(item["key"]).add("failures", failure_row(
        pipeline=PIPELINE, stage="synthesize", kind="error", reason=f"{type(exc).__name__}: {exc}",
        run_id=ctx.run_id, item_key=item["key"], payload=item))


def _harden_kw(ctx: Context, answer: str, aliases: Sequence[str]) -> dict:
    return {"writer": make_writer(ctx), "answer": answer, "aliases": aliases, "closed_book": make_closed_book(ctx)}


def _gold(graph, draft: S.Draft, answer: str, aliases: Sequence[str], answer_type: str) -> V.Gold:
    """The gold of a drafted question: its entity, or an attribute value (code, year, count: exact, no
    graph entity to resolve to)."""
    if answer_type == "entity":
        return V.Gold((answer, *aliases), draft.answer_id, graph.entities[draft.answer_id].type, V.AnswerKind.ENTITY)
    return V.Gold((answer, *aliases), None, answer_type, V.kind_for(answer_type))


def write_step(item: Mapping, ctx: Context) -> Step:
    """The sampled chain as a draft with its answer, gold and first question (template or LLM rewrite),
    checked (hardening round 0); a chain the graph no longer holds is a ``synthesize`` failure."""
    graph = ctx.graph
    rng = random.Random(item["key"])
    try:
        chain = [graph.triple(s, r, o) for s, r, o in item["chain"]]
        if any(t is None for t in chain):
            raise ValueError("the sampled chain is not in this graph (was the graph rebuilt?)")
        draft = S.draft_from_chain(chain, item.get("answer_attr"), item.get("start"))
        answer, aliases, answer_type = S.answer_spec(graph, draft)
        gold = _gold(graph, draft, answer, aliases, answer_type)
        draft, checks = H.harden(graph, draft, rng, rounds=0, min_hops=int(ctx.opts.min_hops),
                                 **_harden_kw(ctx, answer, aliases))
    except Exception as exc:
        return _synth_failure(item, ctx, exc)
    return QuestionState(dict(item), rng, draft, checks, answer, list(aliases), answer_type, gold)


def harden_step(st: QuestionState, ctx: Context) -> Step:
    """Up to ``browse.rounds`` rounds of edits before any rollout, with :func:`harden.harden`'s stopping
    rule (long enough, one accepted edit, the closed-book model fails it; a round without an accepted edit
    ends it). A question not unique or not supported after it is a ``harden`` failure."""
    graph, cur, state = ctx.graph, st.draft, st.checks
    try:
        kw = _harden_kw(ctx, st.answer, st.aliases)
        for rnd in range(1, int(ctx.opts.rounds) + 1):
            if (state["closed_book_solved"] is False and H.path_length(cur) >= int(ctx.opts.min_hops)
                    and H.accepted_edits(cur.lineage) >= 1):
                break
            cur, new_state = H.harden_round(graph, cur, st.rng, rnd=rnd, phase=H.Phase.PRE_ROLLOUT,
                                            operators=H.EDIT_OPERATORS, **kw)
            if new_state is None:
                break
            state = new_state
    except Exception as exc:
        return _synth_failure(st.item, ctx, exc)
    st.draft, st.checks = cur, state
    if not (state["unique"] and state["supported"]):
        reason = ("unique in the graph only: " + "; ".join(state["world_problems"]) if state["world_problems"]
                  else "answer not unique or not supported after hardening")
        st.failures.append(failure_row(pipeline=PIPELINE, stage="harden", kind="filtered", reason=reason,
                                       run_id=ctx.run_id, item_key=st.key, payload=cur.formalization))
        return finished(st)
    return st


def findable_step(st: QuestionState, ctx: Context) -> Step:
    """:func:`findable.check` of the version about to be rolled out: sets ``checks["findable"]`` (the RL
    gate); a question whose entry no query's top k reaches is a ``findable`` failure."""
    st.question = st.draft.question
    fa, st.checks["findable"], why = F.check(ctx.env, ctx.graph, st.draft, st.draft.question, ctx.opts)
    if why:
        st.failures.append(failure_row(pipeline=PIPELINE, stage="findable", kind="filtered", reason=why,
                                       run_id=ctx.run_id, item_key=st.key, payload=fa))
        return finished(st)
    st.findability = fa
    st.evidence = S.evidence(ctx.graph, st.draft)
    return st


def rollout_jobs(st: QuestionState, ctx: Context) -> list[RolloutJob]:
    """The ``browse.k`` rollouts of the current version, each its own unit of work."""
    answer_names, subject_names = SEL.answer_hop_names(ctx.graph, st.draft)
    return [RolloutJob(st.key, i, st.question, st.gold, st.evidence, answer_names, subject_names)
            for i in range(int(ctx.opts.k))]


def run_rollout(job: RolloutJob, ctx: Context) -> tuple[dict | None, dict | None]:
    """(the agent episode, None), or (None, a ``rollout`` failures row) when it could not run or ran past
    ``browse.rollout_timeout_s``."""
    try:
        return rollout(ctx, job.question, job.index), None
    except Exception as exc:
        log.warning("rollout %s/%d failed: %s", job.key, job.index, exc)
        return None, failure_row(pipeline=PIPELINE, stage="rollout", kind="error",
                                 reason=f"{type(exc).__name__}: {exc}", run_id=ctx.run_id, item_key=job.key,
                                 discriminator=job.index)


def verify_reward(job: RolloutJob, ro: dict | None, failure: dict | None, ctx: Context) -> RolloutOutcome:
    """The verified, rewarded row of one episode with its selection flags (``evidence_seen``)."""
    if ro is None:
        return RolloutOutcome(job.key, job.index, None, failure)
    row = trajectory_row(ctx, ro, job.key, job.index, job.question, job.gold, make_judge(ctx), job.evidence,
                         resolver=RS.name_index(ctx.graph))
    row["evidence_seen"] = SEL.evidence_seen(SEL.observations_seen(row["messages"]), job.answer_names,
                                             job.subject_names)
    return RolloutOutcome(job.key, job.index, row, None)


def roll_out(job: RolloutJob, ctx: Context) -> RolloutOutcome:
    """One rollout and its verification in one call (:func:`process_question`; the Beam graph runs the two
    as separate stages)."""
    return verify_reward(job, *run_rollout(job, ctx), ctx)


def regroup_step(st: QuestionState, outcomes: Sequence[RolloutOutcome], ctx: Context) -> QuestionState:
    """The k outcomes of a version back on their question (in sample order): its pass rate in the lineage;
    while the pass rate is above ``target_pass_rate_max`` and ``harden_rounds`` allow, the question is
    hardened once more (``done`` False: roll it out again), else ``done``."""
    graph, opts = ctx.graph, ctx.opts
    trajs = []
    for o in sorted(outcomes, key=lambda o: o.index):
        if o.failure:
            st.failures.append(o.failure)
        if o.row:
            trajs.append(o.row)
    n_correct = sum(t["verdict"] == "correct" for t in trajs)
    st.trajs, st.pass_rate = trajs, (n_correct / len(trajs) if trajs else None)
    rnd = max(e["round"] for e in st.draft.lineage)
    st.draft.lineage.append(H.lineage_entry(
        rnd, H.Phase.ROLLOUT, H.Operator.ROLLOUT, st.question, st.question, True,
        {"terminations": dict(Counter(t["termination"] for t in trajs))},
        pass_rate=st.pass_rate, n_rollouts=len(trajs), n_correct=n_correct))
    if st.first_rate is None:
        st.first_rate = st.pass_rate
    if st.pass_rate is None or st.pass_rate <= float(opts.target_pass_rate_max) \
            or st.solver_rounds >= int(opts.harden_rounds):
        st.done = True
        return st
    new, new_state = H.harden_round(graph, st.draft, st.rng, rnd=rnd + 1, phase=H.Phase.SOLVER,
                                    operators=H.SOLVER_OPERATORS, **_harden_kw(ctx, st.answer, st.aliases))
    if new_state is None:  # no edit left that keeps the answer unique: keep the last rolled-out version
        st.done = True
        return st
    st.draft, st.checks = new, new_state
    st.solver_rounds += 1
    return st


def filter_step(st: QuestionState, ctx: Context) -> ItemResult:
    """The question row and its trajectory rows, with the splits (strict SFT filters, RL gate)."""
    graph, trajs, final, pass_rate = ctx.graph, st.trajs, st.draft, st.pass_rate
    agg = aggregate([(t["prediction"], t["n_tool_calls"]) for t in trajs], st.gold, RS.name_index(graph)) \
        if trajs else None
    verified = SEL.verification(graph, final, st.question, st.checks)
    q_split = SEL.assign_splits(trajs, ctx.opts, SEL.rl_drop_reasons(verified), pass_rate)
    out = finished(st)
    out.rows.setdefault("browse_trajectories", []).extend(trajs)
    out.add("questions", {
        "question_id": st.key, "question": st.question, "answer": st.answer, "answer_aliases": st.aliases,
        "answer_type": st.answer_type, "hops": S.real_hops(graph, final), "source": "kg",
        "seed_entity": final.seed, "pattern_hash": S.pattern_hash(final),
        "formalization": {**final.formalization, "binding": final.binding}, "evidence": st.evidence,
        "lineage": [dict(e) for e in final.lineage], "difficulty": SEL.band(pass_rate) if pass_rate is not None else None,
        "pass_rate": pass_rate, "initial_pass_rate": st.first_rate, "n_accepted_edits": H.accepted_edits(final.lineage),
        "n_solver_rounds": st.solver_rounds, "closed_book_solved": st.checks["closed_book_solved"], "split": q_split,
        "findability": st.findability, "difficulty_score": None if pass_rate is None else round(1 - pass_rate, 6),
        "text_grounding": G.text_grounding(graph, final),
        "solver_model": ctx.model, "solver_k": len(trajs), "model": ctx.model, "prompt_version": _versions(ctx),
        "meta": {"aggregate": agg, "sampled_pattern": st.item["pattern"], "verified": verified},
        "run_id": ctx.run_id, "created_at": utc_now(),
    })
    return out


def _versions(ctx: Context) -> str:
    return ",".join(f"{p.id}@{p.version}" for p in ctx.prompts.values() if p is not None)


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
    """Every step of one question in one place (the Beam graph runs the same steps as stages): write ->
    harden -> [findable -> k rollouts -> verify + reward -> regroup] until done -> filter. Only the final
    version's trajectories are rows; every round's question, edit, checks and pass rate are in the lineage."""
    st = write_step(item, ctx)
    if isinstance(st, QuestionState):
        st = harden_step(st, ctx)
    while isinstance(st, QuestionState):
        st = findable_step(st, ctx)
        if not isinstance(st, QuestionState):
            break
        outcomes = [roll_out(job, ctx) for job in rollout_jobs(st, ctx)]
        st = regroup_step(st, outcomes, ctx)
        if st.done:
            return filter_step(st, ctx)
    return st


def run_questions(items: Sequence[Mapping], ctx: Context, workers: int) -> list[ItemResult]:
    """Process several questions concurrently (the LLM client caps in-flight requests)."""
    if workers <= 1 or len(items) <= 1:
        return [process_question(it, ctx) for it in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda it: process_question(it, ctx), items))
