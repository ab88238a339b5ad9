"""Why big suites were slow in the sandbox: pytest's ``-rA`` is quadratic in the number of tests (its PASSES
section looks up each passed test's teardown reports by scanning every report), while
``crucible.sandbox.recipes.REPORT_CHARS`` prints the same status lines without that section. Host-only (no Docker):
N trivial parametrized tests, run once per report option; prints JSON lines with the wall times and
whether the status lines are identical.

    python -m benchmarks.bench_pytest_report [--tests 4000 8000]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crucible.sandbox.recipes import REPORT_CHARS

STATUS = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) ", re.M)


def run(tmp: Path, chars: str) -> tuple[float, list[str]]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", chars,
                           f"--junitxml={tmp / 'j.xml'}", str(tmp / "test_big.py")],
                          capture_output=True, text=True, cwd=tmp)
    return time.monotonic() - t0, [ln for ln in proc.stdout.splitlines() if STATUS.match(ln)]


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, nargs="*", default=[2000, 4000])
    args = ap.parse_args(argv if argv is not None else [])
    rows = []
    for n in args.tests:
        with tempfile.TemporaryDirectory(prefix="crucible-bench-report-") as d:
            tmp = Path(d)
            (tmp / "test_big.py").write_text(f"import pytest\n\n@pytest.mark.parametrize('i', range({n}))\n"
                                             "def test_x(i):\n    assert i % 97 != 3\n")
            fast_s, fast_lines = run(tmp, REPORT_CHARS)
            slow_s, slow_lines = run(tmp, "-rA")
        row = {"bench": "pytest_report", "tests": n, "rA_s": round(slow_s, 2), "report_chars": REPORT_CHARS,
               "report_chars_s": round(fast_s, 2), "ratio": round(slow_s / fast_s, 2),
               "status_lines_identical": fast_lines == slow_lines, "status_lines": len(fast_lines)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
