"""A pool of Docker engines (``sandbox.engines``): where sandbox work runs, and what happens when an engine
goes away.

- **Placement** (:meth:`EnginePool.acquire`): a unit of work names what it wants (an env key or image); it
  goes to a live engine with a free slot that already holds it (it ran there before: no pull, no build), else
  to the least loaded one (in flight / capacity, then fewer done). Each engine runs at most ``capacity`` units
  at once; the rest wait (the wait is measured).
- **Drain** (:func:`run_on_pool`): when work fails (an exception, or a result the caller calls infra) and its
  engine does not answer a ping within ``sandbox.engine_ping_timeout_s``, the engine is drained (no new
  work) and the items not yet finished are run again on another engine. What the caller gets for an item is
  the result of its last attempt, with the engines given up on (``attempts``), so an engine's death is
  recorded as infra and never stands as a test result; each item is yielded once.
- **Observability** (:meth:`EnginePool.stats`): per engine in flight, done, failed, queue wait, busy share,
  drained; as Beam metrics (:func:`report_engine_metrics`) and a stats file per pool
  (``<run.out_dir>/stats/engine_pool/*.json``) that ``crucible stats`` sums.

Images move between engines through the registry (:mod:`crucible.sandbox.registry`), not through the pool.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import docker
from apache_beam.metrics import Metrics

from crucible.pipelines.store import fsio
from crucible.sandbox.engine import ensure_engine

log = logging.getLogger(__name__)
STATS_VERSION = 1
_WRITER_ID = uuid.uuid4().hex[:8]


class NoEngineLeft(RuntimeError):
    """Every engine of the pool was drained: nothing can run."""


@dataclass(frozen=True)
class EngineSpec:
    name: str
    host: str | None  # None: DOCKER_HOST or the local socket (crucible.sandbox.engine.ensure_engine)
    capacity: int
    tls: dict | None  # {"ca", "cert", "key"} file paths for tcp:// with --tlsverify

    def __post_init__(self):
        if self.capacity < 1:
            raise ValueError(f"engine {self.name}: capacity {self.capacity} < 1")
        if self.tls is not None and not (self.host or "").startswith("tcp://"):
            raise ValueError(f"engine {self.name}: tls is for tcp:// hosts, not {self.host!r}")


def specs_from_config(engines: Iterable) -> list[EngineSpec]:
    """EngineSpecs from the resolved ``sandbox.engines`` list (each item's keys are required by the schema)."""
    out = [EngineSpec(name=e["host"] or "local", host=e["host"], capacity=int(e["capacity"]),
                      tls=dict(e["tls"]) if e["tls"] else None) for e in engines]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"sandbox.engines names an engine twice: {names}")
    return out


def connect_engine(spec: EngineSpec, timeout: int = 120):
    """A docker SDK client for ``spec`` that answered a ping (TLS client certificates for ``tcp://``)."""

    if spec.host is None:
        return ensure_engine(allow_start=True)[0]
    tls = False
    if spec.tls:
        tls = docker.tls.TLSConfig(client_cert=(spec.tls["cert"], spec.tls["key"]), ca_cert=spec.tls["ca"],
                                   verify=True)
    client = docker.DockerClient(base_url=spec.host, tls=tls, timeout=timeout)
    client.ping()
    return client


def ping_engine(spec: EngineSpec, timeout_s: float) -> bool:
    """Does the engine answer within ``timeout_s``? (a fresh client: the work's may be stuck in a call)"""
    try:
        client = connect_engine(spec, timeout=max(1, int(timeout_s))) if spec.host else None
        if client is None:
            client = docker.from_env(timeout=max(1, int(timeout_s)))
            client.ping()
        client.close()
        return True
    except Exception:  # noqa: BLE001 - any failure to answer is "not answering"
        return False


@dataclass
class Engine:
    spec: EngineSpec
    client: object
    in_flight: int = 0
    done: int = 0
    failed: int = 0
    queue_wait_s: list = field(default_factory=list)
    busy_s: float = 0.0  # slot-seconds held
    holds: set = field(default_factory=set)  # env keys / images that ran here
    drained: str | None = None  # why, once drained
    memo: dict = field(default_factory=dict)  # the caller's per-engine state (e.g. env specs built here)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def load(self) -> float:
        return self.in_flight / self.spec.capacity


@dataclass
class Lease:
    engine: Engine
    t0: float
    wanted: str | None


