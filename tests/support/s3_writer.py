"""One writer process of the concurrent-writers tests: commits item keys ``START..END-1`` in batches of
``BATCH`` into a store (``s3://`` through the ``AWS_*`` environment), after ``GO`` appears (so writers start
together). Every file it created is appended to ``LOG`` (one path a line); a delete or a rename by a writer
fails it: writers on an object store never remove anything.

Run: python -m tests.support.s3_writer URL START END BATCH LOG GO [--threads N]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from crucible.pipelines.store import commit as C
from crucible.pipelines.store import fsio
from tests.support.sample_pipeline import make_item


def _guard(log_path: str) -> None:
    real = fsio.put_if_absent
    lock = threading.Lock()

    def put(path, data):
        made = real(path, data)
        if made:
            with lock, open(log_path, "a") as fh:
                fh.write(path + "\n")
        return made

    def refuse(*a, **k):
        raise AssertionError(f"a writer removed or moved a file: {a}")

    fsio.put_if_absent = put
    fsio.delete = refuse
    fsio.rename = refuse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    for name in ("url", "start", "end", "batch", "log", "go"):
        ap.add_argument(name)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    _guard(a.log)
    keys = list(range(int(a.start), int(a.end)))
    batches = [keys[i:i + int(a.batch)] for i in range(0, len(keys), int(a.batch))]
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(a.go) and time.monotonic() < deadline:
        time.sleep(0.01)
    with ThreadPoolExecutor(a.threads) as pool:
        list(pool.map(lambda b: C.commit_items(a.url, "p", f"run-{a.start}", [make_item(i) for i in b]), batches))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
