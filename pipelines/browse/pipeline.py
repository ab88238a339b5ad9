"""``make synth-browse``: two Beam jobs of labelled stages over :mod:`crucible.pipelines.browse.stages`.

    plan:   PlanSeeds (shards of seed indices, sampled on the workers) -> SkipCommitted (join against the
            store's committed keys) -> the work list (JSON lines under <out>/_plan/) + planning drops -> Commit
    synth:  ReadPlan -> Reshuffle -> Write -> Harden -> RolloutRound x (harden_rounds + 1)
            [Findable -> FanOut k -> Rollouts -> VerifyReward -> Regroup per question -> Decide]
            -> Filter -> Commit (Parquet shards + manifests, idempotent per item key) -> DuckDB catalog

The driver holds the options only, never the items; the synth job (and the LLM endpoint it needs) runs only
when the plan job left work. Item keys are content hashes of the sampled chain, and the store commits each
key once, so a retried bundle writes nothing twice.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.browse.context import PROMPTS, build_context  # noqa: F401  (re-exported)
from crucible.pipelines.browse.harden import hardening_summary
from crucible.pipelines.browse.stages import PIPELINE
from crucible.pipelines.browse.transforms import (
    FilterRows,
    HardenQuestions,
    RolloutRound,
    WorkerSpec,
    WriteQuestions,
    count_result,
)
from crucible.pipelines.browse.transforms_plan import (
    DROP_COUNTERS,
    NAMESPACE,
    PlanSeeds,
    SkipCommitted,
    drop_result,
)
from crucible.pipelines.llm import endpoint_config, llm_endpoint
from crucible.pipelines.options import Options, build_options
from crucible.pipelines.store import catalog, fsio
from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import ensure_layout, recover, stable_hash
from crucible.pipelines.store.sinks import CommitResults

log = logging.getLogger(__name__)
PLAN_DIR = "_plan"


def _commit(opts: Options, run_id: str, total: int | None = None) -> CommitResults:
    s = opts.store
    return CommitResults(opts.run.out_dir, PIPELINE, run_id, every_items=s.commit_every_items, every_s=s.commit_every_s,
                         compression=s.compression, total_items=total, progress_every_s=opts.run.progress_every_s)


def build_plan(p: beam.Pipeline, opts: Options, run_id: str, plan_prefix: str) -> None:
    """The plan job's graph: planned items not yet committed -> JSON lines at ``plan_prefix``; planning drops
    -> committed ``sample`` failures rows."""
    todo = (p | "Plan" >> PlanSeeds(opts)
            | "SkipCommitted" >> SkipCommitted(opts.run.out_dir, PIPELINE)
            | "Route" >> beam.Partition(lambda pl, _n: 0 if pl.item is not None else 1, 2))
    (todo[0] | "ItemJson" >> beam.Map(lambda pl: json.dumps(pl.item))
     | "WritePlan" >> beam.io.WriteToText(plan_prefix, file_name_suffix=".jsonl", skip_if_empty=True))
    (todo[1] | "DropRows" >> beam.Map(drop_result, run_id, PIPELINE) | "CommitDrops" >> _commit(opts, run_id))


def build_synth(p: beam.Pipeline, opts: Options, spec: WorkerSpec, plan_glob: str, total: int | None) -> None:
    """The synth job's graph (see the module docstring)."""
    items = (p | "ReadPlan" >> beam.io.ReadFromText(plan_glob, validate=False)
             | "ParsePlan" >> beam.Map(json.loads)
             | "Reshuffle" >> beam.Reshuffle())
    written = items | "Write" >> WriteQuestions(spec)
    hardened = written.questions | "Harden" >> HardenQuestions(spec)
    dropped, finals, states = [written.dropped, hardened.dropped], [], hardened.questions
    for r in range(int(opts.browse.harden_rounds) + 1):
        rnd = states | f"Round{r}" >> RolloutRound(spec)
        dropped.append(rnd["dropped"])
        finals.append(rnd["final"])
        states = rnd["again"]
    rows = tuple(finals) | "Finished" >> beam.Flatten() | "Filter" >> FilterRows(spec)
    ((*dropped, rows) | "Results" >> beam.Flatten() | "Count" >> beam.Map(count_result)
     | "Commit" >> _commit(opts, spec.run_id, total))


