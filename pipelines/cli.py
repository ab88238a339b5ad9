"""The ``crucible`` command line. Each module ``pipelines/commands/<group>_cmd.py`` exposes
``register(subparsers)``; handlers import their heavy dependencies lazily so that
``crucible --help`` stays fast and has no side effects."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import crucible.pipelines.commands as commands_pkg
from crucible.pipelines.config import ConfigError, load_config, warn_out_dir


def command_modules() -> list[str]:
    """Every ``pipelines/commands/*_cmd.py`` module, sorted: each adds one command group."""
    return sorted(f"crucible.pipelines.commands.{m.name}" for m in pkgutil.iter_modules(commands_pkg.__path__)
                  if m.name.endswith("_cmd"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crucible",
        description="Synthesize and curate training data for research and coding agents.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in command_modules():
        importlib.import_module(name).register(sub)
    return parser


def add_config_args(p: argparse.ArgumentParser, default: str = "defaults") -> None:
    """The config flags every pipeline-facing command shares."""
    p.add_argument("--config", "-c", default=default, help=f"config file or shipped name (default: {default})")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override any config key, e.g. --set llm.max_concurrency=8 (repeatable)",
    )
    p.add_argument("--out", help="output directory (same as --set run.out_dir=...)")


def config_from_args(args: argparse.Namespace):
    overrides = list(getattr(args, "overrides", []) or [])
    if getattr(args, "out", None):
        overrides.append(f"run.out_dir={args.out}")
    cfg = load_config(getattr(args, "config", "defaults"), overrides)
    warn_out_dir(cfg)  # run.out_dir=../../etc is allowed, but said once on stderr
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("apache_beam", "httpx", "httpx2", "urllib3", "docker", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"crucible: config error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # expected user errors: say what is wrong, no traceback
        if args.verbose:
            raise
        print(f"crucible: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
