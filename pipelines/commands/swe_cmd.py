"""`crucible swe validate | grade | rollout | run | crawl | import-specs`."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from crucible.pipelines.cli import add_config_args

    p = sub.add_parser("swe", help="SWE task instances, validation, rollouts, grading (make swe-curate)")
    ssub = p.add_subparsers(dest="swe_command", metavar="ACTION")
    ssub.required = True
    _register_validate(ssub, add_config_args)
    _register_grade(ssub)
    _register_rollout(ssub, add_config_args)
    i = ssub.add_parser("import-specs", help="import SWE-bench's install recipes (swebench 3.x/4.x tables) as data")
    i.add_argument("--from", dest="source", required=True,
                   help="a swebench 3.x/4.x wheel or sdist (pip download swebench==4.0.* --no-deps) or its "
                        "unpacked directory; nothing is imported or installed")
    i.add_argument("--out", default=None, help="JSON file to write (default: configs/swebench/specs.json); "
                                               "swebench's LICENSE is written next to it")
    i.set_defaults(func=_import_specs)
    r = ssub.add_parser("run", help="run the swe-curate pipeline (inject bugs, validate, statements, rollouts, grade)")
    add_config_args(r, default="swe")
    r.set_defaults(func=_run)
    _register_crawl(ssub)


def _register_validate(ssub: argparse._SubParsersAction, add_config_args) -> None:
    v = ssub.add_parser("validate", help="compute FAIL_TO_PASS/PASS_TO_PASS for SWE-bench-format rows")
    v.add_argument("--instances", required=True, help="JSONL or Parquet file of SWE-bench-format rows")
    v.add_argument("--repo-url-template", default=None,
                   help="git URL per repo with {owner} {name} {repo}, e.g. 'file:///mirrors/{owner}/{name}.git' "
                        "(default: sandbox.repo_url_template)")
    v.add_argument("--reruns", type=int, default=None, help="runs per side; >1 detects flaky tests (default: swe.reruns)")
    v.add_argument("--id-style", choices=("swebench", "junit"), default=None,
                   help="test ids as SWE-bench's -rA parser writes them (default) or pytest node ids from JUnit")
    v.add_argument("--label-network", choices=("internal", "bridge"), default=None,
                   help="one more after-run with this network to label network-dependent tests")
    v.add_argument("--network", choices=("none", "internal"), default=None,
                   help="network of the label runs: internal (a per-run --internal Docker network, connects time "
                        "out) or none (default: swe.network)")
    v.add_argument("--recipes", choices=("auto", "inferred"), default=None,
                   help="auto: SWE-bench's install recipe where its table covers (repo, version), else inference; "
                        "inferred: always our inference (default: swe.recipes)")
    v.add_argument("--limit", type=int, default=None, help="validate only the first N good rows")
    v.add_argument("--no-reference", action="store_true",
                   help="skip the clean reference run per env (default: swe.reference_run)")
    _skip_bad_rows_arg(v, "record each bad row as a failures row (stage read_input) and validate the good ones")
    add_config_args(v, default="swe")
    v.set_defaults(func=_validate)


def _register_grade(ssub: argparse._SubParsersAction) -> None:
    g = ssub.add_parser("grade", help="grade predictions (SWE-bench format) in fresh containers, with Crucible's "
                                     "defenses; prints SWE-bench's report")
    g.add_argument("--instances", default=None,
                   help="JSONL or Parquet file of SWE-bench-format rows (default with --store: its swe_instances)")
    g.add_argument("--predictions", required=True,
                   help="JSONL of {instance_id, model_name_or_path, model_patch}; several per instance allowed")
    g.add_argument("--repo-url-template", default=None, help="where repos are cloned from (default: the sandbox's)")
    g.add_argument("--out", default=None, metavar="DIR", help="write swe_grades.jsonl and report.json here")
    g.add_argument("--store", default=None, metavar="DIR",
                   help="commit each graded prediction to DIR's swe_grades table as it finishes (resumable: a rerun "
                        "grades only what is not there); instances from DIR's swe_instances unless --instances")
    g.add_argument("--json", action="store_true", help="print one JSON line per prediction, then the report")
    _skip_bad_rows_arg(g, "warn about each bad row and grade the good ones")
    g.add_argument("--config", "-c", default="swe", help="config file or shipped name (default: swe)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    g.set_defaults(func=_grade)


def _register_rollout(ssub: argparse._SubParsersAction, add_config_args) -> None:
    ro = ssub.add_parser("rollout", help="an agent policy over SWE-bench-format rows (with FAIL_TO_PASS/PASS_TO_PASS), "
                                        "graded in fresh containers; each trajectory committed as it finishes; "
                                        "resumable")
    ro.add_argument("--instances", required=True, help="JSONL or Parquet file of SWE-bench-format rows")
    ro.add_argument("--policy", choices=("llm", "gold"), default="llm",
                    help="llm: the configured model (step style swe.rollouts.llm_policy); gold: replay the "
                         "reference patch through the same tools (checks the harness)")
    ro.add_argument("--k", type=int, default=None, help="rollouts per instance (default: swe.rollouts.k)")
    ro.add_argument("--repo-url-template", default=None, help="where repos are cloned from (default: the sandbox's)")
    add_config_args(ro, default="swe")
    ro.set_defaults(func=_rollout)


def _register_crawl(ssub: argparse._SubParsersAction) -> None:
    c = ssub.add_parser("crawl", help="crawl GitHub PRs into SWE-bench-format rows (merged, resolves an issue, "
                                      "touches tests); resumable")
    c.add_argument("--repo", action="append", default=[], metavar="OWNER/NAME",
                   help="repository to crawl (repeatable; default: swe.github.repos)")
    c.add_argument("--out", required=True, metavar="FILE.jsonl",
                   help="output JSONL (rejections go to FILE.rejected.jsonl); rerunning resumes")
    c.add_argument("--api-url", default=None, help="REST API root (default: swe.github.api_url; "
                                                   "GitHub Enterprise: https://HOST/api/v3)")
    c.add_argument("--token-env", default=None, metavar="NAME",
                   help="environment variable holding the token (default: swe.github.token_env = GITHUB_TOKEN)")
    c.add_argument("--max-pulls", type=int, default=None, help="newest N closed PRs per repo (default: all)")
    c.add_argument("--since", default=None, metavar="ISO", help="skip PRs created before this date, e.g. 2023-01-01")
    c.add_argument("--config", "-c", default="swe", help="config file or shipped name (default: swe)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override any config key, e.g. --set swe.github.max_rate_limit_wait_s=60")
    c.set_defaults(func=_crawl)


def _skip_bad_rows_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--skip-bad-rows", action="store_true",
                   help=f"default: any bad input row is an error (exit 2, named by file, line and field, before "
                        f"any work); with this flag: {what}")


def _refuse_bad_rows(problems: list[str], args) -> bool:
    """True (after printing every problem) when bad rows stop the command: exit 2, nothing started."""
    if not problems or args.skip_bad_rows:
        return False
    for p in problems[:50]:
        print(f"crucible: error: {p}", file=sys.stderr)
    more = " (first 50 shown)" if len(problems) > 50 else ""
    print(f"crucible: {len(problems)} bad input row(s){more}; fix them, or pass --skip-bad-rows to go on without "
          "them", file=sys.stderr)
    return True


def _docker():
    from crucible.sandbox.engine import ensure_engine

    client, _ = ensure_engine(allow_start=True)
    return client


def flag_overrides(args) -> list[str]:
    """``crucible swe validate`` flags as config overrides (so the CLI and ``make swe-curate`` read one config)."""
    out = []
    for flag, key in (("repo_url_template", "sandbox.repo_url_template"), ("reruns", "swe.reruns"),
                      ("id_style", "swe.id_style"), ("label_network", "sandbox.label_network"),
                      ("recipes", "swe.recipes"), ("network", "swe.network")):
        value = getattr(args, flag, None)
        if value is not None:
            out.append(f"{key}={value}")
    if getattr(args, "no_reference", False):
        out.append("swe.reference_run=false")
    return out


def _validate(args) -> int:
    from crucible.pipelines.cli import config_from_args
    from crucible.pipelines.swe.runner import validate_file
    from crucible.pipelines.swe.sources import InputFileError, read_instances

    args.overrides = [*(args.overrides or []), *flag_overrides(args)]
    cfg = config_from_args(args)
    try:
        if _refuse_bad_rows([p.message() for p in read_instances(args.instances, allow_empty=False)[1]], args):
            return 2
        summary = validate_file(cfg, args.instances, limit=args.limit)
    except InputFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def _grade(args) -> int:
    from pathlib import Path

    from crucible.pipelines.cli import config_from_args
    from crucible.pipelines.store.commit import stable_hash
    from crucible.pipelines.swe import grade_store
    from crucible.pipelines.swe.envs import run_network
    from crucible.pipelines.swe.predictions import (
        PredictionsError,
        grade_predictions,
        read_predictions,
        summarize,
    )
    from crucible.pipelines.swe.sources import InputFileError, read_instances
    from crucible.pipelines.swe.transforms import build_ctx

    args.overrides = [*(args.overrides or []), *flag_overrides(args)]
    cfg = config_from_args(args)
    if not args.instances and not args.store:
        print("error: swe grade needs --instances FILE or --store DIR (whose swe_instances are graded)", file=sys.stderr)
        return 2
    try:
        if args.instances:
            insts, inst_problems = read_instances(args.instances, allow_empty=False)
        else:
            insts, inst_problems = grade_store.store_instances(args.store), []
        preds, problems = read_predictions(args.predictions)
    except (InputFileError, PredictionsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if _refuse_bad_rows([*(q.message() for q in inst_problems), *problems], args):
        return 2
    for p in [*(q.message() for q in inst_problems), *problems]:
        print(f"warning: skipped: {p}", file=sys.stderr)
    run_id = f"swe-grade-{stable_hash(Path(args.instances or args.store).name, Path(args.predictions).name, n=8)}"
    client = _docker()
    with run_network(client, cfg.swe.network, run_id) as network:
        ctx = build_ctx(cfg.to_dict(), network, client)
        by_id = {i["instance_id"]: i for i in insts}
        if args.store:
            lines, summary = grade_store.grade_into_store(args.store, ctx, by_id, preds, run_id, cfg)
            print(json.dumps({"swe_grades": summary.to_dict()}), file=sys.stderr)
        else:
            lines = grade_predictions(ctx, by_id, preds)
    report = summarize(lines, len(insts))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "swe_grades.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines), encoding="utf-8")
        (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    if args.json:
        for ln in lines:
            print(json.dumps(ln))
    print(json.dumps(report))
    return 0


ROLLOUT_PIPELINE = "swe-rollout"


def rollout_key(instance_id: str, policy: str, sample_index: int) -> str:
    """The store item key of one SWE rollout (``crucible swe rollout``)."""
    return f"{instance_id}#{policy}#{sample_index}"


def _rollout(args) -> int:
    import contextlib
    from dataclasses import replace
    from pathlib import Path

    from crucible.pipelines.cli import config_from_args
    from crucible.pipelines.store.batch import run_items
    from crucible.pipelines.store.catalog import refresh_catalog
    from crucible.pipelines.store.commit import ItemResult, stable_hash
    from crucible.pipelines.swe.curate import llm_policy
    from crucible.pipelines.swe.envs import run_network
    from crucible.pipelines.swe.filters import classify
    from crucible.pipelines.swe.rollout import run_rollout
    from crucible.pipelines.swe.sources import InputFileError, read_instances
    from crucible.pipelines.swe.transforms import build_ctx

    cfg = config_from_args(args)
    ro = cfg.swe.rollouts
    k = int(ro.k if args.k is None else args.k)
    if k < 1:
        print(f"error: --k {k}: needs at least 1 rollout per instance", file=sys.stderr)
        return 2
    try:
        insts, problems = read_instances(args.instances)
    except InputFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = [q.message() for q in problems]
    problems += [f"{args.instances}: instance {i['instance_id']}: FAIL_TO_PASS/PASS_TO_PASS missing; a rollout is "
                 "graded against them (run crucible swe validate first)"
                 for i in insts if i["FAIL_TO_PASS"] is None or i["PASS_TO_PASS"] is None]
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    by_key = {rollout_key(i["instance_id"], args.policy, n): (i, n) for i in insts for n in range(k)}
    out_dir = cfg.run.out_dir
    run_id = cfg.run.run_id or f"{ROLLOUT_PIPELINE}-{stable_hash(Path(args.instances).name, args.policy, n=8)}"
    common = dict(max_turns=int(ro.max_turns), max_total_tokens=int(ro.max_total_tokens),
                  command_timeout_s=int(ro.command_timeout_s), max_observation_chars=int(ro.max_observation_chars),
                  run_id=run_id)
    with contextlib.ExitStack() as stack:
        docker = _docker()
        network = stack.enter_context(run_network(docker, cfg.swe.network, run_id))
        ctx = build_ctx(cfg.to_dict(), network, docker)
        if args.repo_url_template:
            ctx = replace(ctx, settings=replace(ctx.settings, repo_url_template=args.repo_url_template))
        client, model, workers = None, None, int(cfg.llm.max_concurrency)
        if args.policy == "llm":
            from crucible.pipelines.llm import LLMClient, endpoint_config, llm_endpoint

            urls = stack.enter_context(llm_endpoint(cfg.llm))
            client = LLMClient.from_config(endpoint_config(cfg.llm, urls), out_dir=out_dir)
            stack.callback(client.close)
            model, workers = cfg.llm.model, workers * len(urls)

        def work(key: str):
            inst, n = by_key[key]
            if args.policy == "gold":
                turns = max(int(ro.max_turns), 4 + 2 * inst["patch"].count("diff --git"))
                row = run_rollout(ctx, inst, "gold", policy_name="gold", sample_index=n, **{**common, "max_turns": turns})
            else:
                policy = llm_policy(client, ro.llm_policy, n, ro.max_arg_chars)
                row = run_rollout(ctx, inst, policy, policy_name="llm", sample_index=n, model=model, **common)
            row["split"], row["drop_reasons"] = classify(row, cfg.swe.filters, inst)
            return ItemResult(key).add("swe_trajectories", row)

        summary = run_items(out_dir, ROLLOUT_PIPELINE, run_id, list(by_key), work, workers=workers, stage="rollout",
                            compression=cfg.store.compression, progress_every_s=float(cfg.run.progress_every_s))
    out = summary.to_dict()
    from crucible.pipelines.store import catalog

    out.update(instances=len(insts), k=k, policy=args.policy, workers=workers, run_id=run_id,
               catalog=refresh_catalog(out_dir, cfg.store.catalog))
    _, rows = catalog.query(out_dir, "select run_id, resolved from swe_trajectories", cfg.store.catalog)
    out["resolved"] = sum(bool(r) for rid, r in rows if rid == run_id)
    print(json.dumps(out))
    return 1 if summary.errors else 0


def _import_specs(args) -> int:
    from pathlib import Path

    from crucible.pipelines.swe.swebench_import import import_specs, write_specs
    from crucible.pipelines.swe.swebench_specs import DEFAULT_SPECS, SpecsImportError

    try:
        data, license_text = import_specs(Path(args.source))
    except (SpecsImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(write_specs(data, license_text, Path(args.out) if args.out else DEFAULT_SPECS)))
    return 0


def _run(args) -> int:
    from crucible.pipelines.cli import config_from_args
    from crucible.pipelines.swe.pipeline import run

    cfg = config_from_args(args)
    print(json.dumps(run(cfg)))
    return 0


def _crawl(args) -> int:
    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe.github import crawl
    from crucible.pipelines.swe.github_client import GitHubError, RateLimitError, client_from_config
    from crucible.pipelines.swe.github_rules import parse_time

    gh = load_config(args.config, list(args.overrides or [])).swe.github
    repos = list(args.repo) or list(gh.repos)
    if not repos:
        print("error: no repository: give --repo OWNER/NAME or set swe.github.repos", file=sys.stderr)
        return 2
    if args.max_pulls is not None and args.max_pulls < 1:
        print(f"error: --max-pulls {args.max_pulls}: must be >= 1", file=sys.stderr)
        return 2
    since = args.since or gh.since
    try:
        parse_time(since)
    except ValueError:
        print(f"error: --since {since!r} is not an ISO date (e.g. 2023-01-01 or 2023-01-01T00:00:00Z)", file=sys.stderr)
        return 2
    client = client_from_config(gh, api_url=args.api_url, token_env=args.token_env)
    try:
        summary = crawl(client, repos, out_path=args.out, since=since,
                        max_pulls=args.max_pulls if args.max_pulls is not None else gh.max_pulls)
    except RateLimitError as exc:
        if exc.summary is not None:
            print(json.dumps(exc.summary.as_dict()))
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except GitHubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary.as_dict()))
    for repo, why in summary.repo_errors.items():
        print(f"error: {repo}: {why}", file=sys.stderr)
    return 1 if summary.repo_errors else 0
