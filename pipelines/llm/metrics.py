"""Where the client's accounting goes: Beam metrics (per call and per endpoint, from the DoFn that calls the
client) and the stats file of a pool (``<out_dir>/stats/llm_pool/*.json``) that ``crucible stats`` reads.

A DoFn's LLM calls often run on threads Beam does not attribute metrics to (a stage's thread pool, a capped
rollout's thread): the client keeps each call in its :class:`CallLog`, and the DoFn reports what is there from
``process`` or ``finish_bundle`` (:func:`report_calls`). A log is per client, so DoFns sharing one client
report each call once (under whichever step drained it). The stats file is rewritten in place
(:func:`flush_pool_stats`) at each bundle's end and at close: Beam may never call ``teardown``."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
import weakref
from collections import deque

from apache_beam.metrics import Metrics

from crucible.pipelines.llm.results import ChatResult
from crucible.pipelines.store import fsio

STATS_VERSION = 1
_WRITER_ID = uuid.uuid4().hex[:8]
CALL_LOG_MOST = 4096  # a bound on memory when nobody drains the log (a CLI run), not a setting
_FILES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> its stats file
_FILES_LOCK = threading.Lock()


class CallLog:
    """The calls of one client since the last :meth:`drain` (copies: a structured call's result is changed
    after its generations are logged), at most ``CALL_LOG_MOST``; older ones beyond it are counted in
    ``dropped`` and reported as ``calls_unreported``."""

    def __init__(self, most: int = CALL_LOG_MOST):
        self._calls: deque = deque(maxlen=most)
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, result: ChatResult) -> ChatResult:
        with self._lock:
            if len(self._calls) == self._calls.maxlen:
                self.dropped += 1
            self._calls.append(dataclasses.replace(result))
        return result

    def drain(self) -> tuple[list[ChatResult], int]:
        with self._lock:
            out, dropped = list(self._calls), self.dropped
            self._calls.clear()
            self.dropped = 0
        return out, dropped


def report_calls(client, namespace: str = "crucible.llm") -> int:
    """Report the calls ``client`` made since the last report (any thread) as Beam metrics
    (:func:`report_beam_metrics` each); call from ``DoFn.process`` or ``finish_bundle``. Returns how many."""

    calls, dropped = client.calls.drain()
    for res in calls:
        report_beam_metrics(res, namespace)
    if dropped:
        Metrics.counter(namespace, "calls_unreported").inc(dropped)
    return len(calls)


def report_beam_metrics(result: ChatResult, namespace: str = "crucible.llm") -> None:
    """Emit one call's accounting as Beam metrics. Call it from ``DoFn.process`` (the thread Beam
    attributes metrics to), e.g. after collecting results from a thread pool."""

    Metrics.counter(namespace, "calls").inc()
    if result.cache_hit:
        Metrics.counter(namespace, "cache_hits").inc()
    else:
        Metrics.counter(namespace, "prompt_tokens").inc(int(result.usage.get("prompt_tokens", 0)))
        Metrics.counter(namespace, "completion_tokens").inc(int(result.usage.get("completion_tokens", 0)))
        Metrics.distribution(namespace, "latency_ms").update(int(result.latency_s * 1000))
        Metrics.distribution(namespace, "queue_wait_ms").update(int(result.queue_wait_s * 1000))
        if result.endpoint:
            Metrics.counter(namespace, f"requests@{result.endpoint}").inc()
    if result.retries:
        Metrics.counter(namespace, "retries").inc(result.retries)
    if result.error:
        Metrics.counter(namespace, "structured_errors").inc()


def report_pool_metrics(stats: dict, namespace: str = "crucible.llm.pool") -> None:
    """The pool's per-endpoint state as Beam gauges (``in_flight@<url>``, ``queued``, ``done``, ``failed``,
    ``up``, ``busy_share`` and ``slot_share`` in per mille); call from ``DoFn.finish_bundle`` with
    ``client.stats()``."""

    for url, e in stats["endpoints"].items():
        for key in ("in_flight", "queued", "done", "failed"):
            Metrics.gauge(namespace, f"{key}@{url}").set(int(e[key]))
        Metrics.gauge(namespace, f"up@{url}").set(int(bool(e["up"])))
        for key in ("busy_share", "slot_share"):
            Metrics.gauge(namespace, f"{key}_permille@{url}").set(int(round(e[key] * 1000)))


def pool_stats_record(stats: dict) -> dict:
    """What one client writes: its per-endpoint stats, routing counts and totals, stamped."""
    return {"version": STATS_VERSION, "written_at": time.time(), "pid": os.getpid(),
            "endpoints": stats["endpoints"], "routing": stats["routing"],
            "totals": {k: stats.get(k, 0) for k in ("calls", "requests", "retries", "failures", "cache_hits")}}


def write_pool_stats(stats_dir: str, stats: dict, path: str | None = None) -> str:
    """Write (atomically) a client's stats file: ``path`` again, or a new one (one file per client, so workers
    never collide)."""
    path = path or fsio.join(stats_dir, f"{os.getpid()}-{_WRITER_ID}-{uuid.uuid4().hex[:8]}.json")
    fsio.write_bytes_atomic(path, json.dumps(pool_stats_record(stats), sort_keys=True).encode())
    return path


def flush_pool_stats(client) -> str | None:
    """Rewrite ``client``'s one stats file with its stats now (none before its first request, or without a
    ``stats_dir``); call at a bundle's or stage's end, the client calls it at close."""
    if not client.stats_dir or not client.stats()["requests"]:
        return None
    with _FILES_LOCK:
        path = write_pool_stats(client.stats_dir, client.stats(), _FILES.get(client))
        _FILES[client] = path
    return path
