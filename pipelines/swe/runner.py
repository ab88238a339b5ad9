"""``crucible swe validate``: SWE-bench-format rows -> swe_validations (+ swe_instances for valid ones,
failures for bad input rows and rows that are not valid), through the same :class:`ValidateEnvs` transform
as ``make swe-curate``, committed through the store so DuckDB shows them."""

from __future__ import annotations

import logging
import time
from typing import Any

import apache_beam as beam

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.store.catalog import connect, refresh_catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout, recover, stable_hash
from crucible.pipelines.store.sinks import CommitResults
from crucible.pipelines.swe.envs import run_network
from crucible.pipelines.swe.quality import finished
from crucible.pipelines.swe.records import SWEInstance, problem_failure
from crucible.pipelines.swe.sources import read_instances
from crucible.pipelines.swe.transforms import ValidateEnvs, workdir_of
from crucible.sandbox.engine import ensure_engine

log = logging.getLogger(__name__)
PIPELINE = "swe-validate"


def read_input(path: str, *, pipeline: str, run_id: str,
               done: set[str] | frozenset[str]) -> tuple[list, list, int]:
    """(instances not committed yet, ItemResults of bad input rows not committed yet, good rows committed
    already) of an input file."""
    good, problems = read_instances(path)
    for p in problems:
        log.warning("bad input row: %s", p.message())
    bad = [ItemResult(f"input:{p.file}:{p.line}").add("failures", problem_failure(p, run_id, pipeline))
           for p in problems if f"input:{p.file}:{p.line}" not in done]
    todo = [SWEInstance.from_row(r) for r in good if r["instance_id"] not in done]
    return todo, bad, len(good) - len(todo)


def instance_result(pair, run_id: str, workdir: str | None):
    """The rows of one valid instance: its swe_validations row and its swe_instances row, with quality labels
    and difficulty (:func:`crucible.pipelines.swe.quality.finished`; no trajectories here)."""
    inst, val = pair
    return (ItemResult(inst["instance_id"]).add("swe_validations", val)
            .add("swe_instances", finished(inst, val, workdir=workdir).row(run_id)))


def validate_file(cfg, path: str, *, limit: int | None = None) -> dict:
    """Validate every good row of ``path`` (one env image and one clean reference run per env); rows committed
    by an earlier run into ``run.out_dir`` are skipped."""
    t0 = time.monotonic()
    cfgd = cfg.to_dict()
    out_dir = cfg.run.out_dir
    run_id = cfg.run.run_id or f"swe-validate-{stable_hash(str(path).rsplit('/', 1)[-1], n=8)}"
    ensure_layout(out_dir)
    done = recover(out_dir, PIPELINE).done_keys
    insts, bad, n_done = read_input(path, pipeline=PIPELINE, run_id=run_id, done=done)
    if limit:
        insts = insts[:limit]
    if bad:
        commit_items(out_dir, PIPELINE, run_id, bad)
    client, _ = ensure_engine(allow_start=True)
    with run_network(client, cfg.swe.network, run_id) as network:
        if insts:
            with beam.Pipeline(options=pipeline_options(cfg.run)) as p:
                v = (p | "Instances" >> beam.Create(insts, reshuffle=False).with_output_types(Any)
                     | "ValidateEnvs" >> ValidateEnvs(cfgd, run_id, network, PIPELINE))
                kept = v.valid | "InstanceRows" >> beam.Map(instance_result, run_id, str(workdir_of(cfgd)))
                ((v.results, kept) | "Flatten" >> beam.Flatten()
                 | "Commit" >> CommitResults(out_dir, PIPELINE, run_id, every_items=cfg.store.commit_every_items,
                                             every_s=cfg.store.commit_every_s, compression=cfg.store.compression,
                                             progress_every_s=cfg.run.progress_every_s))
    cat = refresh_catalog(out_dir, cfg.store.catalog)
    con = connect(out_dir, cfg.store.catalog)
    try:
        counts = dict(con.execute(
            "select status || coalesce('/labels_match=' || lower(cast(labels_match as varchar)), '') "
            "|| coalesce('/labels_hold=' || lower(cast(labels_hold as varchar)), ''), count(*) "
            "from swe_validations where run_id = ? group by 1 order by 1", [run_id]).fetchall()) if insts else {}
    finally:
        con.close()
    return {"instances": len(insts), "skipped_done": n_done,
            "bad_rows": len(bad), "outcomes": counts, "network": cfg.swe.network, "catalog": cat,
            "seconds": round(time.monotonic() - t0, 1)}
