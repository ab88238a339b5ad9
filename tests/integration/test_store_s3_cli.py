"""A store in a bucket end to end, as a user runs it: a Beam pipeline with two SDK worker processes
(FnApiRunner multi_processing) commits into ``s3://`` on moto's S3 server, then the ``crucible`` commands read,
compact and check it in processes of their own, configured only by the ``AWS_*`` environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import s3server

REPO = Path(__file__).resolve().parents[2]
s3_endpoint, s3_store = s3server.s3_endpoint, s3server.s3_store  # the fixtures

pytestmark = pytest.mark.integration


def run(*argv: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CRUCIBLE_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def crucible(*argv: str, cache: Path) -> subprocess.CompletedProcess:
    return run("-m", "crucible.pipelines.cli", *argv, cache=cache)


def counts(url: str, cache: Path) -> dict:
    p = crucible("query", "select count(*) as n, count(distinct question_id) as d from questions", "--out", url,
                 "--json", cache=cache)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_a_pipeline_with_two_workers_into_s3_then_the_commands_on_it(s3_store, tmp_path):
    cache = tmp_path / "cache"
    p = run("-m", "tests.support.sample_pipeline", s3_store, "10", "--commit-every", "3", "--direct-num-workers",
            "2", cache=cache)
    assert p.returncode == 0, p.stderr[-3000:]
    assert counts(s3_store, cache) == {"n": 10, "d": 10}
    p = crucible("stats", "--out", s3_store, "--json", cache=cache)
    assert p.returncode == 0, p.stderr
    p = crucible("compact", "--out", s3_store, cache=cache)
    assert p.returncode == 0 and "-> 1 commits" in p.stdout, p.stdout + p.stderr
    assert counts(s3_store, cache) == {"n": 10, "d": 10}
    p = crucible("store", "check", "--out", s3_store, cache=cache)
    assert p.returncode == 0 and "kept (an object store deletes nothing)" in p.stdout, p.stdout + p.stderr
    p = run("-m", "tests.support.sample_pipeline", s3_store, "10", cache=cache)  # a rerun: nothing left to do
    assert p.returncode == 0 and "'processed': 0" in p.stdout, p.stdout + p.stderr
    assert counts(s3_store, cache) == {"n": 10, "d": 10}
