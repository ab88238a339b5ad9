"""``make swe-curate``: the run around the Beam graph of :mod:`crucible.pipelines.swe.graph`.

    Sources (config -> spec elements: sdists, repos to mine, instance files, the GitHub crawl) -> Reshuffle
      -> Inject/Mine/Crawl (on workers) -> SkipFinished (a join against the store's committed keys)
      -> GroupByEnv -> Validate (env image + clean reference run once per env; capped per step) -> Reshuffle
      -> Curate (problem statement, gold + LLM rollouts capped per rollout, grading, filters)
      -> Commit (Parquet shards + manifests, idempotent per item key) -> DuckDB catalog

The driver holds only the config; all test containers of a run share one internal network made for it
(``swe.network``). Runner flags (``run.runner``, ``run.beam_args``; configs/runners/*.yaml) change nothing here.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.llm import endpoint_config, llm_endpoint
from crucible.pipelines.store import catalog
from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import ensure_layout, recover, stable_hash
from crucible.pipelines.swe.envs import run_network
from crucible.pipelines.swe.graph import build
from crucible.pipelines.swe.graph_sources import source_specs
from crucible.sandbox.engine import ensure_engine

log = logging.getLogger(__name__)
PIPELINE = "swe-curate"


def run(cfg) -> dict:
    """Run swe-curate for a loaded config; returns a summary dict."""

    t0 = time.monotonic()
    cfgd = cfg.to_dict()
    swe = cfgd["swe"]
    out_dir = cfg.run.out_dir
    run_id = cfg.run.run_id or f"swe-{stable_hash(swe, cfgd['llm']['model'], n=8)}"
    FileSystems.set_options(pipeline_options(cfg.run))  # the driver's own store calls read run.beam_args' --s3_*
    ensure_layout(out_dir)
    recover(out_dir, PIPELINE)  # orphan shards of a killed run are moved aside; finished keys are read in the graph
    specs = source_specs(swe, cfg.run.limit)
    need_llm = swe["statements"]["use_llm"] or "llm" in swe["rollouts"]["policies"]
    log.info("swe-curate: sources %s, LLM %s, network %s", [f"{k}:{r}" for k, r in specs],
             "on" if need_llm else "off", swe["network"])
    client, _ = ensure_engine(allow_start=True)
    with run_network(client, swe["network"], run_id) as network, \
            (llm_endpoint(cfg.llm) if need_llm else nullcontext(None)) as base_urls:
        llm_cfg = endpoint_config(cfg.llm, base_urls) if base_urls else None
        if specs:
            with beam.Pipeline(options=pipeline_options(cfg.run)) as p:
                build(p, cfgd, run_id, network, llm_cfg)
    path = refresh_catalog(out_dir, cfg.store.catalog)
    summary = _summary(out_dir, cfg.store.catalog)
    summary.update({"sdists": sum(k == "sdist" for k, _ in specs), "instance_files": sum(k == "file" for k, _ in specs),
                    "mined_repos": sum(k == "mine" for k, _ in specs), "github_repos": len(swe["github"]["repos"]),
                    "network": swe["network"], "catalog": path, "run_id": run_id,
                    "seconds": round(time.monotonic() - t0, 1)})
    return summary


def _summary(out_dir: str, catalog_name: str) -> dict:
    con = catalog.connect(out_dir, catalog_name)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        return {"instances": q("select count(*) from swe_instances")[0][0],
                "validations": dict(q("select status, count(*) from swe_validations group by 1")),
                "trajectories": {f"{pol}/{'resolved' if r else 'unresolved'}": n for pol, r, n in q(
                    "select policy, resolved, count(*) from swe_trajectories group by 1, 2 order by 1, 2")},
                "drop_reasons": {f"{s}:{r}": n for s, r, n in q(
                    "select stage, reason, count(*) from failures where pipeline = 'swe-curate' "
                    "group by 1, 2 order by 3 desc")}}
    finally:
        con.close()
