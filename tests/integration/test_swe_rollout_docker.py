"""`crucible swe rollout` in Docker: the gold policy on the toolz fixture instance is graded resolved and
committed; a rerun skips it (no container started, no second row)."""

import json

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_gold_rollout_is_committed_graded_and_not_redone(toolz_instance, mirror_root, tmp_path, capsys):
    from crucible.pipelines.cli import main
    from crucible.pipelines.store import catalog
    from crucible.pipelines.swe.mirror import mirror_template

    f = tmp_path / "instances.jsonl"
    f.write_text(json.dumps(toolz_instance) + "\n")
    args = ["swe", "rollout", "--instances", str(f), "--policy", "gold", "--out", str(tmp_path / "store"),
            "--repo-url-template", mirror_template(mirror_root), "--set", f"swe.workdir={tmp_path / 'work'}"]
    assert main(args) == 0
    s1 = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (s1["committed"], s1["skipped"], s1["resolved"]) == (1, 0, 1)
    cols, rows = catalog.query(str(tmp_path / "store"), "select instance_id, policy, resolved, grade, exit_status, "
                                                        "split from swe_trajectories")
    assert rows == [(toolz_instance["instance_id"], "gold", True, "resolved", "submitted", rows[0][5])]
    assert main(args) == 0
    s2 = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (s2["committed"], s2["skipped"]) == (0, 1)
    _, rows = catalog.query(str(tmp_path / "store"), "select count(*) from swe_trajectories")
    assert rows == [(1,)]
