"""#27 acceptance, swe-curate: 8 instances from 2 env groups (the Docker-free fakes of tests/support/portable_swe.py)
on Beam's PortableRunner with an EXTERNAL pool of 2 SDK harnesses, writing to ``s3://`` on moto's loopback server,
give the rows of the single-process local run (timestamps and run ids aside); with one harness SIGKILLed mid-run
and the job rerun, no row is lost and none is read twice. The driver and the workers see the server through the
``--s3_*`` flags only (no ``AWS_*`` environment): the driver's own store calls read them too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import portable_swe as ps
from tests.support import s3server
from tests.support.portable import REPO, portable_services
from tests.support.portable_s3 import SWE_TABLES, keys, read_with_flags, rows, running, s3_flags

pytestmark = [pytest.mark.integration, pytest.mark.slow]
s3_endpoint, s3_store = s3server.s3_endpoint, s3server.s3_store
AWS_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def _flags_only(monkeypatch) -> None:
    """No AWS_* environment for this process and the services it starts: only the run's --s3_* flags."""
    for k in AWS_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    s3server.reset_filesystems()


def _rows_file(tmp_path, sleep_s: float = 0) -> str:
    rows = [ps.swebench_row(i, sleep_s=sleep_s, env_commit=("a" if i < 4 else "b") * 40) for i in range(8)]
    return ps.write_rows(tmp_path / "rows.jsonl", rows, bad_lines=("{not json",))


def _local(tmp_path, rows_file: str, *sets: str) -> dict:
    out = str(tmp_path / "local")
    t0 = time.monotonic()
    ps.run_graph(ps.small_config(out, rows_file, *sets))
    print(f"\nlocal single-process run: {time.monotonic() - t0:.1f} s")
    got = rows(out, SWE_TABLES)
    assert [len(got[t]) for t in SWE_TABLES] == [4, 8, 4, 5]
    return got


def _assert_once(out: str) -> None:
    for table, key in (("swe_instances", "instance_id"), ("swe_validations", "instance_id"),
                       ("swe_trajectories", "traj_id"), ("failures", "failure_id")):
        twice = {k: n for k, n in keys(out, table, key).items() if n > 1}
        assert not twice, f"{table}: read more than once: {twice}"


def test_two_external_workers_into_s3_give_the_local_rows(tmp_path, s3_store, s3_endpoint, monkeypatch):
    rows_file = _rows_file(tmp_path)
    want = _local(tmp_path, rows_file)
    _flags_only(monkeypatch)
    with portable_services(tmp_path, boot_dir=tmp_path) as svc:
        t0 = time.monotonic()
        ps.run_graph(ps.small_config(s3_store, rows_file), beam_args=[*svc.beam_args(2), *s3_flags(s3_endpoint)])
        print(f"portable, 2 external workers, into s3://: {time.monotonic() - t0:.1f} s")
        assert len(svc.workers) == 2, (tmp_path / "pool.log").read_text()[-2000:]
    assert rows(s3_store, SWE_TABLES) == want
    _assert_once(s3_store)
    objs = s3server.objects(s3_endpoint, s3_store)
    assert any(k.startswith("_commits/swe-curate/") for k in objs) and not any(k.startswith("_lock") for k in objs)


def test_without_s3_flags_or_environment_the_driver_refuses_before_the_pipeline(tmp_path, s3_store, monkeypatch):
    """The switch-off of the flags-only run above: the same run without ``--s3_*`` fails in the driver's first
    store call (no credentials for the bucket), before any pipeline starts."""
    _flags_only(monkeypatch)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(Exception, match="(?i)credential|endpoint|bucket|connect"):
        ps.run_graph(ps.small_config(s3_store, _rows_file(tmp_path)))


def _listed(endpoint: str, store: str, prefix: str) -> list[str]:
    bucket, _, key = store[len("s3://"):].partition("/")
    page = s3server.client(endpoint).list_objects_v2(Bucket=bucket, Prefix=f"{key}/{prefix}")
    return [o["Key"] for o in page.get("Contents", [])]


def _kill_one_worker_mid_curate(svc, endpoint: str, store: str, driver: subprocess.Popen) -> int:
    """SIGKILL one harness once the first trajectory is committed (of 4): returns how many were."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        done = _listed(endpoint, store, "swe_trajectories/part-")
        live = running(svc.workers)
        if done and live:
            os.kill(live[-1], signal.SIGKILL)  # the newest: the running job's
            return len(done)
        time.sleep(0.2)
    raise AssertionError(f"no trajectory committed while the job ran (exit {driver.poll()})")


def test_a_worker_sigkilled_mid_run_then_rerun_loses_and_repeats_no_row(tmp_path, s3_store, s3_endpoint, monkeypatch):
    sets = ("--set=store.commit_every_items=1",)
    rows_file = _rows_file(tmp_path, sleep_s=2)  # 2 s per validation and rollout: time to kill one
    want = _local(tmp_path, rows_file, *(s[len("--set="):] for s in sets))
    _flags_only(monkeypatch)
    cmd = [sys.executable, "-m", "tests.support.portable_s3", s3_store, rows_file, *sets]
    with portable_services(tmp_path, boot_dir=tmp_path) as svc:
        t0 = time.monotonic()
        driver = subprocess.Popen([*cmd, *svc.beam_args(2), *s3_flags(s3_endpoint)], cwd=REPO, env=svc.env,
                                  stdout=open(tmp_path / "driver1.log", "wb"), stderr=subprocess.STDOUT)
        committed = _kill_one_worker_mid_curate(svc, s3_endpoint, s3_store, driver)
        try:
            first = driver.wait(30)
        except subprocess.TimeoutExpired:  # a job that lost a harness may wait on it: the cluster is torn down
            driver.kill()
            first = driver.wait()
        assert committed < 4  # mid-run: trajectories were left to do
        print(f"first run: {committed} trajectory shard(s) committed when a worker was killed; exit {first} after "
              f"{time.monotonic() - t0:.1f} s")
    with portable_services(tmp_path, boot_dir=tmp_path) as svc:
        t0 = time.monotonic()
        res = subprocess.run([*cmd, *svc.beam_args(2), *s3_flags(s3_endpoint)], cwd=REPO, env=svc.env,
                             capture_output=True, text=True, timeout=240)
        print(f"rerun: exit {res.returncode} after {time.monotonic() - t0:.1f} s")
        assert res.returncode == 0, res.stderr[-3000:]
    read_with_flags(s3_endpoint)
    _assert_once(s3_store)
    assert rows(s3_store, SWE_TABLES) == want
