"""Crawled PR rows are real task instances: crawl (fake GitHub over loopback, diffs from a tiny git repo)
-> validate in Docker against a local bare mirror of that repo -> F2P/P2P computed from the PR's tests."""

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures
from tests.unit.test_swe_github import REPO, client_for, make_tiny_repo, script_repo

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_crawled_rows_validate_in_docker(swe_ctx, mirror_root, tmp_path):
    from crucible.pipelines.swe.github import crawl
    from crucible.pipelines.swe.mirror import ensure_bare_mirror
    from crucible.pipelines.swe.sources import read_instances
    from crucible.pipelines.swe.validate import validate_instance
    from tests.support.fake_github import FakeGitHub

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


def test_swe_curate_with_github_repos_crawls_validates_and_records_rejections(mirror_root, tmp_path):
    """`swe.github.repos` through the whole pipeline: crawl (real client, fake API), env grouping, validation,
    gold rollout; every rejected PR is a failures row; a rerun makes one listing request and writes nothing."""
    from crucible.pipelines.config import load_config
    from crucible.pipelines.store import catalog
    from crucible.pipelines.swe.mirror import ensure_bare_mirror, mirror_template
    from crucible.pipelines.swe.pipeline import run
    from tests.support.fake_github import FakeGitHub

    (tmp_path / "calc").mkdir()
    tiny = make_tiny_repo(tmp_path / "calc")
    ensure_bare_mirror(tiny["dir"], mirror_root, REPO)
    out = tmp_path / "out"
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        cfg = load_config("swe", ["swe.sdists=[]", f"swe.github.repos=[{REPO}]", f"swe.github.api_url={gh.base_url}",
                                  f"sandbox.repo_url_template={mirror_template(mirror_root)}",
                                  "swe.statements.use_llm=false", "swe.rollouts.policies=[gold]",
                                  f"run.out_dir={out}", f"swe.workdir={tmp_path / 'work'}"])
        summary = run(cfg)
        n_requests = len(gh.requests)
        counts = {t: catalog.query(str(out), f"select count(*) from {t}")[1][0][0]
                  for t in ("swe_instances", "swe_validations", "swe_trajectories", "failures")}
        run(cfg)
        assert len(gh.requests) - n_requests == 1  # the listing only: every PR was decided before
        assert counts == {t: catalog.query(str(out), f"select count(*) from {t}")[1][0][0] for t in counts}
    assert summary["github_repos"] == 1 and summary["trajectories"].get("gold/resolved") == summary["instances"]
    _, rows = catalog.query(str(out), "select instance_id, source, source_ref, statement_origin, FAIL_TO_PASS "
                            "from swe_instances order by 1")
    by_id = {r[0]: r for r in rows}
    assert by_id["acme__calc-10"][1:4] == ("pr", "acme/calc#10", "issue")
    assert list(by_id["acme__calc-10"][4]) == ["tests/test_calc.py::test_add"]
    _, fails = catalog.query(str(out), "select item_key, reason from failures where stage = 'crawl'")
    reasons = dict(fails)
    assert reasons["github:acme__calc-11"] == "not_merged" and reasons["github:acme__calc-12"] == "no_linked_issue"
    assert reasons["github:acme__calc-13"] == "no_source_patch" and reasons["github:acme__calc-14"] == "no_test_patch"
