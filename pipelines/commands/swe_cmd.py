"""`crucible swe validate | run | import-specs`."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from pipelines.cli import add_config_args

    p = sub.add_parser("swe", help="SWE task instances, validation, rollouts, grading (make swe-curate)")
    ssub = p.add_subparsers(dest="swe_command", metavar="ACTION")
    ssub.required = True
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
    v.add_argument("--recipes", choices=("auto", "inferred"), default=None,
                   help="auto: SWE-bench's install recipe where its table covers (repo, version), else inference; "
                        "inferred: always our inference (default: swe.recipes)")
    v.add_argument("--limit", type=int, default=None, help="validate only the first N good rows")
    add_config_args(v, default="swe")
    v.set_defaults(func=_validate)
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


def _docker():
    from sandbox.engine import ensure_engine

    client, _ = ensure_engine(allow_start=True)
    return client


def _validate(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from pipelines.cli import config_from_args
    from pipelines.store.commit import stable_hash
    from pipelines.swe.runner import validate_file
    from pipelines.swe.sources import InputFileError
    from sandbox.api import settings_from_config

    cfg = config_from_args(args)
    settings = settings_from_config(cfg.sandbox)
    if args.repo_url_template:
        settings = replace(settings, repo_url_template=args.repo_url_template)
    swe = cfg.swe
    try:
        summary = validate_file(
            args.instances, out_dir=cfg.run.out_dir, client=_docker(), settings=settings,
            workdir=Path(swe.get("workdir") or settings.cache_dir / "swe").expanduser(),
            run_id=cfg.run.run_id or f"swe-validate-{stable_hash(Path(args.instances).name, n=8)}",
            reruns=args.reruns or int(swe.get("reruns", 1)), id_style=args.id_style or swe.get("id_style", "swebench"),
            label_network=args.label_network, limit=args.limit, catalog=cfg.store.catalog,
            recipes=args.recipes or swe.get("recipes", "auto"))
    except InputFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def _import_specs(args) -> int:
    from pathlib import Path

    from pipelines.swe.swebench_specs import DEFAULT_SPECS, SpecsImportError, import_specs, write_specs

    try:
        data, license_text = import_specs(Path(args.source))
    except (SpecsImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(write_specs(data, license_text, Path(args.out) if args.out else DEFAULT_SPECS)))
    return 0


def _run(args) -> int:
    from pipelines.cli import config_from_args
    from pipelines.swe.pipeline import run

    cfg = config_from_args(args)
    print(json.dumps(run(cfg)))
    return 0
