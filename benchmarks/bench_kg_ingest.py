"""`crucible kg ingest` on a generated Wikidata-format dump: entities/s and peak memory at two sizes.

Each size runs in a fresh child process that writes the dump to a temporary file one line at a time
(the JSON array framing of the real dump, never held in memory), runs the Beam job (FnApiRunner) and
the DuckDB finalize, and samples its own resident memory (/proc/self/status VmRSS, every 0.1 s, per
phase) besides ``ru_maxrss``. Bounded memory means the peaks of the two sizes are close.

Run: ``python -m benchmarks.bench_kg_ingest [--quick] [--sizes 100000,1000000] [--gzip]``
(``--quick``: 5,000 and 50,000 entities).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time

from crucible.pipelines.browse.kg.cards import load_cards
from crucible.pipelines.browse.kg.ingest import IngestInputs, ingest
from crucible.pipelines.browse.kg.wikidata import load_mapping
from tests.support import wikidata_dump as D

FULL_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (5_000, 50_000)


def _entity(i: int, n: int, rng: random.Random) -> dict:
    """Entity Q<i>: 1 in 200 a country, 1 in 10 an airport, 1 in 5 untyped (a scholarly article), else
    a city; relations point at other generated ids (some beyond the dump: dropped as not ingested)."""
    Q = D.item_value
    country = f"Q{200 * rng.randrange(1, max(2, n // 200))}"
    if i % 200 == 0:
        return D.item(f"Q{i}", f"Country {i}", {
            "P31": [Q("Q6256")], "P36": [(Q(f"Q{i + 1}"), "preferred"), (Q(f"Q{i + 2}"), "deprecated")],
            "P47": [Q(country), Q(f"Q{200 * rng.randrange(1, max(2, n // 200))}")], "P38": [Q(f"Q{n + 1}")],
            "P30": [Q(f"Q{n + 2}")], "P1082": [D.quantity(rng.randrange(10**5, 10**9))], "P297": [D.string("XX")]},
            aliases=(f"Republic of {i}",), description="a generated country")
    if i % 10 == 3:
        return D.item(f"Q{i}", f"Airport {i}", {
            "P31": [Q("Q1248784")], "P931": [Q(f"Q{i - 1}")], "P17": [Q(country)],
            "P238": [D.string(f"{i % 17576:03d}")], "P239": [D.string(f"K{i % 99999:05d}")],
            "P2044": [D.quantity(rng.randrange(0, 3000), "Q11573")],
            "P625": [D.coords(rng.uniform(-80, 80), rng.uniform(-170, 170))]})
    if i % 5 == 4:
        return D.item(f"Q{i}", f"Paper {i}", {"P31": [Q("Q13442814")], "P50": [Q(f"Q{i - 1}")]})
    return D.item(f"Q{i}", f"City {i}", {
        "P31": [Q("Q515")], "P17": [Q(country)], "P1082": [D.quantity(rng.randrange(1000, 10**7))],
        "P625": [D.coords(rng.uniform(-80, 80), rng.uniform(-170, 170))]},
        aliases=(f"Town {i}",), description="a generated city")


def write_dump(path: str, n: int, seed: int = 0) -> int:
    """Stream ``n`` entities (plus a currency and a continent, Q<n+1> and Q<n+2>) in the dump format to
    ``path``; bytes written."""
    rng = random.Random(seed)
    lines = (_entity(i, n, rng) for i in range(1, n + 1))
    extra = [D.item(f"Q{n + 1}", "euro", {"P31": [D.item_value("Q8142")]}),
             D.item(f"Q{n + 2}", "Europe", {"P31": [D.item_value("Q5107")]})]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as fh:
        D.write_dump(fh, _chain(lines, extra))
    return os.path.getsize(path)


def _chain(*its):
    for it in its:
        yield from it


class RssSampler:
    """Peak VmRSS (MiB) per named phase, sampled from /proc/self/status."""

    def __init__(self, every_s: float = 0.1):
        self.phase, self.peaks, self.every_s = "start", {}, every_s
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_mib() -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _run(self):
        while not self._stop.is_set():
            r = self.rss_mib()
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), r)
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def run_one(n: int, compressed: bool, memory_limit: str) -> dict:
    """In this process: generate, ingest, measure."""
    with tempfile.TemporaryDirectory(prefix="bench-kg-ingest-") as d, RssSampler() as s:
        dump = os.path.join(d, "dump.json.gz" if compressed else "dump.json")
        s.phase = "generate"
        t0 = time.perf_counter()
        size = write_dump(dump, n)
        gen_s = time.perf_counter() - t0
        t1 = time.perf_counter()

        def phase(msg: str) -> None:  # ingest's progress lines mark the Beam job and the finalize step
            s.phase = "finalize" if "finaliz" in msg else "beam"

        man = ingest(IngestInputs((dump,)), load_mapping(), load_cards(), os.path.join(d, "out"),
                     {"runner": "FnApiRunner"}, memory_limit, progress=phase)
        wall = time.perf_counter() - t1
        out_mb = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(os.path.join(d, "out"))
                     for f in fs) / 2**20
    return {
        "bench": "kg_ingest", "entities_in_dump": n + 2, "dump_mb": round(size / 2**20, 1),
        "compressed": compressed, "generate_s": round(gen_s, 1), "ingest_s": round(wall, 1),
        "beam_s": man["beam_seconds"], "finalize_s": round(man["seconds"] - man["beam_seconds"], 1),
        "entities_per_s": round((n + 2) / wall), "entities_kept": man["entities"], "triples": man["triples"],
        "triples_dropped": man["triples_dropped_object_not_ingested"], "failures": man["failures"],
        "output_mb": round(out_mb, 1),
        "duckdb_memory_limit": memory_limit, "peak_rss_mib": {k: round(v) for k, v in s.peaks.items()},
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    ap.add_argument("--sizes", help="comma-separated entity counts (default 100000,1000000)")
    ap.add_argument("--gzip", action="store_true", help="write the dump as .json.gz (not splittable)")
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit of the finalize step")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args([] if argv is None else argv)
    if a.child:
        print(json.dumps(run_one(a.child, a.gzip, a.memory_limit)), flush=True)
        return []
    sizes = [int(x) for x in a.sizes.split(",")] if a.sizes else (QUICK_SIZES if a.quick else FULL_SIZES)
    rows = []
    for n in sizes:  # a fresh process per size: each peak is its own
        argv_child = [sys.executable, "-m", "benchmarks.bench_kg_ingest", "--child", str(n)]
        argv_child += ["--memory-limit", a.memory_limit] + (["--gzip"] if a.gzip else [])
        p = subprocess.run(argv_child, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise RuntimeError(f"size {n}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if len(rows) > 1:
        peaks = [r["ru_maxrss_mib"] for r in rows]
        print(json.dumps({"bench": "kg_ingest_memory", "sizes": sizes, "ru_maxrss_mib": peaks,
                          "ratio_largest_to_smallest": round(peaks[-1] / peaks[0], 2)}), flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
