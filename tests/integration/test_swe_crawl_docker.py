"""Crawled PR rows are real task instances: crawl (fake GitHub over loopback, diffs from a tiny git repo)
-> validate in Docker against a local bare mirror of that repo -> F2P/P2P computed from the PR's tests."""

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures
from tests.unit.test_swe_github import REPO, client_for, make_tiny_repo, script_repo

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_crawled_rows_validate_in_docker(swe_ctx, mirror_root, tmp_path):
    from pipelines.swe.fake_github import FakeGitHub
    from pipelines.swe.github import crawl
    from pipelines.swe.mirror import ensure_bare_mirror
    from pipelines.swe.sources import read_instances
    from pipelines.swe.validate import validate_instance

    (tmp_path / "calc").mkdir()
    tiny = make_tiny_repo(tmp_path / "calc")
    ensure_bare_mirror(tiny["dir"], mirror_root, REPO)
    out = tmp_path / "prs.jsonl"
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        crawl(client_for(gh), [REPO], out_path=out)
    good, problems = read_instances(out)
    assert problems == [] and [g["instance_id"] for g in good] == ["acme__calc-16", "acme__calc-10"]
    row = validate_instance(swe_ctx, good[1], "crawl-it")
    assert row["status"] == "valid", row["reason"]
    assert row["fail_to_pass"] == ["tests/test_calc.py::test_add"]
    assert row["pass_to_pass"] == ["tests/test_calc.py::test_sub"]
