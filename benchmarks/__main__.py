"""Run every benchmark module (or those named on the command line) and save JSON lines
under bench-results/<name>.jsonl."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    wanted = argv or names
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
        return 2
    out_dir = Path("bench-results")
    out_dir.mkdir(exist_ok=True)
    failed = []
    for name in wanted:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            results = importlib.import_module(f"benchmarks.bench_{name}").main() or []
        except Exception as exc:  # one broken benchmark must not hide the others
            print(f"!! {name} failed: {exc!r}", flush=True)
            failed.append(name)
            continue
        with open(out_dir / f"{name}.jsonl", "w") as fh:
            for r in results:
                fh.write(json.dumps(r) + "\n")
        print(f"== {name}: {len(results)} results in {time.monotonic() - t0:.1f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
