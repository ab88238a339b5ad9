"""The crawl against the real GitHub API. Opt-in: runs only with CRUCIBLE_GITHUB_LIVE=1 (and, ideally,
GITHUB_TOKEN set), because the build machine has no GitHub access; everything else is covered over
loopback by tests/unit/test_swe_github.py and tests/integration/test_swe_crawl_docker.py."""

import os

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.environ.get("CRUCIBLE_GITHUB_LIVE") != "1",
                                 reason="live GitHub test: set CRUCIBLE_GITHUB_LIVE=1 (and GITHUB_TOKEN) to run")]


def test_live_crawl_of_a_few_prs(tmp_path):
    from crucible.pipelines.swe.github import crawl
    from crucible.pipelines.swe.github_client import GitHubClient
    from crucible.pipelines.swe.github_rules import REASONS
    from crucible.pipelines.swe.sources import read_instances

    client = GitHubClient(max_rate_limit_wait_s=120)
    out = tmp_path / "live.jsonl"
    summary = crawl(client, ["psf/requests"], out_path=out, max_pulls=8 if client.authenticated else 4)
    assert summary.requests >= 1 and summary.rate_limit_remaining is not None
    assert summary.kept + sum(summary.rejected.values()) == (8 if client.authenticated else 4)
    assert set(summary.rejected) <= set(REASONS)
    good, problems = read_instances(out) if out.exists() and out.stat().st_size else ([], [])
    assert problems == [] and len(good) == summary.kept
    for row in good:
        assert row["instance_id"].startswith("psf__requests-") and len(row["base_commit"]) == 40
    again = crawl(GitHubClient(max_rate_limit_wait_s=120), ["psf/requests"], out_path=out,
                  max_pulls=8 if client.authenticated else 4)
    assert again.kept == 0 and not again.rejected and again.requests == 1
