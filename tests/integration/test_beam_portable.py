"""Portability: the store sink through Beam's portable job API with an EXTERNAL worker pool.

Flink, Spark and Dataflow Runner v2 all speak this contract (Runner-API proto over the Job
API, a separate SDK-harness process over the Fn API); their job servers cannot be downloaded
here, so Beam's own Python job service stands in for them.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.store import catalog
from tests.support.sample_pipeline import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def portable_services():
    job_port, pool_port = _free_port(), _free_port()
    # the worker pool starts `python` from PATH: put this interpreter's venv first
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                          f"--port={job_port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                          f"--service_port={pool_port}"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
    ]
    try:
        _wait_port(job_port)
        _wait_port(pool_port)
        yield job_port, pool_port, env
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_sample_pipeline_on_portable_runner_with_external_workers(portable_services, tmp_path):
    job_port, pool_port, env = portable_services
    out = tmp_path / "portable"
    cmd = [sys.executable, "-m", "tests.support.sample_pipeline", str(out), "10", "--bad-every", "5",
           "--commit-every", "3", "--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
           "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"]
    # a broken harness hangs rather than fails: bound it
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    local = tmp_path / "local"
    run(str(local), 10, bad_every=5, commit_every=3)
    for table in ("questions", "swe_trajectories", "failures"):
        sql = f"select * exclude (created_at) from {table} order by all"
        assert catalog.query(str(out), sql)[1] == catalog.query(str(local), sql)[1]
    _, rows = catalog.query(str(out), "select count(*) from questions")
    assert rows == [(8,)]
