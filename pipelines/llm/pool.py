"""The model pool: several OpenAI-compatible endpoints kept busy, as verl's server manager does.

- Routing: a trajectory's first turn goes to the endpoint with the fewest outstanding requests (in flight
  plus queued; ties round robin); its later turns, named by the same session key, go to that endpoint
  again, so the server's prefix cache holds the conversation so far (``sticky``).
- Bounded concurrency: each endpoint has ``max_concurrency`` slots (an ``asyncio.Semaphore``); a request
  waits in its endpoint's queue for a slot, and the wait is measured.
- Health (``failover``): an endpoint that refuses or resets a connection is taken out at once, one that
  answers 5xx ``down_after_failures`` times in a row too; requests queued on it are sent elsewhere and
  the failed ones are retried elsewhere (the retry policy asks :meth:`EndpointPool.failover_wait`), its
  sessions move to another endpoint, and it is probed (``GET /models``) every ``probe_interval_s`` until
  it answers, then put back. Every endpoint is also probed every ``health_interval_s``. With one endpoint
  there is nowhere else to go: nothing is taken out.

All state changes happen on the process's event loop thread (:mod:`crucible.pipelines.llm.aio`); :meth:`stats`
may be read from any thread.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from crucible.pipelines.llm.results import is_endpoint_failure

T = TypeVar("T")


@dataclass(frozen=True)
class PoolSettings:
    """The ``llm`` section's pool keys (defaults live in schemas/config_llm.json)."""

    max_concurrency: int
    sticky: bool
    failover: bool
    down_after_failures: int
    health_interval_s: float
    probe_interval_s: float
    probe_timeout_s: float
    sticky_sessions_max: int


class EndpointDown(RuntimeError):
    """A request queued on an endpoint that was taken out meanwhile: sent elsewhere (transient)."""

    def __init__(self, url: str):
        super().__init__(f"endpoint {url} was taken out while the request waited for a slot")
        self.endpoint_url = url


class Endpoint:
    """One server: its client, its slots, its health and its accounting."""

    def __init__(self, url: str, client: Any, max_concurrency: int, clock: Callable[[], float]):
        self.url, self.client, self.cap, self._clock = url, client, max_concurrency, clock
        self.sem: asyncio.Semaphore | None = None  # made on the loop that uses it
        self.up = True
        self.in_flight = self.queued = 0
        self.requests = self.done = self.failed = self.consecutive_failures = 0
        self.taken_out = self.restored = 0
        self.queue_wait_s = self.queue_wait_max_s = 0.0
        self.busy_s = self.slot_s = 0.0
        self.first_t: float | None = None
        self.last_t = 0.0
        self.probe_task: asyncio.Task | None = None

    @property
    def outstanding(self) -> int:
        return self.in_flight + self.queued

    def tick(self) -> float:
        """Account the time since the last change of ``in_flight``; call before changing it."""
        now = self._clock()
        if self.first_t is None:
            self.first_t = now
        dt = now - self.last_t if self.last_t else 0.0
        if self.in_flight > 0:
            self.busy_s += dt
        self.slot_s += self.in_flight * dt
        self.last_t = now
        return now

    def snapshot(self) -> dict:
        now = self._clock()
        elapsed = (now - self.first_t) if self.first_t is not None else 0.0
        tail = (now - self.last_t) if self.last_t else 0.0
        busy = self.busy_s + (tail if self.in_flight > 0 else 0.0)
        slots = self.slot_s + self.in_flight * tail
        started = self.requests - self.queued
        return {
            "up": self.up, "in_flight": self.in_flight, "queued": self.queued, "requests": self.requests,
            "done": self.done, "failed": self.failed, "taken_out": self.taken_out, "restored": self.restored,
            "queue_wait_s_mean": round(self.queue_wait_s / started, 4) if started > 0 else 0.0,
            "queue_wait_s_max": round(self.queue_wait_max_s, 4),
            "busy_share": round(busy / elapsed, 4) if elapsed > 0 else 0.0,
            "slot_share": round(slots / (elapsed * self.cap), 4) if elapsed > 0 else 0.0,
        }


