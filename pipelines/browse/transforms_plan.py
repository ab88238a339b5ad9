"""Beam transforms that plan ``make synth-browse`` on the workers; the driver holds only the options.

    PlanSeeds:      one element -> the shard ranges (expanded on a worker) -> Reshuffle -> sample each shard
                    -> one entry per chain -> per-pattern caps (whole, last two hops) -> per-answer cap -> per-tail cap
                    -> run.limit
    SkipCommitted:  an anti-join against the store's committed item keys (CommittedKeys: manifests read on
                    the workers), not a driver-side set

Counters (namespace ``crucible.browse.plan``): ``planned``, ``skipped``, ``todo``, and one per drop kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from crucible.pipelines.browse.api import load_kg
from crucible.pipelines.browse.planning import (
    ANSWER_REASON,
    PATTERN_REASON,
    TAIL_PATTERN_REASON,
    TAIL_REASON,
    DropKind,
    Planned,
    PlanShard,
    chain_tail,
    plan_shard,
    plan_shards,
    tail_pattern,
    tail_pattern_cap,
)
from crucible.pipelines.options import Options
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.commit import ItemResult, failure_row

NAMESPACE = "crucible.browse.plan"
DROP_COUNTERS = {DropKind.PATTERN.value: "structural_duplicates", DropKind.ANSWER.value: "answer_duplicates",
                 DropKind.HUB.value: "hub_cap_drops", DropKind.TAIL.value: "tail_duplicates"}


class _SampleShard(beam.DoFn):
    """One shard's sampler; the graph is loaded once per worker (``setup``)."""

    def __init__(self, options: Options):
        self.options = options

    def setup(self):
        self.graph = load_kg(self.options.search)

    def process(self, shard: PlanShard) -> Iterator[Planned]:
        yield from plan_shard(self.graph, self.options.browse, shard)


def _first_of_chain(kv: tuple[str, Iterable[Planned]]) -> Planned:
    """Two shards that drew the same chain: the earlier draw stands (as in one sampler)."""
    return min(kv[1], key=lambda p: p.order)


def _cap(kv: tuple[str, Iterable[Planned]], most: int, kind: DropKind, reason: str) -> Iterator[Planned]:
    """Across shards, the first ``most`` items of one group (pattern or answer) in sampling order; the rest
    become drops of ``kind`` (the same reason a single sampler gives)."""
    for n, p in enumerate(sorted(kv[1], key=lambda p: p.order)):
        if n < most:
            yield p
        else:
            drop = {"key": p.key, "kind": kind.value, "reason": reason.format(most=most, answer=p.answer),
                    "pattern": p.item["pattern"]}
            yield Planned(p.key, p.shard, p.seq, drop=drop)


def _split(p: Planned) -> Iterator:
    yield p if p.item is not None else beam.pvalue.TaggedOutput("drops", p)


class PlanSeeds(beam.PTransform):
    """The planned structures of a run: a PCollection of :class:`Planned` (items and drops), built from
    the seed count alone (``browse.seeds`` split into ``plan_shard_size`` shards on a worker: the job graph
    is the same size for any seed count)."""

    def __init__(self, options: Options):
        super().__init__()
        self.options = options

    def expand(self, pbegin):
        b = self.options.browse
        planned = (pbegin
                   | "Run" >> beam.Create([None])
                   | "Shards" >> beam.FlatMap(lambda _: plan_shards(b))  # on a worker: the graph holds no list
                   | "SpreadShards" >> beam.Reshuffle()
                   | "SampleShards" >> beam.ParDo(_SampleShard(self.options))
                   | "ByChain" >> beam.GroupBy(lambda p: p.key)
                   | "FirstOfChain" >> beam.Map(_first_of_chain)
                   | "Split" >> beam.FlatMap(_split).with_outputs("drops", main="items"))
        by_pattern = (planned.items
                      | "ByPattern" >> beam.GroupBy(lambda p: p.item["pattern"])
                      | "CapPattern" >> beam.FlatMap(
                          _cap, int(b.max_per_pattern), DropKind.PATTERN, PATTERN_REASON)
                      | "SplitPattern" >> beam.FlatMap(_split).with_outputs("drops", main="items"))
        by_tail_pattern = (by_pattern.items
                           | "ByTailPattern" >> beam.GroupBy(lambda p: tail_pattern(p.item))
                           | "CapTailPattern" >> beam.FlatMap(
                               _cap, tail_pattern_cap(b), DropKind.PATTERN, TAIL_PATTERN_REASON)
                           | "SplitTailPattern" >> beam.FlatMap(_split).with_outputs("drops", main="items"))
        by_answer = (by_tail_pattern.items
                     | "ByAnswer" >> beam.GroupBy(lambda p: p.answer)
                     | "CapAnswer" >> beam.FlatMap(_cap, int(b.max_per_answer), DropKind.ANSWER, ANSWER_REASON)
                     | "SplitAnswer" >> beam.FlatMap(_split).with_outputs("drops", main="items"))
        by_tail = (by_answer.items
                   | "ByTail" >> beam.GroupBy(lambda p: chain_tail(p.item))
                   | "CapTail" >> beam.FlatMap(_cap, int(b.max_per_tail), DropKind.TAIL, TAIL_REASON))
        limit, size = self.options.run.limit, int(b.plan_shard_size)
        return ((planned.drops, by_pattern.drops, by_tail_pattern.drops, by_answer.drops, by_tail)
                | "Planned" >> beam.Flatten()
                | "Limit" >> beam.Filter(_within_limit, limit, size)
                | "Count" >> beam.Map(_count_planned))


