"""The search server under five minutes of hostile requests (issue 25's acceptance): requests sent,
dropped connections (no status line), 5xx answers, tracebacks in the server's log, answers that break
``openapi.json``, and the server's peak RSS.

The server runs in its own process (``python -m benchmarks.bench_search_fuzz --serve CORPUS``) over the
small test corpus, with the declared limits except shorter timeouts (1 s per read, 3 s per request) so
that slow-client probes do not eat the run. Phases: (1) the issue's memory probe, 2,000 requests with
60 KB paths; (2) hypothesis probes drawn from the description (``tests/support/search_fuzz.py``),
batches of 200 with seeds 0, 1, 2, ... until the time is up; (3) 100 slow clients and 100 ordinary ones at once (the
cap is 32 connections: the slow get 408, the others 200 or 503, none dropped). ``CRUCIBLE_BENCH_SEARCH_FUZZ_S`` sets the fuzz time (default 300).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

from crucible.pipelines.browse.api import build_corpus
from crucible.pipelines.browse.corpus import render_pages
from crucible.pipelines.browse.search.backends import LocalBackend
from crucible.pipelines.browse.search.server import SearchServer
from crucible.pipelines.browse.search.spec import Limits
from tests.support.search_fuzz import probes
from tests.support.search_wire import conforms, exchange, get, request
from tests.unit.browse_helpers import small_graph

ROOT = Path(__file__).resolve().parents[1]
FAST = {"read_timeout_s": 1.0, "request_deadline_s": 3.0}


def _serve(corpus: str) -> None:
    srv = SearchServer(LocalBackend(corpus), limits=replace(Limits.from_spec(), **FAST))
    print(srv.port, flush=True)
    srv.serve_forever()


def _mem(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            fields[k] = int(v.split()[0]) // 1024  # MiB
    return fields


class Tally:
    def __init__(self):
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.dropped: Counter[str] = Counter()
        self.nonconforming: list[str] = []
        self.valid_not_served = 0
        self.lock = threading.Lock()

    def add(self, reply, problems=(), valid_not_served=False) -> None:
        with self.lock:
            self.sent += 1
            if reply.status is None:
                self.dropped[reply.error] += 1
            else:
                self.statuses[reply.status] += 1
            if problems and len(self.nonconforming) < 20:
                self.nonconforming.append(problems[0])
            self.valid_not_served += valid_not_served

    def summary(self) -> dict:
        return {"sent": self.sent, "dropped": sum(self.dropped.values()), "dropped_why": dict(self.dropped),
                "status_500": self.statuses[500], "status_502": self.statuses[502],
                "statuses": dict(sorted(self.statuses.items())), "nonconforming": len(self.nonconforming),
                "nonconforming_examples": self.nonconforming[:5], "valid_not_served": self.valid_not_served}


def _fuzz(port: int, seconds: float, pid: int) -> tuple[dict, int]:
    tally, peak, end = Tally(), 0, time.monotonic() + seconds
    batch = 0
    while time.monotonic() < end:
        @seed(batch)
        @settings(max_examples=200, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(probe=probes())
        def run(probe):
            if time.monotonic() >= end:
                return
            r = exchange(port, probe.data, half_close=probe.half_close)
            problems = conforms(probe.path, probe.method, r) if probe.kind != "garbage_line" else []
            ok = r.status == 200 or (probe.path == "/page" and r.status == 404)
            tally.add(r, problems, probe.valid and not ok)

        run()
        batch += 1
        peak = max(peak, _mem(pid)["VmRSS"])
    return {**tally.summary(), "batches": batch, "seeds": f"0..{batch - 1}"}, peak


def _long_paths(port: int, n: int = 2000) -> dict:
    tally = Tally()
    for _ in range(n):
        tally.add(get(port, "/search?format=json&q=" + "a" * 60_000))
    return tally.summary()


def _burst(port: int, n: int = 100) -> dict:
    """``n`` slow clients (half a request, then silence) and ``n`` ordinary ones at once: every connection
    must get an answer (408 for the slow, 200 or 503 over the cap for the others), none dropped."""
    tally = Tally()
    slow = [threading.Thread(target=lambda: tally.add(exchange(port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n")))
            for _ in range(n)]
    fast = [threading.Thread(target=lambda: tally.add(exchange(port, request("GET", "/search?q=Belgium&format=json"))))
            for _ in range(n)]
    for t in slow + fast:
        t.start()
    for t in slow + fast:
        t.join()
    return tally.summary()


def main() -> list[dict]:
    seconds = float(os.environ.get("CRUCIBLE_BENCH_SEARCH_FUZZ_S", "300"))
    with tempfile.TemporaryDirectory(prefix="bench-search-fuzz-") as d:
        build_corpus(render_pages(small_graph()), Path(d) / "corpus")
        err = open(Path(d) / "server.log", "w+")
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_search_fuzz", "--serve", str(Path(d) / "corpus")],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                                stderr=err, text=True)
        try:
            port = int(proc.stdout.readline())
            start = _mem(proc.pid)["VmRSS"]
            paths = _long_paths(port)
            after_paths = _mem(proc.pid)["VmRSS"]
            t0 = time.monotonic()
            fuzz, peak_fuzz = _fuzz(port, seconds, proc.pid)
            fuzz_s = time.monotonic() - t0
            burst = _burst(port)
            mem = _mem(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        err.seek(0)
        log = err.read()
    common = {"limits_overridden": FAST, "corpus": "tests small_graph"}
    return [
        {"bench": "search_fuzz_long_paths", "requests": 2000, "path_bytes": 60_000, **paths,
         "rss_mib_before": start, "rss_mib_after": after_paths, **common},
        {"bench": "search_fuzz_hypothesis", "seconds": round(fuzz_s, 1), **fuzz,
         "requests_per_s": round(fuzz["sent"] / fuzz_s, 1), "rss_mib_peak_sampled": peak_fuzz, **common},
        {"bench": "search_fuzz_burst", "slow_clients": 100, "ordinary_clients": 100, **burst, **common},
        {"bench": "search_fuzz_server", "rss_mib_start": start, "rss_mib_end": mem["VmRSS"],
         "peak_rss_mib": mem["VmHWM"], "tracebacks_in_log": log.count("Traceback"),
         "log_tail": log[-500:], **common},
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(sys.argv[2])
    else:
        import json

        for row in main():
            print(json.dumps(row))
