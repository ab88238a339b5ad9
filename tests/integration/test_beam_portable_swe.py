"""swe-curate's whole graph (#27 item 5) on Beam's PortableRunner with an EXTERNAL pool of 2 SDK-harness
processes (the Flink / Dataflow Runner v2 contract) and on FnApiRunner multi_processing with 2 workers: the
rows equal the single-process run's (created_at aside). Validation and rollouts are the Docker-free fakes of
tests/support/portable_swe.py (module-level: they reach the other processes by reference); the real Docker
path is tests/integration/test_beam_portable_swe_docker.py."""

from __future__ import annotations

import pytest

from crucible.pipelines.store import catalog
from tests.support import portable_swe as ps
from tests.support.portable import REPO, portable_services

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TABLES = ("swe_instances", "swe_validations", "swe_trajectories", "failures")


def _rows(out: str) -> dict:
    return {t: catalog.query(out, f"select * exclude (created_at) from {t} order by all")[1] for t in TABLES}


@pytest.fixture
def rows_file(tmp_path):
    # 8 instances in 2 env groups (4 validate, 4 do not), one line that is not JSON
    rows = [ps.swebench_row(i, env_commit=("a" if i < 4 else "b") * 40) for i in range(8)]
    return ps.write_rows(tmp_path / "rows.jsonl", rows, bad_lines=("{not json",))


@pytest.fixture
def local_rows(tmp_path, rows_file):
    out = str(tmp_path / "local")
    ps.run_graph(ps.small_config(out, rows_file))
    rows = _rows(out)
    assert [len(rows[t]) for t in TABLES] == [4, 8, 4, 5]
    return rows


def test_portable_runner_with_two_external_workers_gives_the_local_rows(tmp_path, rows_file, local_rows, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out = str(tmp_path / "portable")
    with portable_services(tmp_path) as svc:
        ps.run_graph(ps.small_config(out, rows_file), beam_args=svc.beam_args(2))
        assert len(svc.workers) == 2, (tmp_path / "pool.log").read_text()[-2000:]
    assert _rows(out) == local_rows


def test_fnapi_multi_processing_with_two_workers_gives_the_local_rows(tmp_path, rows_file, local_rows, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out = str(tmp_path / "multi")
    ps.run_graph(ps.small_config(out, rows_file),
                 runner={"runner": "FnApiRunner", "direct_running_mode": "multi_processing", "direct_num_workers": 2})
    assert _rows(out) == local_rows