class EnginePool:
    """Engines with capacities; ``affinity`` (placement on an engine that holds what the work wants) and
    ``drain`` (take a silent engine out and retry its work elsewhere) are both on in production and switch
    off only to measure what they are worth."""

    def __init__(self, engines: list[Engine], *, ping: Callable[[Engine], bool], affinity: bool, drain: bool,
                 stats_path: str | None = None, clock: Callable[[], float] = time.monotonic):
        if not engines:
            raise ValueError("an engine pool needs at least one engine")
        self.engines = {e.name: e for e in engines}
        self._ping, self.affinity, self.drain_on, self.stats_path = ping, affinity, drain, stats_path
        self._clock = clock
        self._t0 = clock()
        self._cv = threading.Condition()

    def place(self, wanted: str | None) -> Engine | None:
        """The engine the next unit wanting ``wanted`` goes to now (None: every live one is full)."""
        live = [e for e in self.engines.values() if e.drained is None]
        if not live:
            raise NoEngineLeft("every engine was drained: " + "; ".join(
                f"{e.name}: {e.drained}" for e in self.engines.values()))
        free = [e for e in live if e.in_flight < e.spec.capacity]
        if not free:
            return None
        if self.affinity and wanted is not None:
            holders = [e for e in free if wanted in e.holds]
            if holders:
                return min(holders, key=lambda e: (e.load, e.done))
        return min(free, key=lambda e: (e.load, e.done, e.name))

    def acquire(self, wanted: str | None = None) -> Lease:
        t0 = self._clock()
        with self._cv:
            while (eng := self.place(wanted)) is None:
                self._cv.wait(timeout=1.0)
            eng.in_flight += 1
            eng.queue_wait_s.append(self._clock() - t0)
        return Lease(eng, self._clock(), wanted)

    def release(self, lease: Lease, ok: bool, holds: Iterable[str] = ()) -> None:
        eng = lease.engine
        with self._cv:
            eng.in_flight -= 1
            eng.busy_s += self._clock() - lease.t0
            if ok:
                eng.done += 1
                eng.holds.update([lease.wanted] if lease.wanted else [])
                eng.holds.update(holds)
            else:
                eng.failed += 1
            self._cv.notify_all()
        self.write_stats()

    def alive(self, eng: Engine) -> bool:
        return self._ping(eng)

    def live(self) -> list[Engine]:
        return [e for e in self.engines.values() if e.drained is None]

    def drain(self, eng: Engine, reason: str) -> None:
        with self._cv:
            if eng.drained is None:
                log.warning("engine %s drained: %s", eng.name, reason)
                eng.drained = reason[:500]
            self._cv.notify_all()

    def stats(self) -> dict:
        wall = max(self._clock() - self._t0, 1e-9)
        with self._cv:
            engines = {e.name: {
                "capacity": e.spec.capacity, "in_flight": e.in_flight, "done": e.done, "failed": e.failed,
                "queued": len(e.queue_wait_s),
                "queue_wait_s_mean": round(sum(e.queue_wait_s) / len(e.queue_wait_s), 4) if e.queue_wait_s else 0.0,
                "queue_wait_s_max": round(max(e.queue_wait_s, default=0.0), 4),
                "busy_share": round(e.busy_s / (wall * e.spec.capacity), 4), "drained": e.drained,
            } for e in self.engines.values()}
        return {"engines": engines, "wall_s": round(wall, 3)}

    def write_stats(self) -> str | None:
        """Rewrite this pool's stats file (atomic; one file per pool, so workers never collide)."""
        if not self.stats_path:
            return None
        rec = {"version": STATS_VERSION, "written_at": time.time(), "pid": os.getpid(), **self.stats()}
        fsio.write_bytes_atomic(self.stats_path, json.dumps(rec, sort_keys=True).encode())
        return self.stats_path


def stats_path_in(stats_dir: str) -> str:
    return fsio.join(stats_dir, f"{os.getpid()}-{_WRITER_ID}-{uuid.uuid4().hex[:8]}.json")


