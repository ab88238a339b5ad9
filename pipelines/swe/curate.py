"""Per validated instance of ``make swe-curate``: problem statement, gold + LLM rollouts, grading and the
trajectory filters (:func:`curate_instance`), and its thin Beam adapter :class:`Curate`."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from apache_beam.metrics import Metrics

from crucible.pipelines.agent.loop import JSONStepPolicy, NativeToolPolicy
from crucible.pipelines.llm.metrics import flush_pool_stats, report_calls, report_pool_metrics
from crucible.pipelines.store.commit import ItemResult, Progress
from crucible.pipelines.store.progress import pool_members
from crucible.pipelines.swe import rollout
from crucible.pipelines.swe.filters import classify, reason_key
from crucible.pipelines.swe.graph_bounds import CapExceeded, run_capped
from crucible.pipelines.swe.pooled import live_ctx
from crucible.pipelines.swe.quality import finished
from crucible.pipelines.swe.records import FailureKind, Stage, Status, Step, failure
from crucible.pipelines.swe.statements import statement_for
from crucible.pipelines.threaded import ThreadedDoFn
from crucible.sandbox.engines import report_engine_metrics

log = logging.getLogger(__name__)
PIPELINE = "swe-curate"
SUBMIT_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string", "maxLength": 200}},
                 "required": ["summary"], "additionalProperties": False}


def llm_policy(client, kind: str, sample_index: int, max_arg_chars: int | None = None):
    if kind == "native":
        return NativeToolPolicy(client, sample_index=sample_index)
    # room for a bounded thought plus a whole str_replace: each string argument is capped so the step
    # closes within max_tokens (a truncated step is not JSON, and its retries cost minutes on a CPU)
    return JSONStepPolicy(client, final_action="submit", final_schema=SUBMIT_SCHEMA, final_tool="submit",
                          sample_index=sample_index, max_arg_chars=max_arg_chars, max_tokens=768)


def curate_instance(ctx, inst: dict, val: dict, *, cfg: Mapping, run_id: str, client=None, prompt=None,
                    model: str | None = None, with_llm: bool = True, llm_statement: bool = True) -> ItemResult:
    """Statement, rollouts (gold + LLM), grading and filters for one validated instance (``with_llm``: LLM
    rollouts, ``llm_statement``: an LLM statement, within their ``llm_max_instances`` caps)."""

    swe = cfg["swe"]
    ro, flt = swe["rollouts"], swe["filters"]
    cap = float(ro["rollout_timeout_s"])
    res = ItemResult(inst["instance_id"])
    inst, st_fails, dropped = statement_for(ctx, inst, swe["statements"], client if swe["statements"]["use_llm"]
                                            and llm_statement else None, prompt, run_id=run_id, pipeline=PIPELINE)
    for f in st_fails:
        res.add("failures", f)
    if dropped:  # a statement that does not reproduce is not kept (nor replaced by one that says less)
        return res.add("swe_validations", dict(val, status=Status.INVALID.value, failure_kind=FailureKind.FILTERED.value,
                                               failed_at=Step.STATEMENT.value, reason=dropped[:2000]))
    trajs = []
    common = dict(max_turns=int(ro["max_turns"]), max_total_tokens=int(ro["max_total_tokens"]),
                  command_timeout_s=int(ro["command_timeout_s"]),
                  max_observation_chars=int(ro["max_observation_chars"]), run_id=run_id)
    gold = None
    if "gold" in ro["policies"]:
        gold_turns = max(int(ro["max_turns"]), 4 + 2 * inst["patch"].count("diff --git"))
        gold = capped_rollout(res, ctx, inst, "gold", cap=cap, policy_name="gold", max_turns=gold_turns,
                              run_id=run_id)
        trajs += [gold] if gold else []
    gold_ok = "gold" not in ro["policies"] or bool(gold and gold["resolved"])
    if gold_ok and "llm" in ro["policies"] and client is not None and with_llm:
        for k in range(int(ro["k"])):
            policy = llm_policy(client, ro["llm_policy"], k, ro["max_arg_chars"])
            t = capped_rollout(res, ctx, inst, policy, cap=cap, policy_name="llm", sample_index=k, model=model,
                               **common)
            trajs += [t] if t else []
    for t in trajs:
        t["split"], t["drop_reasons"] = classify(t, flt, inst)
        if not gold_ok:  # an instance the harness cannot resolve itself trains nothing
            t["split"], t["drop_reasons"] = "none", [*t["drop_reasons"], "gold_unresolved: instance rejected"]
        # a dropped row's reasons are failures; a kept row's (rl, semi: why it is not SFT) stay on the row
        for r in t["drop_reasons"] if t["split"] == "none" else ():
            res.add("failures", failure(PIPELINE, Stage.FILTER_TRAJECTORY, FailureKind.FILTERED, reason_key(r),
                                        run_id, t["traj_id"], table="swe_trajectories", payload={"detail": r}))
        res.add("swe_trajectories", t)
    if not gold_ok:
        # the harness cannot reproduce its own reference fix: the instance is not trustworthy
        why = gold["grade_reason"] if gold else f"no gold trajectory: rollout_timeout_s={cap:g} s fired"
        res.add("swe_validations", dict(val, status=Status.INVALID.value, failure_kind=FailureKind.FILTERED.value,
                                        failed_at=Step.GOLD_CHECK.value, reason=f"gold_unresolved: {why}"[:2000]))
        res.add("failures", failure(PIPELINE, Stage.GOLD_CHECK, FailureKind.FILTERED, "gold_unresolved", run_id,
                                    inst["instance_id"], payload={"detail": why}))
        return res
    res.add("swe_validations", val)
    # quality labels and difficulty, once, on the finished instance (statement and trajectories known)
    res.add("swe_instances", finished(inst, val, trajectories=trajs, workdir=getattr(ctx, "workdir", None)).row(run_id))
    return res


def capped_rollout(res: ItemResult, ctx, inst: Mapping, policy, *, cap: float, policy_name: str,
                   sample_index: int = 0, rollout_fn=None, **kw) -> dict | None:
    """One rollout bounded by ``swe.rollouts.rollout_timeout_s``: its trajectory row, or None and a ``failures``
    row on ``res`` naming the cap (no trajectory: a cut rollout is no training row and no test result).
    ``rollout_fn``: :func:`crucible.pipelines.swe.rollout.run_rollout` unless given."""
    fn = rollout_fn or rollout.run_rollout
    what = f"{policy_name} rollout {sample_index} of {inst['instance_id']}"
    try:
        return run_capped(lambda: fn(ctx, inst, policy, policy_name=policy_name, sample_index=sample_index, **kw),
                          cap, cap="swe.rollouts.rollout_timeout_s", what=what)
    except CapExceeded as exc:
        res.add("failures", failure(PIPELINE, Stage.FILTER_TRAJECTORY, FailureKind.INFRA, str(exc), kw["run_id"],
                                    f"{inst['instance_id']}:{policy_name}:{sample_index}", table="swe_trajectories",
                                    payload={"cap": exc.cap, "seconds": exc.seconds}))
        return None


class Curate(ThreadedDoFn):
    """Each validated instance curated on a pool thread: up to ``threads`` at once (``swe.curate_threads``;
    null: the LLM's concurrency, so its slots are busy while one instance's container runs), each emitted
    as it finishes. Which instances get an LLM statement or rollouts (``llm_max_instances``) is decided on
    the bundle's thread, in arrival order."""

    def __init__(self, cfg: dict, llm_cfg: dict | None, run_id: str, network: str, hooks=None):
        self.cfg, self.llm_cfg, self.run_id, self.network = cfg, llm_cfg, run_id, network
        self.ctx_fn, self.curate_fn = (hooks.ctx, hooks.curate) if hooks else (None, None)
        self.n = 0
        self.resolved = Metrics.counter("crucible.swe", "trajectories_resolved")
        self.threads = curate_threads(cfg, llm_cfg)

    def setup(self):
        from crucible.pipelines.llm import LLMClient, load_prompt
        from crucible.pipelines.swe.transforms import build_ctx

        self.ctx = (self.ctx_fn or build_ctx)(self.cfg, self.network)
        self.client = LLMClient.from_config(self.llm_cfg, out_dir=self.cfg["run"]["out_dir"]) if self.llm_cfg else None
        self.prompt = load_prompt(self.cfg["swe"]["statements"]["prompt"])
        self.model = (self.llm_cfg or {}).get("model")
        self.progress = Progress("swe-curate instances curated", None, float(self.cfg["run"]["progress_every_s"]),
                                 log, members=pool_members(getattr(self.ctx, "pool", None), self.client))
        super().setup()

    def process(self, pair):
        swe = self.cfg["swe"]
        within = [cap is None or self.n < int(cap)
                  for cap in (swe["rollouts"]["llm_max_instances"], swe["statements"]["llm_max_instances"])]
        self.n += 1
        yield from super().process((pair, within))

    def outputs(self, job) -> list:
        (inst, val), within = job
        self.ctx = ctx = live_ctx(self.ctx)  # a drained engine's client no longer serves the unplaced work
        res = (self.curate_fn or curate_instance)(ctx, inst, val, cfg=self.cfg, run_id=self.run_id, client=self.client,
                              prompt=self.prompt, model=self.model, with_llm=within[0], llm_statement=within[1])
        self.resolved.inc(sum(t["resolved"] for t in res.rows.get("swe_trajectories", [])))
        log.info("swe: curated %s: %s", inst["instance_id"],
                 ", ".join(f"{t['policy']}={'resolved' if t['resolved'] else t['grade_reason']}"
                           for t in res.rows.get("swe_trajectories", [])))
        return [res]

    def emitted(self) -> None:
        self.progress.update(1, force=True)

    def finish_bundle(self):
        """The bundle's LLM calls (made on rollout threads) as Beam metrics, the pools' gauges, and the model
        pool's stats file rewritten (Beam may never call ``teardown``)."""
        yield from super().finish_bundle()
        if getattr(self.ctx, "pool", None) is not None:
            report_engine_metrics(self.ctx.pool.stats())
        if self.client is not None:
            report_calls(self.client)
            report_pool_metrics(self.client.stats())
            flush_pool_stats(self.client)

    def teardown(self):
        super().teardown()
        if getattr(self, "client", None) is not None:
            self.client.close()


def curate_threads(cfg: Mapping, llm_cfg: Mapping | None) -> int:
    """``swe.curate_threads``, else the LLM's concurrency over its endpoints (1 without an LLM)."""
    if cfg["swe"]["curate_threads"] is not None:
        return int(cfg["swe"]["curate_threads"])
    if not llm_cfg:
        return 1
    return max(1, int(llm_cfg["max_concurrency"]) * len(llm_cfg["base_urls"]))


