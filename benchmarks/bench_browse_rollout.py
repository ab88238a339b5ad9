"""synth-browse throughput against a fake OpenAI server with fixed latency L and concurrency C.

Every question (write, harden, closed-book, k rollouts, judge) goes through the one LLM client;
with C questions in flight the ideal request rate is C/L. Reports the achieved fraction
(target >= 0.9) for a few (C, L) settings. Toy graph, local tantivy index, LLM cache off.

``measure_batch``: ``crucible browse rollout`` (crucible.pipelines.browse.batch) over N outside questions with gold,
each trajectory committed to the store as it finishes: rows/min against the ideal C / (2 L) rows/s (a
rollout is a search step and an answer step; the rules decide, so no judge request).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from crucible.pipelines.browse.batch import run
from crucible.pipelines.browse.context import build_context
from crucible.pipelines.browse.stages import run_questions
from crucible.pipelines.config import load_config
from crucible.pipelines.options import build_options
from tests.support.fake_browse import responder, write_toy_graph
from tests.support.fake_llm_server import FakeOpenAIServer


def measure(c: int, latency: float, n_questions: int) -> dict:
    with tempfile.TemporaryDirectory() as d, FakeOpenAIServer(responder=responder, latency_s=latency) as srv:
        os.environ["CRUCIBLE_CACHE_DIR"] = str(Path(d) / "cache")
        files = write_toy_graph(Path(d))
        cfg = load_config("browse", [
            f"run.out_dir={d}/out", "llm.engine=openai", f"llm.base_urls=[{srv.base_url}]", "llm.cache=false",
            f"llm.max_concurrency={c}", "search.kg.embedded=false", f"search.kg.extra={json.dumps(files)}",
            "browse.k=2", "browse.rounds=2", "browse.policy=json_step", "search.cache.enabled=false"])
        ctx = build_context(build_options(cfg), {**cfg.to_dict()["llm"], "base_urls": [srv.base_url]}, "bench")
        chain = [["airport/SPZO", "serves_city", "city/cusco"], ["city/cusco", "country", "country/PE"],
                 ["country/PE", "currency", "currency/PEN"]]
        items = [{"key": f"q{i}", "chain": chain, "pattern": "p"} for i in range(n_questions)]
        t0 = time.perf_counter()
        results = run_questions(items, ctx, workers=c)
        wall = time.perf_counter() - t0
        n_req = len(srv.chat_requests)
        ctx.client.close()
    assert all("questions" in r.rows for r in results), "every question must come out"
    rate = n_req / wall
    return {"bench": "browse_rollout_throughput", "C": c, "L_s": latency, "questions": n_questions,
            "requests": n_req, "wall_s": round(wall, 2), "requests_per_s": round(rate, 2),
            "ideal_per_s": round(c / latency, 2), "fraction_of_C_over_L": round(rate * latency / c, 3),
            "peak_in_flight": srv.peak_in_flight}


def measure_batch(c: int, latency: float, n_questions: int, k: int = 2) -> dict:
    with tempfile.TemporaryDirectory() as d, FakeOpenAIServer(responder=responder, latency_s=latency) as srv:
        os.environ["CRUCIBLE_CACHE_DIR"] = str(Path(d) / "cache")
        files = write_toy_graph(Path(d))
        qfile = Path(d) / "questions.jsonl"
        qfile.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Which currency is used in Peru ({i})?",
                                             "gold": "Peruvian sol"}) + "\n" for i in range(n_questions)))
        cfg = load_config("browse", [
            f"run.out_dir={d}/out", "llm.engine=openai", f"llm.base_urls=[{srv.base_url}]", "llm.cache=false",
            f"llm.max_concurrency={c}", "search.kg.embedded=false", f"search.kg.extra={json.dumps(files)}",
            "browse.policy=json_step", "search.cache.enabled=false", "run.progress_every_s=0"])
        s = run(cfg, str(qfile), k=k)
    rows_per_s = s["committed"] / s["seconds"]
    return {"bench": "browse_rollout_batch", "C": c, "L_s": latency, "rows": s["committed"], "commits": s["commits"],
            "wall_s": s["seconds"], "rows_per_min": round(60 * rows_per_s, 1),
            "ideal_rows_per_min": round(60 * c / (2 * latency), 1),
            "fraction_of_ideal": round(rows_per_s * 2 * latency / c, 3), "verdicts": s["verdicts"]}


def main() -> list[dict]:
    out = []
    for c, lat, n in ((1, 0.2, 10), (8, 0.2, 100)):
        r = measure_batch(c, lat, n)
        print(json.dumps(r), flush=True)
        out.append(r)
    for c, lat, n in ((1, 0.5, 4), (8, 0.2, 32), (8, 0.5, 32), (16, 0.5, 64)):
        r = measure(c, lat, n)
        print(json.dumps(r), flush=True)
        out.append(r)
    return out


if __name__ == "__main__":
    main()