def _counters(result, namespace: str) -> Counter:
    """The job's counters of ``namespace`` by name (a counter never incremented reads 0)."""
    out: Counter = Counter()
    for c in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
        out[c.key.metric.name] += int(c.committed or 0)
    return out


def _run(p: beam.Pipeline) -> object:
    result = p.run()
    result.wait_until_finish()
    return result


def run(cfg) -> dict:
    """Run the whole pipeline for a loaded config; returns a summary dict."""
    t0 = time.monotonic()
    opts = build_options(cfg)
    out_dir = opts.run.out_dir
    run_id = opts.run.run_id or f"browse-{stable_hash(cfg.to_dict()['browse'], opts.llm.model, n=8)}"
    FileSystems.set_options(pipeline_options(opts.run))  # the driver's own store calls read run.beam_args' --s3_*
    ensure_layout(out_dir)
    recover(out_dir, PIPELINE)  # the writer lock, and what killed runs left cleared away
    plan_dir = fsio.join(out_dir, PLAN_DIR, f"{run_id}-{uuid.uuid4().hex[:8]}")
    try:
        p = beam.Pipeline(options=pipeline_options(opts.run))
        build_plan(p, opts, run_id, fsio.join(plan_dir, "todo"))
        n = _counters(_run(p), NAMESPACE)
        summary = {"planned": n["planned"], "skipped": n["skipped"], "processed": n["todo"],
                   **{name: n[name] for name in DROP_COUNTERS.values()}}
        log.info("synth-browse: %(planned)d structures planned, %(skipped)d already done, %(processed)d to process "
                 "(%(structural_duplicates)d structural duplicates, %(answer_duplicates)d answer duplicates, "
                 "%(tail_duplicates)d same-tail drops and %(hub_cap_drops)d hub-cap drops)", summary)
        if summary["processed"]:
            _synth(cfg, opts, run_id, fsio.join(plan_dir, "todo*.jsonl"), summary["processed"])
    finally:
        if FileSystems.exists(plan_dir):
            FileSystems.delete([plan_dir])
    summary.update({"catalog": refresh_catalog(out_dir, opts.store.catalog),
                    "seconds": round(time.monotonic() - t0, 1)})
    summary["hardening"] = h = run_hardening_summary(out_dir, run_id, opts.store.catalog)
    log.info("synth-browse hardening: %s of %s questions with >= 1 accepted edit (share %s), %s solver rounds; "
             "final pass rates %s", h["with_accepted_edit"], h["questions"], h["share_with_accepted_edit"],
             h["solver_rounds"], h["pass_rate_histogram"])
    return summary


def _synth(cfg, opts: Options, run_id: str, plan_glob: str, total: int) -> None:
    with llm_endpoint(cfg.llm) as base_urls:
        workers = max(1, int(opts.llm.max_concurrency) * len(base_urls))
        spec = WorkerSpec(opts, endpoint_config(cfg.llm, base_urls), run_id,
                          int(opts.browse.batch_size or workers))
        p = beam.Pipeline(options=pipeline_options(opts.run))
        build_synth(p, opts, spec, plan_glob, total)
        _run(p)


def run_hardening_summary(out_dir: str, run_id: str, catalog_name: str) -> dict:
    """:func:`crucible.pipelines.browse.harden.hardening_summary` over this run's question rows."""
    try:
        cols, rows = catalog.query(out_dir, "select n_accepted_edits, n_solver_rounds, pass_rate from questions "
                                            f"where run_id = '{run_id.replace(chr(39), chr(39) * 2)}'", catalog_name)
    except Exception as exc:  # no questions table yet (every item failed): nothing to summarize
        log.warning("hardening summary unavailable: %s", exc)
        return hardening_summary([])
    return hardening_summary([dict(zip(cols, r)) for r in rows])