def run_on_pool(pool: EnginePool, wanted: str | None, items: list, work: Callable[[Engine, list], Iterator], *,
                is_infra: Callable[[object], bool], key: Callable[[object], str],
                holds: Callable[[object], Iterable[str]]) -> Iterator[tuple]:
    """Run ``work(engine, items_left)`` (yielding ``(item, result)`` in item order) on an engine of the pool and
    yield ``(item, result, attempts)`` once per item. When ``work`` raises, or yields a result ``is_infra``
    calls an infrastructure failure, and the engine does not answer a ping: the engine is drained, and that
    item and the ones after it run again on another engine (``attempts`` lists the engines given up on, each
    with why). With ``pool.drain_on`` False, an engine that answers, or no live engine left, the failure stands
    as it is (an exception is raised again). ``holds(result)``: what the engine holds after it (its env image)."""
    left, attempts = list(items), []
    while left:
        lease = pool.acquire(wanted)
        eng, ok, held, moved = lease.engine, True, set(), False
        steps = work(eng, left)
        try:
            for item, result in steps:
                if is_infra(result) and pool.drain_on and not pool.alive(eng):
                    pool.drain(eng, f"no answer after an infra failure of {key(item)}")
                    attempts.append({"engine": eng.name, "kind": "infra", "reason": _why(result)})
                    ok = False
                    if pool.live():
                        moved = True
                        break
                held.update(holds(result) or ())
                yield item, result, list(attempts)
                attempts = []
                left = left[1:]
        except Exception as exc:  # noqa: BLE001 - re-raised unless the engine is gone and another is left
            gone = pool.drain_on and not pool.alive(eng)
            if gone:
                pool.drain(eng, f"{type(exc).__name__}: {exc}")
            if not gone or not pool.live():
                pool.release(lease, ok=False)
                raise
            attempts.append({"engine": eng.name, "kind": "infra", "reason": f"{type(exc).__name__}: {exc}"[:500]})
            ok, moved = False, True
        except GeneratorExit:  # the caller stopped reading (e.g. a validation cap fired): the slot goes back
            pool.release(lease, ok=False)
            raise
        finally:
            steps.close()
        pool.release(lease, ok=ok, holds=held)
        if moved:
            log.warning("%d item(s) of %s move off engine %s", len(left), wanted, eng.name)


def _why(result) -> str:
    row = getattr(result, "row", None)
    if isinstance(row, dict):  # a validation row says why in reason, a trajectory row or grade in grade_reason
        return str(row.get("reason") or row.get("grade_reason"))[:500]
    return str(result)[:500]


def report_engine_metrics(stats: dict, namespace: str = "crucible.sandbox.engines") -> None:
    """The pool's per-engine state as Beam gauges (``in_flight@<engine>``, ``done``, ``failed``, ``queued``,
    ``drained``, ``busy_share_permille``, ``queue_wait_ms_max``); call from a DoFn's ``process``."""

    for name, e in stats["engines"].items():
        for k in ("in_flight", "done", "failed", "queued"):
            Metrics.gauge(namespace, f"{k}@{name}").set(int(e[k]))
        Metrics.gauge(namespace, f"drained@{name}").set(int(e["drained"] is not None))
        Metrics.gauge(namespace, f"busy_share_permille@{name}").set(int(round(e["busy_share"] * 1000)))
        Metrics.gauge(namespace, f"queue_wait_ms_max@{name}").set(int(e["queue_wait_s_max"] * 1000))


_POOLS: dict[str, EnginePool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(engines: Iterable, *, ping_timeout_s: float, stats_dir: str | None) -> EnginePool:
    """One pool per process and engine list (Beam runs DoFn instances in threads of one process: capacity
    counts across them). Engines that do not answer at start are drained at once."""
    specs = specs_from_config(engines)
    key = json.dumps([s.__dict__ for s in specs], sort_keys=True) + f"|{stats_dir}"
    with _POOLS_LOCK:
        if key not in _POOLS:
            members = []
            for s in specs:
                try:
                    members.append(Engine(s, connect_engine(s)))
                except Exception as exc:  # noqa: BLE001 - an engine down at start is drained, not fatal
                    members.append(Engine(s, None, drained=f"no answer at start: {type(exc).__name__}: {exc}"[:500]))
            if all(m.drained for m in members):
                raise NoEngineLeft("no engine of sandbox.engines answers: " + "; ".join(m.drained for m in members))
            _POOLS[key] = EnginePool(members, ping=lambda e: ping_engine(e.spec, ping_timeout_s),
                                     affinity=True, drain=True,
                                     stats_path=stats_path_in(stats_dir) if stats_dir else None)
        return _POOLS[key]
