"""LLM client benchmarks against the fake OpenAI-compatible server (loopback, in-process threads).

1. Overhead per call: LLMClient.chat vs the bare openai SDK vs a raw keep-alive HTTP POST, with zero
   server latency (so the numbers are client + loopback + fake-server cost). Cache off.
2. Achieved concurrency: fixed server latency L, per-endpoint cap C; throughput as a fraction of the
   ideal C/L (1.0 = the client keeps C requests in flight all the time).

Prints one JSON object per line. Run: ``python -m benchmarks.bench_llm_client [--quick]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from urllib.parse import urlparse

import openai

from crucible.pipelines.llm.client import LLMClient
from tests.support.fake_llm_server import FakeOpenAIServer

MSG = [{"role": "user", "content": "benchmark prompt " * 8}]


def _stats_ms(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"mean_ms": round(statistics.fmean(s) * 1000, 3), "p50_ms": round(s[len(s) // 2] * 1000, 3),
            "p95_ms": round(s[int(len(s) * 0.95) - 1] * 1000, 3)}


def bench_overhead(n: int) -> list[dict]:
    out = []
    with FakeOpenAIServer(latency_s=0.0) as srv:
        u = urlparse(srv.base_url)
        body = json.dumps({"model": "m", "messages": MSG, "temperature": 0.7, "max_tokens": 64}).encode()
        conn = http.client.HTTPConnection(u.hostname, u.port)

        def raw_call():
            conn.request("POST", u.path + "/chat/completions", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            json.loads(r.read())

        sdk = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        client = LLMClient([srv.base_url], "m", cache=False, default_params={"temperature": 0.7, "max_tokens": 64})
        fns = {
            "raw_http": raw_call,
            "openai_sdk": lambda: sdk.chat.completions.create(model="m", messages=MSG, temperature=0.7, max_tokens=64),
            "llm_client": lambda: client.chat(MSG),
        }
        results = {}
        for name, fn in fns.items():
            for _ in range(min(20, n)):  # warm-up
                fn()
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
            results[name] = _stats_ms(samples)
        conn.close()
        for name, st in results.items():
            out.append({"bench": "llm_call_overhead", "path": name, "calls": n, **st})
        out.append({
            "bench": "llm_call_overhead", "path": "llm_client_minus_raw_http", "calls": n,
            "overhead_mean_ms": round(results["llm_client"]["mean_ms"] - results["raw_http"]["mean_ms"], 3),
            "overhead_vs_sdk_mean_ms": round(results["llm_client"]["mean_ms"] - results["openai_sdk"]["mean_ms"], 3),
        })
    return out


def bench_concurrency(latency_s: float, cap: int, endpoints: int, calls: int) -> dict:
    with ExitStack() as stack:
        servers = [stack.enter_context(FakeOpenAIServer(latency_s=latency_s)) for _ in range(endpoints)]
        client = LLMClient([s.base_url for s in servers], "m", cache=False, max_concurrency=cap)
        msgs = [[{"role": "user", "content": f"q{i}"}] for i in range(calls)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(cap * endpoints * 2) as ex:  # more callers than slots: the cap must hold
            list(ex.map(client.chat, msgs))
        wall = time.perf_counter() - t0
        ideal = cap * endpoints / latency_s
        return {
            "bench": "llm_concurrency", "latency_ms": latency_s * 1000, "cap_per_endpoint": cap,
            "endpoints": endpoints, "calls": calls, "wall_s": round(wall, 3),
            "throughput_rps": round(calls / wall, 2), "ideal_rps": round(ideal, 2),
            "fraction_of_ideal": round(calls / wall / ideal, 3),
            "peak_in_flight": [s.peak_in_flight for s in servers],
        }


def main(argv: list[str] | None = None) -> list[dict]:
    """Print and return the result rows (``python -m benchmarks`` stores the returned list)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls")
    a = ap.parse_args([] if argv is None else argv)
    n = 100 if a.quick else 400
    rows = bench_overhead(n)
    for row in rows:
        print(json.dumps(row), flush=True)
    k = 4 if a.quick else 10
    for latency, cap, eps in ((0.05, 1, 1), (0.05, 8, 1), (0.05, 32, 1), (0.05, 4, 2)):
        rows.append(bench_concurrency(latency, cap, eps, calls=cap * eps * k))
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