class EndpointPool:
    def __init__(self, urls_clients: list[tuple[str, Any]], settings: PoolSettings,
                 probe: Callable[[Endpoint], Awaitable[bool]], clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.endpoints = [Endpoint(u, c, settings.max_concurrency, clock) for u, c in urls_clients]
        self._by_url = {e.url: e for e in self.endpoints}
        self._probe = probe
        self._rr = itertools.count()
        self._sessions: OrderedDict[str, Endpoint] = OrderedDict()
        self._lock = threading.Lock()  # stats() from other threads
        self._health_task: asyncio.Task | None = None
        self.closed = False
        self.counts = {"first_turns": 0, "sticky_turns": 0, "moved_sessions": 0, "rerouted": 0}

    # -- routing -------------------------------------------------------------------------------------
    @property
    def guarded(self) -> bool:
        """Health matters: failover is on and there is somewhere else to go."""
        return self.settings.failover and len(self.endpoints) > 1

    def _candidates(self, avoid: str | None) -> list[Endpoint]:
        eps = [e for e in self.endpoints if e.up] if self.guarded else list(self.endpoints)
        eps = eps or list(self.endpoints)  # all out: try them anyway (the retry policy backs off)
        if avoid is not None and self.guarded and len(eps) > 1:
            eps = [e for e in eps if e.url != avoid] or eps
        return eps

    def choose(self, session: str | None, avoid: str | None = None) -> Endpoint:
        """The endpoint for one attempt: the session's own while it is usable, else the least outstanding."""
        eps = self._candidates(avoid)
        sticky = self.settings.sticky and session is not None
        own = self._sessions.get(session) if sticky else None
        if own is not None and own in eps:
            self._sessions.move_to_end(session)
            self.counts["sticky_turns"] += 1
            return own
        start = next(self._rr) % len(eps)
        ep = min(eps[start:] + eps[:start], key=lambda e: e.outstanding)  # first of equals: round robin
        if sticky and (own is None or not own.up):
            self.counts["moved_sessions" if own is not None else "first_turns"] += 1
            self._sessions[session] = ep
            self._sessions.move_to_end(session)
            while len(self._sessions) > self.settings.sticky_sessions_max:
                self._sessions.popitem(last=False)
        elif own is not None:
            self.counts["rerouted"] += 1  # a retry away from an endpoint that just failed; the session stays
        return ep

    # -- one request ---------------------------------------------------------------------------------
    async def send(self, session: str | None, avoid: str | None,
                   call: Callable[[Endpoint], Awaitable[T]]) -> tuple[T, Endpoint, float]:
        """Run ``call(endpoint)`` in a slot of the chosen endpoint; ``(result, endpoint, queue wait)``.
        A failure is accounted (and may take the endpoint out) and re-raised with ``endpoint_url`` set."""
        self._start_health()
        ep = self.choose(session, avoid)
        if ep.sem is None:
            ep.sem = asyncio.Semaphore(ep.cap)
        with self._lock:
            ep.queued += 1
            ep.requests += 1
        t0 = ep._clock()
        try:
            await ep.sem.acquire()
        finally:
            with self._lock:
                ep.queued -= 1
        try:
            wait = ep._clock() - t0
            with self._lock:
                ep.queue_wait_s += wait
                ep.queue_wait_max_s = max(ep.queue_wait_max_s, wait)
            if self.guarded and not ep.up and any(e.up for e in self.endpoints):
                raise EndpointDown(ep.url)
            with self._lock:
                ep.tick()
                ep.in_flight += 1
            try:
                result = await call(ep)
            except BaseException as exc:
                self._failed(ep, exc)
                raise
            finally:
                with self._lock:
                    ep.tick()
                    ep.in_flight -= 1
        finally:
            ep.sem.release()
        with self._lock:
            ep.done += 1
            ep.consecutive_failures = 0
        return result, ep, wait

    def _failed(self, ep: Endpoint, exc: BaseException) -> None:
        try:
            exc.endpoint_url = ep.url  # type: ignore[attr-defined]
        except AttributeError:
            pass
        with self._lock:
            ep.failed += 1
        if not self.guarded or not is_endpoint_failure(exc):
            return
        ep.consecutive_failures += 1
        refused = not hasattr(exc, "status_code")  # a connection error: the server is gone
        if refused or ep.consecutive_failures >= self.settings.down_after_failures:
            self.take_out(ep)

    def failover_wait(self, exc: BaseException, seconds: float) -> float:
        """The retry policy's wait hook: no backoff when the failed endpoint is out and another is up."""
        url = getattr(exc, "endpoint_url", None)
        ep = self._by_url.get(url) if url else None
        if self.guarded and ep is not None and not ep.up and any(e.up for e in self.endpoints):
            return 0.0
        return seconds

    # -- health --------------------------------------------------------------------------------------
    def take_out(self, ep: Endpoint) -> None:
        if not ep.up:
            return
        with self._lock:
            ep.up = False
            ep.taken_out += 1
        if ep.probe_task is None or ep.probe_task.done():
            ep.probe_task = asyncio.get_running_loop().create_task(_probe_back(weakref.ref(self), ep))

    async def probe_ok(self, ep: Endpoint) -> bool:
        try:
            return bool(await asyncio.wait_for(self._probe(ep), self.settings.probe_timeout_s))
        except Exception:  # refused, reset, timed out, 5xx: not healthy (the probe's only answer)
            return False

    def _start_health(self) -> None:
        if self.guarded and self._health_task is None and not self.closed:
            self._health_task = asyncio.get_running_loop().create_task(_health_loop(weakref.ref(self)))

    async def aclose(self) -> None:
        self.closed = True
        tasks = [t for t in [self._health_task, *(e.probe_task for e in self.endpoints)] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- accounting ----------------------------------------------------------------------------------
    def stats(self) -> dict:
        with self._lock:
            return {"endpoints": {e.url: e.snapshot() for e in self.endpoints},
                    "routing": dict(self.counts, sessions=len(self._sessions))}


# The pool's background tasks hold it only weakly: a client dropped without close() is collected and its
# tasks end, instead of probing its endpoints for the rest of the process.


async def _probe_back(ref: weakref.ref[EndpointPool], ep: Endpoint) -> None:
    """Probe an endpoint that is out every ``probe_interval_s`` until it answers, then put it back."""
    while True:
        pool = ref()
        if pool is None or pool.closed or ep.up:
            return
        interval = pool.settings.probe_interval_s
        del pool
        await asyncio.sleep(interval)
        pool = ref()
        if pool is None or pool.closed:
            return
        if await pool.probe_ok(ep):
            with pool._lock:
                ep.up = True
                ep.restored += 1
                ep.consecutive_failures = 0
        del pool


async def _health_loop(ref: weakref.ref[EndpointPool]) -> None:
    """Probe every endpoint that is in every ``health_interval_s``; one that does not answer is taken out."""
    while True:
        pool = ref()
        if pool is None or pool.closed:
            return
        interval = pool.settings.health_interval_s
        del pool
        await asyncio.sleep(interval)
        pool = ref()
        if pool is None or pool.closed:
            return
        for ep in [e for e in pool.endpoints if e.up]:
            if not pool.closed and not await pool.probe_ok(ep):
                pool.take_out(ep)
        del pool
