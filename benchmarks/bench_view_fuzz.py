"""`crucible view` fuzzed for 5 minutes with a fixed seed (issue 25): the real CLI server in its own process
over a small real store, hit by hypothesis requests drawn from its OpenAPI document (checked against it),
random request bytes, and three hostile clients at once (headers trickled past the deadline, bodies announced
and not sent, 60 KB paths, oversized headers, other methods).

Reports requests, dropped connections (no status line), contract problems, 5xx answers, tracebacks on the
server's stderr, and the server's peak RSS (VmHWM) with its RSS after the first minute and at the end
(bounded memory: the two stay close). ``CRUCIBLE_BENCH_VIEW_FUZZ_S`` changes the 300 s.
"""

from __future__ import annotations

import os
import random
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from crucible.pipelines.view import openapi
from tests.support import view_fuzz as F

SEED = 25
BATCH = 200  # hypothesis examples per seeded batch (batch i uses seed SEED + i)
REPO = Path(__file__).resolve().parents[1]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.status: Counter = Counter()
        self.requests = self.dropped = self.n_problems = 0
        self.problems: list[str] = []

    def add(self, r: F.Raw, problems: list[str] = (), what: str = "") -> None:
        with self.lock:
            self.requests += 1
            if r.status is None:
                self.dropped += 1
                problems = problems or [f"{what}: dropped ({r.head[:60]!r})"]
            self.status[r.status] += 1
            self.n_problems += len(problems)
            self.problems.extend(problems[: max(0, 20 - len(self.problems))])


def _rss_kb(pid: int, field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def _start(store: str, err) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "crucible.pipelines.cli", "view", "--out", store, "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"the viewer did not start: {line!r}")
    return proc, int(m.group(1))


def _hypothesis_batch(port: int, doc: dict, tally: Tally, i: int) -> None:
    keys = {"questions": ["q0001", "q0003"], "browse_trajectories": ["t0002"], "swe_instances": ["demo__repo-1"]}

    @seed(SEED + i)
    @settings(max_examples=BATCH, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=st.data(), raw=st.booleans())
    def one(data, raw):
        if raw and data.draw(st.integers(0, 3)) == 0:  # a quarter of the half: random bytes as a request
            line = data.draw(st.binary(min_size=1, max_size=300).filter(lambda b: not b[:1].isspace()))
            r = F.raw_request(port, line + b"\r\n\r\n")
            tally.add(r, [] if r.status and r.body else [f"raw {line[:60]!r}: no answer"])
            return
        c = data.draw(F.case(doc, keys))
        r = F.get(port, c.target)
        tally.add(r, F.problems(doc, c, r))

    one()


def _hostile(port: int, tally: Tally, until: float, rng: random.Random) -> None:
    while time.monotonic() < until:
        kind = rng.randrange(6)
        try:
            if kind == 0:  # a header line a second, past the deadline, reading as it goes: a 408
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
                    t_end = time.monotonic() + 15
                    try:
                        while time.monotonic() < t_end and not select.select([s], [], [], 1.0)[0]:
                            s.sendall(b"X-A: b\r\n")
                    except OSError:
                        pass
                    tally.add(F.read_answer(s), what="trickled headers")
            elif kind == 1:  # a body announced, a few bytes sent, the connection left open
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    s.sendall(b"POST /questions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nabc")
                    tally.add(F.read_answer(s), what="a body announced, not sent")
            elif kind == 2:  # a 60 KB path
                tally.add(F.get(port, "/" + "".join(rng.choice("abc%/?=&") for _ in range(60_000))), what="60 KB path")
            elif kind == 3:  # oversized and too many headers
                tally.add(F.raw_request(port, b"GET / HTTP/1.0\r\n" + b"X: " + b"y" * rng.randrange(1, 80_000)
                                        + b"\r\n" + b"Z: 1\r\n" * rng.randrange(150) + b"\r\n"), what="big headers")
            elif kind == 4:  # a rebinding page
                tally.add(F.get(port, "/questions", host=f"evil{rng.randrange(100)}.example"), what="rebinding")
            else:
                tally.add(F.get(port, "/browse_trajectories?reason=rl", method=rng.choice(["GET", "PUT", "HEAD"])),
                          what="methods")
        except OSError as exc:  # the connection could not even be made: counts as dropped
            tally.add(F.Raw(None, {}, b"", repr(exc).encode()), what=f"hostile kind {kind}")


def main() -> list[dict]:
    seconds = float(os.environ.get("CRUCIBLE_BENCH_VIEW_FUZZ_S", "300"))
    doc = openapi.document()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="bench-view-fuzz-") as d:
        store = F.build_store(str(Path(d) / "store"), 60)
        err_path = Path(d) / "server.err"
        with open(err_path, "w") as err:
            proc, port = _start(store, err)
            try:
                t0 = time.monotonic()
                until = t0 + seconds
                rss_1min = None
                hostile = [threading.Thread(target=_hostile, args=(port, tally, until, random.Random(SEED + k)),
                                            daemon=True) for k in range(3)]
                for t in hostile:
                    t.start()
                batch = 0
                while time.monotonic() < until:
                    _hypothesis_batch(port, doc, tally, batch)
                    batch += 1
                    if rss_1min is None and time.monotonic() - t0 >= min(60, seconds / 2):
                        rss_1min = _rss_kb(proc.pid, "VmRSS")
                for t in hostile:
                    t.join(timeout=60)
                rss_end, peak = _rss_kb(proc.pid, "VmRSS"), _rss_kb(proc.pid, "VmHWM")
                alive = proc.poll() is None
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        stderr = err_path.read_text(errors="replace")
    fives = sum(n for s, n in tally.status.items() if s is not None and s >= 500 and s != 503)
    result = {"bench": "view_fuzz", "seconds": seconds, "seed": SEED, "batches": batch, "requests": tally.requests,
              "dropped_connections": tally.dropped, "contract_problems": tally.n_problems,
              "status_5xx": fives, "tracebacks": stderr.count("Traceback"), "server_alive": alive,
              "status": {str(k): v for k, v in sorted(tally.status.items(), key=lambda kv: str(kv[0]))},
              "rss_after_1min_mb": round((rss_1min or 0) / 1024, 1), "rss_end_mb": round(rss_end / 1024, 1),
              "peak_rss_mb": round(peak / 1024, 1), "first_problems": tally.problems[:5]}
    print(result, flush=True)
    return [result]


if __name__ == "__main__":
    main()
