"""The model pool under rollout load: 4 fake OpenAI-compatible endpoints, each its own process, replies
taking 0.5-5 s (drawn uniformly, like real generations), rollouts of several turns with a tool call between
turns, C rollouts in flight as coroutines on the client's one event loop.

Per run it reports
- ``fraction_of_bound``: the work the slots did (server latency + tool time of every turn) over the time
  the C slots were open, i.e. ``throughput_rps`` (requests per second of open slots) over ``bound_rps`` =
  C / mean(latency + tool time) (1.0 = no client overhead, no idle slot); killed requests' time is lost work;
- ``client_cpu_ms_per_request``: CPU seconds of this process (the client; servers run elsewhere) per request;
  ``overhead_ms_mean``: observed latency minus the server's drawn latency (client + loopback + fake server);
- ``sticky_share``: later turns on the endpoint of their rollout's first turn;
- with ``kill_at_s``: one endpoint SIGKILLed mid-run; ``rollouts_lost`` must stay 0.

Run: ``python -m benchmarks.bench_llm_pool [--quick]`` (about 90 s quick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from crucible.pipelines.llm import aio
from crucible.pipelines.llm.client import LLMClient, LLMError

REPO = Path(__file__).resolve().parents[1]
LATENCY = (0.5, 5.0)
TOOL_S = (0.01, 0.1)


def start_servers(n: int, seed: int, latency: tuple[float, float] = LATENCY) -> list[tuple[subprocess.Popen, str]]:
    out = []
    for i in range(n):
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.fake_llm_server", "--latency", *map(str, latency),
                                 "--seed", str(seed + i)], stdout=subprocess.PIPE, text=True, cwd=REPO)
        line = proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"fake server {i} did not start: {line}")
        out.append((proc, line[1]))
    return out


def stop_servers(servers) -> None:
    for proc, _ in servers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, _ in servers:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Load:
    """C slots, each running rollouts back to back until ``duration_s``; a rollout finishes once started."""

    def __init__(self, client: LLMClient, concurrency: int, turns: int, duration_s: float, seed: int):
        self.client, self.c, self.turns, self.duration_s = client, concurrency, turns, duration_s
        self.rng = random.Random(seed)
        self.work_s = self.open_s = 0.0
        self.requests = self.rollouts = self.lost = 0
        self.later = self.later_same = 0
        self.overhead_s = 0.0  # client-observed latency minus the server's drawn latency, summed

    async def rollout(self, slot: int, n: int) -> float:
        """One rollout; returns the work done (server latency + tool time of its turns)."""
        msgs = [{"role": "system", "content": "You are a research agent."},
                {"role": "user", "content": f"question {slot}-{n}"}]
        session = f"{slot}-{n}"
        eps, work = [], 0.0
        for t in range(self.turns):
            res = await self.client.achat(msgs, session=session, max_tokens=64)
            self.requests += 1
            eps.append(res.endpoint)
            work += float(res.raw["x_fake_latency_s"])
            self.overhead_s += res.latency_s - float(res.raw["x_fake_latency_s"])
            tool = self.rng.uniform(*TOOL_S)  # the tool call between turns
            await asyncio.sleep(tool)
            work += tool
            msgs = msgs + [res.message, {"role": "user", "content": f"observation {t}"}]
        self.later += len(eps) - 1
        self.later_same += sum(e == eps[0] for e in eps[1:])
        return work

    async def slot(self, slot: int, t0: float) -> None:
        n = 0
        while time.monotonic() - t0 < self.duration_s:
            try:
                work = await self.rollout(slot, n)  # not `+= await`: that reads the sum before awaiting
                self.work_s += work
                self.rollouts += 1
            except LLMError:
                self.lost += 1
            n += 1
        self.open_s += time.monotonic() - t0

    async def run(self, kill=None) -> float:
        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(self.slot(i, t0)) for i in range(self.c)]
        if kill is not None:
            at_s, fn = kill
            await asyncio.sleep(at_s)
            fn()
        await asyncio.gather(*tasks)
        return time.monotonic() - t0


def bench_pool(concurrency: int, duration_s: float, turns: int, endpoints: int = 4,
               kill_at_s: float | None = None, seed: int = 0, latency: tuple[float, float] = LATENCY) -> dict:
    servers = start_servers(endpoints, seed=100 + seed, latency=latency)
    try:
        urls = [u for _, u in servers]
        client = LLMClient(urls, "m", cache=False, max_concurrency=concurrency, max_retries=5, backoff_initial_s=0.2,
                           backoff_max_s=2.0, timeout_s=60)
        load = Load(client, concurrency, turns, duration_s, seed)
        killed = servers[0][0]
        cpu0 = time.process_time()
        wall = aio.submit(load.run((kill_at_s, killed.kill) if kill_at_s is not None else None)).result()
        cpu = time.process_time() - cpu0
        st = client.stats()
        client.close()
    finally:
        stop_servers(servers)
    mean_step = load.work_s / max(1, load.requests)
    return {
        "bench": "llm_pool", "concurrency": concurrency, "endpoints": endpoints, "turns": turns,
        "latency_s": list(latency), "tool_s": list(TOOL_S), "wall_s": round(wall, 2), "requests": load.requests,
        "rollouts": load.rollouts, "rollouts_lost": load.lost,
        # requests per second while the C slots were open (the tail after the deadline, when slots close one
        # by one, is in neither number); throughput / bound = fraction_of_bound
        "throughput_rps": round(load.requests * concurrency / load.open_s, 2) if load.open_s else 0.0,
        "bound_rps": round(concurrency / mean_step, 2),
        "fraction_of_bound": round(load.work_s / load.open_s, 3) if load.open_s else 0.0,
        "client_cpu_ms_per_request": round(cpu * 1000 / max(1, load.requests), 3),
        # per request: observed latency - drawn latency (client, loopback and the fake server's own time)
        "overhead_ms_mean": round(load.overhead_s * 1000 / max(1, load.requests), 2),
        "sticky_share": round(load.later_same / load.later, 3) if load.later else None,
        "killed_endpoint_at_s": kill_at_s, "retries": st["retries"], "failures": st["failures"],
        "per_endpoint": {u: {k: e[k] for k in ("done", "failed", "up", "taken_out", "busy_share", "queue_wait_s_max")}
                         for u, e in st["endpoints"].items()},
    }


def main(argv: list[str] | None = None) -> list[dict]:
    """Print and return the result rows (``python -m benchmarks`` stores the returned list)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (about 90 s in all)")
    a = ap.parse_args([] if argv is None else argv)
    duration, turns = (12.0, 3) if a.quick else (60.0, 4)
    rows = []
    for c in (64, 256):
        rows.append(bench_pool(c, duration, turns))
        print(json.dumps(rows[-1]), flush=True)
    rows.append(bench_pool(64, duration, turns, kill_at_s=duration / 2, seed=1))
    print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
    os._exit(0)  # the client's loop thread is a daemon; nothing to wait for
