"""Beam transforms of ``make synth-browse``: each a labelled stage over the step functions of
:mod:`crucible.pipelines.browse.stages` (which hold the logic and are tested without Beam).

    WriteQuestions  -> HardenQuestions -> RolloutRound x (harden_rounds + 1) -> FilterRows
    RolloutRound:   Findable -> FanOut (k rollout jobs per question) -> Reshuffle -> Rollouts (each its own
                    element) -> VerifyReward -> Regroup (CoGroupByKey on the question key) -> Decide
                    (final, or too easy: hardened once more and on to the next round)

Each stage returns the finished questions it drops (an :class:`ItemResult` with the failures row) on its
``dropped`` output. The worker state (graph, LLM client, search environment) is built once per process and
shared by every stage (:class:`WorkerSpec`); LLM-bound stages keep up to ``workers`` elements in flight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.shared import Shared

from crucible.pipelines.browse import stages as ST
from crucible.pipelines.browse.context import Context, build_context
from crucible.pipelines.llm.metrics import flush_pool_stats, report_calls, report_pool_metrics
from crucible.pipelines.options import Options
from crucible.pipelines.store.commit import ItemResult
from crucible.pipelines.store.progress import Progress
from crucible.pipelines.threaded import ThreadedDoFn

DROPPED = "dropped"


@dataclass(frozen=True)
class WorkerSpec:
    """What every browse stage needs to build its worker state: the typed options, the LLM endpoint
    config (``llm`` with the live base URLs; None: no client), the run id, how many elements an LLM stage
    keeps in flight, and the handle that makes the state one object per worker process."""

    options: Options
    llm_cfg: dict | None
    run_id: str
    workers: int
    shared: Shared = field(default_factory=Shared, compare=False)

    def context(self) -> Context:
        return self.shared.acquire(lambda: build_context(self.options, self.llm_cfg, self.run_id), tag=self.run_id)


class StageDoFn(ThreadedDoFn):
    """A stage: ``work(ctx, element)`` yields outputs (``TaggedOutput`` for a side output). With
    ``pooled``, elements run on a thread pool of ``spec.workers`` (LLM-bound stages; see
    :class:`~crucible.pipelines.threaded.ThreadedDoFn`)."""

    pooled = True

    def __init__(self, spec: WorkerSpec):
        self.spec = spec

    @property
    def threads(self) -> int:
        return max(1, self.spec.workers) if self.pooled else 0

    def work(self, ctx: Context, element) -> Iterable:
        raise NotImplementedError

    def outputs(self, element) -> list:
        return list(self.work(self.ctx, element))

    def setup(self):
        self.ctx = self.spec.context()
        super().setup()

    def finish_bundle(self):
        yield from super().finish_bundle()
        if getattr(self, "progress", None) is not None and self.progress.done:
            self.progress.update(0, force=True)
        report_llm(self.ctx)

    def emitted(self) -> None:
        """One progress line per stage and worker (elements done, rate), made on the worker at the first
        element: the graph's stages run one after another on a local runner, so without it a run says nothing
        between planning and the commit."""
        if getattr(self, "progress", None) is None:
            self.progress = Progress(f"synth-browse {type(self).__name__.lstrip('_').lower()} (this worker)", None)
        self.progress.update()


def report_llm(ctx: Context) -> None:
    """The calls the shared client made (on any stage's threads) since the last report as Beam metrics, its
    pool's gauges, and its stats file rewritten (Beam may never call ``teardown``)."""
    if ctx.client is not None:
        report_calls(ctx.client)
        report_pool_metrics(ctx.client.stats())
        flush_pool_stats(ctx.client)


def _state_or_dropped(res: ST.Step) -> Iterator:
    yield res if isinstance(res, ST.QuestionState) else TaggedOutput(DROPPED, res)


class _Write(StageDoFn):
    def work(self, ctx, item):
        return _state_or_dropped(ST.write_step(item, ctx))


class _Harden(StageDoFn):
    def work(self, ctx, st):
        return _state_or_dropped(ST.harden_step(st, ctx))


class _Findable(StageDoFn):
    """The findable gate; a kept question goes on keyed (``state``) and as its k rollout jobs (main)."""

    pooled = False

    def work(self, ctx, st):
        res = ST.findable_step(st, ctx)
        if not isinstance(res, ST.QuestionState):
            yield TaggedOutput(DROPPED, res)
            return
        yield TaggedOutput("state", (res.key, res))
        yield from ST.rollout_jobs(res, ctx)


class _Rollout(StageDoFn):
    def work(self, ctx, job):
        yield (job, *ST.run_rollout(job, ctx))


class _VerifyReward(StageDoFn):
    def work(self, ctx, done):
        job, ro, failure = done
        yield job.key, ST.verify_reward(job, ro, failure, ctx)


class _Decide(StageDoFn):
    """Regroup a question's k outcomes; final, or (too easy) hardened again for the next round."""

    def work(self, ctx, kv):
        _, groups = kv
        (st,) = groups["state"]
        st = ST.regroup_step(st, list(groups["outcomes"]), ctx)
        yield TaggedOutput("final", st) if st.done else st


class _Filter(StageDoFn):
    pooled = False

    def work(self, ctx, st):
        yield ST.filter_step(st, ctx)


class WriteQuestions(beam.PTransform):
    """Planned items -> drafts with their first question (``questions``) or a dropped item (``dropped``)."""

    def __init__(self, spec: WorkerSpec):
        super().__init__()
        self.spec = spec

    def expand(self, items):
        return items | "Write" >> beam.ParDo(_Write(self.spec)).with_outputs(DROPPED, main="questions")


class HardenQuestions(beam.PTransform):
    """Pre-rollout hardening rounds (``questions``); not unique or not supported after them: ``dropped``."""

    def __init__(self, spec: WorkerSpec):
        super().__init__()
        self.spec = spec

    def expand(self, states):
        return states | "Harden" >> beam.ParDo(_Harden(self.spec)).with_outputs(DROPPED, main="questions")


class RolloutRound(beam.PTransform):
    """One version of each question rolled out k times, every rollout its own element; returns
    ``{"final", "again", "dropped"}`` (``again``: hardened once more, for the next round)."""

    def __init__(self, spec: WorkerSpec):
        super().__init__()
        self.spec = spec

    def expand(self, states):
        found = states | "Findable" >> beam.ParDo(_Findable(self.spec)).with_outputs(DROPPED, "state", main="jobs")
        outcomes = (found.jobs
                    | "SpreadRollouts" >> beam.Reshuffle()
                    | "Rollouts" >> beam.ParDo(_Rollout(self.spec))
                    | "VerifyReward" >> beam.ParDo(_VerifyReward(self.spec)))
        decided = ({"state": found.state, "outcomes": outcomes}
                   | "Regroup" >> beam.CoGroupByKey()
                   | "Decide" >> beam.ParDo(_Decide(self.spec)).with_outputs("final", main="again"))
        return {"final": decided.final, "again": decided.again, "dropped": found[DROPPED]}


class FilterRows(beam.PTransform):
    """Finished questions -> their store items (question row, trajectory rows with splits, failures)."""

    def __init__(self, spec: WorkerSpec):
        super().__init__()
        self.spec = spec

    def expand(self, states):
        return states | "Filter" >> beam.ParDo(_Filter(self.spec))


def count_result(res: ItemResult) -> ItemResult:
    """The run's counters (namespace ``crucible.browse``) of one finished item."""
    trajs = res.rows.get("browse_trajectories") or []
    Metrics.counter("crucible.browse", "questions").inc()
    Metrics.counter("crucible.browse", "questions_kept").inc(len(res.rows.get("questions") or []))
    Metrics.counter("crucible.browse", "trajectories").inc(len(trajs))
    Metrics.counter("crucible.browse", "trajectories_correct").inc(sum(t["verdict"] == "correct" for t in trajs))
    return res
