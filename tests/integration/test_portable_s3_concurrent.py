"""#27 acceptance: two swe-curate runs writing to one ``s3://`` store at once (two driver processes, the
Docker-free fakes of tests/support/portable_swe.py, commits of one item each; their instances overlap by 4, so
both race for the same item keys): every committed row is read exactly once, the rows equal those of the two
runs made one after the other into a local folder, and no object either run wrote is deleted (nothing is
moved to ``_quarantine/`` either)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support import portable_swe as ps
from tests.support import s3server
from tests.support.portable import REPO
from tests.support.portable_s3 import SWE_TABLES, keys, read_with_flags, rows, s3_flags

pytestmark = [pytest.mark.integration, pytest.mark.slow]
s3_endpoint, s3_store = s3server.s3_endpoint, s3server.s3_store
SETS = ("store.commit_every_items=1",)


def _files(tmp_path) -> list[str]:
    # run A: instances 0-7, run B: 4-11 (4-7 in both); 0.3 s per validation and rollout keeps both running at once
    return [ps.write_rows(tmp_path / f"{name}.jsonl", [ps.swebench_row(i, sleep_s=0.3, env_commit=f"{i // 4:040x}")
                                                      for i in range(lo, lo + 8)], bad_lines=("{not json",))
            for name, lo in (("a", 0), ("b", 4))]


def _listing(endpoint: str, store: str) -> set[str]:
    bucket, _, key = store[len("s3://"):].partition("/")
    out = set()
    for page in s3server.client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key + "/"):
        out |= {o["Key"] for o in page.get("Contents", [])}
    return out


def test_two_runs_into_one_s3_store_at_once_read_every_row_once_and_delete_nothing(tmp_path, s3_store, s3_endpoint):
    files = _files(tmp_path)
    local = str(tmp_path / "local")
    t0 = time.monotonic()
    for f in files:
        ps.run_graph(ps.small_config(local, f, *SETS))
    print(f"\nlocal, the two runs one after the other: {time.monotonic() - t0:.1f} s")
    want = rows(local, SWE_TABLES)
    assert len(want["swe_validations"]) == 12 and len(want["failures"]) == 6 + 2  # 6 invalid, 2 bad lines
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    runs = [subprocess.Popen([sys.executable, "-m", "tests.support.portable_s3", s3_store, f,
                              *(f"--set={s}" for s in SETS), *s3_flags(s3_endpoint)], cwd=REPO, env=env,
                             stdout=open(tmp_path / f"run{i}.log", "wb"), stderr=subprocess.STDOUT)
            for i, f in enumerate(files)]
    seen: set[str] = set()
    while any(r.poll() is None for r in runs) and time.monotonic() - t0 < 240:
        seen |= _listing(s3_endpoint, s3_store)
        time.sleep(0.2)
    codes = [r.wait(10) for r in runs]
    print(f"two runs at once into s3://: {time.monotonic() - t0:.1f} s, {len(seen)} objects seen while they ran")
    assert codes == [0, 0], [(tmp_path / f"run{i}.log").read_text()[-2000:] for i in range(2)]
    final = _listing(s3_endpoint, s3_store)
    assert seen <= final, f"deleted while or after the runs: {sorted(seen - final)[:10]}"
    assert not any("_quarantine/" in k for k in final)
    print(f"{sum('_commits/swe-curate/' in k for k in final)} manifests, {len(final)} objects")
    read_with_flags(s3_endpoint)
    for table, key in (("swe_instances", "instance_id"), ("swe_validations", "instance_id"),
                       ("swe_trajectories", "traj_id"), ("failures", "failure_id")):
        assert max(keys(s3_store, table, key).values()) == 1, table
    assert rows(s3_store, SWE_TABLES) == want
