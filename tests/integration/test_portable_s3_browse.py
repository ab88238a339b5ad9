"""#27 acceptance, synth-browse: a small config (6 questions, k=2, the scripted fake LLM server of
tests/support/fake_llm_server.py, the embedded graph and search index) on Beam's PortableRunner with an EXTERNAL
pool of 2 SDK harnesses, writing to ``s3://`` on moto's loopback server, gives the rows of the single-process
local run (timestamps, run ids, measured latencies and the search cache's hit/miss split aside); with one harness
SIGKILLed mid-run and the job rerun, no row is lost and none is read twice. The driver and the workers see the
server through ``run.beam_args``' ``--s3_*`` flags only (no ``AWS_*`` environment): ``run()`` sets FileSystems
from them before its first store call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from crucible.pipelines.browse.pipeline import run
from tests.support import s3server
from tests.support.fake_browse import responder
from tests.support.fake_llm_server import FakeOpenAIServer
from tests.support.portable import REPO, portable_services
from tests.support.portable_s3 import (
    BROWSE_TABLES,
    VOLATILE,
    browse_config,
    differing_columns,
    keys,
    read_with_flags,
    rows,
    running,
    s3_flags,
    search_cache_blind,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
s3_endpoint, s3_store = s3server.s3_endpoint, s3server.s3_store
AWS_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture(scope="module")
def llm():
    with FakeOpenAIServer(responder=responder) as srv:
        yield srv


@pytest.fixture(scope="module")
def local(llm, tmp_path_factory):
    """The single-process local run's rows (one per module: both tests compare with it)."""
    out = str(tmp_path_factory.mktemp("browse") / "local")
    t0, n0 = time.monotonic(), len(llm.chat_requests)
    summary = run(browse_config(out, llm.base_url))
    summary["llm_requests"] = len(llm.chat_requests) - n0
    print(f"\nlocal single-process run: {time.monotonic() - t0:.1f} s, {summary['processed']} processed, "
          f"{summary['llm_requests']} LLM requests")
    assert summary["processed"] == 6
    return out, summary


BROWSE_VOLATILE = (*VOLATILE, "latency_s")


def _rows(out: str) -> dict:
    return rows(out, BROWSE_TABLES, BROWSE_VOLATILE, search_cache_blind)


def _flags_only(monkeypatch) -> None:
    for k in AWS_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    s3server.reset_filesystems()


def _assert_local_rows(store: str, local_out: str) -> None:
    want, got = _rows(local_out), _rows(store)
    assert want["questions"]
    for t in BROWSE_TABLES:
        assert got[t] == want[t], differing_columns(store, local_out, t, BROWSE_VOLATILE)
    for table, key in (("questions", "question_id"), ("browse_trajectories", "traj_id"), ("failures", "failure_id")):
        assert max(keys(store, table, key).values()) == 1


def test_two_external_workers_into_s3_give_the_local_rows(tmp_path, llm, local, s3_store, s3_endpoint, monkeypatch):
    local_out, want = local
    _flags_only(monkeypatch)
    with portable_services(tmp_path, boot_dir=tmp_path) as svc:
        args = [a for a in svc.beam_args(2) if not a.startswith("--runner")] + s3_flags(s3_endpoint)
        t0 = time.monotonic()
        got = run(browse_config(s3_store, llm.base_url, "run.runner=PortableRunner",
                                f"run.beam_args={json.dumps(args)}"))
        print(f"portable, 2 external workers, into s3://: {time.monotonic() - t0:.1f} s, {got['processed']} processed")
        assert len(svc.workers) >= 2, (tmp_path / "pool.log").read_text()[-2000:]
    assert got["processed"] == want["processed"] and got["planned"] == want["planned"]
    _assert_local_rows(s3_store, local_out)


def _listed(endpoint: str, store: str, prefix: str) -> list[str]:
    bucket, _, key = store[len("s3://"):].partition("/")
    page = s3server.client(endpoint).list_objects_v2(Bucket=bucket, Prefix=f"{key}/{prefix}")
    return [o["Key"] for o in page.get("Contents", [])]


def test_a_worker_sigkilled_mid_run_then_rerun_loses_and_repeats_no_row(tmp_path, llm, local, s3_store, s3_endpoint,
                                                                       monkeypatch):
    """The harness is killed half way through the synth job's LLM requests (after the plan job committed its
    drop rows); FnApiRunner runs the Commit stage after the rollouts, so the rerun redoes every question and must
    not commit the plan's drop rows again."""
    local_out, want = local
    _flags_only(monkeypatch)
    cmd = [sys.executable, "-m", "tests.support.portable_s3", "--browse", s3_store, llm.base_url,
           "--set=store.commit_every_items=1", *s3_flags(s3_endpoint)]
    with portable_services(tmp_path, boot_dir=tmp_path) as svc:
        t0, n0 = time.monotonic(), len(llm.chat_requests)
        driver = subprocess.Popen([*cmd, *svc.beam_args(2)], cwd=REPO, env=svc.env,
                                  stdout=open(tmp_path / "driver1.log", "wb"), stderr=subprocess.STDOUT)
        killed = None
        while killed is None and driver.poll() is None and time.monotonic() - t0 < 200:
            live = running(svc.workers)
            if len(llm.chat_requests) - n0 >= want["llm_requests"] // 2 and live:
                os.kill(live[-1], signal.SIGKILL)  # the newest: the running job's
                killed = len(llm.chat_requests) - n0
            time.sleep(0.1)
        assert killed is not None, (tmp_path / "driver1.log").read_text()[-2000:]
        committed = len(_listed(s3_endpoint, s3_store, "_commits/"))
        try:
            first = driver.wait(30)
        except subprocess.TimeoutExpired:  # a job that lost a harness may wait on it: the cluster is torn down
            driver.kill()
            first = driver.wait()
        print(f"first run: a worker killed after {killed} LLM requests ({committed} manifests); exit {first} after "
              f"{time.monotonic() - t0:.1f} s")
    with portable_services(tmp_path, boot_dir=tmp_path) as svc:
        t0 = time.monotonic()
        res = subprocess.run([*cmd, *svc.beam_args(2)], cwd=REPO, env=svc.env, capture_output=True, text=True,
                             timeout=240)
        print(f"rerun: exit {res.returncode} after {time.monotonic() - t0:.1f} s")
        (tmp_path / "driver2.log").write_text(res.stdout + res.stderr)
        assert res.returncode == 0, res.stderr[-3000:]
    read_with_flags(s3_endpoint)
    _assert_local_rows(s3_store, local_out)
