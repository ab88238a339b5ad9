"""Validation of one env group on an engine pool (``sandbox.engines``, :mod:`sandbox.engines`): the group goes
to the engine that already holds its env (else the least loaded one), and when that engine stops answering
mid-group the instances not yet finished run again on another engine, which pulls the env image from
``sandbox.registry`` instead of building it. An instance whose validation moved records the engines given up
on in ``meta.engine_retries`` (kind ``infra``); its row is the one from the engine that finished it, so an
engine's death is never a test result, and every instance yields exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

from pipelines.swe.envs import ValidateContext, env_key
from pipelines.swe.records import FailureKind
from sandbox.engines import Engine, EnginePool, report_engine_metrics, run_on_pool


def _is_infra(val) -> bool:
    return val.row["status"] == "error" and val.row["failure_kind"] == FailureKind.INFRA.value


def _holds(val) -> list[str]:
    return [val.env.image] if val.env is not None else []


def engine_ctx(ctx: ValidateContext, eng: Engine) -> ValidateContext:
    """The context on one engine: its client, and its own env cache (an env spec cached for another engine
    says nothing about the image being here)."""
    return replace(ctx, client=eng.client, pool=None, env_cache=eng.memo.setdefault("env_cache", {}))


def pooled_group(ctx: ValidateContext, pool: EnginePool, insts: Sequence[Mapping], run_id: str, *, reference: bool,
                 group: Callable) -> Iterator[tuple]:
    """``group(ctx_on_engine, insts_left, run_id, reference=...)`` (the one-engine validation path) on
    ``pool``, yielding (instance, Validation) once per instance, with ``meta.engine`` (where it ran) and
    ``meta.engine_retries`` (engines drained under it) on its row."""
    insts = sorted(insts, key=lambda i: i["instance_id"])
    if not insts:
        return

    def work(eng: Engine, left: list) -> Iterator[tuple]:
        for inst, val in group(engine_ctx(ctx, eng), left, run_id, reference=reference):
            val.row.setdefault("meta", {})
            if val.row["meta"] is None:
                val.row["meta"] = {}
            val.row["meta"]["engine"] = eng.name
            yield inst, val

    for inst, val, attempts in run_on_pool(pool, env_key(insts[0]), insts, work, is_infra=_is_infra,
                                           key=lambda i: i["instance_id"], holds=_holds):
        if attempts:
            val.row["meta"]["engine_retries"] = attempts
        report_engine_metrics(pool.stats())
        yield inst, val
