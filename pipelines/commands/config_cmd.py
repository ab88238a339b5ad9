"""`crucible config show|validate`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from crucible.pipelines.cli import add_config_args

    p = sub.add_parser("config", help="show or validate a config (defaults filled, overrides applied)")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    show = csub.add_parser("show", help="print the resolved config as YAML")
    add_config_args(show)
    show.set_defaults(func=_show)
    val = csub.add_parser("validate", help="validate a config; exit 2 with the reason if invalid")
    add_config_args(val)
    val.set_defaults(func=_validate)


def _show(args) -> int:
    import yaml

    from crucible.pipelines.cli import config_from_args

    cfg = config_from_args(args)
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0


def _validate(args) -> int:
    from crucible.pipelines.cli import config_from_args

    cfg = config_from_args(args)
    print(f"ok: {cfg.source}")
    return 0
