"""Where the client's accounting goes: Beam metrics (per call and per endpoint, from the DoFn that calls the
client) and the stats file of a pool (``<out_dir>/stats/llm_pool/*.json``) that ``crucible stats`` reads."""

from __future__ import annotations

import json
import os
import time
import uuid

from pipelines.llm.results import ChatResult
from pipelines.store import fsio

STATS_VERSION = 1
_WRITER_ID = uuid.uuid4().hex[:8]


def report_beam_metrics(result: ChatResult, namespace: str = "crucible.llm") -> None:
    """Emit one call's accounting as Beam metrics. Call it from ``DoFn.process`` (the thread Beam
    attributes metrics to), e.g. after collecting results from a thread pool."""
    from apache_beam.metrics import Metrics

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
    from apache_beam.metrics import Metrics

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


def write_pool_stats(stats_dir: str, stats: dict) -> str:
    """Write (atomically) this client's stats file; one file per client, so workers never collide."""
    path = fsio.join(stats_dir, f"{os.getpid()}-{_WRITER_ID}-{uuid.uuid4().hex[:8]}.json")
    fsio.write_bytes_atomic(path, json.dumps(pool_stats_record(stats), sort_keys=True).encode())
    return path
