"""The ``make swe-curate`` stage graph (issue #27 item 1): labelled composite transforms over the per-item
functions of :mod:`crucible.pipelines.swe`, so the graph reads as

    Sources -> Reshuffle -> Inject/Mine/Crawl -> SkipFinished -> GroupByEnv+Validate -> Reshuffle
      -> Curate (statement, rollouts, grading, filters) -> SkipFinished -> Commit

Nothing here holds data in the driver: sources are spec elements expanded on workers, and skip-finished is a
join (CoGroupByKey) against the store's committed keys read as a PCollection. Elements are bounded by the
caps of :mod:`crucible.pipelines.swe.graph_bounds`; outputs are ItemResults keyed by instance id, bug or failure key
(content-derived, so a retried bundle commits the same keys, and :func:`crucible.pipelines.store.commit.commit_items`
skips keys already committed).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from crucible.pipelines.store.sinks import CommitResults
from crucible.pipelines.swe.curate import Curate
from crucible.pipelines.swe.graph_sources import ExpandSource, SourceSpec, committed_keys, source_specs
from crucible.pipelines.swe.transforms import Hooks, ValidateEnvs

PIPELINE = "swe-curate"
GIVEN_SOURCES = ("swebench", "pr")  # rows read from files (instances_file, the crawl's prs.jsonl)


def instance_key(row) -> str:
    return row["instance_id"]


def pair_key(pair) -> str:
    return pair[0]["instance_id"]


def item_key(item) -> str:
    return item.key


def _unfinished(kv):
    _, groups = kv
    return [] if list(groups["done"]) else list(groups["todo"])


class CommittedKeys(beam.PTransform):
    """The store's committed item keys of ``pipeline``, read on a worker (one element: the store root)."""

    def __init__(self, out_dir: str, pipeline: str):
        super().__init__()
        self.out_dir, self.store_pipeline = out_dir, pipeline

    def expand(self, pbegin):
        return (pbegin | "StoreRoot" >> beam.Create([self.out_dir])
                | "ReadManifests" >> beam.FlatMap(committed_keys, self.store_pipeline))


class SkipFinished(beam.PTransform):
    """Elements whose key (``key_fn``) is not among the committed keys: a join, not a driver-side set."""

    def __init__(self, done_keys, key_fn):
        super().__init__()
        self.done_keys, self.key_fn = done_keys, key_fn

    def expand(self, pcoll):
        todo = pcoll | "Key" >> beam.Map(lambda x, f=self.key_fn: (f(x), x))
        done = self.done_keys | "Mark" >> beam.Map(lambda k: (k, True))
        return ({"todo": todo, "done": done} | "Join" >> beam.CoGroupByKey()
                | "Unfinished" >> beam.FlatMap(_unfinished).with_output_types(Any))


class Sources(beam.PTransform):
    """pbegin -> the config's source specs, spread over workers (O(#sources) small elements)."""

    def __init__(self, specs: list[SourceSpec]):
        super().__init__()
        self.specs = specs

    def expand(self, pbegin):
        return (pbegin | "Specs" >> beam.Create(self.specs, reshuffle=False)
                | "Reshuffle" >> beam.Reshuffle())


class InjectMineCrawl(beam.PTransform):
    """Source specs -> ``rows`` (instances to validate) and ``results`` (failures of what could not be read)."""

    def __init__(self, cfg: dict, run_id: str, network: str, pipeline: str = PIPELINE):
        super().__init__()
        self.args = (cfg, run_id, network, pipeline)

    def expand(self, specs):
        out = specs | "Expand" >> beam.ParDo(ExpandSource(*self.args)).with_outputs("rows", main="results")
        return {"rows": out.rows, "results": out.results}


def _given(row) -> bool:
    return row["source"] in GIVEN_SOURCES


class LimitGivenRows(beam.PTransform):
    """``run.limit`` on the rows of instance files and of the crawl: the first ``limit`` unfinished ones by id
    (a rerun takes the next ones); injected and mined rows pass (their sources are limited as specs)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def expand(self, rows):
        given = (rows | "Given" >> beam.Filter(_given)
                 | "FirstById" >> beam.combiners.Top.Of(self.limit, key=instance_key, reverse=True)
                 | "Each" >> beam.FlatMap(lambda xs: xs).with_output_types(Any))
        made = rows | "Made" >> beam.Filter(lambda r: not _given(r))
        return (given, made) | "Flatten" >> beam.Flatten()


class Validate(beam.PTransform):
    """Instance rows -> ``valid`` (instance, swe_validations row) pairs, rebalanced for curation, and
    ``results`` (rows that are not valid, and caps that fired). GroupByEnv is inside :class:`ValidateEnvs`."""

    def __init__(self, cfg: dict, run_id: str, network: str, pipeline: str = PIPELINE, hooks: Hooks = Hooks()):
        super().__init__()
        self.args = (cfg, run_id, network, pipeline, hooks)

    def expand(self, rows):
        v = rows | "ValidateEnvs" >> ValidateEnvs(*self.args)
        return {"valid": v.valid | "Reshuffle" >> beam.Reshuffle(), "results": v.results}


class CurateStage(beam.PTransform):
    """Validated pairs -> ItemResults (statement, gold + LLM rollouts, grading, filters)."""

    def __init__(self, cfg: dict, llm_cfg: dict | None, run_id: str, network: str, hooks: Hooks = Hooks()):
        super().__init__()
        self.args = (cfg, llm_cfg, run_id, network, hooks)

    def expand(self, pairs):
        return pairs | "Curate" >> beam.ParDo(Curate(*self.args)).with_output_types(Any)


class Commit(beam.PTransform):
    """ItemResults -> the store (idempotent per item key), after a join that drops committed keys."""

    def __init__(self, cfg: dict, done_keys, run_id: str, pipeline: str = PIPELINE):
        super().__init__()
        self.cfg, self.done_keys, self.run_id, self.store_pipeline = cfg, done_keys, run_id, pipeline

    def expand(self, results):
        run, store = self.cfg["run"], self.cfg["store"]
        return (results | "SkipCommitted" >> SkipFinished(self.done_keys, item_key)
                | "Write" >> CommitResults(run["out_dir"], self.store_pipeline, self.run_id,
                                           every_items=store["commit_every_items"], every_s=store["commit_every_s"],
                                           compression=store["compression"], progress_every_s=run["progress_every_s"]))


def build(p, cfg: dict, run_id: str, network: str, llm_cfg: dict | None, hooks: Hooks = Hooks()):
    """The whole swe-curate graph on pipeline ``p`` for a resolved config dict (``cfg.to_dict()``)."""
    out_dir, limit = cfg["run"]["out_dir"], cfg["run"]["limit"]
    done = p | "CommittedKeys" >> CommittedKeys(out_dir, PIPELINE)
    src = (p | "Sources" >> Sources(source_specs(cfg["swe"], limit))
           | "InjectMineCrawl" >> InjectMineCrawl(cfg, run_id, network))
    rows = src["rows"] | "SkipFinishedRows" >> SkipFinished(done, instance_key)
    if limit:
        rows = rows | "LimitGivenRows" >> LimitGivenRows(limit)
    val = rows | "Validate" >> Validate(cfg, run_id, network, hooks=hooks)
    curated = val["valid"] | "Curate" >> CurateStage(cfg, llm_cfg, run_id, network, hooks)
    return ((src["results"], val["results"], curated) | "FlattenResults" >> beam.Flatten()
            | "Commit" >> Commit(cfg, done, run_id))
