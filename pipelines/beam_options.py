"""Beam pipeline options from the ``run`` config section.

Local runs pin ``FnApiRunner``: Beam 2.77's DirectRunner first tries to download Prism on
every start (and, online, *is* Prism), so pinning keeps laptops, CI and tests on one engine.
Any runner flag can be passed through ``run.beam_args`` (e.g. ``--runner=DataflowRunner
--project=... --temp_location=gs://...``); nothing else in the pipelines is runner-specific.
"""

from __future__ import annotations

from collections.abc import Mapping

from apache_beam.options.pipeline_options import PipelineOptions


def pipeline_args(run: Mapping) -> list[str]:
    args = list(run.get("beam_args") or [])
    if not any(a.startswith("--runner") for a in args):
        args.append(f"--runner={run.get('runner', 'FnApiRunner')}")
    runner = next(a.split("=", 1)[1] for a in args if a.startswith("--runner="))
    if runner in ("FnApiRunner", "DirectRunner"):
        if not any(a.startswith("--direct_running_mode") for a in args):
            args.append(f"--direct_running_mode={run.get('direct_running_mode', 'in_memory')}")
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={run.get('direct_num_workers', 1)}")
    return args


def pipeline_options(run: Mapping) -> PipelineOptions:
    return PipelineOptions(pipeline_args(run))
