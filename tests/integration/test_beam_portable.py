"""Portability: the store sink through Beam's portable job API with an EXTERNAL worker pool.

Flink, Spark and Dataflow Runner v2 all speak this contract (Runner-API proto over the Job
API, a separate SDK-harness process over the Fn API); their job servers cannot be downloaded
here, so Beam's own Python job service stands in for them.
"""

import subprocess
import sys

import pytest

from crucible.pipelines.store import catalog
from tests.support.portable import REPO, portable_services
from tests.support.sample_pipeline import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def services():
    with portable_services() as svc:
        yield svc.job_port, svc.pool_port, svc.env


def test_sample_pipeline_on_portable_runner_with_external_workers(services, tmp_path):
    job_port, pool_port, env = services
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
