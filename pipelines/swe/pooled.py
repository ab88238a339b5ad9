"""Validation of one env group on an engine pool (``sandbox.engines``, :mod:`crucible.sandbox.engines`): the group goes
to the engine that already holds its env (else the least loaded one), and when that engine stops answering
mid-group the instances not yet finished run again on another engine, which pulls the env image from
``sandbox.registry`` instead of building it. An instance whose validation moved records the engines given up
on in ``meta.engine_retries`` (kind ``infra``); its row is the one from the engine that finished it, so an
engine's death is never a test result, and every instance yields exactly once.

Rollouts and grading take the same road one call at a time (:func:`pooled_call`): placed on the engine that
holds the instance's env image (looked up on the engines that were not seen running it), the image pulled
from the registry where the engine lacks it, and the whole call run again on another engine when its engine
stops answering (``engine_retries``, kind ``infra``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from crucible.pipelines.swe.envs import TaskEnv, ValidateContext, env_key
from crucible.pipelines.swe.records import FailureKind
from crucible.sandbox.engines import Engine, EnginePool, report_engine_metrics, run_on_pool
from crucible.sandbox.registry import has_image, pull, registry_of


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


def pool_of(ctx) -> EnginePool | None:
    """The engine pool a context places its work on (a context that is not a :class:`ValidateContext`, like the
    verl tool env's, has none: its work runs on its own client's engine)."""
    return getattr(ctx, "pool", None)


def live_ctx(ctx):
    """``ctx`` for the work that is not placed (an instance's statement reproduction): unchanged, unless its
    client's engine was drained, then on a live engine (build_ctx picked the first live one at start)."""
    pool = pool_of(ctx)
    if pool is None:
        return ctx
    live = pool.live()
    if any(e.client is ctx.client for e in live):
        return ctx
    if not live:
        return ctx
    return replace(engine_ctx(ctx, live[0]), pool=pool)  # still placing the rollouts and gradings


def discover_holders(pool: EnginePool, image: str) -> None:
    """Mark the live engines that hold ``image`` (built or pulled there by an earlier run), each engine asked
    once per image; an engine that does not answer is left to the drain."""
    for eng in pool.live():
        asked = eng.memo.setdefault("asked", set())
        if image in eng.holds or image in asked:
            continue
        asked.add(image)
        try:
            if has_image(eng.client, image):
                eng.holds.add(image)
        except Exception:  # noqa: BLE001 - an engine that does not answer gets no work placed by this look
            asked.discard(image)


def ensure_image_on(ctx: ValidateContext, eng: Engine, image: str) -> None:
    """``image`` on ``eng``: there already, or pulled from ``sandbox.registry`` (never rebuilt here; without
    a registry the call runs as it would on one engine and its container start says what is missing)."""
    settings = ctx.settings
    reg = registry_of(settings.registry, settings.cache_dir / "locks") if settings is not None else None
    if reg is not None and not has_image(eng.client, image):
        pull(eng.client, reg, image)


def pooled_call(ctx: ValidateContext, inst: Mapping, what: str, call: Callable[[ValidateContext], dict], *,
                is_infra: Callable[[dict], bool]) -> tuple[dict, str, list]:
    """``call(ctx_on_engine)`` (one rollout, one grading of ``inst``) on ``ctx.pool``: ``(result, engine,
    retries)``, the result of the engine that finished it, ``retries`` the engines drained under it (kind
    ``infra``). Placed by the instance's env image (its env key when it carries none)."""
    pool = ctx.pool
    env = TaskEnv.of(inst)
    image = env.image if env is not None else None
    if image:
        discover_holders(pool, image)

    def work(eng: Engine, left: list) -> Iterator[tuple]:
        on = engine_ctx(ctx, eng)
        if image:
            ensure_image_on(on, eng, image)
        yield left[0], _Done(call(on), eng.name)

    # read to the end: the lease goes back as done (a generator closed early gives its slot back as failed)
    out = list(run_on_pool(pool, image or env_key(inst), [what], work, is_infra=lambda r: is_infra(r.row), key=str,
                           holds=lambda r: [image] if image else []))
    report_engine_metrics(pool.stats())
    (_, done, attempts), = out  # run_on_pool yields once per item
    return done.row, done.engine, attempts


class _Done(NamedTuple):
    row: dict  # the call's result (a trajectory row, a grade)
    engine: str
