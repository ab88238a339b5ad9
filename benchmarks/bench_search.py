"""Index build time and query latency on the full local corpus (embedded graph).

Prints JSON lines: graph build/load, page rendering, tantivy indexing, and p50/p95 latency of the
``search`` tool (backend only, no cache) over queries drawn from page titles and fact words.
Run: ``python -m benchmarks.bench_search [--queries 500]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from crucible.pipelines.browse.api import build_corpus, kg_options
from crucible.pipelines.browse.corpus import render_pages
from crucible.pipelines.browse.index import PageIndex, build_index
from crucible.pipelines.browse.kg.build import ensure_graph
from crucible.pipelines.browse.kg.model import read_graph


def _emit(**kv) -> None:
    print(json.dumps(kv), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--top-k", type=int, default=10)
    args = ap.parse_args(argv)


    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        d, rep = ensure_graph(kg_options(None), Path(tmp) / "kg", progress=lambda m: None)
        _emit(metric="kg_build_s", value=round(time.perf_counter() - t0, 3))
        t0 = time.perf_counter()
        graph = read_graph(d)
        _emit(metric="kg_load_s", value=round(time.perf_counter() - t0, 3), entities=len(graph.entities),
              triples=len(graph.triples))
        t0 = time.perf_counter()
        pages = list(render_pages(graph))
        _emit(metric="render_pages_s", value=round(time.perf_counter() - t0, 3), pages=len(pages))

        t0 = time.perf_counter()
        build_index(pages, Path(tmp) / "idx")
        _emit(metric="index_build_s", value=round(time.perf_counter() - t0, 3), pages=len(pages))
        t0 = time.perf_counter()
        build_corpus(pages, Path(tmp) / "corpus")
        _emit(metric="corpus_build_total_s", value=round(time.perf_counter() - t0, 3),
              note="pages.parquet + snapshot hash + index")
        ix = PageIndex(Path(tmp) / "idx")
        rng = random.Random(0)
        sample = rng.sample(pages, min(args.queries, len(pages)))
        queries = []
        for p in sample:
            words = [w for w in p.text.split() if len(w) > 3]
            queries.append(p.title + " " + " ".join(rng.sample(words, min(2, len(words)))))
        for q in queries[:20]:
            ix.search(q, args.top_k)  # warm-up
        lat, found = [], 0
        for p, q in zip(sample, queries, strict=True):
            t0 = time.perf_counter()
            hits = ix.search(q, args.top_k)
            lat.append((time.perf_counter() - t0) * 1000)
            found += any(h.url == p.url for h in hits)
        lat.sort()
        _emit(metric="query_latency_ms", p50=round(statistics.median(lat), 3),
              p95=round(lat[int(0.95 * (len(lat) - 1))], 3), queries=len(lat), top_k=args.top_k,
              self_recall=round(found / len(lat), 3))
        t0 = time.perf_counter()
        for _ in range(200):
            ix.get(rng.choice(pages).url)
        _emit(metric="page_lookup_ms", value=round((time.perf_counter() - t0) * 1000 / 200, 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
