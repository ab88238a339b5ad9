"""The real swe-curate (#27 item 5: bugs injected into 2 sdists, validation and gold rollouts in Docker) on
Beam's PortableRunner with an EXTERNAL pool of 2 SDK-harness processes gives the rows of the single-process
run (timestamps and measured durations aside). Both runs share one workdir, so the second reuses the first's
mirrors, env images and reference runs, as the workers of a cluster share them through the image cache."""

from __future__ import annotations

import pytest

from crucible.pipelines.config import load_config
from crucible.pipelines.store import catalog
from crucible.pipelines.swe.pipeline import run
from tests.support.portable import REPO, portable_services

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]
SQL = {
    "swe_instances": "select instance_id, patch, problem_statement, FAIL_TO_PASS, PASS_TO_PASS, env_image",
    "swe_validations": "select instance_id, status, failure_kind, failed_at, reason, fail_to_pass, pass_to_pass, "
                       "flaky_tests",
    "swe_trajectories": "select traj_id, instance_id, policy, resolved, split, drop_reasons",
    "failures": "select failure_id, stage, kind, item_key, reason",
}


def _rows(out: str) -> dict:
    return {t: catalog.query(out, f"{q} from {t} order by all")[1] for t, q in SQL.items()}


def _cfg(tmp_path, out: str, *extra: str):
    return load_config("swe", [f"run.out_dir={tmp_path / out}", "run.run_id=portable-docker",
                               "swe.sdists=[toolz==0.12.0,marshmallow==3.19.0]", "swe.max_candidates_per_repo=4",
                               f"swe.workdir={tmp_path / 'work'}", "swe.statements.use_llm=false",
                               "swe.rollouts.policies=[gold]", *extra])


def test_swe_curate_on_two_external_workers_gives_the_local_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    local = run(_cfg(tmp_path, "local"))
    want = _rows(str(tmp_path / "local"))
    assert len(want["swe_validations"]) == 8, want["failures"]
    with portable_services(tmp_path) as svc:
        args = ",".join(a for a in svc.beam_args(2) if not a.startswith("--runner"))
        got = run(_cfg(tmp_path, "portable", "run.runner=PortableRunner", f"run.beam_args=[{args}]"))
        assert len(svc.workers) == 2
    got_rows = _rows(str(tmp_path / "portable"))
    for t in SQL:
        diff = sorted(set(map(repr, want[t])) ^ set(map(repr, got_rows[t])))
        assert got_rows[t] == want[t], f"{t}: rows in one run only:\n" + "\n".join(d[:600] for d in diff)
    assert got["instances"] == local["instances"] and got["validations"] == local["validations"]
