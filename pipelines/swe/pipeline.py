"""``make swe-curate``: the Beam graph (thin adapters over the per-item functions of :mod:`pipelines.swe`).

    sdists -> InjectAndValidate (checkout, mirror, AST bug candidates, clean reference run once per env, bug runs)
           \\-> invalid candidates: swe_validations + failures rows
    swe.instances_file rows + swe.github.repos (PR crawl, in the driver: resumable, rate-limit aware)
      + swe.mine.repos -> MineCommits (commits changing source and tests)
        -> key by env (repo, env commit) -> GroupByKey
        -> ValidateEnvGroup (env image + clean reference run once per env, then before/after runs)
    valid instances -> Curate (problem statement, gold + LLM rollouts, grading, filters)
           -> swe_instances, swe_validations, swe_trajectories, failures
    -> CommitResults (Parquet shards + manifests) -> DuckDB catalog
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.store.commit import ItemResult, Progress, failure_row

log = logging.getLogger(__name__)
PIPELINE = "swe-curate"
INSTANCE_FIELDS = ("instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement", "hints_text",
                   "created_at", "version", "environment_setup_commit", "FAIL_TO_PASS", "PASS_TO_PASS", "source",
                   "source_ref", "env_image", "recipe", "statement_origin", "statement_prompt_version",
                   "bug_operator", "meta")
SUBMIT_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string", "maxLength": 200}},
                 "required": ["summary"], "additionalProperties": False}


def workdir_of(cfg: Mapping) -> Path:
    from sandbox.api import settings_from_config

    w = cfg["swe"].get("workdir")
    return Path(w).expanduser() if w else settings_from_config(cfg["sandbox"], resolve_host=False).cache_dir / "swe"


def build_ctx(cfg: Mapping):
    """Docker client + sandbox settings pointing at the local mirrors (works inside DoFn.setup)."""
    from pipelines.swe.validate import ValidateContext
    from sandbox.api import settings_from_config
    from sandbox.engine import ensure_engine

    client, _ = ensure_engine(allow_start=True)
    wd = workdir_of(cfg)
    wd.mkdir(parents=True, exist_ok=True)
    # repos made from sdists live in local bare mirrors; every other repo comes through the URL template
    return ValidateContext(client=client, settings=settings_from_config(cfg["sandbox"]), workdir=wd,
                           reruns=int(cfg["swe"]["reruns"]), id_style=cfg["swe"]["id_style"],
                           mirror_root=wd / "mirrors", recipes=cfg["swe"]["recipes"])


def failed_validation(row: dict, run_id: str) -> ItemResult:
    kind = "infra" if (row["reason"] or "").startswith(("infra", "setup")) else (
        "error" if row["status"] == "error" else "filtered")
    return ItemResult(row["instance_id"]).add("swe_validations", row).add("failures", failure_row(
        pipeline=PIPELINE, stage="validate", kind=kind, reason=row["reason"] or row["status"], run_id=run_id,
        table="swe_instances", item_key=row["instance_id"]))


class InjectAndValidate(beam.DoFn):
    def __init__(self, cfg: dict, run_id: str, done: frozenset[str] = frozenset()):
        self.cfg, self.run_id, self.done = cfg, run_id, done
        self.cands = Metrics.counter("crucible.swe", "bug_candidates")
        self.valid = Metrics.counter("crucible.swe", "bug_instances")

    def setup(self):
        self.ctx = build_ctx(self.cfg)

    def process(self, sdist: str):
        import sys

        from pipelines.swe.bugs import candidates, validate_bugs
        from sandbox.sources import from_sdist

        swe = self.cfg["swe"]
        try:
            co = from_sdist(sdist, self.ctx.settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"))
            name = co.name.lower()
            cands = candidates(co.path, seed=int(swe["seed"]), max_candidates=int(swe["max_candidates_per_repo"]),
                               operators=tuple(swe["operators"]), include=(swe.get("include_paths") or {}).get(name))
            self.cands.inc(len(cands))
            log.info("swe: %s: %d bug candidates", sdist, len(cands))
            insts, rows, stats = validate_bugs(self.ctx, co, f"pypi/{name}", self.ctx.workdir / "mirrors", cands,
                                               self.run_id, source_ref=f"sdist:{sdist}", max_f2p=int(swe["max_f2p"]),
                                               done=self.done)
        except Exception as exc:  # noqa: BLE001 - a repo that cannot be set up is one failure row
            log.warning("swe: %s failed: %s", sdist, exc)
            yield ItemResult(f"sdist:{sdist}").add("failures", failure_row(
                pipeline=PIPELINE, stage="inject", kind="infra", reason=f"{type(exc).__name__}: {exc}"[:2000],
                run_id=self.run_id, table="swe_instances", item_key=f"sdist:{sdist}"))
            return
        log.info("swe: %s: %d/%d candidates valid (%s)", sdist, len(insts), len(rows), stats)
        valid = {i["instance_id"]: i for i in insts}
        self.valid.inc(len(valid))
        for row in rows:
            if row["instance_id"] in valid:
                yield beam.pvalue.TaggedOutput("valid", (valid[row["instance_id"]], row))
            else:
                yield failed_validation(row, self.run_id)


class MineCommits(beam.DoFn):
    """One git repo (through the URL template) -> SWE-bench-format candidates from its history (commits that
    change source and tests, small enough), and a failure row per rejected commit."""

    def __init__(self, cfg: dict, run_id: str):
        self.cfg, self.run_id = cfg, run_id
        self.mined = Metrics.counter("crucible.swe", "mined_candidates")

    def setup(self):
        self.ctx = build_ctx(self.cfg)

    def process(self, repo: str):
        from pipelines.swe.mining import MiningLimits, mine_commits
        from pipelines.swe.validate import clone_at

        m = self.cfg["swe"]["mine"]
        try:
            co = clone_at(self.ctx, repo, m["rev"])
            cands, rejected = mine_commits(co.path, repo, rev=co.commit, max_commits=int(m["max_commits"]),
                                           limits=MiningLimits(**m["limits"]))
        except Exception as exc:  # noqa: BLE001 - a repo that cannot be mined is one failure row
            log.warning("swe: mining %s failed: %s", repo, exc)
            yield ItemResult(f"mine:{repo}").add("failures", failure_row(
                pipeline=PIPELINE, stage="mine", kind="infra", reason=f"{type(exc).__name__}: {exc}"[:2000],
                run_id=self.run_id, table="swe_instances", item_key=f"mine:{repo}"))
            return
        keep = cands[: int(m["max_candidates_per_repo"])]
        log.info("swe: mined %s: %d candidates (%d kept), %d commits rejected", repo, len(cands), len(keep),
                 len(rejected))
        self.mined.inc(len(keep))
        for r in rejected:
            key = f"mine:{repo}@{r['commit']}"
            yield ItemResult(key).add("failures", failure_row(
                pipeline=PIPELINE, stage="mine", kind="filtered", reason=r["reason"], run_id=self.run_id,
                table="swe_instances", item_key=key))
        for c in keep:
            yield beam.pvalue.TaggedOutput("rows", dict(c, source="mined", source_ref=f"{repo}@{c['instance_id']}",
                                                        meta={"commit_message": c.get("hints_text")}))


def env_key(inst: Mapping) -> str:
    from pipelines.swe.validate import env_commit_of

    return f"{inst['repo']}@{env_commit_of(inst)}"


class ValidateEnvGroup(beam.DoFn):
    """The instances of one env (repo, env commit): its image and clean reference run once, then the
    before/after runs of each instance."""

    def __init__(self, cfg: dict, run_id: str):
        self.cfg, self.run_id = cfg, run_id

    def setup(self):
        self.ctx = build_ctx(self.cfg)

    def process(self, keyed):
        from pipelines.swe.validate import env_commit_of, env_reference, validate_instance

        _, insts = keyed
        insts = sorted(insts, key=lambda i: i["instance_id"])
        ref = None
        if self.cfg["swe"].get("reference_run", True):
            ref = env_reference(self.ctx, insts[0]["repo"], env_commit_of(insts[0]), insts)
        for inst in insts:
            row = validate_instance(self.ctx, inst, self.run_id, reference=ref)
            if row["status"] != "valid":
                yield failed_validation(row, self.run_id)
                continue
            meta = dict(inst.get("meta") or {}, failing_output=(row["meta"] or {}).get("failing_output"))
            yield beam.pvalue.TaggedOutput("valid", (dict(
                inst, source=inst.get("source") or "swebench", source_ref=inst.get("source_ref") or inst["repo"],
                env_image=row["env_image"], meta=meta, FAIL_TO_PASS=list(row["fail_to_pass"]),
                PASS_TO_PASS=list(row["pass_to_pass"])), row))  # computed labels win over given ones


def instance_record(inst: Mapping, run_id: str) -> dict:
    row = {k: inst.get(k) for k in INSTANCE_FIELDS}
    row["run_id"] = run_id
    return row


def llm_policy(client, kind: str, sample_index: int, max_arg_chars: int | None = None):
    from pipelines.agent.loop import JSONStepPolicy, NativeToolPolicy

    if kind == "native":
        return NativeToolPolicy(client, sample_index=sample_index)
    # room for a bounded thought plus a whole str_replace: each string argument is capped so the step
    # closes within max_tokens (a truncated step is not JSON, and its retries cost minutes on a CPU)
    return JSONStepPolicy(client, final_action="submit", final_schema=SUBMIT_SCHEMA, final_tool="submit",
                          sample_index=sample_index, max_arg_chars=max_arg_chars, max_tokens=768)


def curate_instance(ctx, inst: dict, val: dict, *, cfg: Mapping, run_id: str, client=None, prompt=None,
                    model: str | None = None, with_llm: bool = True) -> ItemResult:
    """Statement, rollouts (gold + LLM), grading and filters for one validated instance."""
    from pipelines.swe.filters import classify, reason_key
    from pipelines.swe.rollout import run_rollout
    from pipelines.swe.statements import write_statement

    swe = cfg["swe"]
    ro, flt = swe["rollouts"], swe["filters"]
    res = ItemResult(inst["instance_id"])
    st = write_statement(inst, client if swe["statements"]["use_llm"] else None, prompt,
                         attempts=int(swe["statements"]["attempts"]))
    inst = dict(inst, problem_statement=st["problem_statement"], statement_origin=st["statement_origin"],
                statement_prompt_version=st["statement_prompt_version"])
    if st["reason"] not in (None, "no_llm") and st["statement_origin"] == "template":  # no_llm: as configured
        res.add("failures", failure_row(pipeline=PIPELINE, stage="statement", kind="filtered",
                                        reason=f"statement_fallback: {st['reason']}", run_id=run_id,
                                        table="swe_instances", item_key=inst["instance_id"]))
    trajs = []
    common = dict(max_turns=int(ro["max_turns"]), max_total_tokens=int(ro["max_total_tokens"]),
                  command_timeout_s=int(ro["command_timeout_s"]),
                  max_observation_chars=int(ro["max_observation_chars"]), run_id=run_id)
    gold = None
    if "gold" in ro["policies"]:
        gold_turns = max(int(ro["max_turns"]), 4 + 2 * inst["patch"].count("diff --git"))
        gold = run_rollout(ctx, inst, "gold", policy_name="gold", max_turns=gold_turns, run_id=run_id)
        trajs.append(gold)
    gold_ok = gold is None or gold["resolved"]
    if gold_ok and "llm" in ro["policies"] and client is not None and with_llm:
        for k in range(int(ro["k"])):
            policy = llm_policy(client, ro["llm_policy"], k, ro["max_arg_chars"])
            trajs.append(run_rollout(ctx, inst, policy, policy_name="llm",
                                     sample_index=k, model=model, **common))
    for t in trajs:
        t["split"], t["drop_reasons"] = classify(t, flt)
        if not gold_ok:  # an instance the harness cannot resolve itself trains nothing
            t["split"], t["drop_reasons"] = "none", [*t["drop_reasons"], "gold_unresolved: instance rejected"]
        for r in t["drop_reasons"]:
            res.add("failures", failure_row(pipeline=PIPELINE, stage="filter_trajectory", kind="filtered",
                                            reason=reason_key(r), run_id=run_id, table="swe_trajectories",
                                            item_key=t["traj_id"], payload={"detail": r}))
        res.add("swe_trajectories", t)
    if not gold_ok:
        # the harness cannot reproduce its own reference fix: the instance is not trustworthy
        res.add("swe_validations", dict(val, status="invalid", reason=f"gold_unresolved: {gold['grade_reason']}"))
        res.add("failures", failure_row(pipeline=PIPELINE, stage="gold_check", kind="filtered",
                                        reason="gold_unresolved", run_id=run_id, table="swe_instances",
                                        item_key=inst["instance_id"], payload={"detail": gold["grade_reason"]}))
        return res
    res.add("swe_validations", val)
    res.add("swe_instances", instance_record(inst, run_id))
    return res


class Curate(beam.DoFn):
    def __init__(self, cfg: dict, llm_cfg: dict | None, run_id: str):
        self.cfg, self.llm_cfg, self.run_id = cfg, llm_cfg, run_id
        self.n = 0
        self.resolved = Metrics.counter("crucible.swe", "trajectories_resolved")

    def setup(self):
        from pipelines.llm import LLMClient, load_prompt

        self.ctx = build_ctx(self.cfg)
        self.client = LLMClient.from_config(self.llm_cfg, out_dir=self.cfg["run"]["out_dir"]) if self.llm_cfg else None
        self.prompt = load_prompt(self.cfg["swe"]["statements"]["prompt"])
        self.model = (self.llm_cfg or {}).get("model")
        self.progress = Progress("swe-curate instances curated", None,
                                 float(self.cfg["run"].get("progress_every_s", 10)), log)

    def process(self, pair):
        inst, val = pair
        cap = self.cfg["swe"]["rollouts"].get("llm_max_instances")
        with_llm = cap is None or self.n < int(cap)
        self.n += 1
        res = curate_instance(self.ctx, inst, val, cfg=self.cfg, run_id=self.run_id, client=self.client,
                              prompt=self.prompt, model=self.model, with_llm=with_llm)
        self.resolved.inc(sum(t["resolved"] for t in res.rows.get("swe_trajectories", [])))
        log.info("swe: curated %s: %s", inst["instance_id"],
                 ", ".join(f"{t['policy']}={'resolved' if t['resolved'] else t['grade_reason']}"
                           for t in res.rows.get("swe_trajectories", [])))
        self.progress.update(1, force=True)
        yield res

    def teardown(self):
        if getattr(self, "client", None) is not None:
            self.client.close()


def crawl_github(cfg, out_dir: str, run_id: str, done: set[str]) -> list[dict]:
    """Crawl ``swe.github.repos`` (resumable: PRs seen by an earlier run cost no request) into
    ``<out_dir>/github/prs.jsonl``; every rejected PR and every repo or rate-limit failure is committed as a
    ``failures`` row. Returns the candidate rows on disk (SWE-bench format)."""
    from pipelines.store.commit import commit_items
    from pipelines.swe.github import RateLimitError, client_from_config, crawl, rejected_path_for
    from pipelines.swe.runner import problem_failure
    from pipelines.swe.sources import read_instances

    gh = cfg.swe.github
    path = Path(out_dir) / "github" / "prs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    items = []
    try:
        s = crawl(client_from_config(gh), list(gh.repos), out_path=path, max_pulls=gh.get("max_pulls"),
                  since=gh.get("since"))
        log.info("swe: github crawl: %s", s.as_dict())
        errors = dict(s.repo_errors)
    except RateLimitError as exc:
        log.warning("swe: github crawl stopped by the rate limit: %s", exc)
        errors = {",".join(gh.repos): f"rate limit: {exc}"}
    for repo, why in errors.items():
        items.append(ItemResult(f"github:{repo}:{run_id}").add("failures", failure_row(
            pipeline=PIPELINE, stage="crawl", kind="infra", reason=why[:2000], run_id=run_id,
            table="swe_instances", item_key=f"github:{repo}")))
    rej_path = rejected_path_for(path)
    if rej_path.exists():
        for line in rej_path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line is repaired by the next crawl
            key = f"github:{r['instance_id']}"
            if key not in done:
                items.append(ItemResult(key).add("failures", failure_row(
                    pipeline=PIPELINE, stage="crawl", kind="filtered", reason=r["reason"], run_id=run_id,
                    table="swe_instances", item_key=key, payload={"detail": r.get("detail")})))
    rows, problems = read_instances(path) if path.exists() else ([], [])
    items += [ItemResult(f"input:{p.file}:{p.line}").add("failures", problem_failure(p, run_id, PIPELINE))
              for p in problems if f"input:{p.file}:{p.line}" not in done]
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
    from pipelines.swe.runner import problem_failure
    from pipelines.swe.sources import read_instances

    t0 = time.monotonic()
    cfgd = cfg.to_dict()
    swe = cfgd["swe"]
    out_dir = cfg.run.out_dir
    run_id = cfg.run.run_id or f"swe-{stable_hash(swe, cfgd['llm'].get('model'), n=8)}"
    ensure_layout(out_dir)
    # finished items (from commit manifests) are skipped; orphan shards of a killed run are removed
    done = recover(out_dir, PIPELINE).done_keys
    sb_rows = []
    if swe.get("instances_file"):
        sb_rows, problems = read_instances(swe["instances_file"])
        problems = [p for p in problems if f"input:{p.file}:{p.line}" not in done]
        if problems:
            commit_items(out_dir, PIPELINE, run_id, [ItemResult(f"input:{p.file}:{p.line}").add(
                "failures", problem_failure(p, run_id, PIPELINE)) for p in problems])
    sb_rows = [dict(r, source="swebench") for r in sb_rows if r["instance_id"] not in done]
    gh_rows = crawl_github(cfg, out_dir, run_id, done) if swe["github"]["repos"] else []
    sb_rows += [dict(r, source="pr", source_ref=f"{r['repo']}#{r['instance_id'].rsplit('-', 1)[-1]}")
                for r in gh_rows if r["instance_id"] not in done]
    sdists = [] if swe.get("instances_file") else list(swe["sdists"])
    mine_repos = list(swe["mine"]["repos"])
    if cfg.run.get("limit"):
        sdists, sb_rows, mine_repos = sdists[: cfg.run.limit], sb_rows[: cfg.run.limit], mine_repos[: cfg.run.limit]
    need_llm = swe["statements"]["use_llm"] or "llm" in swe["rollouts"]["policies"]
    log.info("swe-curate: %d sdists, %d SWE-bench rows, %d repos to mine, %d items already committed, LLM %s",
             len(sdists), len(sb_rows), len(mine_repos), len(done), "on" if need_llm else "off")
    with (llm_endpoint(cfg.llm) if need_llm else nullcontext(None)) as base_urls:
        llm_cfg = endpoint_config(cfg.llm, base_urls) if base_urls else None
        with beam.Pipeline(options=pipeline_options(cfg.run)) as p:
            outs = []
            valid = []
            skip = frozenset(done)
            if sdists:
                inj = (p | "Sdists" >> beam.Create(sdists, reshuffle=False)
                       | "InjectAndValidate" >> beam.ParDo(InjectAndValidate(cfgd, run_id, skip)).with_outputs(
                           "valid", main="results"))
                outs.append(inj.results)
                valid.append(inj.valid)
            rows = []
            if sb_rows:
                rows.append(p | "SWEBenchRows" >> beam.Create(sb_rows, reshuffle=False))
            if mine_repos:
                mined = (p | "MineRepos" >> beam.Create(mine_repos, reshuffle=False)
                         | "MineCommits" >> beam.ParDo(MineCommits(cfgd, run_id)).with_outputs("rows", main="results"))
                outs.append(mined.results)
                rows.append(mined.rows | "SkipValidated" >> beam.Filter(
                    lambda r, d=skip: r["instance_id"] not in d))
            if rows:
                grouped = (tuple(rows) | "FlattenRows" >> beam.Flatten()
                           | "KeyByEnv" >> beam.Map(lambda r: (env_key(r), r))
                           | "GroupByEnv" >> beam.GroupByKey()
                           | "ValidateEnvGroup" >> beam.ParDo(ValidateEnvGroup(cfgd, run_id)).with_outputs(
                               "valid", main="results"))
                outs.append(grouped.results)
                valid.append(grouped.valid)
            if valid:
                curated = (tuple(valid) | "FlattenValid" >> beam.Flatten()
                           | "SkipCurated" >> beam.Filter(lambda pair, d=frozenset(done): pair[0]["instance_id"] not in d)
                           | "Curate" >> beam.ParDo(Curate(cfgd, llm_cfg, run_id)))
                outs.append(curated)
            if outs:
                (tuple(outs) | "FlattenResults" >> beam.Flatten()
                 | "SkipCommitted" >> beam.Filter(lambda it, d=frozenset(done): it.key not in d)
                 | "Commit" >> CommitResults(out_dir, PIPELINE, run_id, every_items=cfg.store.commit_every_items,
                                             every_s=cfg.store.commit_every_s, compression=cfg.store.compression,
                                             progress_every_s=cfg.run.progress_every_s))
    path = refresh_catalog(out_dir, cfg.store.catalog)
    from pipelines.store import catalog

    con = catalog.connect(out_dir, cfg.store.catalog)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        summary = {"sdists": len(sdists), "swebench_rows": len(sb_rows), "mined_repos": len(mine_repos),
                   "github_repos": len(swe["github"]["repos"]),
                   "instances": q("select count(*) from swe_instances")[0][0],
                   "validations": dict(q("select status, count(*) from swe_validations group by 1")),
                   "trajectories": {f"{pol}/{'resolved' if r else 'unresolved'}": n for pol, r, n in q(
                       "select policy, resolved, count(*) from swe_trajectories group by 1, 2 order by 1, 2")},
                   "drop_reasons": {f"{s}:{r}": n for s, r, n in q(
                       "select stage, reason, count(*) from failures where pipeline = 'swe-curate' "
                       "group by 1, 2 order by 3 desc")}}
    finally:
        con.close()
    summary.update({"catalog": path, "run_id": run_id, "seconds": round(time.monotonic() - t0, 1)})
    return summary