def _within_limit(p: Planned, limit: int | None, shard_size: int) -> bool:
    """``run.limit``: the first ``limit`` items by shard and place (drops always pass: they are recorded)."""
    return p.item is None or limit is None or p.shard * shard_size + p.rank < limit


def _count_planned(p: Planned) -> Planned:
    if p.item is not None:
        Metrics.counter(NAMESPACE, "planned").inc()
    else:
        Metrics.counter(NAMESPACE, DROP_COUNTERS[p.drop["kind"]]).inc()
    return p


class CommittedKeys(beam.PTransform):
    """The item keys of ``pipeline`` the store's manifests name (the manifests listed and read on workers)."""

    def __init__(self, out_dir: str, pipeline: str):
        super().__init__()
        self.out_dir, self.store_pipeline = out_dir, pipeline

    def expand(self, pbegin):
        out_dir, pipeline = self.out_dir, self.store_pipeline
        return (pbegin
                | "Store" >> beam.Create([out_dir])
                | "ManifestFiles" >> beam.FlatMap(lambda d: M.manifest_files(d, pipeline))
                | "SpreadManifests" >> beam.Reshuffle()
                | "ItemKeys" >> beam.FlatMap(_manifest_keys, pipeline))


def _manifest_keys(path: str, pipeline: str) -> list[str]:
    m = M.read_manifest(path, pipeline)
    return list(m["items"]) if m else []


def _unless_committed(kv) -> Iterator[Planned]:
    _, groups = kv
    entries = list(groups["planned"])
    done = bool(list(groups["done"]))
    for p in entries:
        if not done:
            if p.item is not None:
                Metrics.counter(NAMESPACE, "todo").inc()
            yield p
        elif p.item is not None:
            Metrics.counter(NAMESPACE, "skipped").inc()


class SkipCommitted(beam.PTransform):
    """``Planned`` entries whose key no manifest of ``pipeline`` names yet (a join, on the workers)."""

    def __init__(self, out_dir: str, pipeline: str):
        super().__init__()
        self.out_dir, self.store_pipeline = out_dir, pipeline

    def expand(self, planned):
        done = planned.pipeline | "CommittedKeys" >> CommittedKeys(self.out_dir, self.store_pipeline)
        return ({"planned": planned | "KeyPlanned" >> beam.Map(lambda p: (p.key, p)),
                 "done": done | "KeyDone" >> beam.Map(lambda k: (k, True))}
                | "JoinCommitted" >> beam.CoGroupByKey()
                | "Unless" >> beam.FlatMap(_unless_committed))


def drop_result(p: Planned, run_id: str, pipeline: str) -> ItemResult:
    """A planning drop as the store item it is recorded as (a ``sample`` failures row)."""
    d = p.drop
    return ItemResult(d["key"]).add("failures", failure_row(pipeline=pipeline, stage="sample", kind="filtered",
                                                            reason=d["reason"], run_id=run_id, item_key=d["key"],
                                                            payload=d))
