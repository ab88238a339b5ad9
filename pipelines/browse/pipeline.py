"""``make synth-browse``: the Beam graph (thin adapters over :mod:`pipelines.browse.stages`).

    plan (driver: sample structures from the graph, skip finished ones)
      -> Create -> BatchElements -> ProcessQuestions (write, harden, roll out k, verify, reward, filter)
      -> CommitResults (Parquet shards + commit manifests)  -> DuckDB catalog refresh
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.browse.context import PROMPTS, build_context  # noqa: F401  (PROMPTS re-exported)
from pipelines.browse.stages import PIPELINE, DropKind, plan_items, run_questions
from pipelines.options import build_options
from pipelines.store.commit import ItemResult, failure_row

log = logging.getLogger(__name__)


class ProcessQuestions(beam.DoFn):
    def __init__(self, cfg, llm_cfg: dict | None, run_id: str, workers: int, total: int | None = None):
        self.cfg, self.llm_cfg, self.run_id, self.workers, self.total = cfg, llm_cfg, run_id, workers, total
        self.questions = Metrics.counter("crucible.browse", "questions")
        self.kept = Metrics.counter("crucible.browse", "questions_kept")
        self.trajs = Metrics.counter("crucible.browse", "trajectories")
        self.correct = Metrics.counter("crucible.browse", "trajectories_correct")

    def setup(self):
        from pipelines.store.commit import Progress

        self.ctx = build_context(self.cfg, self.llm_cfg, self.run_id)
        self.progress = Progress("synth-browse questions done", self.total, float(self.cfg.run.progress_every_s), log)
        self.n_correct = self.n_trajs = 0

    def process(self, batch):
        for res in run_questions(list(batch), self.ctx, self.workers):
            trajs = res.rows.get("browse_trajectories", [])
            self.n_trajs += len(trajs)
            self.n_correct += sum(t["verdict"] == "correct" for t in trajs)
            self.progress.label = (f"synth-browse questions done ({self.n_trajs} trajectories, "
                                   f"{self.n_correct} correct)")
            self.progress.update(1, force=True)
            self.questions.inc()
            self.kept.inc(len(res.rows.get("questions", [])))
            trajs = res.rows.get("browse_trajectories", [])
            self.trajs.inc(len(trajs))
            self.correct.inc(sum(t["verdict"] == "correct" for t in trajs))
            yield res

    def teardown(self):
        client = getattr(getattr(self, "ctx", None), "client", None)
        if client is not None:
            client.close()


def run(cfg) -> dict:
    """Run the whole pipeline for a loaded config; returns a summary dict."""
    from pipelines.beam_options import pipeline_options
    from pipelines.browse.api import load_kg
    from pipelines.llm import endpoint_config, llm_endpoint
    from pipelines.store.catalog import refresh_catalog
    from pipelines.store.commit import commit_items, ensure_layout, recover, stable_hash
    from pipelines.store.sinks import CommitResults

    t0 = time.monotonic()
    out_dir = cfg.run.out_dir
    run_id = cfg.run.run_id or f"browse-{stable_hash(cfg.to_dict()['browse'], cfg.to_dict()['llm'].get('model'), n=8)}"
    ensure_layout(out_dir)
    graph = load_kg(cfg)
    items, dup_drops = plan_items(graph, build_options(cfg).browse)
    if cfg.run.limit:
        items = items[: cfg.run.limit]
    rec = recover(out_dir, PIPELINE)
    todo = [it for it in items if it["key"] not in rec.done_keys]
    dup_todo = [d for d in dup_drops if d["key"] not in rec.done_keys]
    if dup_todo:  # structural/answer duplicates and hub-cap drops are counted as drops, committed once
        commit_items(out_dir, PIPELINE, run_id, [
            ItemResult(d["key"]).add("failures", failure_row(pipeline=PIPELINE, stage="sample", kind="filtered",
                                                             reason=d["reason"], run_id=run_id, item_key=d["key"],
                                                             payload=d))
            for d in dup_todo])
    by_kind = Counter(d["kind"] for d in dup_drops)
    log.info("synth-browse: %d structures planned, %d already done, %d to process (%d structural duplicates, %d answer "
             "duplicates and %d hub-cap drops)", len(items), len(items) - len(todo), len(todo),
             by_kind[DropKind.PATTERN.value], by_kind[DropKind.ANSWER.value], by_kind[DropKind.HUB.value])
    summary = {"planned": len(items), "skipped": len(items) - len(todo), "processed": len(todo),
               "structural_duplicates": by_kind[DropKind.PATTERN.value],
               "answer_duplicates": by_kind[DropKind.ANSWER.value], "hub_cap_drops": by_kind[DropKind.HUB.value]}
    if todo:
        cfgd = build_options(cfg)
        with llm_endpoint(cfg.llm) as base_urls:
            llm_cfg = endpoint_config(cfg.llm, base_urls)
            workers = max(1, int(cfg.llm.max_concurrency) * len(base_urls))
            batch = max(1, int(cfg.browse.get("batch_size") or workers))
            with beam.Pipeline(options=pipeline_options(cfg.run)) as p:
                (p
                 | "Structures" >> beam.Create(todo, reshuffle=False)
                 | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=batch)
                 | "ProcessQuestions" >> beam.ParDo(ProcessQuestions(cfgd, llm_cfg, run_id, workers, len(todo)))
                 | "Commit" >> CommitResults(out_dir, PIPELINE, run_id, every_items=cfg.store.commit_every_items,
                                             every_s=cfg.store.commit_every_s, compression=cfg.store.compression,
                                             total_items=len(todo), progress_every_s=cfg.run.progress_every_s))
    path = refresh_catalog(out_dir, cfg.store.catalog)
    summary.update({"catalog": path, "seconds": round(time.monotonic() - t0, 1)})
    summary["hardening"] = run_hardening_summary(out_dir, run_id, cfg.store.catalog)
    h = summary["hardening"]
    log.info("synth-browse hardening: %s of %s questions with >= 1 accepted edit (share %s), %s solver rounds; "
             "final pass rates %s", h["with_accepted_edit"], h["questions"], h["share_with_accepted_edit"],
             h["solver_rounds"], h["pass_rate_histogram"])
    return summary


def run_hardening_summary(out_dir: str, run_id: str, catalog_name: str) -> dict:
    """:func:`pipelines.browse.harden.hardening_summary` over this run's question rows."""
    from pipelines.browse.harden import hardening_summary
    from pipelines.store import catalog

    try:
        cols, rows = catalog.query(out_dir, "select n_accepted_edits, n_solver_rounds, pass_rate from questions "
                                            f"where run_id = '{run_id.replace(chr(39), chr(39) * 2)}'", catalog_name)
    except Exception as exc:  # no questions table yet (every item failed): nothing to summarize
        log.warning("hardening summary unavailable: %s", exc)
        return hardening_summary([])
    return hardening_summary([dict(zip(cols, r)) for r in rows])
