"""`crucible sandbox engine|base|env|test|df|gc`: Docker sandboxes from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    from crucible.pipelines.cli import add_config_args

    p = sub.add_parser("sandbox", help="Docker sandboxes: engine, base/env images, test runs, disk, gc")
    ssub = p.add_subparsers(dest="sandbox_command", metavar="ACTION")
    ssub.required = True

    e = ssub.add_parser("engine", help="find a Docker engine (DOCKER_HOST honoured) or install+start one")
    e.add_argument("--no-start", action="store_true", help="only check; never install or start")
    e.set_defaults(func=_engine)

    b = ssub.add_parser("base", help="build or reuse the base image for a Python version")
    add_config_args(b)
    b.add_argument("--python", required=True, help="3.9 | 3.11 | 3.13")
    b.add_argument("--force", action="store_true", help="rebuild even if an image with the key exists")
    b.set_defaults(func=_base)

    for name, helptext in (("env", "build or reuse the env image of a repo (deps installed)"),
                           ("test", "build/reuse the env image of a repo and run its tests in a fresh container")):
        x = ssub.add_parser(name, help=helptext)
        add_config_args(x)
        src = x.add_mutually_exclusive_group(required=True)
        src.add_argument("--sdist", help="a PyPI sdist, NAME==VERSION (e.g. toolz==0.12.0)")
        src.add_argument("--repo", help="owner/name, fetched through sandbox.repo_url_template")
        src.add_argument("--path", help="a local directory (a git checkout or a plain tree)")
        x.add_argument("--commit", help="commit for --repo (default HEAD)")
        x.add_argument("--repo-url-template", help="override sandbox.repo_url_template")
        x.add_argument("--force", action="store_true", help="rebuild the env image")
        x.add_argument("--print-recipe", action="store_true", help="print the inferred recipe")
        if name == "test":
            x.add_argument("--network", choices=["none", "internal", "bridge"], help="override sandbox.network")
            x.add_argument("--reruns", type=int, help="override sandbox.reruns (flaky detection)")
            x.add_argument("--select", nargs="*", help="test files/ids to run instead of the detected paths")
            x.add_argument("--json", action="store_true", help="print the full result (per-test outcomes) as JSON")
            x.add_argument("--repair", action="store_true",
                           help="climb the repair ladder (sandbox.repair_max_rungs) until the suite mostly passes; "
                                "prints the rungs used and, if it stops short, the deciding log line")
            x.add_argument("--llm-repair", action="store_true",
                           help="with --repair: when the ladder ends short, an LLM agent (the llm section's endpoint) "
                                "proposes setup commands; kept only if the replayed recipe passes "
                                "(sandbox.llm_repair; docs/sandbox.md 'LLM repair')")
        x.set_defaults(func=_env if name == "env" else _test)

    sv = ssub.add_parser("survey", help="build and test-run each source of a list, with the repair ladder; "
                         "stage counts, rungs and stop reasons (resumable: done sources are skipped)")
    add_config_args(sv)
    svsrc = sv.add_mutually_exclusive_group(required=True)
    svsrc.add_argument("--sdists", help="file with one NAME==VERSION per line (# comments)")
    svsrc.add_argument("--repos", help="file with one owner/name@REV per line (REV: tag, branch or sha; # comments), "
                       "fetched through sandbox.repo_url_template")
    sv.add_argument("--repo-url-template", help="override sandbox.repo_url_template (e.g. "
                    "'file:///mirrors/{owner}/{name}.git')")
    sv.add_argument("--parallel", type=int, help="override sandbox.survey_parallel")
    sv.add_argument("--limit", type=int, help="only the first N sources of the file")
    sv.add_argument("--llm-repair", action="store_true",
                    help="LLM repair for sources the ladder leaves short (sandbox.llm_repair.enabled)")
    sv.set_defaults(func=_survey)

    d = ssub.add_parser("df", help="disk used by sandbox images and containers")
    d.set_defaults(func=_df)
    g = ssub.add_parser("gc", help="remove stopped sandbox containers and unused env images")
    g.add_argument("--keep", action="append", default=[], metavar="KEY", help="env key to keep (repeatable)")
    g.add_argument("--older-than-days", type=float, default=0.0, help="only images created longer ago")
    g.add_argument("--superseded", action="store_true",
                   help="only images replaced by a newer one of the same repo and Python (changed recipe/deps)")
    g.add_argument("--all", action="store_true", help="also remove base images")
    g.add_argument("--dry-run", action="store_true")
    g.set_defaults(func=_gc)


def _client(start: bool = False):
    from crucible.sandbox.engine import EngineUnavailable, ensure_engine

    try:
        return ensure_engine(allow_start=start)
    except EngineUnavailable as exc:
        print(f"crucible: {exc}", file=sys.stderr)
        raise SystemExit(3) from None


def _engine(args) -> int:
    _, info = _client(start=not args.no_start)
    print(json.dumps(info.as_dict()))
    return 0


def _settings(args):
    from crucible.pipelines.cli import config_from_args
    from crucible.sandbox.api import settings_from_config

    cfg = config_from_args(args)
    return settings_from_config(cfg.sandbox)


def _base(args) -> int:
    from crucible.sandbox.api import build_base

    client, _ = _client()
    res = build_base(client, _settings(args), args.python, force=args.force)
    print(json.dumps(res))
    return 0


def _checkout(args, settings):
    from crucible.sandbox import sources

    if args.sdist:
        return sources.from_sdist(args.sdist, settings.cache_dir / "sdists", pip=(sys.executable, "-m", "pip"),
                                  remote_env=settings.pip_env)
    if args.repo:
        template = args.repo_url_template or settings.repo_url_template
        return sources.from_git(args.repo, args.commit or "HEAD", settings.cache_dir / "git", template)
    from pathlib import Path

    path = Path(args.path).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"--path {path}: not a directory")
    if not (path / ".git").exists():
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="crucible-path-")) / path.name
        shutil.copytree(path, tmp)
        commit = sources.init_one_commit(tmp, f"snapshot of {path}")
        return sources.Checkout(tmp, commit, path.name, f"path:{path}")
    head = sources._git(["rev-parse", "HEAD"], cwd=path).stdout.strip()
    return sources.Checkout(path, head, path.name, f"path:{path}")


def _prepare(args):
    from crucible.sandbox.api import build_env, exported
    from crucible.sandbox.images import BuildError
    from crucible.sandbox.recipes import RecipeError
    from crucible.sandbox.sources import SourceError

    settings = _settings(args)
    client, _ = _client()
    try:
        co = _checkout(args, settings)
    except SourceError as exc:
        print(f"crucible: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from crucible.sandbox.asof import source_date
    from crucible.sandbox.sources import index_upload_date

    name, _, version = (args.sdist or "").partition("==")
    date = source_date(co.path, (lambda: index_upload_date(name, version, remote_env=settings.pip_env))
                       if args.sdist else None)
    ctx = exported(co.path)
    tree = ctx.__enter__()
    try:
        spec, res = build_env(client, settings, tree, co.name, force=args.force, date=date)
    except (RecipeError, BuildError) as exc:
        ctx.__exit__(None, None, None)
        print(f"crucible: {co.origin}: {exc}", file=sys.stderr)
        if getattr(exc, "log_tail", ""):
            print(exc.log_tail[-3000:], file=sys.stderr)
        raise SystemExit(2) from None
    if args.print_recipe:
        print(json.dumps(spec.recipe, indent=2), file=sys.stderr)
    return client, settings, co, spec, res, ctx, tree


def _env(args) -> int:
    t0 = time.monotonic()
    _, _, co, spec, res, ctx, _ = _prepare(args)
    ctx.__exit__(None, None, None)
    res.pop("log_tail", None)
    res.pop("log", None)
    print(json.dumps({"source": co.origin, "commit": co.commit, "python": spec.recipe["python"], **res,
                      "total_seconds": round(time.monotonic() - t0, 2)}))
    return 0


def _repair(args) -> int:
    from crucible.pipelines.cli import config_from_args
    from crucible.pipelines.swe.llm_repair.runner import repairer_for
    from crucible.sandbox import sources
    from crucible.sandbox.api import exported, settings_from_config
    from crucible.sandbox.asof import source_date
    from crucible.sandbox.repair import attempt

    cfg = config_from_args(args)
    settings = settings_from_config(cfg.sandbox)
    client, _ = _client()
    try:
        co = _checkout(args, settings)
    except sources.SourceError as exc:
        print(f"crucible: {exc}", file=sys.stderr)
        return 2
    name, _, version = (args.sdist or "").partition("==")
    date = source_date(co.path, (lambda: sources.index_upload_date(name, version, remote_env=settings.pip_env))
                       if args.sdist else None)
    with exported(co.path) as tree:
        res = attempt(client, settings, tree, co.name, date=date, max_rungs=settings.repair_max_rungs)
        if res["stage"] != "mostly_passing":
            with repairer_for(cfg, settings, True if args.llm_repair else None) as fix:
                if fix is not None:
                    res = fix(client, tree, co.name, res, date)
    recipe = res.pop("recipe", None)
    res.pop("log_tail", None)
    if args.print_recipe and recipe:
        print(json.dumps(recipe, indent=2), file=sys.stderr)
    print(json.dumps({"funnel_stage": res["stage"], "source": co.origin, "commit": co.commit, "source_date": date,
                      **{k: v for k, v in res.items() if k != "stage"}}, indent=2))
    return 0 if res["stage"] == "mostly_passing" else 1


def _test(args) -> int:
    from crucible.sandbox.api import test_env

    if args.repair:
        return _repair(args)
    if args.llm_repair:
        print("crucible: --llm-repair needs --repair (it runs when the ladder ends short)", file=sys.stderr)
        return 2

    client, settings, co, spec, res, ctx, tree = _prepare(args)
    try:
        out = test_env(client, settings, spec, tree, selection=args.select, network=args.network, k=args.reruns)
    finally:
        ctx.__exit__(None, None, None)
    from crucible.sandbox.recipes import funnel_stage

    runs = out["runs"]
    first = next((r for r in runs if r.ok), runs[0])
    stage = funnel_stage(True, len(first.tests), first.counts.get("PASSED", 0),
                         first.counts.get("FAILED", 0) + first.counts.get("ERROR", 0))
    summary = {"funnel_stage": stage, "source": co.origin, "commit": co.commit, "image": spec.image, "env_cache_hit": res["cache_hit"],
               "status": out["status"], "reason": out["reason"], "flaky": out["flaky"],
               "network_dependent": out["network_dependent"],
               "runs": [{"status": r.status, "kind": r.kind, "reason": r.reason, "counts": r.counts,
                         "exit_code": r.exit_code, "seconds": round(r.seconds, 2)} for r in runs]}
    if args.json:
        summary["tests"] = out.get("tests", runs[0].tests)
        summary["recipe"] = spec.recipe
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if out["status"] == "ok" else 1


def _survey(args) -> int:
    import dataclasses
    from pathlib import Path

    from crucible.pipelines.cli import config_from_args
    from crucible.pipelines.store.catalog import query
    from crucible.pipelines.store.commit import stable_hash
    from crucible.pipelines.swe.survey import Source, SourceKind, funnel, read_repos, read_sources, run_survey
    from crucible.sandbox.api import settings_from_config

    kind, path, read = ((SourceKind.SDIST, args.sdists, read_sources) if args.sdists
                        else (SourceKind.GIT, args.repos, read_repos))
    try:
        specs = read(Path(path))
    except (OSError, ValueError) as exc:
        print(f"crucible: --{'sdists' if args.sdists else 'repos'}: {exc}", file=sys.stderr)
        return 2
    specs = specs[: args.limit] if args.limit else specs
    srcs = [Source(kind, s) for s in specs]
    cfg = config_from_args(args)
    settings = settings_from_config(cfg.sandbox)
    if args.repo_url_template:
        settings = dataclasses.replace(settings, repo_url_template=args.repo_url_template)
    out_dir = cfg.run.out_dir
    client, _ = _client()

    def show(row):
        print(f"{row['stage']:>16}  {row['source']:<40} {row['seconds']:>6.0f}s  rungs="
              f"{','.join(g['kind'] + ':' + g['arg'] for g in row['rungs']) or '-'}"
              + (f"  stop: {row['stop_line'][:150]}" if row["stop_line"] else ""), flush=True)

    import functools

    from crucible.pipelines.swe.llm_repair.runner import repairer_for
    from crucible.pipelines.swe.survey import survey_one

    with repairer_for(cfg, settings, True if args.llm_repair else None) as fix:
        run_survey(client, settings, srcs, out_dir, cfg.run.run_id or f"survey-{stable_hash(*specs, n=8)}",
                   args.parallel or settings.survey_parallel, on_row=show,
                   one=functools.partial(survey_one, llm_fix=fix))
    cols, rows = query(out_dir, "select * from sandbox_surveys")
    import json as _json

    wanted = {s.id for s in srcs}
    dicts = [dict(zip(cols, r)) for r in rows]
    dicts = [{**d, "rungs": _json.loads(d["rungs"]) if isinstance(d["rungs"], str) else d["rungs"]}
             for d in dicts if d["source"] in wanted]
    print(json.dumps(funnel(dicts), indent=2))
    return 0


def _df(args) -> int:
    from crucible.sandbox.imagegc import disk_usage, list_images

    client, _ = _client()
    print(json.dumps({"usage": disk_usage(client), "images": list_images(client)}, indent=2))
    return 0


def _gc(args) -> int:
    from crucible.sandbox.imagegc import gc

    client, _ = _client()
    kinds = ("env", "base") if args.all else ("env",)
    print(json.dumps(gc(client, set(args.keep), kinds, args.older_than_days * 86400, args.dry_run,
                        superseded_only=args.superseded)))
    return 0
