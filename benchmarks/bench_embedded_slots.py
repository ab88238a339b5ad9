"""The embedded model's aggregate tokens/s at 1, 2 and 4 server slots (``llm.embedded.n_parallel``), each
measured with as many concurrent requests as slots (issue #28: the embedded default picks its slot count
from this, not a guess).

Every request has a unique opening (no prefix-cache hits) and asks for exactly ``max_tokens`` tokens
(``ignore_eos``), so runs compare like with like. Run it on an otherwise idle machine: the server uses every
core, and any other job makes the numbers meaningless.

Run: ``python -m benchmarks.bench_embedded_slots [--quick] [--slots 1 2 4]``. Needs ``pip install -e
'.[embedded]'``; without it (or without the model) it returns one ``skipped`` row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

from crucible.pipelines.llm import aio, settings
from crucible.pipelines.llm.client import LLMClient
from crucible.pipelines.llm.embedded import EmbeddedModelError
from crucible.pipelines.llm.serve import make_server

PROMPT = ("Write a short, plain explanation of how a hash table handles collisions, for a new programmer. "
          "Mention chaining and open addressing.")


async def _requests(client: LLMClient, concurrency: int, per_slot: int, max_tokens: int) -> list:
    async def slot(i: int) -> list:
        out = []
        for _ in range(per_slot):
            nonce = uuid.uuid4().hex[:8]  # first tokens differ: no prefix shared with another request
            out.append(await client.achat([{"role": "user", "content": f"[{nonce}] {PROMPT}"}],
                                          max_tokens=max_tokens, temperature=0.0, seed=None, ignore_eos=True,
                                          use_cache=False))
        return out
    return [r for rs in await asyncio.gather(*(slot(i) for i in range(concurrency))) for r in rs]


def measure(base_url: str, concurrency: int, per_slot: int, max_tokens: int, model: str = "embedded") -> dict:
    """Aggregate tokens/s of ``concurrency`` streams of ``per_slot`` requests against one server."""
    client = LLMClient([base_url], model, cache=False, max_concurrency=concurrency, timeout_s=600, max_retries=0)
    try:
        t0 = time.perf_counter()
        results = aio.submit(_requests(client, concurrency, per_slot, max_tokens)).result()
        wall = time.perf_counter() - t0
    finally:
        client.close()
    gen = sum(r.usage["completion_tokens"] for r in results)
    prompt = sum(r.usage["prompt_tokens"] for r in results)
    lat = sorted(r.latency_s for r in results)
    return {"bench": "embedded_slots", "client_concurrency": concurrency, "requests": len(results),
            "completion_tokens": gen, "prompt_tokens": prompt, "wall_s": round(wall, 3),
            "gen_tokens_per_s": round(gen / wall, 2), "prompt_tokens_per_s": round(prompt / wall, 2),
            "latency_s_p50": round(lat[len(lat) // 2], 3), "latency_s_max": round(lat[-1], 3)}


def best_slots(rows: list[dict]) -> dict:
    """The summary row: the slot count with the most generated tokens/s, and each count's speed-up over 1."""
    measured = [r for r in rows if "gen_tokens_per_s" in r and "n_parallel" in r]
    if not measured:
        return {"bench": "embedded_slots", "summary": True, "best_n_parallel": None}
    base = next((r["gen_tokens_per_s"] for r in measured if r["n_parallel"] == 1), None)
    best = max(measured, key=lambda r: r["gen_tokens_per_s"])
    return {"bench": "embedded_slots", "summary": True, "best_n_parallel": best["n_parallel"],
            "gen_tokens_per_s": {str(r["n_parallel"]): r["gen_tokens_per_s"] for r in measured},
            "speedup_vs_1": {str(r["n_parallel"]): round(r["gen_tokens_per_s"] / base, 3) for r in measured}
            if base else None}


def run_slots(slots: list[int], per_slot: int, max_tokens: int, llm_cfg: dict | None = None) -> list[dict]:
    rows = []
    for n in slots:
        cfg = settings.resolve({**(llm_cfg or {}), "engine": "embedded"})
        cfg["embedded"]["n_parallel"] = n
        try:
            server = make_server(cfg)
            url = server.start()
        except EmbeddedModelError as exc:
            return [{"bench": "embedded_slots", "skipped": str(exc)}]
        try:
            t0 = time.perf_counter()
            row = measure(url, n, per_slot, max_tokens, model=cfg["model"])
            row.update(n_parallel=n, n_threads=server.n_threads, measure_s=round(time.perf_counter() - t0, 2))
        finally:
            server.stop()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows + [best_slots(rows)]


def main(argv: list[str] | None = None) -> list[dict]:
    """Print and return the result rows (``python -m benchmarks`` stores the returned list)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 requests of 32 tokens per slot")
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 2, 4])
    a = ap.parse_args([] if argv is None else argv)
    per_slot, max_tokens = (2, 32) if a.quick else (6, 128)
    rows = run_slots(a.slots, per_slot, max_tokens)
    print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
