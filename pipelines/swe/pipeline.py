"""``make swe-curate``: the Beam graph (thin adapters over the per-item functions of :mod:`pipelines.swe`).

    sdists -> InjectBugs (checkout, mirror, AST bug candidates as instances, one env per sdist)
      + swe.instances_file rows + swe.github.repos (PR crawl, in the driver: resumable, rate-limit aware)
      + swe.mine.repos -> MineCommits (commits changing source and tests)
        -> ValidateEnvs (key by env (repo, env commit), group; env image + clean reference run once per env,
           then before/after runs, or one run per injected bug; the same transform as ``crucible swe validate``)
    valid instances -> Curate (problem statement, gold + LLM rollouts, grading, filters)
           -> swe_instances, swe_validations, swe_trajectories, failures
    -> CommitResults (Parquet shards + manifests) -> DuckDB catalog

All test containers of a run share one internal network made for it (``swe.network``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import apache_beam as beam

from pipelines.store.commit import ItemResult
from pipelines.swe.records import FailureKind, Stage, failure

log = logging.getLogger(__name__)
PIPELINE = "swe-curate"


def crawl_github(cfg, out_dir: str, run_id: str, done: set[str]) -> list:
    """Crawl ``swe.github.repos`` (resumable: PRs seen by an earlier run cost no request) into
    ``<out_dir>/github/prs.jsonl``; every rejected PR and every repo or rate-limit failure is committed as a
    ``failures`` row. Returns the candidate instances on disk not committed yet."""
    from pipelines.store.commit import commit_items
    from pipelines.swe.github import crawl, rejected_path_for
    from pipelines.swe.github_client import RateLimitError, client_from_config
    from pipelines.swe.runner import read_input

    gh = cfg.swe.github
    path = Path(out_dir) / "github" / "prs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    items = []
    try:
        s = crawl(client_from_config(gh), list(gh.repos), out_path=path, max_pulls=gh.max_pulls, since=gh.since)
        log.info("swe: github crawl: %s", s.as_dict())
        errors = dict(s.repo_errors)
    except RateLimitError as exc:
        log.warning("swe: github crawl stopped by the rate limit: %s", exc)
        errors = {",".join(gh.repos): f"rate limit: {exc}"}
    for repo, why in errors.items():
        items.append(ItemResult(f"github:{repo}:{run_id}").add("failures", failure(
            PIPELINE, Stage.CRAWL, FailureKind.INFRA, why[:2000], run_id, f"github:{repo}")))
    rej_path = rejected_path_for(path)
    if rej_path.exists():
        for line in rej_path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line is repaired by the next crawl
            key = f"github:{r['instance_id']}"
            if key not in done:
                items.append(ItemResult(key).add("failures", failure(
                    PIPELINE, Stage.CRAWL, FailureKind.FILTERED, r["reason"], run_id, key,
                    payload={"detail": r.get("detail")})))
    rows, bad = [], []
    if path.exists():
        rows, bad, _ = read_input(str(path), pipeline=PIPELINE, run_id=run_id, done=done)
    items += bad
    if items:
        commit_items(out_dir, PIPELINE, run_id, items)
    return rows


def run(cfg) -> dict:
    """Run swe-curate for a loaded config; returns a summary dict."""
    from contextlib import nullcontext

    from pipelines.beam_options import pipeline_options
    from pipelines.llm import endpoint_config, llm_endpoint
    from pipelines.store.catalog import refresh_catalog
    from pipelines.store.commit import commit_items, ensure_layout, recover, stable_hash
    from pipelines.store.sinks import CommitResults
    from pipelines.swe.curate import Curate
    from pipelines.swe.envs import run_network
    from pipelines.swe.runner import read_input
    from pipelines.swe.transforms import InjectBugs, MineCommits, ValidateEnvs
    from sandbox.engine import ensure_engine

    t0 = time.monotonic()
    cfgd = cfg.to_dict()
    swe = cfgd["swe"]
    out_dir = cfg.run.out_dir
    run_id = cfg.run.run_id or f"swe-{stable_hash(swe, cfgd['llm']['model'], n=8)}"
    ensure_layout(out_dir)
    # finished items (from commit manifests) are skipped; orphan shards of a killed run are removed
    done = recover(out_dir, PIPELINE).done_keys
    rows = []
    if swe["instances_file"]:
        rows, bad, _ = read_input(swe["instances_file"], pipeline=PIPELINE, run_id=run_id, done=done)
        if bad:
            commit_items(out_dir, PIPELINE, run_id, bad)
    gh_rows = crawl_github(cfg, out_dir, run_id, done) if swe["github"]["repos"] else []
    rows += [r.replace(source="pr", source_ref=f"{r['repo']}#{r['instance_id'].rsplit('-', 1)[-1]}") for r in gh_rows]
    sdists = [] if swe["instances_file"] else list(swe["sdists"])
    mine_repos = list(swe["mine"]["repos"])
    if cfg.run.limit:
        sdists, rows, mine_repos = sdists[: cfg.run.limit], rows[: cfg.run.limit], mine_repos[: cfg.run.limit]
    need_llm = swe["statements"]["use_llm"] or "llm" in swe["rollouts"]["policies"]
    log.info("swe-curate: %d sdists, %d SWE-bench rows, %d repos to mine, %d items already committed, LLM %s, "
             "network %s", len(sdists), len(rows), len(mine_repos), len(done), "on" if need_llm else "off",
             swe["network"])
    client, _ = ensure_engine(allow_start=True)
    with run_network(client, swe["network"], run_id) as network, \
            (llm_endpoint(cfg.llm) if need_llm else nullcontext(None)) as base_urls:
        llm_cfg = endpoint_config(cfg.llm, base_urls) if base_urls else None
        with beam.Pipeline(options=pipeline_options(cfg.run)) as p:
            outs, valid, inputs = [], [], []
            skip = frozenset(done)
            if sdists:
                inj = (p | "Sdists" >> beam.Create(sdists, reshuffle=False)
                       | "InjectBugs" >> beam.ParDo(InjectBugs(cfgd, run_id, network, PIPELINE, skip))
                       .with_outputs("rows", main="results"))
                outs.append(inj.results)
                inputs.append(inj.rows)
            if rows:
                inputs.append(p | "SWEBenchRows" >> beam.Create(rows, reshuffle=False).with_output_types(Any))
            if mine_repos:
                mined = (p | "MineRepos" >> beam.Create(mine_repos, reshuffle=False)
                         | "MineCommits" >> beam.ParDo(MineCommits(cfgd, run_id, network, PIPELINE))
                         .with_outputs("rows", main="results"))
                outs.append(mined.results)
                inputs.append(mined.rows | "SkipValidated" >> beam.Filter(lambda r, d=skip: r["instance_id"] not in d))
            if inputs:
                v = (tuple(inputs) | "FlattenRows" >> beam.Flatten()
                     | "ValidateEnvs" >> ValidateEnvs(cfgd, run_id, network, PIPELINE))
                outs.append(v.results)
                valid.append(v.valid)
            if valid:
                outs.append(tuple(valid) | "FlattenValid" >> beam.Flatten()
                            | "SkipCurated" >> beam.Filter(lambda pair, d=skip: pair[0]["instance_id"] not in d)
                            | "Curate" >> beam.ParDo(Curate(cfgd, llm_cfg, run_id, network)))
            if outs:
                (tuple(outs) | "FlattenResults" >> beam.Flatten()
                 | "SkipCommitted" >> beam.Filter(lambda it, d=skip: it.key not in d)
                 | "Commit" >> CommitResults(out_dir, PIPELINE, run_id, every_items=cfg.store.commit_every_items,
                                             every_s=cfg.store.commit_every_s, compression=cfg.store.compression,
                                             progress_every_s=cfg.run.progress_every_s))
    path = refresh_catalog(out_dir, cfg.store.catalog)
    summary = _summary(out_dir, cfg.store.catalog)
    summary.update({"sdists": len(sdists), "swebench_rows": len(rows), "mined_repos": len(mine_repos),
                    "github_repos": len(swe["github"]["repos"]), "network": swe["network"], "catalog": path,
                    "run_id": run_id, "seconds": round(time.monotonic() - t0, 1)})
    return summary


def _summary(out_dir: str, catalog_name: str) -> dict:
    from pipelines.store import catalog

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
