"""Beam pipeline options from the ``run`` config section.

Local runs pin ``FnApiRunner``: Beam 2.77's DirectRunner first tries to download Prism on
every start (and, online, *is* Prism), so pinning keeps laptops, CI and tests on one engine.
Any runner flag can be passed through ``run.beam_args`` (e.g. ``--runner=DataflowRunner
--project=... --temp_location=gs://...``); nothing else in the pipelines is runner-specific.
"""

from __future__ import annotations

from collections.abc import Mapping

from apache_beam.options.pipeline_options import PipelineOptions

from crucible.pipelines.config import resolve_section
from crucible.pipelines.options import RunOptions
from crucible.pipelines.options_base import build_section


def run_options(run: RunOptions | Mapping) -> RunOptions:
    """The typed ``run`` section; a plain mapping (a caller's partial dict) gets the schema's defaults."""
    return run if isinstance(run, RunOptions) else build_section(RunOptions, resolve_section("run", run), "run")


def pipeline_args(run: RunOptions | Mapping) -> list[str]:
    run = run_options(run)
    args = list(run.beam_args)
    if not any(a.startswith("--runner") for a in args):
        args.append(f"--runner={run.runner}")
    runner = next(a.split("=", 1)[1] for a in args if a.startswith("--runner="))
    if runner in ("FnApiRunner", "DirectRunner"):
        if not any(a.startswith("--direct_running_mode") for a in args):
            args.append(f"--direct_running_mode={run.direct_running_mode}")
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={run.direct_num_workers}")
    return args


def pipeline_options(run: RunOptions | Mapping) -> PipelineOptions:
    return PipelineOptions(pipeline_args(run))
